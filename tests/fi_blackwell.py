"""FlashInfer 0.7.2.post1's real TRT-LLM MoE code on a CPU-only machine, up to the kernel launch.

Exactly three substitutions (issue 14), everything else is FlashInfer's own Python:

1. ``flashinfer.utils.get_compute_capability`` and the name imported into
   ``flashinfer.fused_moe.layer`` return (10, 0) or (10, 3);
2. ``flashinfer.fused_moe.core.get_trtllm_moe_sm100_module`` returns FlashInfer's real
   ``fused_moe.backends.trtllm.MoERunner`` with a :class:`LaunchRecorder` in place of the compiled
   ``moe_op`` (the compiled module needs cubin headers and a GPU);
3. torch versions of ``fp4_quantize``, ``block_scale_interleave`` and ``mxfp8_quantize`` (CUDA-only
   ops): our quantizers (moe_inspect/layer/quantizers.py) for the values and FlashInfer's own torch
   twin of the 128x4 scale swizzle (experimental/b12x/moe/_shared/kernels/reference_flashinfer.py
   ``_block_scale_interleave_128x4_torch``); on ``meta`` tensors they only produce the shapes and
   dtypes the CUDA ops return (fp4_quantization.py ``_fake_fp4_quantize_sm100``, with the uint8
   storage the real op returns).

The recorder checks each launch against the C++ signature in FlashInfer's own
``data/csrc/trtllm_fused_moe_kernel_launcher.cu`` (arity, tensors where ``TensorView`` is required)
and keeps the arguments by their C++ parameter names.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch

LAUNCHES = ("trtllm_bf16_moe", "trtllm_fp8_block_scale_moe", "trtllm_fp8_per_tensor_scale_moe",
            "trtllm_fp8_per_tensor_scale_routed_moe", "trtllm_fp4_block_scale_moe")


def _launcher_source() -> str:
    import flashinfer

    return os.path.join(os.path.dirname(flashinfer.__file__), "data", "csrc", "trtllm_fused_moe_kernel_launcher.cu")


def cpp_signatures() -> dict[str, list[tuple[str, str]]]:
    """launch name -> [(C++ type, parameter name)] read from FlashInfer's launcher source."""
    text = open(_launcher_source()).read()
    out = {}
    for name in LAUNCHES:
        m = re.search(r"^Array<Tensor> " + name + r"\((.*?)\)\s*\{", text, re.S | re.M)
        assert m, f"{name} not found in {_launcher_source()}"
        params = []
        for part in " ".join(m.group(1).split()).split(","):
            typ, _, pname = part.strip().rpartition(" ")
            params.append((typ.replace(" const&", "").strip(), pname))
        out[name] = params
    return out


@dataclass
class Launch:
    name: str
    args: dict  # C++ parameter name -> value
    types: dict  # C++ parameter name -> C++ type

    @property
    def tactic(self):
        """The tactic argument (``moe_tactic`` / ``config_index``: the one ``Array<int64_t>``)."""
        (key,) = [k for k, t in self.types.items() if t == "Array<int64_t>"]
        return self.args[key]

    def routed_ids(self):
        """The precomputed ids argument (``expert_indices`` or ``topk_ids``, by launcher)."""
        return self.args["topk_ids"] if "topk_ids" in self.args else self.args["expert_indices"]

    def tensor(self, key: str) -> torch.Tensor:
        v = self.args[key]
        assert isinstance(v, torch.Tensor), f"{self.name}.{key} is {type(v).__name__}, not a tensor"
        return v

    def spec(self, key: str):
        """(dtype, shape) of a tensor argument, None for an absent optional."""
        v = self.args[key]
        return None if v is None else (v.dtype, tuple(v.shape))


@dataclass
class LaunchRecorder:
    """Stands in for the compiled ``moe_op``: records the one launch, refuses anything else."""

    signatures: dict = field(default_factory=cpp_signatures)
    launches: list = field(default_factory=list)

    def __getattr__(self, name):
        if name.startswith("__") or name not in self.__dict__.get("signatures", {}):
            raise AttributeError(f"moe_op.{name} was called: the recorder only takes the MoE launches")
        params = self.signatures[name]

        def launch(*args, **kwargs):
            assert not kwargs, f"{name}: TVM-FFI launches are positional, got keywords {sorted(kwargs)}"
            assert len(args) == len(params), f"{name}: {len(args)} arguments, the C++ launcher takes {len(params)}"
            named = {}
            for (typ, pname), v in zip(params, args):
                if typ == "TensorView":
                    assert isinstance(v, torch.Tensor), f"{name}({pname}): TensorView required, got {type(v).__name__}"
                elif typ == "int64_t" or typ == "bool":
                    assert isinstance(v, int), f"{name}({pname}): {typ} required, got {type(v).__name__}"
                named[pname] = v
            self.launches.append(Launch(name, named, dict((p, t) for t, p in params)))
            return None  # do_finalize=True: FlashInfer returns the caller's output tensor

        return launch

    @property
    def only(self) -> Launch:
        assert len(self.launches) == 1, f"{len(self.launches)} launches recorded"
        return self.launches[0]


