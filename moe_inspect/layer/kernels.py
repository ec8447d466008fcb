"""Which FlashInfer MoE path runs a format on a GPU, and its arguments, through the public API.

Everything goes through FlashInfer's unified API (``flashinfer.fused_moe``: ``MoELayer``,
``MoEConfig``, ``RoutingConfig``, ``QuantConfig``, ``ExpertConfig``, ``BackendOptions``,
``MoEWeightPack``, ``MoEActivationPack`` and one backend config class). The argument builders take
the API as a namespace ``fi`` so that CPU tests can hand in recording stubs and assert every
argument up to the kernel call; :func:`flashinfer_namespace` gives the real one.

Facts read from flashinfer-python 0.7.2.post1 (fused_moe/api.py, layer.py, runners.py,
prepare.py):

* cuTile runners take only ``PackedPrecomputed`` routing (int32 ids + float32 weights), no
  expert parallelism, no fused shared experts, ``do_finalize=True``, no PDL.
* cuTile prepare helpers take CHECKPOINT-NATIVE tensors (packed FP4 + scales, E4M3 + scales);
  TRT-LLM prepare helpers take canonical BF16 weights and quantize them themselves.
* On TRT-LLM paths the weights FlashInfer quantizes are the BF16 rounding of ours, so the kernel's
  weights can differ from the reference's by one quantization step in places (NVFP4 values times
  an FP32 global scale are not all BF16-representable); the cuTile paths take our tensors as is.
* TRT-LLM runners accept ``FromLogits`` (in-kernel routing by ``RoutingConfig.method``) as well
  as the precomputed modes; MXFP4 FromLogits needs bfloat16 logits.
* ``SwiGLU(alpha, beta, limit)`` (gpt-oss: 1.702, 1.0, swiglu_limit) reaches the cuTile kernels and
  the TRT-LLM BF16 / FP8-block / FP4 runners (through the prepared view); TRT-LLM FP8 per-tensor
  takes only the default. No cuTile or TRT-LLM unified-API runner takes expert GEMM biases
  (``TrtllmFp4RoutedRunner`` launches with ``gemm1_bias=None``), so gpt-oss checkpoints are refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace
from typing import Any

from ..errors import EnvironmentError_, UnsupportedError
from ..kernels import trtllm_moe_limits as L
from ..kernels import unified_api as A

_FI = "flashinfer-python 0.7.2.post1 fused_moe/api.py"
_VLLM_MONO = "vLLM v0.33 TrtLlm*ExpertsMonolithic allow-list (REFERENCE.md §5)"

# FlashInfer TRT-LLM monolithic routing allow-lists (REFERENCE.md §5, vLLM v0.33)
_M_BF16 = ("DeepSeekV3", "Llama4", "Renormalize", "RenormalizeNaive", "SigmoidRenorm", "MiniMax2", "Sigmoid")
_M_FP8_BLOCK = ("DeepSeekV3", "Renormalize", "RenormalizeNaive", "SigmoidRenorm", "Sigmoid", "MiniMax2")
_M_FP8_TENSOR = _M_FP8_BLOCK + ("Llama4",)
_M_NVFP4 = ("DeepSeekV3", "Renormalize", "RenormalizeNaive", "Llama4", "SigmoidRenorm", "Sigmoid", "MiniMax2")
_M_MXFP4 = ("DeepSeekV3", "Renormalize", "RenormalizeNaive")

_CUTILE_W16 = A.CUTILE_BF16  # = A.CUTILE_W4A16 (fused_moe/api.py:522, :525)
assert A.CUTILE_W4A16 == _CUTILE_W16
_TRTLLM = A.TRTLLM_ROUTED  # _TRTLLM_ROUTED_ARCHS = _TRTLLM_ROUTED_FP8_ARCHS (api.py:506, :510)
assert A.TRTLLM_ROUTED_FP8 == _TRTLLM


@dataclass(frozen=True)
class KernelPath:
    """One (format, activation precision, backend) that FlashInfer can run, and where."""

    quant: str  # --quant
    quantized_activations: bool  # False = BF16 activations (weight-only)
    backend: str  # "cutile" | "trtllm"
    archs: tuple[int, ...]
    config_class: str  # FlashInfer backend config class
    weight_format: str  # QuantFormat member
    activation_format: str  # QuantFormat member
    backend_key: str  # MoEWeightPack view key
    fused_methods: tuple[str, ...]  # methods FromLogits may route in-kernel (empty: precomputed only)
    logits_dtype: str = "float32"  # FromLogits routing_logits dtype
    source: str = _FI

    def to_dict(self) -> dict:
        return asdict(self)


PATHS: tuple[KernelPath, ...] = (
    # cuTile (SM89/SM90/SM12x): PackedPrecomputed only
    KernelPath("bf16", False, "cutile", _CUTILE_W16, "CuTileBf16Config", "BF16", "BF16", "cutile_bf16", ()),
    KernelPath("fp8", False, "cutile", _CUTILE_W16, "CuTileFp8PerTensorBf16Config", "FP8PerTensor", "BF16",
               "cutile_fp8_per_tensor", ()),
    KernelPath("fp8", True, "cutile", A.CUTILE_FP8, "CuTileFp8PerTensorConfig", "FP8PerTensor", "FP8PerTensor",
               "cutile_fp8_per_tensor", ()),
    KernelPath("nvfp4", False, "cutile", _CUTILE_W16, "CuTileNvfp4Bf16Config", "NVFP4", "BF16", "cutile_nvfp4", ()),
    KernelPath("nvfp4", True, "cutile", A.CUTILE_NVFP4, "CuTileNvfp4Config", "NVFP4", "NVFP4", "cutile_nvfp4", ()),
    KernelPath("mxfp4", False, "cutile", _CUTILE_W16, "CuTileMxfp4Bf16Config", "MXFP4", "BF16", "cutile_mxfp4", ()),
    KernelPath("mxfp4", True, "cutile", A.CUTILE_MXFP4, "CuTileMxfp4Config", "MXFP4", "MXFP4", "cutile_mxfp4", ()),
    KernelPath("mxfp8", False, "cutile", _CUTILE_W16, "CuTileMxfp8Bf16Config", "MXFP8", "BF16", "cutile_mxfp8", ()),
    KernelPath("mxfp8", True, "cutile", A.CUTILE_MXFP8, "CuTileMxfp8Config", "MXFP8", "MXFP8", "cutile_mxfp8", ()),
    # TRT-LLM-gen (SM100/SM103): in-kernel routing (FromLogits) or the routed variants
    KernelPath("bf16", False, "trtllm", _TRTLLM, "TrtllmBf16Config", "BF16", "BF16", "trtllm_bf16_routed", _M_BF16,
               source=f"{_FI}; {_VLLM_MONO}"),
    KernelPath("fp8-block", True, "trtllm", _TRTLLM, "TrtllmFp8BlockConfig", "DeepSeekFp8", "DeepSeekFp8",
               "trtllm_fp8_block", _M_FP8_BLOCK, source=f"{_FI}; {_VLLM_MONO}"),
    KernelPath("fp8", True, "trtllm", _TRTLLM, "TrtllmFp8PerTensorConfig", "FP8PerTensor", "FP8PerTensor",
               "trtllm_fp8_per_tensor", _M_FP8_TENSOR, source=f"{_FI}; {_VLLM_MONO}"),
    KernelPath("nvfp4", True, "trtllm", _TRTLLM, "TrtllmFp4Config", "NVFP4", "NVFP4", "trtllm_fp4_routed", _M_NVFP4,
               source=f"{_FI}; {_VLLM_MONO}"),
    KernelPath("mxfp4", False, "trtllm", (100, 107), "TrtllmFp4Config", "MXFP4", "BF16", "trtllm_fp4_routed", _M_MXFP4,
               logits_dtype="bfloat16", source=f"{_FI} (W4A16 disabled on SM103); {_VLLM_MONO}"),
    KernelPath("mxfp4", True, "trtllm", _TRTLLM, "TrtllmFp4Config", "MXFP4", "MXFP8", "trtllm_fp4_routed", _M_MXFP4,
               logits_dtype="bfloat16", source=f"{_FI}; {_VLLM_MONO}"),
    KernelPath("mxfp8", True, "trtllm", _TRTLLM, "TrtllmFp8BlockConfig", "MXFP8", "MXFP8", "trtllm_fp8_block",
               _M_FP8_BLOCK, source=f"{_FI}; {_VLLM_MONO}"),
)

@dataclass(frozen=True)
class EpilogueSupport:
    """What one backend config does with the gated activation's scalars and the expert GEMM biases."""

    config_class: str
    swiglu_params: bool  # a non-default SwiGLU(alpha, beta, limit) reaches the kernel
    gemm_bias: bool  # expert GEMM1/GEMM2 biases reach the kernel
    source: str


