"""FP8-block (DeepSeek 128×128) on Hopper through FlashInfer's CUTLASS fused-MoE module — only when
it is ALREADY built.

FlashInfer 0.7.2.post1 runs FP8-block MoE on SM90 only through ``CutlassFp8BlockConfig``
(fused_moe/api.py:1577, ``_CUTLASS_FP8_BLOCK_ARCHS = (90,)`` :549), whose runner
(``CutlassFp8BlockRunner``, fused_moe/runners.py:2594) loads the JIT module ``fused_moe_90``
(jit/fused_moe.py:163 ``gen_cutlass_fused_moe_sm90_module``; ``fused_moe_90_h20_prebuilt_d`` on
78-SM H20s, :46). Compiling that module takes about an hour on a 16-core machine, so run-layer
never starts that build. It looks, WITHOUT compiling and without generating sources, in the two
places FlashInfer loads it from (jit/core.py:460-505 ``get_library_path``):

1. an AOT provider: the ``flashinfer-jit-cache`` package for this CUDA (``flashinfer
   install-jit-cache-wheel``), or FlashInfer's own AOT dir — ``jit.env.get_aot_artifacts(name)``
   (jit/env.py:296);
2. an earlier JIT build: ``FLASHINFER_JIT_DIR/<name>/<name>.so`` (jit/core.py ``jit_library_path``).

Found: the layer runs with ``FLASHINFER_DISABLE_JIT=1`` set around FlashInfer's calls, so a stale or
partial artifact makes FlashInfer raise ``MissingJITCacheError`` (jit/core.py:348, :578) instead of
starting the hour-long build; run-layer reports that in one line. (With that variable FlashInfer
also picks the generic ``fused_moe_90`` name on H20s, jit/fused_moe.py:48, so that is the name
looked for.) Not found: the refusal names how to get the prebuilt module.

The weights go in as stored: our FP8 codes and 128×128 dequantization scales (``scale_inv``,
DeepSeek's convention) in FlashInfer's canonical ``[up, gate]`` row order are exactly the view
``prepare_cutlass_fp8_block_weights`` builds (fused_moe/prepare.py: ``fc1/fc2_expert_weights``
float8_e4m3fn, ``fc1/fc2_block_scale`` float32 [E, N/128, K/128], unshuffled), so no BF16
round trip re-quantizes them. Activations stay BF16 (the kernel quantizes them itself).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentError_, UnsupportedError
from . import kernels as _K
from ..kernels import unified_api as A
from .kernels import KernelPath

MODULE = "fused_moe_90"
_FI = "flashinfer-python 0.7.2.post1"
HOW_TO_GET = ("install FlashInfer's prebuilt kernels (`flashinfer install-jit-cache-wheel`, the flashinfer-jit-cache "
              "package for your CUDA), or build it once with FlashInfer's JIT (about an hour on 16 cores) and keep "
              "FLASHINFER_WORKSPACE_BASE")

#: The CUTLASS FP8-block path on SM90 (W8A8: the kernel quantizes BF16 activations to FP8 blocks).
CUTLASS_SM90_FP8_BLOCK = KernelPath(
    "fp8-block", True, "cutlass", A.CUTLASS_FP8_BLOCK, "CutlassFp8BlockConfig", "DeepSeekFp8", "DeepSeekFp8",
    "cutlass_fp8_block", (), source=f"{_FI} fused_moe/api.py:1577 CutlassFp8BlockConfig; runners.py:2594")


@dataclass(frozen=True)
class ModuleLookup:
    found: bool
    name: str
    provider: str | None  # "flashinfer-jit-cache" / AOT provider id, "jit-cache", or None
    path: str | None
    looked_in: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"found": self.found, "name": self.name, "provider": self.provider, "path": self.path,
                "looked_in": list(self.looked_in)}


def find_module(name: str = MODULE, *, aot_artifacts=None, jit_dir: Path | None = None) -> ModuleLookup:
    """Where FlashInfer would load ``name`` from, without building or generating anything.

    ``aot_artifacts`` (name -> tuple of artifacts with ``.provider_id``/``.path``) and ``jit_dir``
    default to FlashInfer's own (``jit.env.get_aot_artifacts``, ``jit.env.FLASHINFER_JIT_DIR``).
    """
    if aot_artifacts is None or jit_dir is None:
        try:
            from flashinfer.jit import env as jit_env
        except Exception as e:  # noqa: BLE001
            raise EnvironmentError_(f"flashinfer is not importable ({type(e).__name__})") from None
        aot_artifacts = aot_artifacts or jit_env.get_aot_artifacts
        jit_dir = jit_dir or Path(jit_env.FLASHINFER_JIT_DIR)
    looked = []
    try:
        arts = tuple(aot_artifacts(name))
    except Exception:  # noqa: BLE001 - a broken provider install is "not found", FlashInfer would fail too
        arts = ()
    looked.append("AOT providers (flashinfer-jit-cache)")
    for a in arts:
        p = Path(a.path)
        if p.is_file():
            return ModuleLookup(True, name, str(a.provider_id), str(p), tuple(looked))
    so = Path(jit_dir) / name / f"{name}.so"
    looked.append(str(so))
    if so.is_file():
        return ModuleLookup(True, name, "jit-cache", str(so), tuple(looked))
    return ModuleLookup(False, name, None, None, tuple(looked))


def sm90_fp8_block_path(arch: int, *, lookup: ModuleLookup | None = None) -> tuple[KernelPath, ModuleLookup]:
    """The CUTLASS path when the module is built; else UnsupportedError with how to get it."""
    if arch != 90:
        raise UnsupportedError(f"FlashInfer's CUTLASS FP8-block MoE runs on SM90 only; this is SM{arch}")
    lk = lookup or find_module()
    if not lk.found:
        raise UnsupportedError(
            f"FP8-block on SM90 needs FlashInfer's CUTLASS module {lk.name}, which is not built here (looked in "
            f"{'; '.join(lk.looked_in)}); run-layer does not start its ~1 h JIT build: {HOW_TO_GET}")
    return CUTLASS_SM90_FP8_BLOCK, lk


def add_to_namespace(fi) -> None:
    """Put ``CutlassFp8BlockConfig`` into run-layer's FlashInfer namespace (kernels.flashinfer_namespace)."""
    if not hasattr(fi, "CutlassFp8BlockConfig"):
        from flashinfer.fused_moe import api as fapi

        fi.CutlassFp8BlockConfig = fapi.CutlassFp8BlockConfig


