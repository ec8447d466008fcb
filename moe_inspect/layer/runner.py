"""``run-layer`` orchestration: shapes -> path -> weights -> kernel -> reference -> timing -> result.

:func:`resolve_shapes` and :func:`plan` need neither torch nor a GPU (the CLI and CPU tests use
them to refuse bad input early); :func:`run_layer` does the GPU work. Every failure is a typed
error with a one-line message (exit 2); a failed accuracy verdict is ``result.passed == False``
(the CLI exits 1). Nothing is written to disk except the ``--plot`` PNG, written last, atomically.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable

from ..errors import BadInputError, EnvironmentError_, MoeInspectError, UnsupportedError, debug_enabled
from ..extras import require, require_installed
from . import DEFAULT_TOKENS, QUANT_FORMATS

MAX_TOKENS = 8192  # FlashInfer ExecutionConfig.tune_max_num_tokens default (0.7.2.post1)
#: Routing methods run-layer can run: FlashInfer RoutingMethodType members with a reference router.
RUNNABLE_METHODS = ("Default", "Renormalize", "RenormalizeNaive", "TopK", "SigmoidRenorm", "Sigmoid",
                    "TopKSigmoid", "MiniMax2", "DeepSeekV3", "Llama4")
#: ``--routing``: who computes the top-k that feeds a precomputed-routing expert kernel (ROUTING_CONTRACT.md).
ROUTING_CHOICES = ("kernel", "reference")


@dataclass
class RunLayerOptions:
    model: str | None = None
    quant: str = "bf16"
    backend: str = "auto"
    act: str | None = None  # "bf16" (weight-only) | "quant" | None = the arch's natural choice
    tokens: tuple[int, ...] = DEFAULT_TOKENS
    layer: int | None = None
    weights: str = "random"  # "random" | "checkpoint"
    seed: int = 0
    # explicit shapes (no model)
    experts: int | None = None
    top_k: int | None = None
    hidden: int | None = None
    intermediate: int | None = None
    routing: str | None = None  # routing METHOD of explicit shapes (--routing-method)
    n_group: int | None = None
    topk_group: int | None = None
    routed_scaling_factor: float | None = None
    bias: bool | None = None
    shared_experts: int = 0
    precomputed_routing: bool = False  # TRT-LLM: use the routed variant even when FromLogits works
    routing_impl: str | None = None  # --routing kernel|reference (None: kernel where one runs, else reference)
    repeat_ms: float = 100.0
    autotune: bool = False  # FlashInfer autotuner picks tactics on the first call of each token count
    peer: bool = True  # also time torch's grouped GEMM on the same inputs (layer/peer.py, issue 13)
    plot: str | None = None
    offline: bool | None = None


@dataclass
class TokenResult:
    tokens: int
    experts_hit: float
    accuracy: dict
    timing: dict | None
    roofline: dict | None
    first_call_s: float | None = None
    routing_agreement: float | None = None  # kernel-router ids == reference-router ids (fraction)
    peer: dict | None = None  # torch._grouped_mm on the same token sets (layer/peer.py): µs, FlashInfer/peer

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LayerRunResult:
    model: str | None
    layer: int | None
    shapes: dict
    quant: str
    path: dict
    routing_mode: str
    routing_source: str
    gpu: dict
    versions: dict
    weights: dict
    rows: list[TokenResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    routing: dict = field(default_factory=dict)  # routing_summary(): used, source, reason, agreement_*

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.accuracy.get("passed") for r in self.rows)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["verdict"] = "pass" if self.passed else "fail"
        return d


# ----------------------------------------------------------------------------- no-GPU steps
def parse_tokens(text: str) -> tuple[int, ...]:
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            n = int(part)
        except ValueError:
            raise BadInputError(f"--tokens {text}: {part!r} is not an integer") from None
        if not 1 <= n <= MAX_TOKENS:
            raise BadInputError(f"--tokens {text}: {n} is outside 1..{MAX_TOKENS}")
        out.append(n)
    if not out:
        raise BadInputError("--tokens: no token counts given")
    return tuple(dict.fromkeys(out))


def shapes_from_description(desc, layer: int | None):
    """LayerShapes of one MoE layer of a ``detect`` ModelDescription."""
    from .weights import LayerShapes

    s, r = desc.moe, desc.routing
    method = r.flashinfer_name if r.flashinfer_value is not None else r.method
    if method not in RUNNABLE_METHODS or not r.fused_routing_possible:
        raise UnsupportedError(
            f"{desc.model.id}: routing method {r.method} has no FlashInfer kernel routing; run-layer cannot run it")
    if s.hidden_size is None or s.moe_intermediate_size is None:
        raise UnsupportedError(f"{desc.model.id}: hidden size / expert width unknown from config.json")
    if layer is not None and s.moe_layers and layer not in s.moe_layers:
        raise BadInputError(f"--layer {layer}: not a MoE layer of {desc.model.id} (MoE layers: {_ranges(s.moe_layers)})")
    top_k = s.per_layer.get("top_k", {}).get(layer, s.top_k) if layer is not None else s.top_k
    inter = s.per_layer.get("moe_intermediate_size", {}).get(layer, s.moe_intermediate_size) if layer is not None \
        else s.moe_intermediate_size
    limit = s.per_layer.get("swiglu_limit", {}).get(layer, s.swiglu_limit) if layer is not None else s.swiglu_limit
    return LayerShapes(
        num_experts=s.num_experts, top_k=top_k, hidden_size=s.hidden_size, intermediate_size=inter,
        routing_method=method, n_group=s.n_group, topk_group=s.topk_group,
        routed_scaling_factor=s.routed_scaling_factor, has_bias=s.has_correction_bias,
        norm_topk_prob=s.renormalize, num_shared_experts=s.num_shared_experts,
        shared_intermediate_size=s.shared_expert_intermediate_size, activation=s.activation,
        router_dtype=s.router_dtype or "float32", swiglu_limit=limit, linear_router_bias=s.linear_router_bias,
    )


def _ranges(layers) -> str:
    """[1, 2, 3, 5, 7, 8] -> '1-3, 5, 7-8' (the valid --layer values, compactly)."""
    out, xs = [], sorted(layers)
    start = prev = xs[0]
    for x in xs[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = x
    return ", ".join(out)


def resolve_shapes(opts: RunLayerOptions, *, describe: Callable | None = None):
    """(LayerShapes, ModelDescription | None, layer index | None) from a model or explicit flags."""
    from .weights import LayerShapes

    explicit = {"--experts": opts.experts, "--top-k": opts.top_k, "--hidden": opts.hidden,
                "--intermediate": opts.intermediate, "--routing-method": opts.routing}
    if opts.model is None:
        missing = [k for k, v in explicit.items() if v is None]
        if missing:
            raise BadInputError(f"no MODEL given: pass {', '.join(missing)} (or a model name)")
        from ..reference import canonical_method

        method = canonical_method(opts.routing)
        if method not in RUNNABLE_METHODS:
            raise UnsupportedError(f"--routing-method {opts.routing}: no FlashInfer kernel implements it")
        for k in ("--experts", "--top-k", "--hidden", "--intermediate"):
            if explicit[k] < 1:
                raise BadInputError(f"{k} {explicit[k]}: must be positive")
        if opts.weights == "checkpoint":
            raise BadInputError("--weights checkpoint needs a MODEL (a local checkpoint directory)")
        return LayerShapes(
            num_experts=opts.experts, top_k=opts.top_k, hidden_size=opts.hidden, intermediate_size=opts.intermediate,
            routing_method=method, n_group=opts.n_group, topk_group=opts.topk_group,
            routed_scaling_factor=opts.routed_scaling_factor,
            has_bias=bool(opts.bias) if opts.bias is not None else method in ("MiniMax2", "DeepSeekV3"),
            num_shared_experts=opts.shared_experts,
        ), None, opts.layer
    given = [k for k, v in explicit.items() if v is not None]
    if given:
        raise BadInputError(f"{', '.join(given)}: shapes come from MODEL; drop them or drop the model")
    if describe is None:
        from ..detect import describe
    desc = describe(opts.model, offline=opts.offline)
    layer = opts.layer if opts.layer is not None else (desc.moe.moe_layers[0] if desc.moe.moe_layers else None)
    return shapes_from_description(desc, layer), desc, layer


def check_options(opts: RunLayerOptions) -> None:
    """Every flag that can be checked without a model, torch or a GPU."""
    from .kernels import BACKENDS

    if opts.quant not in QUANT_FORMATS:
        raise BadInputError(f"--quant {opts.quant}: unknown format (known: {', '.join(QUANT_FORMATS)})")
    if opts.backend not in BACKENDS:
        raise BadInputError(f"--backend {opts.backend}: unknown backend (known: {', '.join(BACKENDS)})")
    if opts.routing_impl not in (None, *ROUTING_CHOICES):
        hint = (f"; the routing METHOD of explicit shapes is --routing-method {opts.routing_impl}"
                if opts.routing_impl in RUNNABLE_METHODS else "")
        raise BadInputError(f"--routing {opts.routing_impl}: use kernel or reference{hint}")
    if opts.weights not in ("random", "checkpoint"):
        raise BadInputError(f"--weights {opts.weights}: use random or checkpoint")
    if opts.act not in (None, "bf16", "quant"):
        raise BadInputError(f"--act {opts.act}: use bf16 (weight-only) or quant")
    if opts.plot is not None:
        d = os.path.dirname(os.path.abspath(opts.plot))
        if not opts.plot.lower().endswith(".png"):
            raise BadInputError(f"--plot {opts.plot}: the plot is a PNG file (name it *.png)")
        if not os.path.isdir(d):
            raise BadInputError(f"--plot {opts.plot}: directory {d} does not exist")
        require("matplotlib", "gpu", "--plot")


def validate(opts: RunLayerOptions, *, describe: Callable | None = None):
    """Everything checkable before looking for a GPU: flags, torch, the model's shapes and layer,
    a local checkpoint for ``--weights checkpoint``, the arch-independent kernel limits.
    Returns (LayerShapes, ModelDescription | None, layer)."""
    from .kernels import check_layer_shapes, check_runnable_anywhere

    check_options(opts)
    check_runnable_anywhere(opts.quant, backend=opts.backend,
                            quantized_activations=None if opts.act is None else opts.act == "quant")
    require("torch", "gpu", "run-layer")
    require_installed("flashinfer", "gpu", "run-layer")  # imported (seconds) only once a GPU is found
    shapes, desc, layer = resolve_shapes(opts, describe=describe)
    if opts.weights == "checkpoint" and desc is not None and not desc.model.path:
        raise BadInputError(
            f"--weights checkpoint: {desc.model.id} has no local checkpoint (answered from the {desc.model.source}); "
            "pass a local checkpoint directory as MODEL, or use --weights random")
    check_layer_shapes(shapes)
    return shapes, desc, layer


def plan(opts: RunLayerOptions, shapes, arch: int):
    """(KernelPath, routing mode) for ``arch``, or a one-line UnsupportedError."""
    from .kernels import check_kernel_shapes, check_layer_support, routing_mode, select_path
    from .weights import check_quant_shapes

    qa = None if opts.act is None else opts.act == "quant"
    try:
        path = select_path(opts.quant, arch, backend=opts.backend, quantized_activations=qa)
    except UnsupportedError:
        if not (opts.quant == "fp8-block" and arch == 90 and opts.backend == "auto" and qa is not False):
            raise
        from .cutlass_sm90 import sm90_fp8_block_path  # the CUTLASS module, only if already built (issue 13)

        path, _ = sm90_fp8_block_path(arch)
    check_layer_support(path, shapes)
    mode = routing_mode(path, shapes.routing_method,
                        force_precomputed=opts.precomputed_routing or opts.routing_impl == "reference")
    check_quant_shapes(shapes, opts.quant)
    check_kernel_shapes(path, shapes, mode)
    return path, mode


def cuda_arch() -> tuple[int, str]:
    """(arch, device name) of CUDA device 0; EnvironmentError_ without one."""
    torch = require("torch", "gpu", "run-layer")
    if not torch.cuda.is_available():
        raise EnvironmentError_("no CUDA device: run-layer needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    major, minor = torch.cuda.get_device_capability(0)
    return major * 10 + minor, torch.cuda.get_device_name(0)


def local_gpu_spec(name: str, arch: int):
    from ..gpus import parse_nvidia_smi

    t = parse_nvidia_smi(f"{name}, {arch // 10}.{arch % 10}")
    return t.gpu if t is not None else None


# ----------------------------------------------------------------------------- routing choice

@dataclass(frozen=True)
class RoutingChoice:
    """Who computes the top-k ids/weights that feed the expert kernel, and why."""

    used: str  # "in-kernel" (FromLogits) | "kernel" | "reference"
    source: str  # the function that computes them
    reason: str | None = None  # why not a routing kernel (None when one routes)
    requested: str | None = None  # --routing as given (None = default)

    def to_dict(self) -> dict:
        return asdict(self)


def choose_routing(requested: str | None, shapes, mode: str, arch: int, *, module=None) -> RoutingChoice:
    """``--routing kernel|reference`` against what runs here (no GPU needed; ``module`` for tests).

    FromLogits paths route inside the expert kernel; ``reference`` forces the precomputed variant
    (see :func:`plan`). PackedPrecomputed: the trtllm-gen routing kernel where
    ``unavailable_reason(arch)`` and ``supports(...)`` are both None, else FlashInfer's
    ``fused_topk_deepseek`` for grouped DeepSeekV3 where it runs, else our reference router.
    An explicit ``kernel`` that cannot run here is an UnsupportedError naming the reason.
    """
    from ..kernels import fused_topk_deepseek as ftd

    if requested not in (None, *ROUTING_CHOICES):
        raise BadInputError(f"--routing {requested}: use kernel or reference")
    if mode == "FromLogits":
        return RoutingChoice("in-kernel", "FlashInfer TRT-LLM in-kernel routing (FromLogits)", None, requested)
    if requested == "reference":
        return RoutingChoice("reference", REFERENCE_ROUTER, "--routing reference", requested)
    if module is None:
        from ..kernels import trtllm_routing as module
    reason = module.unavailable_reason(arch) or module.supports(
        shapes.routing_method, shapes.num_experts, shapes.top_k, shapes.n_group, shapes.topk_group)
    if reason is None:
        return RoutingChoice("kernel", TRTLLM_ROUTER, None, requested)
    if (shapes.n_group or 1) > 1 and ftd.supported(arch, shapes.num_experts, shapes.top_k, shapes.n_group,
                                                   shapes.topk_group, method=shapes.routing_method):
        return RoutingChoice("kernel", FUSED_TOPK_DEEPSEEK, None, requested)
    if requested == "kernel":
        raise UnsupportedError(f"--routing kernel: {reason}")
    return RoutingChoice("reference", REFERENCE_ROUTER, reason, requested)


REFERENCE_ROUTER = "moe_inspect.reference.routers.route"
TRTLLM_ROUTER = "moe_inspect.kernels.trtllm_routing.route"
FUSED_TOPK_DEEPSEEK = "flashinfer.fused_moe.fused_topk_deepseek"


# ----------------------------------------------------------------------------- per-call preparation (no CUDA)
@dataclass
class PreparedLayer:
    """What is built once per run: FlashInfer's config, weight view and pack, and the MoELayer
    (the same for both routing modes: FlashInfer's TRT-LLM runners take FromLogits and precomputed packs)."""

    path: object  # KernelPath
    shapes: object  # LayerShapes
    config: object
    view: dict
    pack: object
    moe: object
    hs_scale: float | None  # FP8 per-tensor static activation scale (quantization multiplier)
    inter_scale: float | None


@dataclass
class CallInputs:
    """One call's activation pack and the routing the check uses."""

    act: object  # MoEActivationPack
    topk_ids: object
    topk_weights: object
    agreement: float | None  # routing-kernel ids == reference ids (fraction of tokens), kernel routing only


def fp8_activation_scales(path, hidden_size: int, *, generator, device, torch):
    """(hidden_states_scale_global, intermediate_scale_global) for FP8 per-tensor, else (None, None).

    Static calibration: 448 / max|x| over a random N(0, 1) batch of 256 tokens (reads one value)."""
    if path.config_class != "TrtllmFp8PerTensorConfig":
        return None, None
    sample = torch.randn((256, hidden_size), generator=generator, device=device)
    return 448.0 / float(sample.abs().max()), 448.0 / 8.0


def prepare_layer(fi, path, w, *, device, hs_scale=None, inter_scale=None,
                  tune_max_num_tokens: int = MAX_TOKENS) -> PreparedLayer:
    """FlashInfer config, prepared weights, weight pack and MoELayer for ``w`` (any device, CUDA or not)."""
    from . import kernels as K

    if path.backend == "cutlass":  # FP8-block on SM90, already-built CUTLASS module (layer/cutlass_sm90.py)
        from .cutlass_sm90 import prepare_layer as cutlass_prepare

        return cutlass_prepare(fi, path, w, device=device, tune_max_num_tokens=tune_max_num_tokens,
                               prepared_cls=PreparedLayer)
    shapes = w.shapes
    config = K.build_config(fi, path, shapes, tune_max_num_tokens=tune_max_num_tokens)
    view = K.prepare_weight_view(fi, path, w, device=device, config=config, hidden_states_scale_global=hs_scale,
                                 intermediate_scale_global=inter_scale)
    pack = K.make_weight_pack(fi, path, view)
    moe = fi.MoELayer(config, device=device)
    return PreparedLayer(path, shapes, config, view, pack, moe, hs_scale, inter_scale)


def reference_route(shapes, logits, bias):
    """Our reference router (``moe_inspect.reference.routers.route``) for the layer's method."""
    import torch

    from ..reference.routers import route

    return route(shapes.routing_method, logits, top_k=shapes.top_k, bias=bias, n_group=shapes.n_group,
                 topk_group=shapes.topk_group, routed_scaling_factor=shapes.routed_scaling_factor,
                 norm_topk_prob=shapes.norm_topk_prob, output_dtype=torch.bfloat16)


def prepare_call(fi, prep: PreparedLayer, mode: str, x, logits, *, router_bias=None,
                 routing: RoutingChoice | None = None) -> CallInputs:
    """The activation pack for one call of ``prep.moe`` in ``mode`` (CPU, meta or CUDA tensors).

    FromLogits: the kernel routes (with ``router_bias``; zeros where the kernel dereferences one);
    our reference router gives the ids/weights of the float32 check. PackedPrecomputed: ids/weights
    from ``routing`` (default: the reference router)."""
    import torch

    from . import kernels as K

    s, path = prep.shapes, prep.path
    if mode == "FromLogits":
        bias = router_bias
        if bias is None and s.routing_method in ("MiniMax2", "DeepSeekV3"):
            bias = torch.zeros(s.num_experts, device=logits.device)  # the kernels dereference it (REFERENCE.md §5)
        ref = reference_route(s, logits, bias)
        act = K.make_activation_pack(fi, path, prep.config, x, mode=mode, logits=logits, bias=bias,
                                     hidden_states_scale_global=prep.hs_scale)
        return CallInputs(act, ref.topk_ids, ref.topk_weights.float(), None)
    ids, wts, agree = _route(s, logits, router_bias, routing)
    if path.backend == "cutlass":  # BF16 activations, no prepare_activations (layer/cutlass_sm90.py)
        from .cutlass_sm90 import activation_pack

        return CallInputs(activation_pack(fi, x, ids, wts), ids, wts, agree)
    act = K.make_activation_pack(fi, path, prep.config, x, mode=mode, topk_ids=ids, topk_weights=wts,
                                 hidden_states_scale_global=prep.hs_scale)
    return CallInputs(act, ids, wts, agree)


def _route(shapes, logits, bias, routing: RoutingChoice | None):
    """(ids int32, weights fp32, agreement with the reference or None) for PackedPrecomputed routing."""
    import torch

    ref = reference_route(shapes, logits, bias)
    source = routing.source if routing is not None else REFERENCE_ROUTER
    if source == REFERENCE_ROUTER:
        return ref.topk_ids.to(torch.int32), ref.topk_weights.float(), None
    if source == TRTLLM_ROUTER:
        from ..kernels import trtllm_routing

        out = trtllm_routing.route(
            shapes.routing_method, logits, top_k=shapes.top_k, bias=bias, n_group=shapes.n_group,
            topk_group=shapes.topk_group, routed_scaling_factor=shapes.routed_scaling_factor,
            norm_topk_prob=shapes.norm_topk_prob)
        ids, vals = out.topk_ids.to(torch.int32), out.topk_weights.float()
    else:
        from ..kernels import fused_topk_deepseek

        ids, vals = fused_topk_deepseek.run(logits, bias, n_group=shapes.n_group, topk_group=shapes.topk_group,
                                            top_k=shapes.top_k, routed_scaling_factor=shapes.routed_scaling_factor)
    return ids, vals, id_agreement(ids, ref.topk_ids)


def id_agreement(a, b) -> float:
    """Fraction of tokens whose top-k id SETS are equal."""
    from ..kernels.agreement import set_differs

    return float((~set_differs(a, b)).float().mean())


# ----------------------------------------------------------------------------- GPU work
@dataclass(frozen=True)
class RunContext:
    """Everything one run fixes before the first tensor is made (``_run`` takes only this)."""

    opts: RunLayerOptions
    fi: object  # flashinfer_namespace()
    torch: object
    shapes: object  # LayerShapes
    desc: object  # ModelDescription | None
    layer: int | None
    arch: int
    dev_name: str
    path: object  # KernelPath
    mode: str
    tokens: tuple[int, ...]
    say: Callable[[str], None]
    routing: RoutingChoice


def run_layer(opts: RunLayerOptions, *, progress: Callable[[str], None] | None = None,
              describe: Callable | None = None) -> LayerRunResult:
    """Run, check and time the layer; ``describe`` overrides ``detect.describe`` (tests, tools)."""
    say = progress or (lambda m: None)
    shapes, desc, layer = validate(opts, describe=describe)
    arch, dev_name = cuda_arch()
    if opts.weights == "checkpoint" and desc is not None and desc.model.path and layer is not None:
        from dataclasses import replace

        from .weights import checkpoint_expert_bias

        shapes = replace(shapes, expert_bias=checkpoint_expert_bias(desc.model.path, layer))  # headers only
    path, mode = plan(opts, shapes, arch)
    routing = choose_routing(opts.routing_impl, shapes, mode, arch)
    from .kernels import flashinfer_namespace

    fi = flashinfer_namespace()
    import torch

    ctx = RunContext(opts, fi, torch, shapes, desc, layer, arch, dev_name, path, mode, tuple(opts.tokens), say, routing)
    try:
        return _run(ctx)
    except torch.cuda.OutOfMemoryError:
        free, total = torch.cuda.mem_get_info()
        raise EnvironmentError_(
            f"out of GPU memory running the {shapes.num_experts}-expert layer in {opts.quant} "
            f"({total / 2**30:.0f} GiB card); try fewer --tokens or a smaller format") from None
    except MoeInspectError:
        raise
    except Exception as e:
        mapped = error_for(e)
        if mapped is None or debug_enabled():
            raise
        raise mapped from None


@contextmanager
def _fp32_matmuls(torch):
    """float32 matmuls in IEEE fp32 (no TF32) for the reference, restoring the caller's setting."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _load_weights(ctx: RunContext, dev):
    from .weights import load_checkpoint_layer, random_layer

    if ctx.opts.weights == "checkpoint":
        if ctx.desc is None or not ctx.desc.model.path:
            raise BadInputError("--weights checkpoint needs MODEL to be a local checkpoint directory")
        return load_checkpoint_layer(ctx.desc.model.path, ctx.shapes, ctx.opts.quant, layer=ctx.layer, device=dev,
                                     progress=ctx.say)
    return random_layer(ctx.shapes, ctx.opts.quant, seed=ctx.opts.seed, device=dev, progress=ctx.say)


def _tune_ctx(autotune: bool, ctx: "RunContext | None" = None):
    """FlashInfer's autotuner with run-layer's cache file (layer/tuning.py): --autotune tunes and saves,
    a later run without it reuses the saved tactics."""
    from .tuning import cache_file, tune_context

    path = cache_file(getattr(ctx.fi, "version", "unknown"), ctx.arch) if ctx is not None else None
    return tune_context(autotune, path)


def _run(ctx: RunContext) -> LayerRunResult:
    torch = ctx.torch
    dev = torch.device("cuda", 0)
    gpu = local_gpu_spec(ctx.dev_name, ctx.arch)
    with _fp32_matmuls(torch):
        t0 = time.perf_counter()
        w = _load_weights(ctx, dev)
        load_s = time.perf_counter() - t0
        notes = list(w.notes)
        ctx.say("preparing weights for " + ctx.path.config_class)
        g = torch.Generator(device=dev).manual_seed(ctx.opts.seed + 1)
        hs, inter = fp8_activation_scales(ctx.path, ctx.shapes.hidden_size, generator=g, device=dev, torch=torch)
        if hs is not None:
            notes.append("FP8 per-tensor activation scales calibrated on a random batch")
        prep = prepare_layer(ctx.fi, ctx.path, w, device=dev, hs_scale=hs, inter_scale=inter)
        rows, call_desc = [], None
        for n in ctx.tokens:
            row, desc = _run_tokens(ctx, prep, w, n, g, gpu, first=not rows)
            rows.append(row)
            call_desc = call_desc or desc
    notes += _run_notes(ctx, w)
    result = _result(ctx, w, rows, notes, gpu, weights_info={"load_s": round(load_s, 2), "call": call_desc})
    if ctx.opts.plot:
        write_plot(result, ctx.opts.plot)
    return result


def _run_tokens(ctx: RunContext, prep: PreparedLayer, w, n: int, g, gpu, *, first: bool):
    """Check and time one token count: (TokenResult, call description)."""
    from . import kernels as K
    from . import timing as T
    from .reference import compare, reference_moe, shared_expert_forward, tolerance_for

    torch, s, say = ctx.torch, ctx.shapes, ctx.say
    dev = torch.device("cuda", 0)
    bias = w.router_bias.float() if w.router_bias is not None else None

    def make_call():
        x = torch.randn((n, s.hidden_size), generator=g, device=dev).to(torch.bfloat16)
        return x, prepare_call(ctx.fi, prep, ctx.mode, x, w.router_logits(x), router_bias=bias, routing=ctx.routing)

    x, call = make_call()
    say(f"T={n}: first call" + (" (compiling kernels)" if first else ""))
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    with _tune_ctx(ctx.opts.autotune, ctx):
        out = prep.moe(call.act, prep.pack)
    torch.cuda.synchronize()
    first_s = time.perf_counter() - t1
    desc = K.describe_call(ctx.path, prep.config, prep.view, call.act)
    if w.shared_w1 is not None:  # cuTile/TRT-LLM here run routed experts only; shared expert in torch
        out = out.float() + shared_expert_forward(x, w.shared_w1, w.shared_w2)
    say(f"T={n}: float32 reference")
    acc = compare(out, reference_moe(x, call.topk_ids, call.topk_weights, w), tolerance_for(ctx.opts.quant,
                                                                                          ctx.path.quantized_activations))
    del out
    # timing: K distinct token sets cycled inside the graph
    hit = float(torch.unique(call.topk_ids).numel())
    k_sets = T.token_sets_for_cold_l2(T.moe_bytes(hit, w.expert_bytes(), n, s.hidden_size, s.top_k),
                                      torch.cuda.get_device_properties(dev).L2_cache_size)
    xs_calls = [(x, call)] + [make_call() for _ in range(k_sets - 1)]
    calls = [c for _, c in xs_calls]
    mean_hit = sum(float(torch.unique(c.topk_ids).numel()) for c in calls) / len(calls)
    fns = [lambda a=c.act: prep.moe(a, prep.pack) for c in calls]
    st = _time_calls(ctx, fns, n, k_sets)
    peer = None
    if ctx.opts.peer:  # the honest peer on the same token sets and routed ids (layer/peer.py)
        from .peer import peer_row

        say(f"T={n}: torch grouped-GEMM peer")
        peer = peer_row(w, [(xx, c.topk_ids, c.topk_weights) for xx, c in xs_calls], repeat_ms=ctx.opts.repeat_ms,
                        fi_median_us=st.median_us, quant=ctx.opts.quant)
    mma = T.mma_dtype_for(ctx.path)
    rl = T.roofline(st.median_us * 1e-6, T.moe_bytes(mean_hit, w.expert_bytes(), n, s.hidden_size, s.top_k),
                    T.moe_flops(n, s.top_k, s.hidden_size, s.intermediate_size),
                    peak_tbs=gpu.bandwidth_tbs if gpu else None, peak_tflops=T.peak_tflops_for(gpu, mma), mma_dtype=mma)
    agree = [c.agreement for c in calls if c.agreement is not None]
    row = TokenResult(n, mean_hit, acc.to_dict(), st.to_dict(), rl.to_dict(), first_s,
                      min(agree) if agree else None, peer=peer)
    del calls, fns, xs_calls
    torch.cuda.empty_cache()
    return row, desc


def _time_calls(ctx: RunContext, fns, n: int, k_sets: int):
    """CUDA-graph timing of ``fns`` cycled round-robin (each run once outside the graph first)."""
    from . import timing as T

    with _tune_ctx(ctx.opts.autotune, ctx):
        for f in fns:  # every set once outside the graph (compiles any shape variant, tunes if asked)
            f()
    est = T.estimate_call_ms(fns, ctx.torch)
    ctx.say(f"T={n}: timing ({k_sets} token sets, CUDA graphs)")
    return T.bench_cycled(fns, repeat_time_ms=ctx.opts.repeat_ms, est_call_ms=est)


def _run_notes(ctx: RunContext, w) -> list[str]:
    notes = []
    if w.shared_w1 is not None:
        notes.append("shared expert computed with torch (bf16) and added before the check; timing is the "
                     "FlashInfer routed-expert call only")
    from .tuning import cache_file, cached_entries, tuning_status

    tf = cache_file(getattr(ctx.fi, "version", "unknown"), ctx.arch)
    notes.append(tuning_status(ctx.opts.autotune, tf, entries_before=cached_entries(tf))["note"])
    r = ctx.routing
    if ctx.mode == "PackedPrecomputed":
        notes.append(f"routing precomputed by {r.source}; timing excludes routing")
    if r.used == "reference" and r.reason and r.requested is None:
        notes.append(f"no routing kernel here ({r.reason}): top-k from our reference router")
    return notes


def routing_summary(routing: RoutingChoice, rows: list[TokenResult]) -> dict:
    """The ``routing`` block of the result: who routed, why, and agreement with the reference router."""
    agree = [r.routing_agreement for r in rows if r.routing_agreement is not None]
    d = routing.to_dict()
    d["agreement_reference"] = min(agree) if agree else None
    d["agreement_model_router"] = None
    d["agreement_model_router_reason"] = (
        "not computed by run-layer (the model's own router is compared by `moe-inspect verify`)")
    return d


def _result(ctx: RunContext, w, rows, notes, gpu, *, weights_info: dict) -> LayerRunResult:
    torch = ctx.torch
    return LayerRunResult(
        model=ctx.desc.model.id if ctx.desc else None, layer=ctx.layer, shapes=ctx.shapes.to_dict(),
        quant=ctx.opts.quant, path=ctx.path.to_dict(), routing_mode=ctx.mode, routing_source=ctx.routing.source,
        gpu={"name": ctx.dev_name, "arch": ctx.arch, "spec": gpu.to_dict() if gpu else None,
             "l2_bytes": torch.cuda.get_device_properties(0).L2_cache_size},
        versions={"flashinfer": ctx.fi.version, "torch": torch.__version__, "cuda": torch.version.cuda},
        weights={"source": w.source, "bytes_total": w.total_bytes(), "bytes_per_expert": w.expert_bytes(),
                 **weights_info},
        rows=rows, notes=notes, routing=routing_summary(ctx.routing, rows),
    )


# ----------------------------------------------------------------------------- plot
def write_plot(result: LayerRunResult, path: str) -> None:
    """Latency and % of the binding limit against token count, as a PNG (written atomically)."""
    require("matplotlib", "gpu", "--plot").use("Agg")
    import matplotlib.pyplot as plt

    plot_results([result], path, plt=plt)


def plot_results(results, path: str, *, plt=None) -> None:
    if plt is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for idx, r in enumerate(results):
        color = colors[idx % len(colors)]
        label = f"{(r.model or 'custom').split('/')[-1]} {r.quant}"
        xs = [row.tokens for row in r.rows]
        ax1.plot(xs, [row.timing["median_us"] for row in r.rows], marker="o", label=label, color=color)
        ax1.fill_between(xs, [row.timing["p10_us"] for row in r.rows], [row.timing["p90_us"] for row in r.rows],
                         alpha=0.2, color=color)
        ax2.plot(xs, [row.roofline["pct_bandwidth"] or 0 for row in r.rows], marker="o", label=f"{label} % HBM BW",
                 color=color)
        mma = r.rows[0].roofline["mma_dtype"] if r.rows else ""
        ax2.plot(xs, [row.roofline["pct_compute"] or 0 for row in r.rows], marker="x", ls="--",
                 label=f"{label} % {mma} peak", color=color)
    gpu = results[0].gpu["name"] if results else ""
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tokens")
        ax.grid(True, alpha=0.3)
    ax1.set_ylabel("latency, µs (median, p10–p90)")
    ax1.set_yscale("log")
    ax2.set_ylabel("% of the GPU's limit")
    ax1.set_title(f"MoE layer latency on {gpu}")
    ax2.set_title("achieved / peak (experts hit only)")
    ax1.legend(fontsize=7, loc="upper left")
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    tmp = f"{path}.tmp-{os.getpid()}.png"
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def error_for(exc: BaseException) -> MoeInspectError | None:
    """Map FlashInfer's own exceptions at construction/launch to one-line typed errors."""
    msg = " ".join(str(exc).split())
    marker = "Backends rejected this configuration:"
    if marker in msg:  # MoELayer lists every runner's own reason last: those are the ground truth
        msg = msg[msg.index(marker):]
    if isinstance(exc, (ValueError, NotImplementedError, RuntimeError, TypeError, KeyError)):
        return UnsupportedError(f"FlashInfer refused the layer: {type(exc).__name__}: {msg[:300]}")
    return None