_EPI_CUTILE = (f"{_FI}: cuTile prepare_* take activation.type; fused_moe/cutile/activation.py "
               "_activation_kernel_args lowers SwiGLU alpha/beta/limit; the cuTile GEMMs have no bias operand")
_EPI_TRT = ("flashinfer-python 0.7.2.post1 fused_moe/prepare.py _activation_param_view (gemm1_alpha/beta/clamp_limit "
            "in the prepared view); runners.py {runner} launches without gemm1_bias/gemm2_bias")
#: Per backend config: SwiGLU scalars and expert biases (only PrimsTsRunner, not run here, reads GEMM biases).
EPILOGUES: dict[str, EpilogueSupport] = {
    e.config_class: e
    for e in (
        *(EpilogueSupport(c, True, False, _EPI_CUTILE) for c in (
            "CuTileBf16Config", "CuTileFp8PerTensorBf16Config", "CuTileFp8PerTensorConfig", "CuTileNvfp4Bf16Config",
            "CuTileNvfp4Config", "CuTileMxfp4Bf16Config", "CuTileMxfp4Config", "CuTileMxfp8Bf16Config",
            "CuTileMxfp8Config")),
        EpilogueSupport("TrtllmBf16Config", True, False, _EPI_TRT.format(runner="TrtllmBf16RoutedRunner")),
        EpilogueSupport("TrtllmFp8BlockConfig", True, False, _EPI_TRT.format(runner="TrtllmFp8BlockRunner")),
        EpilogueSupport("TrtllmFp4Config", True, False,
                        _EPI_TRT.format(runner="TrtllmFp4RoutedRunner (gemm1_bias=None, gemm2_bias=None)")),
        EpilogueSupport("TrtllmFp8PerTensorConfig", False, False,
                        "flashinfer-python 0.7.2.post1 fused_moe/runners.py TrtllmFp8PerTensorRunner."
                        "_check_activation_parameters: cannot represent non-default SwiGLU scalars"),
        # SM90 CUTLASS FP8-block (layer/cutlass_sm90.py, only where fused_moe_90 is already built)
        EpilogueSupport("CutlassFp8BlockConfig", True, False,
                        "flashinfer-python 0.7.2.post1 fused_moe/runners.py CutlassFp8BlockRunner: "
                        "supported_activation_classes = _CUTLASS_SEMANTIC_ACTIVATIONS (SwiGLU with alpha/beta/limit); "
                        "run-layer passes no expert biases"),
    )
}