def weight_view(weights) -> dict:
    """FlashInfer's ``cutlass_fp8_block`` view from our stored FP8-block tensors (no re-quantization)."""
    if weights.quant != "fp8-block":
        raise UnsupportedError(f"weights are {weights.quant}; the CUTLASS SM90 path takes fp8-block")
    t = weights.tensors
    return {"fc1_expert_weights": t["w1"].contiguous(), "fc2_expert_weights": t["w2"].contiguous(),
            "fc1_block_scale": t["w1_scale"].float().contiguous(), "fc2_block_scale": t["w2_scale"].float().contiguous()}


def activation_pack(fi, x, topk_ids, topk_weights):
    """BF16 hidden states + precomputed int32 ids / fp32 weights (the kernel quantizes activations)."""
    import torch

    return fi.MoEActivationPack(x, None, topk_ids.to(torch.int32).contiguous(), topk_weights.float().contiguous(),
                                routing_input_mode=fi.RoutingInputMode.PackedPrecomputed)


@contextlib.contextmanager
def no_jit_build():
    """FLASHINFER_DISABLE_JIT=1 for the duration: a missing/stale module raises instead of building."""
    before = os.environ.get("FLASHINFER_DISABLE_JIT")
    os.environ["FLASHINFER_DISABLE_JIT"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FLASHINFER_DISABLE_JIT", None)
        else:
            os.environ["FLASHINFER_DISABLE_JIT"] = before


def prepare_layer(fi, path: KernelPath, w, *, device, tune_max_num_tokens: int, prepared_cls):
    """runner.PreparedLayer for the CUTLASS path: our FP8-block tensors as FlashInfer's view, and a
    MoELayer that is built and called with FlashInfer's JIT switched off (never the ~1 h build)."""
    add_to_namespace(fi)
    config = _K.build_config(fi, path, w.shapes, tune_max_num_tokens=tune_max_num_tokens)
    view = weight_view(w)
    pack = _K.make_weight_pack(fi, path, view)
    with no_jit_build():
        layer = fi.MoELayer(config, device=device)

    def moe(act, weight_pack):
        with no_jit_build():
            return layer(act, weight_pack)

    return prepared_cls(path, w.shapes, config, view, pack, moe, None, None)