# ----------------------------------------------------------------------------- substitution 3
def _fake(x: torch.Tensor) -> bool:
    return x.device.type == "meta"


def torch_fp4_quantize(input, global_scale=None, sf_vec_size=16, sf_use_ue8m0=False, is_sf_swizzled_layout=True,
                       is_sf_8x4_layout=False, is_global_scale_inversed=False, enable_pdl=None, backend="cuda",
                       nvfp4_4over6=None):
    """FlashInfer ``fp4_quantize`` with linear scales: (uint8 [M, K/2], uint8 [M*K/sf_vec_size])."""
    from moe_inspect.layer import quantizers as Q

    assert not is_sf_swizzled_layout and not is_sf_8x4_layout and not is_global_scale_inversed, \
        "the TRT-LLM MoE preparation asks for linear scales only"
    m, k = input.shape
    assert k % sf_vec_size == 0
    if _fake(input):
        return (torch.empty((m, k // 2), dtype=torch.uint8, device="meta"),
                torch.empty((m * k // sf_vec_size,), dtype=torch.uint8, device="meta"))
    if sf_use_ue8m0:
        assert sf_vec_size == 32
        q, s = Q.quantize_mxfp4(input.float())
        return q, s.reshape(-1)
    assert sf_vec_size == 16
    gs = 1.0 if global_scale is None else float(global_scale.reshape(-1)[0])
    q, s, _ = Q.quantize_nvfp4(input.float(), global_scale=1.0 / gs)  # FlashInfer's scale is the inverse
    return q, s.view(torch.uint8).reshape(-1)


def torch_block_scale_interleave(unswizzled_sf, *, out=None):
    """FlashInfer's own torch twin of the 128x4 swizzle, verbatim (experimental/b12x/moe/_shared/kernels/
    reference_flashinfer.py ``_block_scale_interleave_128x4_torch``; that package imports triton)."""
    assert out is None
    assert unswizzled_sf.dtype in (torch.uint8, torch.bfloat16), unswizzled_sf.dtype  # the CUDA op asserts this
    sf = unswizzled_sf.reshape(1, *unswizzled_sf.shape) if unswizzled_sf.dim() == 2 else unswizzled_sf
    batches, rows, cols = sf.shape
    rows_padded, cols_padded = (rows + 127) // 128 * 128, (cols + 3) // 4 * 4
    if rows_padded != rows or cols_padded != cols:
        padded = sf.new_zeros((batches, rows_padded, cols_padded))
        padded[:, :rows, :cols] = sf
        sf = padded
    else:
        sf = sf.contiguous()
    swizzled = sf.reshape(batches, rows_padded // 128, 4, 32, cols_padded // 4, 4)
    return swizzled.permute(0, 1, 4, 3, 2, 5).contiguous().reshape(-1)


def torch_mxfp8_quantize(input, is_sf_swizzled_layout=True, alignment=32, enable_pdl=None, backend="cuda",
                         sf_swizzle_layout=None):
    from moe_inspect.layer import quantizers as Q

    assert not is_sf_swizzled_layout and sf_swizzle_layout is None and alignment == 32
    m, k = input.shape
    if _fake(input):
        return (torch.empty((m, k), dtype=torch.float8_e4m3fn, device="meta"),
                torch.empty((m * k // 32,), dtype=torch.uint8, device="meta"))
    q, s = Q.quantize_mxfp8(input.float())
    return q, s.reshape(-1)


# ----------------------------------------------------------------------------- the context
@contextlib.contextmanager
def blackwell(arch: int = 100):
    """FlashInfer believes it runs on SM``arch``; yields the LaunchRecorder of this context."""
    import flashinfer.fp4_quantization as fp4_top
    import flashinfer.fused_moe.core as core
    import flashinfer.fused_moe.layer as layer
    import flashinfer.quantization.fp4_quantization as fp4
    import flashinfer.quantization.fp8_quantization as fp8
    import flashinfer.utils as utils
    from flashinfer.fused_moe.backends.trtllm import MoERunner

    assert arch in (100, 103), arch
    cc = (arch // 10, arch % 10)
    rec = LaunchRecorder()
    subs = [
        (utils, "get_compute_capability", lambda device: cc),
        (layer, "get_compute_capability", lambda device: cc),
        (core, "get_trtllm_moe_sm100_module", lambda: SimpleNamespace(moe_op=rec, MoERunner=MoERunner)),
        (fp4_top, "fp4_quantize", torch_fp4_quantize),
        (fp4, "fp4_quantize", torch_fp4_quantize),
        (fp4, "block_scale_interleave", torch_block_scale_interleave),
        (fp8, "mxfp8_quantize", torch_mxfp8_quantize),
    ]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in subs]
    # Not a substitution: FlashInfer's shape-keyed permute-index cache (fused_moe/prepare.py:60) would hand
    # indices computed on ``meta`` to a later CPU run of the same shape; each context starts and ends empty.
    import flashinfer.fused_moe.prepare as prepare

    prepare._TRTLLM_PERMUTE_CACHE.clear()
    try:
        for mod, name, fn in subs:
            setattr(mod, name, fn)
        yield rec
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        prepare._TRTLLM_PERMUTE_CACHE.clear()