BACKENDS = ("auto", "cutile", "trtllm")

def _arch_name(arch: int) -> str:
    return f"SM{arch}"


def select_path(quant: str, arch: int, *, backend: str = "auto", quantized_activations: bool | None = None) -> KernelPath:
    """The path that runs ``quant`` on ``arch``; UnsupportedError (exit 2) saying why and what runs instead.

    ``quantized_activations`` None = the arch's natural choice: on TRT-LLM archs the quantized
    activation variant (weight-only where that is the only one), on cuTile archs weight-only.
    """
    if backend not in BACKENDS:
        raise UnsupportedError(f"--backend {backend}: unknown backend (known: {', '.join(BACKENDS)})")
    rows = [p for p in PATHS if p.quant == quant]
    if not rows:
        raise UnsupportedError(f"--quant {quant}: no FlashInfer path for this format")
    here = [p for p in rows if arch in p.archs and (backend == "auto" or p.backend == backend)]
    if quantized_activations is not None:
        here = [p for p in here if p.quantized_activations == quantized_activations]
    trt_arch = arch in _TRTLLM
    if here:
        here.sort(key=lambda p: (p.backend != ("trtllm" if trt_arch else "cutile"), p.quantized_activations != trt_arch))
        return here[0]
    # explain: what was asked, where it runs, and what runs here instead
    asked = [p for p in rows if (backend == "auto" or p.backend == backend)
             and (quantized_activations is None or p.quantized_activations == quantized_activations)] or rows
    want = sorted(asked, key=lambda p: p.backend != "trtllm")[0]
    where = "/".join(_arch_name(a) for a in sorted(set(want.archs) - {89, 107}))
    what = f"{'TRT-LLM' if want.backend == 'trtllm' else 'cuTile'} {want.weight_format}×{want.activation_format}"
    if want.backend == "trtllm":
        what += " with fused routing"
    instead = [p for p in rows if arch in p.archs]
    if instead:
        alt = instead[0]
        flag = f"--backend {alt.backend}" + ("" if alt.quantized_activations else " --act bf16")
        tail = (f" — the {'cuTile' if alt.backend == 'cutile' else 'TRT-LLM'} {alt.weight_format}×"
                f"{alt.activation_format} path runs instead with {flag}")
    else:
        others = sorted({p.quant for p in PATHS if arch in p.archs})
        tail = f" — formats that run here: {', '.join(others)}" if others else ""
        if quant == "fp8-block" and arch == 90:
            tail += " (FlashInfer's SM90 CUTLASS fused_moe_90 module takes about an hour to JIT-compile)"
    raise UnsupportedError(f"{what} needs {where}; this is {_arch_name(arch)}{tail}")


