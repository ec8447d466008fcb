"""``run-layer`` orchestration: shapes -> path -> weights -> kernel -> reference -> timing -> result.

:func:`resolve_shapes` and :func:`plan` need neither torch nor a GPU (the CLI and CPU tests use
them to refuse bad input early); :func:`run_layer` does the GPU work. Every failure is a typed
error with a one-line message (exit 2); a failed accuracy verdict is ``result.passed == False``
(the CLI exits 1). Nothing is written to disk except the ``--plot`` PNG, written last, atomically.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from ..errors import BadInputError, EnvironmentError_, MoeInspectError, UnsupportedError
from . import DEFAULT_TOKENS, QUANT_FORMATS

MAX_TOKENS = 8192  # FlashInfer ExecutionConfig.tune_max_num_tokens default (0.7.2.post1)
#: Routing methods run-layer can run: FlashInfer RoutingMethodType members with a reference router.
RUNNABLE_METHODS = ("Default", "Renormalize", "RenormalizeNaive", "TopK", "SigmoidRenorm", "Sigmoid",
                    "TopKSigmoid", "MiniMax2", "DeepSeekV3", "Llama4")


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
    routing: str | None = None
    n_group: int | None = None
    topk_group: int | None = None
    routed_scaling_factor: float | None = None
    bias: bool | None = None
    shared_experts: int = 0
    precomputed_routing: bool = False  # TRT-LLM: use the routed variant even when FromLogits works
    repeat_ms: float = 100.0
    autotune: bool = False  # FlashInfer autotuner picks tactics on the first call of each token count
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

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.accuracy.get("passed") for r in self.rows)

    @classmethod
    def from_dict(cls, d: dict) -> "LayerRunResult":
        """Rebuild a result from its ``--json`` form (for plots and benchmark tables)."""
        keys = {f for f in cls.__dataclass_fields__ if f != "rows"}
        rows = [TokenResult(**{k: v for k, v in r.items() if k in TokenResult.__dataclass_fields__}) for r in d["rows"]]
        return cls(**{k: d[k] for k in keys if k in d}, rows=rows)

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
        raise BadInputError(f"--layer {layer}: not a MoE layer of {desc.model.id} (MoE layers start at {s.moe_layers[0]})")
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


def resolve_shapes(opts: RunLayerOptions, *, describe: Callable | None = None):
    """(LayerShapes, ModelDescription | None, layer index | None) from a model or explicit flags."""
    from .weights import LayerShapes

    explicit = {"--experts": opts.experts, "--top-k": opts.top_k, "--hidden": opts.hidden,
                "--intermediate": opts.intermediate, "--routing": opts.routing}
    if opts.model is None:
        missing = [k for k, v in explicit.items() if v is None]
        if missing:
            raise BadInputError(f"no MODEL given: pass {', '.join(missing)} (or a model name)")
        from ..reference import canonical_method

        method = canonical_method(opts.routing)
        if method not in RUNNABLE_METHODS:
            raise UnsupportedError(f"--routing {opts.routing}: no FlashInfer kernel implements it")
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
    if opts.quant not in QUANT_FORMATS:
        raise BadInputError(f"--quant {opts.quant}: unknown format (known: {', '.join(QUANT_FORMATS)})")
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
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise EnvironmentError_("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None


def plan(opts: RunLayerOptions, shapes, arch: int):
    """(KernelPath, routing mode) for ``arch``, or a one-line UnsupportedError."""
    from .kernels import check_kernel_shapes, check_layer_support, routing_mode, select_path
    from .weights import check_quant_shapes

    qa = None if opts.act is None else opts.act == "quant"
    path = select_path(opts.quant, arch, backend=opts.backend, quantized_activations=qa)
    check_layer_support(path, shapes)
    mode = routing_mode(path, shapes.routing_method, force_precomputed=opts.precomputed_routing)
    check_quant_shapes(shapes, opts.quant)
    check_kernel_shapes(path, shapes, mode)
    return path, mode


def cuda_arch() -> tuple[int, str]:
    """(arch, device name) of CUDA device 0; EnvironmentError_ without one."""
    try:
        import torch
    except ImportError:
        raise EnvironmentError_("run-layer needs torch (pip install 'moe-inspect[gpu]')") from None
    if not torch.cuda.is_available():
        raise EnvironmentError_("no CUDA device: run-layer needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    major, minor = torch.cuda.get_device_capability(0)
    return major * 10 + minor, torch.cuda.get_device_name(0)


def local_gpu_spec(name: str, arch: int):
    from ..gpus import parse_nvidia_smi

    t = parse_nvidia_smi(f"{name}, {arch // 10}.{arch % 10}")
    return t.gpu if t is not None else None


# ----------------------------------------------------------------------------- GPU work
def _route(shapes, logits, bias, *, arch: int, torch):
    """(ids int32, weights fp32, source, agreement) for PackedPrecomputed routing."""
    from ..reference.routers import route
    from .kernels import fused_topk_deepseek_ok

    ref = route(shapes.routing_method, logits, top_k=shapes.top_k, bias=bias, n_group=shapes.n_group,
                topk_group=shapes.topk_group, routed_scaling_factor=shapes.routed_scaling_factor,
                norm_topk_prob=shapes.norm_topk_prob, output_dtype=torch.bfloat16)
    if shapes.routing_method == "DeepSeekV3" and (shapes.n_group or 1) > 1 and fused_topk_deepseek_ok(shapes, arch):
        from flashinfer.fused_moe import fused_topk_deepseek

        t = logits.shape[0]
        vals = torch.empty((t, shapes.top_k), dtype=torch.float32, device=logits.device)
        ids = torch.empty((t, shapes.top_k), dtype=torch.int32, device=logits.device)
        b = bias if bias is not None else torch.zeros(shapes.num_experts, device=logits.device)
        fused_topk_deepseek(logits.float().contiguous(), b.float().contiguous(), shapes.n_group, shapes.topk_group,
                            shapes.top_k, float(shapes.routed_scaling_factor or 1.0), vals, ids)
        agree = _id_agreement(ids, ref.topk_ids, torch)
        return ids, vals, "flashinfer.fused_moe.fused_topk_deepseek", agree
    return ref.topk_ids.to(torch.int32), ref.topk_weights.float(), "moe_inspect.reference.routers.route", None


def _id_agreement(a, b, torch) -> float:
    sa, _ = torch.sort(a.long(), dim=-1)
    sb, _ = torch.sort(b.long(), dim=-1)
    return float((sa == sb).all(dim=-1).float().mean())


def run_layer(opts: RunLayerOptions, *, progress: Callable[[str], None] | None = None,
              describe: Callable | None = None) -> LayerRunResult:
    """Run, check and time the layer; ``describe`` overrides ``detect.describe`` (tests, tools)."""
    say = progress or (lambda m: None)
    check_options(opts)
    tokens = tuple(opts.tokens)
    shapes, desc, layer = resolve_shapes(opts, describe=describe)
    arch, dev_name = cuda_arch()
    if opts.weights == "checkpoint" and desc is not None and desc.model.path and layer is not None:
        from dataclasses import replace

        from .weights import checkpoint_expert_bias

        shapes = replace(shapes, expert_bias=checkpoint_expert_bias(desc.model.path, layer))  # headers only
    path, mode = plan(opts, shapes, arch)
    from .kernels import flashinfer_namespace

    fi = flashinfer_namespace()
    import torch

    try:
        return _run(opts, fi, torch, shapes, desc, layer, arch, dev_name, path, mode, tokens, say)
    except torch.cuda.OutOfMemoryError:
        free, total = torch.cuda.mem_get_info()
        raise EnvironmentError_(
            f"out of GPU memory running the {shapes.num_experts}-expert layer in {opts.quant} "
            f"({total / 2**30:.0f} GiB card); try fewer --tokens or a smaller format") from None
    except MoeInspectError:
        raise
    except Exception as e:
        mapped = error_for(e)
        if mapped is None or os.environ.get("MOE_INSPECT_DEBUG", "").strip() not in ("", "0", "false", "no"):
            raise
        raise mapped from None


def _run(opts, fi, torch, shapes, desc, layer, arch, dev_name, path, mode, tokens, say) -> LayerRunResult:
    from . import kernels as K
    from . import timing as T
    from .reference import compare, reference_moe, shared_expert_forward, tolerance_for
    from .weights import load_checkpoint_layer, random_layer

    dev = torch.device("cuda", 0)
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = local_gpu_spec(dev_name, arch)
    t0 = time.perf_counter()
    if opts.weights == "checkpoint":
        if desc is None or not desc.model.path:
            raise BadInputError("--weights checkpoint needs MODEL to be a local checkpoint directory")
        w = load_checkpoint_layer(desc.model.path, shapes, opts.quant, layer=layer, device=dev, progress=say)
    else:
        w = random_layer(shapes, opts.quant, seed=opts.seed, device=dev, progress=say)
    load_s = time.perf_counter() - t0
    notes = list(w.notes)
    say("preparing weights for " + path.config_class)
    config = K.build_config(fi, path, shapes, tune_max_num_tokens=MAX_TOKENS)
    g = torch.Generator(device=dev).manual_seed(opts.seed + 1)
    hs_scale = inter_scale = None
    if path.config_class == "TrtllmFp8PerTensorConfig":  # static calibration from a sample batch
        sample = torch.randn((256, shapes.hidden_size), generator=g, device=dev)
        hs_scale = 448.0 / float(sample.abs().max())
        inter_scale = 448.0 / 8.0
        notes.append("FP8 per-tensor activation scales calibrated on a random batch")
    view = K.prepare_weight_view(fi, path, w, device=dev, config=config, hidden_states_scale_global=hs_scale,
                                 intermediate_scale_global=inter_scale)
    pack = K.make_weight_pack(fi, path, view)
    moe = fi.MoELayer(config, device=dev)
    bias = w.router_bias.float() if w.router_bias is not None else None
    if mode == "FromLogits" and bias is None and shapes.routing_method in ("MiniMax2", "DeepSeekV3"):
        bias = torch.zeros(shapes.num_experts, device=dev)  # the kernels dereference it (REFERENCE.md §5)
    tol = tolerance_for(opts.quant, path.quantized_activations)
    mma = T.mma_dtype_for(path)
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    ebytes = w.expert_bytes()
    rows: list[TokenResult] = []

    def tune_ctx():
        if not opts.autotune:
            import contextlib

            return contextlib.nullcontext()
        from flashinfer.autotuner import autotune

        return autotune(True)

    routing_source = "in-kernel (FromLogits)" if mode == "FromLogits" else ""
    call_desc = None
    for n in tokens:
        def make_set():
            x = torch.randn((n, shapes.hidden_size), generator=g, device=dev).to(torch.bfloat16)
            logits = w.router_logits(x)  # + the linear router bias (gpt-oss)
            if mode == "FromLogits":
                from ..reference.routers import route

                ref = route(shapes.routing_method, logits, top_k=shapes.top_k, bias=bias, n_group=shapes.n_group,
                            topk_group=shapes.topk_group, routed_scaling_factor=shapes.routed_scaling_factor,
                            norm_topk_prob=shapes.norm_topk_prob, output_dtype=torch.bfloat16)
                act = K.make_activation_pack(fi, path, config, x, mode=mode, logits=logits, bias=bias,
                                             hidden_states_scale_global=hs_scale)
                return x, act, ref.topk_ids, ref.topk_weights.float(), "moe_inspect reference router (for the check)", None
            ids, wts, src, agree = _route(shapes, logits, w.router_bias.float() if w.router_bias is not None else None,
                                          arch=arch, torch=torch)
            act = K.make_activation_pack(fi, path, config, x, mode=mode, topk_ids=ids, topk_weights=wts)
            return x, act, ids, wts, src, agree

        x, act, ids, wts, src, agree = make_set()
        routing_source = routing_source or src
        say(f"T={n}: first call" + (" (compiling kernels)" if not rows else ""))
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        with tune_ctx():
            out = moe(act, pack)
        torch.cuda.synchronize()
        first_s = time.perf_counter() - t1
        if call_desc is None:
            call_desc = K.describe_call(path, config, view, act)
        if w.shared_w1 is not None:  # cuTile/TRT-LLM here run routed experts only; shared expert in torch
            out = out.float() + shared_expert_forward(x, w.shared_w1, w.shared_w2)
        say(f"T={n}: float32 reference")
        ref_out = reference_moe(x, ids, wts, w)
        acc = compare(out, ref_out, tol)
        hit = float(torch.unique(ids).numel())
        del out, ref_out
        # timing: K distinct token sets cycled inside the graph
        nbytes1 = T.moe_bytes(hit, ebytes, n, shapes.hidden_size, shapes.top_k)
        k_sets = T.token_sets_for_cold_l2(nbytes1, l2)
        more = [make_set() for _ in range(k_sets - 1)]
        sets = [act] + [m[1] for m in more]
        hits = [hit] + [float(torch.unique(m[2]).numel()) for m in more]
        mean_hit = sum(hits) / len(hits)
        nbytes = T.moe_bytes(mean_hit, ebytes, n, shapes.hidden_size, shapes.top_k)
        calls = [lambda a=a: moe(a, pack) for a in sets]
        with tune_ctx():
            for c in calls:  # every set once outside the graph (compiles any shape variant, tunes if asked)
                c()
        torch.cuda.synchronize()
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev0.record()
        for c in calls:
            c()
        ev1.record()
        torch.cuda.synchronize()
        est_ms = ev0.elapsed_time(ev1) / len(calls)
        say(f"T={n}: timing ({k_sets} token sets, CUDA graphs)")
        st = T.bench_cycled(calls, repeat_time_ms=opts.repeat_ms, est_call_ms=est_ms)
        rl = T.roofline(st.median_us * 1e-6, nbytes, T.moe_flops(n, shapes.top_k, shapes.hidden_size,
                                                                shapes.intermediate_size),
                        peak_tbs=gpu.bandwidth_tbs if gpu else None,
                        peak_tflops=T.peak_tflops_for(gpu, mma), mma_dtype=mma)
        hit = mean_hit
        rows.append(TokenResult(n, hit, acc.to_dict(), st.to_dict(), rl.to_dict(), first_s, agree))
        del sets, calls, act, more
        torch.cuda.empty_cache()
    if w.shared_w1 is not None:
        notes.append("shared expert computed with torch (bf16) and added before the check; timing is the "
                     "FlashInfer routed-expert call only")
    notes.append("FlashInfer autotuned tactics (flashinfer.autotuner.autotune)" if opts.autotune else
                 "untuned FlashInfer default tactics (pass --autotune to let FlashInfer profile tactics)")
    if mode == "PackedPrecomputed":
        notes.append(f"routing precomputed by {routing_source}; timing excludes routing")
    result = LayerRunResult(
        model=desc.model.id if desc else None, layer=layer, shapes=shapes.to_dict(), quant=opts.quant,
        path=path.to_dict(), routing_mode=mode, routing_source=routing_source,
        gpu={"name": dev_name, "arch": arch, "spec": gpu.to_dict() if gpu else None,
             "l2_bytes": l2},
        versions={"flashinfer": fi.version, "torch": torch.__version__, "cuda": torch.version.cuda},
        weights={"source": w.source, "bytes_total": w.total_bytes(), "bytes_per_expert": ebytes,
                 "load_s": round(load_s, 2), "call": call_desc},
        rows=rows, notes=notes,
    )
    if opts.plot:
        write_plot(result, opts.plot)
    return result


# ----------------------------------------------------------------------------- plot
def write_plot(result: LayerRunResult, path: str) -> None:
    """Latency and % of the binding limit against token count, as a PNG (written atomically)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EnvironmentError_("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None
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