def check_runnable_anywhere(quant: str, *, backend: str = "auto", quantized_activations: bool | None = None) -> None:
    """A (--quant, --backend, --act) no GPU runs -> UnsupportedError before looking for one."""
    rows = [p for p in PATHS if p.quant == quant and (backend == "auto" or p.backend == backend)
            and (quantized_activations is None or p.quantized_activations == quantized_activations)]
    if rows:
        return
    act = "" if quantized_activations is None else (" --act quant" if quantized_activations else " --act bf16")
    runs = sorted({(p.backend, "quant" if p.quantized_activations else "bf16") for p in PATHS if p.quant == quant})
    raise UnsupportedError(
        f"--quant {quant}{'' if backend == 'auto' else f' --backend {backend}'}{act}: no FlashInfer path runs it on any "
        f"GPU (runs: {', '.join(f'--backend {b} --act {a}' for b, a in runs)})")


def routing_mode(path: KernelPath, method: str, *, force_precomputed: bool = False) -> str:
    """'FromLogits' when the kernel routes ``method`` itself, else 'PackedPrecomputed'."""
    if not force_precomputed and method in path.fused_methods:
        return "FromLogits"
    return "PackedPrecomputed"


@dataclass(frozen=True)
class ShapeAlign:
    """Multiples a backend config needs of H and I for one weight format."""

    hidden: int
    intermediate: int
    source: str


_PREP = "flashinfer-python 0.7.2.post1 fused_moe/prepare.py"
#: (backend, --quant) -> H / I multiples. TRT-LLM rows: FlashInfer's own preparation; the grid test
#: (tests/test_flashinfer_grid.py) runs it over (arch, E, k, H, I, groups) and finds no other limit.
SHAPE_ALIGN: dict[tuple[str, str], ShapeAlign] = {
    ("cutile", "nvfp4"): ShapeAlign(64, 64, "cuTile NVFP4 scale tiles"),
    ("cutile", "mxfp4"): ShapeAlign(32, 32, "OCP MX 32-element blocks"),
    ("cutile", "mxfp8"): ShapeAlign(32, 32, "OCP MX 32-element blocks"),
    ("cutile", "fp8"): ShapeAlign(32, 32, "cuTile FP8 tiles"),
    # BF16: BlockMajorK blocks of 128 bytes = 64 elements along K (prepare.py:1346-1369 convert_to_block_layout;
    # a bare AssertionError "K must be divisible by blockK" from fused_moe/core.py:624 otherwise)
    ("trtllm", "bf16"): ShapeAlign(64, 64, f"{_PREP}:1346-1369 prepare_trtllm_bf16_weights (block_k 128 B = 64 BF16; "
                                           "core.py:624 asserts K % blockK)"),
    ("trtllm", "fp8-block"): ShapeAlign(128, 128, f"{_PREP}: DeepSeek FP8 128x128 blocks"),
    ("trtllm", "mxfp8"): ShapeAlign(128, 128, f"{_PREP}: prepare_trtllm_fp8_block_weights MXFP8 (epilogue tile 128)"),
    # MXFP4: prepare_trtllm_fp4_weights' own ValueError (required_alignment = 128 for MXFP4)
    ("trtllm", "mxfp4"): ShapeAlign(128, 128, f"{_PREP}:533-541 prepare_trtllm_fp4_weights (MXFP4 needs 128)"),
    # NVFP4: 16-element scales, GEMM1 rows (2I) % 128, and the w2 scale shuffle asserts H % 128
    # (a bare AssertionError from utils.py:1123 get_shuffle_matrix_sf_a_row_indices via prepare.py:631)
    ("trtllm", "nvfp4"): ShapeAlign(128, 64, f"{_PREP}:563,631 prepare_trtllm_fp4_weights (GEMM1 rows % 128, "
                                             "w2 scale shuffle: flashinfer/utils.py:1123 asserts H % 128)"),
}


def check_layer_shapes(shapes) -> None:
    """Limits every FlashInfer MoE path shares (no arch needed): run before looking for a GPU."""
    e, k = shapes.num_experts, shapes.top_k
    if not 1 <= k <= min(32, e):
        raise UnsupportedError(f"--top-k {k}: FlashInfer MoE takes 1 <= top_k <= min(32, experts={e})")
    if e > 512:
        raise UnsupportedError(f"--experts {e}: FlashInfer MoE takes at most 512 experts (MAX_SUPPORTED_TOTAL_EXPERTS)")


def check_kernel_shapes(path: KernelPath, shapes, mode: str) -> None:
    """Shapes the kernel cannot take -> UnsupportedError naming the value."""
    e, k, h, i = shapes.num_experts, shapes.top_k, shapes.hidden_size, shapes.intermediate_size
    check_layer_shapes(shapes)
    fp8_block = path.config_class == "TrtllmFp8BlockConfig"  # Fp8BlockScaleLauncher (FP8-block and MXFP8)
    first = [p for p in (path.backend == "trtllm" and L.experts_mod4_problem(e),
                         fp8_block and L.launcher_experts_problem(e, k)) if p]
    if first:
        raise UnsupportedError(first[0])
    al = SHAPE_ALIGN.get((path.backend, path.quant))
    if al and (h % al.hidden or i % al.intermediate):
        need = (f"both to be multiples of {al.hidden}" if al.hidden == al.intermediate
                else f"hidden a multiple of {al.hidden} and intermediate a multiple of {al.intermediate}")
        raise UnsupportedError(f"--hidden {h} / --intermediate {i}: {path.config_class} ({path.weight_format}) needs {need}")
    if mode == "FromLogits":
        args = (shapes.routing_method, e, k, shapes.n_group, shapes.topk_group)
        probs = L.tier_problems(*args) + (L.fp8_block_routing_problems(*args) if fp8_block else [])
        if probs:
            raise UnsupportedError(f"{shapes.routing_method} in-kernel routing: {probs[0]}")


def check_layer_support(path: KernelPath, shapes) -> None:
    """The layer's activation and expert biases against what ``path`` takes -> one-line UnsupportedError."""
    from .reference import gated_activation

    act, limit = gated_activation(shapes)
    epi = EPILOGUES[path.config_class]
    if getattr(shapes, "expert_bias", False) and not epi.gemm_bias:
        raise UnsupportedError(
            f"expert GEMM biases (gate_up_proj_bias/down_proj_bias): {path.config_class} takes none in FlashInfer "
            "0.7.2.post1 (no cuTile or TRT-LLM unified-API runner passes gemm1_bias/gemm2_bias), so this layer "
            "cannot run; --weights random runs its shapes without biases")
    if act.name != "silu" and not epi.swiglu_params:
        raise UnsupportedError(
            f"activation {act.name} = SwiGLU(alpha={act.alpha}, beta={act.beta}, limit={limit}): {path.config_class} "
            "only runs the default SwiGLU (FlashInfer 0.7.2.post1 TrtllmFp8PerTensorRunner); try --quant fp8-block, "
            "nvfp4, mxfp4 or bf16")


def activation_config(fi, shapes):
    """FlashInfer's typed activation for the layer: ``SwiGLU()``, or gpt-oss's SwiGLU(1.702, 1.0, limit)."""
    from .reference import gated_activation

    act, limit = gated_activation(shapes)
    if act.name == "silu":
        return fi.SwiGLU()
    return fi.SwiGLU(alpha=act.alpha, beta=act.beta, limit=limit)


# ----------------------------------------------------------------------------- the real API
def flashinfer_namespace() -> SimpleNamespace:
    """FlashInfer's public MoE API as a namespace; EnvironmentError_ when it cannot be imported."""
    from ..extras import require

    require("flashinfer", "gpu", "run-layer")  # not installed: names the extra
    try:  # installed but broken (a missing CUDA library, an ABI mismatch): say what failed
        import flashinfer
        from flashinfer.fused_moe import api as fapi
        from flashinfer.fused_moe.layer import MoELayer
        from flashinfer.tllm_enums import RoutingInputMode, RoutingMethodType
    except Exception as e:  # ImportError, or a broken install raising anything at import
        raise EnvironmentError_(
            f"flashinfer is not importable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            hint="pip install 'moe-inspect[gpu]' (flashinfer-python==0.7.2.post1)") from None
    ns = SimpleNamespace(
        version=getattr(flashinfer, "__version__", "unknown"), MoELayer=MoELayer,
        RoutingInputMode=RoutingInputMode, RoutingMethodType=RoutingMethodType,
    )
    for name in ("MoEConfig", "RoutingConfig", "QuantConfig", "QuantFormat", "ExpertConfig", "BackendOptions",
                 "ExecutionConfig", "MoEWeightPack", "MoEActivationPack", "SwiGLU"):
        setattr(ns, name, getattr(fapi, name))
    for p in PATHS:
        setattr(ns, p.config_class, getattr(fapi, p.config_class))
    return ns


def build_config(fi, path: KernelPath, shapes, *, tune_max_num_tokens: int = 8192):
    """The MoEConfig for ``path`` (one backend candidate, so MoELayer runs exactly that path)."""
    check_layer_support(path, shapes)
    activation = activation_config(fi, shapes)
    routing = fi.RoutingConfig(
        num_experts=shapes.num_experts,
        top_k=shapes.top_k,
        method=getattr(fi.RoutingMethodType, shapes.routing_method),
        n_group=shapes.n_group if shapes.routing_method == "DeepSeekV3" else None,
        topk_group=shapes.topk_group if shapes.routing_method == "DeepSeekV3" else None,
        routed_scaling_factor=shapes.routed_scaling_factor,
    )
    quant = fi.QuantConfig(weight=getattr(fi.QuantFormat, path.weight_format),
                           activation=getattr(fi.QuantFormat, path.activation_format))
    backend_cfg = getattr(fi, path.config_class)()
    return fi.MoEConfig(
        routing=routing,
        quant=quant,
        experts=fi.ExpertConfig(intermediate_size=shapes.intermediate_size),
        activation=activation,
        backend=fi.BackendOptions(candidates=(backend_cfg,)),
        execution=fi.ExecutionConfig(tune_max_num_tokens=tune_max_num_tokens),
    )


def prepare_weight_view(fi, path: KernelPath, weights, *, device, config=None,
                        hidden_states_scale_global=None, intermediate_scale_global=None) -> dict:
    """The backend-native weight view, made by the backend config's own ``prepare_weights``."""
    s = weights.shapes
    geo = dict(num_local_experts=s.num_experts, hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
               device=device)
    if s.activation != "silu":  # TRT-LLM views carry the SwiGLU scalars (gemm1_alpha/beta/clamp_limit)
        geo["activation"] = activation_config(fi, s)
    cls = getattr(fi, path.config_class)
    t = weights.tensors
    if "w1_bias" in t and not EPILOGUES[path.config_class].gemm_bias:  # biases read without the header probe
        check_layer_support(path, replace(s, expert_bias=True))
    if path.backend == "cutile":
        if weights.quant != path.quant:
            raise UnsupportedError(f"weights are {weights.quant} but the path is {path.quant}")
        if path.quant == "bf16":
            return cls.prepare_weights(t["w1"], t["w2"], **geo)
        if path.quant == "nvfp4":
            return cls.prepare_weights(t["w1"], t["w1_scale"], t["w1_global"], t["w2"], t["w2_scale"],
                                       t["w2_global"], source_format="modelopt", **geo)
        if path.quant == "mxfp4":
            return cls.prepare_weights(t["w1"], t["w1_scale"], t["w2"], t["w2_scale"], **geo)
        # fp8 per-tensor ([E] fp32 scales) and mxfp8 (E8M0 bytes [E, N, K/32])
        return cls.prepare_weights(t["w1"], t["w1_scale"], t["w2"], t["w2_scale"], **geo)
    # TRT-LLM: canonical BF16 in, the helper quantizes and shuffles
    w1, w2 = weights.bf16_canonical()
    if path.config_class == "TrtllmBf16Config":
        return cls.prepare_weights(w1, w2, **geo)
    if path.config_class == "TrtllmFp8PerTensorConfig":
        return cls.prepare_weights(w1, w2, hidden_states_scale_global=hidden_states_scale_global,
                                   intermediate_scale_global=intermediate_scale_global, **geo)
    return cls.prepare_weights(w1, w2, quant=config.quant if config is not None else None, **geo)


def make_weight_pack(fi, path: KernelPath, view: dict):
    pack = fi.MoEWeightPack()
    pack.prepare_for(path.backend_key, view)
    return pack


def make_activation_pack(fi, path: KernelPath, config, x, *, mode: str, topk_ids=None, topk_weights=None,
                         logits=None, bias=None, hidden_states_scale_global=None):
    """The per-call MoEActivationPack for ``mode`` ('PackedPrecomputed' | 'FromLogits')."""
    import torch

    cls = getattr(fi, path.config_class)
    if path.backend == "cutile" or path.config_class == "TrtllmBf16Config":
        hs, hs_scale = x, None  # cuTile takes BF16 and quantizes in-kernel when it must
    elif path.config_class == "TrtllmFp8PerTensorConfig":
        hs, hs_scale = cls.prepare_activations(x, hidden_states_scale_global=hidden_states_scale_global)
    else:
        hs, hs_scale = cls.prepare_activations(x, quant=config.quant)
    mode_enum = getattr(fi.RoutingInputMode, mode)
    dev = hs.device  # routing tensors follow the activations (a no-op when they are already there)
    if mode == "FromLogits":
        want = torch.bfloat16 if path.logits_dtype == "bfloat16" else torch.float32
        return fi.MoEActivationPack(hs, hs_scale, routing_input_mode=mode_enum,
                                    routing_logits=logits.to(device=dev, dtype=want).contiguous(),
                                    routing_bias=bias.to(dev) if bias is not None else None)
    return fi.MoEActivationPack(hs, hs_scale, topk_ids.to(device=dev, dtype=torch.int32).contiguous(),
                                topk_weights.to(device=dev, dtype=torch.float32).contiguous(), routing_input_mode=mode_enum)


def describe_call(path: KernelPath, config, view: dict, act) -> dict[str, Any]:
    """What will be launched, for the result and for tests (no tensor contents)."""
    def summ(v):
        shape = getattr(v, "shape", None)
        return {"shape": list(shape), "dtype": str(getattr(v, "dtype", ""))} if shape is not None else repr(v)

    return {
        "backend_config": path.config_class,
        "backend_key": path.backend_key,
        "config": repr(config),
        "weight_view": {k: summ(v) for k, v in view.items()},
        "activation_pack": repr(act),
    }
