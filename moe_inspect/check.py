"""``check``: will vLLM start this model on these GPUs under this layout, with which expert backend, and why not.

Core only (no typer, rich, torch or flashinfer): :func:`check` evaluates every backend row of
:mod:`moe_inspect.backends` for each target GPU under a parallel :class:`~moe_inspect.deploy.Layout`
(vLLM 0.33.0's ``ParallelConfig`` / ``FusedMoEParallelConfig``), applies the per-rank shape gates
and the memory estimate of :mod:`moe_inspect.deploy`, works out what vLLM v0.33 would pick in auto
mode (or whether a forced ``--moe-backend`` runs), and whether a ``--require`` level is met.

Requirement levels (``require``), weakest first; each implies ``starts``:

* ``starts`` — vLLM 0.33 would start: the parallel config is accepted, no layer refuses to load,
  an expert backend is picked (or the forced one runs) and, when the layout was given, the
  weights fit in GPU memory;
* ``any`` — vLLM can serve the MoE layers at all (some row is supported);
* ``flashinfer`` — some FlashInfer-backed vLLM backend runs the experts (monolithic or modular,
  auto-selected or forced with ``--moe-backend``);
* ``fused-routing`` — a FlashInfer monolithic kernel routes in-kernel with the resolved method.

With a backend filter the requirement is evaluated over the selected rows only. Asking for
``fused-routing`` while the filter selects only modular rows (or ``flashinfer`` with only
non-FlashInfer rows) can never be met: that is a contradiction and raises BadInputError.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import backends as B
from .deploy.layout import Layout, derive_layout
from .deploy.vllm_args import DeployFlags
from .errors import BadInputError, close_hint
from .extras import installed_flashinfer_version
from .gpus import Target
from .spec import SCHEMA_VERSION, ModelDescription

REQUIRE_LEVELS = ("starts", "any", "flashinfer", "fused-routing")
CHECK_SCHEMA_VERSION = 1
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # CacheConfig.gpu_memory_utilization default (vllm/config/cache.py)


@dataclass
class Deployment:
    """What the user said about the deployment (everything but the GPU)."""

    layout: Layout = field(default_factory=derive_layout)
    layout_given: bool = False  # False: nothing said, one GPU assumed (memory then does not decide `starts`)
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_model_len: int | None = None
    kv_cache_dtype: str | None = None
    vllm_args: dict | None = None  # VllmArgs.to_dict() when --vllm-args was given

    def to_dict(self) -> dict:
        d = self.layout.to_dict()
        d.update({"layout_given": self.layout_given, "gpu_memory_utilization": self.gpu_memory_utilization,
                  "max_model_len": self.max_model_len, "kv_cache_dtype": self.kv_cache_dtype})
        if self.vllm_args is not None:
            d["vllm_args"] = self.vllm_args
        return d


@dataclass
class TargetResult:
    target: Target
    verdicts: list[B.Verdict]  # rows shown for this target
    auto_choice: B.Verdict | None  # the backend vLLM runs: its auto pick, or the forced --moe-backend
    auto_trace: list[B.Verdict]  # candidates vLLM tried before the choice (the silent fallbacks)
    auto_source: str | None
    fused_routing: bool
    flashinfer: bool
    any: bool
    requirement_met: bool | None
    unified: list[tuple[B.UnifiedConfig, bool, str | None]] = field(default_factory=list)
    starts: bool = True
    start_blockers: list[dict] = field(default_factory=list)  # [{"kind", "message", "source"}], first = why not
    load_errors: list = field(default_factory=list)  # deploy.shapes.LoadError
    adjustments: list = field(default_factory=list)  # deploy.shapes.Adjustment (model-wide + the chosen backend's)
    memory: object | None = None  # deploy.memory.MemoryEstimate
    forced: str | None = None  # the --moe-backend value, when forced
    without_package: dict | None = None  # {"package", "pip", "then"}: the pick when the chosen backend's package is absent

    def to_dict(self) -> dict:
        d = self.target.to_dict()
        d["backends"] = [_verdict_dict(v) for v in self.verdicts]
        d["vllm_auto_choice"] = self._choice_dict()
        d["auto_order_source"] = self.auto_source
        d["fused_routing"] = self.fused_routing
        d["flashinfer"] = self.flashinfer
        d["any"] = self.any
        d["requirement_met"] = self.requirement_met
        d["flashinfer_unified_api"] = [
            {"config": c.name, "runner": c.runner, "supported": ok, "reason": r, "routing_from_logits": c.routing_from_logits}
            for c, ok, r in self.unified
        ]
        d["starts"] = self.starts
        d["start_blockers"] = list(self.start_blockers)
        d["load_errors"] = [{"layer": e.layer, "message": e.message, "source": e.source} for e in self.load_errors]
        d["adjustments"] = [{"kind": a.kind, "detail": a.detail, "overhead_pct": a.overhead_pct, "source": a.source}
                            for a in self.adjustments]
        d["memory"] = _memory_dict(self.memory)
        return d

    def _choice_dict(self) -> dict | None:
        if self.auto_choice is None:
            return None
        c = self.auto_choice.backend
        return {
            "name": c.name, "key": c.key, "kind": c.kind, "flashinfer": c.flashinfer, "moe_backend": c.moe_backend,
            "forced": self.forced is not None,
            "fell_back_from": [{"name": v.backend.name, "key": v.backend.key, "gate": v.gate, "reason": v.reason}
                               for v in self.auto_trace],
            "needs_package": self.without_package,
        }


def _memory_dict(m) -> dict | None:
    if m is None:
        return None
    return {**m.to_dict(), "unknowns": list(m.unknowns)}


def _verdict_dict(v: B.Verdict) -> dict:
    b = v.backend
    return {
        "name": b.name, "key": b.key, "kind": b.kind, "family": b.family, "flashinfer": b.flashinfer,
        "vllm_class": b.vllm_class, "moe_backend": b.moe_backend, "supported": v.supported, "gate": v.gate,
        "reason": v.reason, "source": b.source,
    }


@dataclass
class CheckReport:
    description: ModelDescription
    ctx: B.RoutingContext
    scheme_source: str  # "checkpoint" | "--quant" | "--vllm-args --quantization"
    targets: list[TargetResult]
    require: str | None
    backend_filter: list[str] | None
    warnings: list[str] = field(default_factory=list)
    deployment: Deployment = field(default_factory=Deployment)
    per_rank: dict = field(default_factory=dict)
    shape_notes: list[str] = field(default_factory=list)

    @property
    def requirement_met(self) -> bool | None:
        if self.require is None:
            return None
        return all(t.requirement_met for t in self.targets)

    @property
    def starts(self) -> bool:
        return all(t.starts for t in self.targets)

    def to_dict(self) -> dict:
        d = self.description
        r = d.routing
        c = self.ctx
        return {
            "schema_version": CHECK_SCHEMA_VERSION,
            "description_schema_version": SCHEMA_VERSION,
            "model": {"id": d.model.id, "source": d.model.source, "model_type": d.model.model_type,
                      "architecture": d.model.architecture, "revision": d.model.revision,
                      "snapshot_date": d.model.snapshot_date},
            "routing": {"method": r.method, "vllm_value": r.vllm_value, "flashinfer_value": r.flashinfer_value,
                        "flashinfer_name": r.flashinfer_name, "rule": r.rule, "router": r.router,
                        "pattern": c.pattern, "num_experts": c.num_experts, "top_k": c.top_k, "n_group": c.n_group,
                        "topk_group": c.topk_group, "num_hash_layers": c.num_hash_layers,
                        "router_logits_dtype": c.router_dtype,
                        "apply_router_weight_on_input": c.apply_router_weight_on_input,
                        "kernel_limits": B.kernel_limit_problems(c)},
            "quantization": {"scheme": c.scheme, "label": B.SCHEME_LABEL.get(c.scheme, c.scheme),
                             "source": self.scheme_source, "checkpoint_method": d.quantization.method},
            "activation": c.activation,
            "swiglu_limit": c.swiglu_limit,
            "parallel": _parallel_word(c.layout),
            "deployment": self.deployment.to_dict(),
            "per_rank": dict(self.per_rank),
            "shape_notes": list(self.shape_notes),
            "require": self.require,
            "backend_filter": self.backend_filter,
            "table": {"vllm_version": B.VLLM_VERSION, "flashinfer_version": c.flashinfer_version},
            "targets": [t.to_dict() for t in self.targets],
            "starts": self.starts,
            "requirement_met": self.requirement_met,
            "warnings": list(self.warnings),
        }


def _parallel_word(lay: Layout) -> str:
    """The old ``parallel`` JSON value (tp | ep | eplb), kept for existing readers."""
    if lay.eplb:
        return "eplb"
    return "ep" if lay.use_all2all_kernels else "tp"


# ------------------------------------------------------------------------------------------------
def parse_quant(name: str) -> str:
    """``--quant`` value -> scheme; BadInputError naming the value and the choices."""
    key = name.strip().lower().replace("_", "-")
    s = B.QUANT_ALIASES.get(key) or B.QUANT_ALIASES.get(key.replace("-", "_"))
    if s is None:
        raise BadInputError(
            f"--quant {name}: unknown quantization (choices: fp8-block, fp8, nvfp4, mxfp4, mxfp8, bf16, int4, fp4-mixed)",
            hint=close_hint(key, B.QUANT_ALIASES))
    return s


def parse_require(level: str | None) -> str | None:
    if level is None:
        return None
    lv = level.strip().lower().replace("_", "-")
    if lv not in REQUIRE_LEVELS:
        raise BadInputError(f"--require {level}: unknown level (choices: {', '.join(REQUIRE_LEVELS)})")
    return lv


def layout_from_parallel(parallel: str) -> Layout:
    """The deprecated ``--parallel tp|ep|eplb`` as a layout: ``ep`` meant "all-to-all kernels", which vLLM
    uses only with EP and DP > 1, so it maps to ``--ep --dp 2``; ``eplb`` to ``--ep --eplb --dp 2``."""
    p = parallel.strip().lower()
    if p not in B.PARALLEL_MODES:
        raise BadInputError(f"--parallel {parallel}: unknown mode (choices: {', '.join(B.PARALLEL_MODES)})")
    if p == "tp":
        return derive_layout()
    return derive_layout(dp=2, ep_enabled=True, eplb=p == "eplb")


_FLAG_NAMES = {"tp": "--tp", "dp": "--dp", "pp": "--pp", "ep_enabled": "--ep", "eplb": "--eplb",
               "num_redundant_experts": "--num-redundant-experts", "all2all_backend": "--all2all-backend",
               "moe_backend": "--moe-backend", "gpu_memory_utilization": "--gpu-memory-utilization",
               "max_model_len": "--max-model-len", "kv_cache_dtype": "--kv-cache-dtype"}


def _merge(name: str, flag_value, args_value):
    """A flag given both ways must agree (contradictory flags are bad input, exit 2)."""
    if flag_value is None or flag_value is False:
        return args_value
    if args_value is not None and args_value != flag_value:
        raise BadInputError(f"{_FLAG_NAMES[name]} {flag_value} contradicts --vllm-args ({args_value})")
    return flag_value


def deployment_from_flags(f: DeployFlags) -> tuple[Deployment, object | None, list[str]]:
    """(Deployment, the parsed VllmArgs or None, notes for stderr); BadInputError on bad or contradictory values."""
    from .deploy.vllm_args import VllmArgs, parse_gpu_memory_utilization, parse_kv_cache_dtype, parse_max_model_len
    from .deploy.vllm_args import parse_vllm_args

    notes: list[str] = []
    if f.parallel is not None:
        if f.layout_given():
            raise BadInputError(f"--parallel {f.parallel} cannot be combined with --tp/--dp/--ep/--eplb/--vllm-args "
                                "(it is their deprecated shorthand)")
        lay = layout_from_parallel(f.parallel)  # refuses an unknown mode
        mode = f.parallel.strip().lower()  # as layout_from_parallel reads it
        notes.append(f"--parallel is deprecated: --parallel {f.parallel} now means "
                     + {"tp": "one GPU, no flags", "ep": "--ep --dp 2", "eplb": "--ep --eplb --dp 2"}[mode]
                     + "; give the layout as vLLM does (--tp, --dp, --ep, --eplb)")
        return Deployment(lay, layout_given=mode != "tp"), None, notes
    va = parse_vllm_args(f.vllm_args) if f.vllm_args is not None else VllmArgs()
    mml = parse_max_model_len(f.max_model_len) if f.max_model_len is not None else None
    gmu = parse_gpu_memory_utilization(f.gpu_memory_utilization) if f.gpu_memory_utilization is not None else None
    kvd = parse_kv_cache_dtype(f.kv_cache_dtype) if f.kv_cache_dtype is not None else None
    lay = derive_layout(
        tp=_merge("tp", f.tp, va.tp) or 1, dp=_merge("dp", f.dp, va.dp) or 1, pp=_merge("pp", f.pp, va.pp) or 1,
        pcp=va.pcp or 1, ep_enabled=bool(_merge("ep_enabled", f.ep, va.ep_enabled)),
        eplb=bool(_merge("eplb", f.eplb, va.eplb)),
        num_redundant_experts=_merge("num_redundant_experts", f.num_redundant_experts, va.num_redundant_experts) or 0,
        all2all_backend=_merge("all2all_backend", f.all2all_backend, va.all2all_backend) or "allgather_reducescatter",
        moe_backend=_merge("moe_backend", f.moe_backend, va.moe_backend))
    dep = Deployment(
        lay, layout_given=f.layout_given(),
        gpu_memory_utilization=_merge("gpu_memory_utilization", gmu, va.gpu_memory_utilization)
        or DEFAULT_GPU_MEMORY_UTILIZATION,
        max_model_len=_merge("max_model_len", mml, va.max_model_len),
        kv_cache_dtype=_merge("kv_cache_dtype", kvd, va.kv_cache_dtype),
        vllm_args=va.to_dict() if f.vllm_args is not None else None)
    if f.vllm_args is not None and va.ignored:
        notes.append(f"--vllm-args: ignored (no effect on this check): {', '.join(va.ignored)}")
    return dep, (va if f.vllm_args is not None else None), notes


def quant_from_vllm_args(va, desc: ModelDescription) -> tuple[str | None, str | None]:
    """(scheme override, note) from ``--quantization``: online quantization of an unquantized checkpoint
    (fp8, fp8_per_block, mxfp8); on a quantized checkpoint vLLM reads the checkpoint's own config."""
    from .deploy.vllm_args import ONLINE_QUANT

    if va is None or not va.quantization:
        return None, None
    q = va.quantization.strip().lower()
    ckpt = B.scheme_from_quant(desc.quantization.method, expert_format=desc.quantization.expert_format,
                               block_size=desc.quantization.block_size)
    if ckpt == "bf16" and q in ONLINE_QUANT:
        return ONLINE_QUANT[q], None
    if ckpt == "bf16":
        return None, f"--vllm-args --quantization {q}: not modelled for an unquantized checkpoint; checked as BF16"
    return None, f"--vllm-args --quantization {q}: the checkpoint is already {B.SCHEME_LABEL.get(ckpt, ckpt)}; checked as stored"


def parse_backend_filter(values: list[str] | tuple[str, ...] | None) -> list[str] | None:
    """``--backend`` values (repeatable, comma-separated) -> backend keys; BadInputError when one matches nothing."""
    if not values:
        return None
    keys: list[str] = []
    for v in values:
        for part in v.split(","):
            if not part.strip():
                continue
            rows = B.match_backend_filter(part)
            if not rows:
                # keys, then the families that are not also a key (triton is both)
                names = list(dict.fromkeys([b.key for b in B.BACKENDS] + sorted({b.family for b in B.BACKENDS})))
                raise BadInputError(f"--backend {part.strip()}: no backend matches",
                                    hint=close_hint(part.strip().lower().replace("-", "_"), names,
                                                    otherwise=f"known: {', '.join(names)}"))
            for b in rows:
                if b.key not in keys:
                    keys.append(b.key)
    return keys


def _norm_activation(act: str | None) -> str:
    a = (act or "silu").strip().lower().replace("-", "_")
    if a in ("swigluoai", "swiglu_oai", "swiglu_oai_uninterleave", "swigluoai_uninterleave"):
        return "swigluoai"
    if a in ("silu", "swiglu", "swish"):
        return "silu"
    if a.startswith("gelu"):
        return "gelu"
    if a in ("relu2", "relu2_no_mul", "relu_squared"):
        return "relu2"
    return a


def _norm_dtype(dt: str | None) -> str:
    d = (dt or "bfloat16").strip().lower().replace("torch.", "")
    return {"fp32": "float32", "f32": "float32", "float": "float32", "fp16": "float16", "f16": "float16",
            "half": "float16", "bf16": "bfloat16"}.get(d, d)


def _pattern(desc: ModelDescription) -> str:
    m = desc.moe
    parts = [m.scoring_func]
    if m.has_correction_bias:
        parts.append("correction bias")
    if m.linear_router_bias:
        parts.append("linear router bias")
    if (m.n_group or 0) > 1:
        parts.append(f"{m.n_group} groups")
    if m.zero_expert_num:
        parts.append(f"{m.zero_expert_num} zero experts")
    if m.num_hash_layers:
        parts.append(f"{m.num_hash_layers} hash layers")
    if m.custom_routing:
        parts.append(f"custom {m.custom_routing} routing")
    return " + ".join(parts)


def _flashinfer_methods(version: str | None) -> frozenset[str] | None:
    """RoutingMethodType members of FlashInfer ``version`` (None: the version this table describes)."""
    if not version:
        return None
    from . import enums

    if str(enums.normalize_flashinfer_version(version)) == str(enums.normalize_flashinfer_version(B.FLASHINFER_VERSION)):
        return None
    return frozenset(enums.flashinfer_enum(version))


def context_for(desc: ModelDescription, scheme: str | None = None, layout: Layout | None = None,
                flashinfer_version: str | None = None) -> B.RoutingContext:
    m, r, q = desc.moe, desc.routing, desc.quantization
    if scheme is None:
        scheme = B.scheme_from_quant(q.method, expert_format=q.expert_format, block_size=q.block_size)
    grouped = r.method == "DeepSeekV3"
    return B.RoutingContext(
        method=r.method,
        num_experts=m.num_experts,
        top_k=m.top_k,
        scheme=scheme,
        activation=_norm_activation(m.activation),
        n_group=m.n_group if grouped else None,
        topk_group=m.topk_group if grouped else None,
        num_hash_layers=m.num_hash_layers,
        router_dtype=_norm_dtype(m.router_dtype),
        apply_router_weight_on_input=(m.custom_routing == "llama4" or r.method == "Llama4"),
        pattern=_pattern(desc),
        layout=layout or derive_layout(),
        swiglu_limit=m.swiglu_limit,
        flashinfer_version=flashinfer_version or B.FLASHINFER_VERSION,
        flashinfer_methods=_flashinfer_methods(flashinfer_version),
    )


def _relevant(b: B.Backend, scheme: str) -> bool:
    return scheme in b.schemes


def _met(require: str | None, starts: bool, fused: bool, fi: bool, anyok: bool) -> bool | None:
    """--require: every level implies ``starts`` (the weakest)."""
    if require is None:
        return None
    return starts and {"starts": True, "any": anyok, "flashinfer": fi, "fused-routing": fused}[require]


def _validate_filter(selected: list[B.Backend] | None, require: str | None) -> None:
    if selected is None:
        return
    if require == "fused-routing" and not any(b.kind == "monolithic" and b.flashinfer for b in selected):
        raise BadInputError(
            f"--require fused-routing needs a FlashInfer monolithic backend, but --backend selects only "
            f"{', '.join(b.name for b in selected)} (modular kernels never route in-kernel)")
    if require == "flashinfer" and not any(b.flashinfer for b in selected):
        raise BadInputError(
            f"--require flashinfer needs a FlashInfer backend, but --backend selects only "
            f"{', '.join(b.name for b in selected)}")


def _apply_shape_blocks(cache: dict[str, B.Verdict], report) -> None:
    """A backend the per-rank shapes rule out (e.g. the refined 64x64 FP8-block QuantKey that only Triton
    consumes) fails gate "shape" unless an earlier gate already failed it."""
    for key, reason in report.backend_blocks.items():
        v = cache.get(key)
        if v is not None and v.supported:
            cache[key] = B.Verdict(v.backend, v.arch, False, "shape", reason)


def _forced_rows(forced: str, order: B.AutoOrder | None, scheme: str) -> list[str]:
    """Rows that answer ``--moe-backend forced``, in the oracle's order (then the table's)."""
    keys = [b.key for b in B.BACKENDS if b.moe_backend == forced and scheme in b.schemes]
    if order is not None:
        keys.sort(key=lambda k: order.order.index(k) if k in order.order else len(order.order))
    return keys


def _pick(ctx: B.RoutingContext, cache: dict[str, B.Verdict], order: B.AutoOrder | None):
    """(choice, trace, error): what vLLM runs. Auto: the first supported row of the oracle order (earlier
    ones are the silent fallbacks). Forced: the first supported row of that backend, else vLLM raises."""
    forced = ctx.layout.moe_backend
    label = B.SCHEME_LABEL.get(ctx.scheme, ctx.scheme)
    if forced is not None:
        keys = _forced_rows(forced, order, ctx.scheme)
        if not keys and any(b.moe_backend == forced for b in B.BACKENDS):
            return None, [], {"kind": "forced_backend", "message": (
                f"moe_backend='{forced}' is not supported for {label} MoE (no {label} backend of vLLM "
                f"{B.VLLM_VERSION} answers to it in this table)"), "source": "vllm 0.33.0 oracle/fp8.py:271-289 "
                "map_fp8_backend (and its per-scheme siblings)"}
        if not keys:  # a vLLM backend this table has no row for (deep_gemm_mega_moe, b12x, aiter, …)
            return None, [], None
        trace = []
        for k in keys:
            if cache[k].supported:
                return cache[k], trace, None
            trace.append(cache[k])
        last = trace[-1]
        return None, trace, {"kind": "forced_backend", "message": (
            f"{label} MoE backend {forced} does not support the deployment configuration since kernel does not "
            f"support it ({last.backend.name}, {last.gate}: {last.reason})"),
            "source": "vllm 0.33.0 model_executor/layers/fused_moe/oracle/fp8.py:426-452 _return_or_raise"}
    trace = []
    for k in (order.order if order else ()):
        if cache[k].supported:
            return cache[k], trace, None
        trace.append(cache[k])
    return None, trace, {"kind": "no_backend", "message": (
        f"No {label} MoE backend supports the deployment configuration."),
        "source": "vllm 0.33.0 model_executor/layers/fused_moe/oracle/fp8.py:551-554 (and its per-scheme siblings)"}


def _without_package(choice: B.Verdict | None, order: B.AutoOrder | None, cache: dict[str, B.Verdict],
                     forced: str | None) -> dict | None:
    """When the chosen backend needs an optional package: which one, and what vLLM picks without it."""
    if choice is None or choice.backend.package is None:
        return None
    pkg = B.OPTIONAL_PACKAGES[choice.backend.package]
    then = None
    if forced is None and order is not None:
        rest = order.order[order.order.index(choice.backend.key) + 1:]
        nxt = next((cache[k] for k in rest if cache[k].supported and cache[k].backend.package != choice.backend.package),
                   None)
        then = nxt.backend.name if nxt else None
    return {"package": pkg.module, "pip": pkg.pip, "note": pkg.how_vllm_gets_it, "source": pkg.source,
            "then": then}


def _memory(desc: ModelDescription, dep: Deployment, sctx, target: Target, padding: tuple):
    from .deploy import memory

    gib = target.gpu.memory_gib if target.gpu is not None else None
    if gib is None:
        return None
    return memory.memory_estimate(desc, dep.layout, scheme=sctx.scheme, gpu_memory_gib=gib,
                                  gpu_memory_utilization=dep.gpu_memory_utilization,
                                  max_model_len=dep.max_model_len, kv_cache_dtype=dep.kv_cache_dtype,
                                  padding=padding, ctx=sctx)


_MEM_SOURCE = "moe_inspect memory estimate (memory.basis says from what)"


def _blockers(dep: Deployment, shape, pick_error: dict | None, mem) -> list[dict]:
    """Why vLLM would not start, in the order it would fail: config, backend selection, load, memory."""
    out = [{"kind": "refusal", "message": r.message, "source": r.source} for r in dep.layout.refusal_details]
    if pick_error is not None:
        out.append(pick_error)
    for e in shape.load_errors:
        out.append({"kind": "load_error", "message": f"{e.layer}: {e.message}", "source": e.source})
    if mem is not None and dep.layout_given:
        if mem.fits is False:
            out.append({"kind": "memory", "message": (
                f"weights need {mem.weights_per_gpu_gib:.1f} GiB per GPU, {mem.usable_gib:.1f} GiB usable "
                f"(--gpu-memory-utilization {dep.gpu_memory_utilization:g})"), "source": _MEM_SOURCE})
        elif mem.known_parts_exceed_usable:
            out.append({"kind": "memory", "message": (
                f"the weights whose size is known already need {mem.weights_lower_bound_gib:.1f} GiB per GPU, "
                f"{mem.usable_gib:.1f} GiB usable (--gpu-memory-utilization {dep.gpu_memory_utilization:g})"),
                "source": _MEM_SOURCE})
        elif mem.load_error:
            out.append({"kind": "memory", "message": mem.load_error, "source": _MEM_SOURCE})
    return out


def _evaluate_target(desc: ModelDescription, ctx: B.RoutingContext, dep: Deployment, tgt: Target,
                     shown: list[B.Backend], pool: list[B.Backend], require: str | None, show_all: bool,
                     shape, sctx) -> TargetResult:
    cache = {b.key: B.evaluate(b, ctx, tgt.arch) for b in B.BACKENDS}
    _apply_shape_blocks(cache, shape)
    order = B.auto_order(ctx.scheme, tgt.arch, ctx.layout, ctx.activation)
    choice, trace, pick_error = _pick(ctx, cache, order)
    adjustments = list(shape.adjustments)
    if choice is not None:
        adjustments += list(shape.backend_adjustments.get(choice.backend.key, ()))
    mem = _memory(desc, dep, sctx, tgt, tuple(adjustments))
    blockers = _blockers(dep, shape, pick_error, mem)
    pv = [cache[b.key] for b in pool]
    fused = any(v.supported and v.backend.kind == "monolithic" and v.backend.flashinfer for v in pv)
    fi = any(v.supported and v.backend.flashinfer for v in pv)
    anyok = any(v.supported for v in pv)
    unified = [(c, *B.evaluate_unified(c, ctx.scheme, tgt.arch)) for c in B.UNIFIED_CONFIGS
               if show_all or B.unified_takes(c, ctx.scheme)]
    return TargetResult(
        target=tgt, verdicts=[cache[b.key] for b in shown], auto_choice=choice, auto_trace=trace,
        auto_source=order.source if order else None, fused_routing=fused, flashinfer=fi, any=anyok,
        requirement_met=_met(require, not blockers, fused, fi, anyok), unified=unified, starts=not blockers,
        start_blockers=blockers, load_errors=list(shape.load_errors),
        adjustments=adjustments, memory=mem, forced=ctx.layout.moe_backend,
        without_package=_without_package(choice, order, cache, ctx.layout.moe_backend))


def check(
    description: ModelDescription,
    targets: list[Target],
    quant: str | None = None,
    backends: list[str] | None = None,
    require: str | None = None,
    *,
    deployment: Deployment | None = None,
    flashinfer_version: str | None = None,
    show_all: bool = False,
) -> CheckReport:
    """Evaluate every (selected) backend on every target under one deployment.

    ``quant``: a --quant spelling or scheme name overriding the checkpoint's quantization.
    ``backends``: backend keys / names / families (see :func:`parse_backend_filter`).
    ``require``: None | "starts" | "any" | "flashinfer" | "fused-routing".
    ``deployment``: the layout and memory flags (default: one GPU, nothing said).
    ``flashinfer_version``: the FlashInfer release whose routing members the monolithic gates assume.
    """
    if not targets:
        raise BadInputError("check: no GPU targets given")
    deployment = deployment or Deployment()
    require = parse_require(require)
    scheme = parse_quant(quant) if quant else None
    ctx = context_for(description, scheme, deployment.layout, flashinfer_version)
    keys = parse_backend_filter(backends) if backends else None
    selected = [B.BACKEND_BY_KEY[k] for k in keys] if keys else None
    _validate_filter(selected, require)
    shown = selected if selected is not None else [b for b in B.BACKENDS if show_all or _relevant(b, ctx.scheme)]
    pool = selected if selected is not None else list(B.BACKENDS)  # rows that count for --require

    warnings: list[str] = list(deployment.layout.warnings)
    forced = deployment.layout.moe_backend
    if forced is not None and not any(b.moe_backend == forced for b in B.BACKENDS):
        warnings.append(f"--moe-backend {forced} is a vLLM 0.33.0 backend this table has no row for: whether it "
                        "runs is not checked (the layout and shape gates still are)")
    if ctx.scheme.startswith("unknown:"):
        warnings.append(f"quantization {ctx.scheme[8:]!r} is not in the backend table; every backend is rejected "
                        "(use --quant to ask what-if)")
    from .deploy import shapes

    # one context (config.json, quantization config and safetensors index read once) for the shape gates and
    # every target's memory estimate; no gate reads the GPU architecture, so one report serves every target
    sctx = shapes.build_context(description, deployment.layout, scheme=ctx.scheme, arch=targets[0].arch)
    shape = shapes.shape_report(description, deployment.layout, scheme=ctx.scheme, arch=targets[0].arch, ctx=sctx)
    results = [_evaluate_target(description, ctx, deployment, tgt, shown, pool, require, show_all, shape, sctx)
               for tgt in targets]
    fi_warn = flashinfer_version_warning()
    if fi_warn:
        warnings.append(fi_warn)
    return CheckReport(description, ctx, "--quant" if scheme else "checkpoint", results, require, keys,
                       warnings + list(description.warnings), deployment=deployment,
                       per_rank=dict(shape.per_rank), shape_notes=list(shape.notes))


# ------------------------------------------------------------------------------------------------
# FlashInfer version / metadata cross-check
# ------------------------------------------------------------------------------------------------
def flashinfer_version_warning(installed: str | None = ...) -> str | None:  # type: ignore[assignment]
    if installed is ...:
        installed = installed_flashinfer_version()
    if installed is None or installed == B.FLASHINFER_VERSION:
        return None
    return (f"installed flashinfer-python {installed} differs from {B.FLASHINFER_VERSION}, the version this backend "
            f"table describes (vLLM v{B.VLLM_VERSION} pins it); run with --cross-check to compare")


def cross_check_flashinfer() -> list[str]:
    """Import FlashInfer and list every disagreement with our tables (empty list = agree).

    Compares ``flashinfer.tllm_enums.RoutingMethodType`` (names and values) with
    ``moe_inspect.enums.flashinfer_enum(installed version)`` and each unified-API backend config's
    ``supported(arch)`` with :data:`moe_inspect.backends.UNIFIED_CONFIGS`.
    """
    import importlib

    from . import enums

    problems: list[str] = []
    ver = installed_flashinfer_version() or B.FLASHINFER_VERSION
    tllm = importlib.import_module("flashinfer.tllm_enums")
    real = {m.name: int(m.value) for m in tllm.RoutingMethodType}
    try:
        ours = enums.flashinfer_enum(ver)
    except Exception as e:  # version our enum table does not know
        problems.append(f"moe_inspect.enums has no RoutingMethodType layout for FlashInfer {ver}: {e}")
        ours = {}
    for name in sorted(set(real) | set(ours)):
        if real.get(name) != ours.get(name):
            problems.append(f"RoutingMethodType.{name}: FlashInfer {ver} has {real.get(name)}, our table {ours.get(name)}")
    try:
        api = importlib.import_module("flashinfer.fused_moe.api")
        configs = {c.__name__: c for c in getattr(api, "ALL_BACKEND_CONFIGS", ())}
    except Exception as e:
        problems.append(f"flashinfer.fused_moe.api.ALL_BACKEND_CONFIGS unavailable: {type(e).__name__}: {e}")
        configs = {}
    if configs:
        ours_cfg = {c.name: c for c in B.UNIFIED_CONFIGS}
        for name in sorted(set(configs) | set(ours_cfg)):
            if name not in configs:
                problems.append(f"{name}: in our table, not in FlashInfer {ver} ALL_BACKEND_CONFIGS")
                continue
            if name not in ours_cfg:
                problems.append(f"{name}: in FlashInfer {ver} ALL_BACKEND_CONFIGS, not in our table")
                continue
            for arch in sorted(B.ALL_ARCHS | {89}):
                real_ok = bool(configs[name].supported(arch))
                our_ok = arch in ours_cfg[name].archs
                if real_ok != our_ok:
                    problems.append(f"{name}.supported({arch}): FlashInfer says {real_ok}, our table {our_ok}")
    return problems


# ------------------------------------------------------------------------------------------------
# the whole built-in catalog through check (``moe-inspect catalog --check``, docs/check.md)
# ------------------------------------------------------------------------------------------------
def catalog_matrix(targets: list[Target], *, quant: str | None = None, require: str | None = None,
                   deployment: Deployment | None = None, vllm_version: str | None = None,
                   flashinfer_version: str | None = None) -> list[dict]:
    """One row per catalog model: method, scheme, and per target whether fused routing / FlashInfer /
    anything runs, whether vLLM would start under ``deployment``, vLLM's pick and (when fused routing
    fails) the first reason, as ``gate: reason``. The versions reach detection (routing ids) and the
    monolithic gates (``fi-version``)."""
    from . import catalog
    from .detect import describe_files

    rows = []
    for e in catalog.entries():
        desc = describe_files(catalog.lookup(e.id), vllm_version=vllm_version, flashinfer_version=flashinfer_version)
        rep = check(desc, targets, quant=quant, require=require, deployment=deployment,
                    flashinfer_version=flashinfer_version)
        rows.append({"id": e.id, "method": rep.ctx.method, "scheme": rep.ctx.scheme,
                     "quant_label": B.SCHEME_LABEL.get(rep.ctx.scheme, rep.ctx.scheme),
                     "num_experts": rep.ctx.num_experts, "top_k": rep.ctx.top_k,
                     "targets": [_catalog_cell(t) for t in rep.targets]})
    return rows


def _catalog_cell(t: TargetResult) -> dict:
    mono = [v for v in t.verdicts if v.backend.kind == "monolithic" and v.backend.flashinfer]
    first_fail = next((v for v in mono if not v.supported), None)
    return {
        "gpu": t.target.label, "arch": f"sm{t.target.arch}", "fused_routing": t.fused_routing,
        "flashinfer": t.flashinfer, "any": t.any, "starts": t.starts, "requirement_met": t.requirement_met,
        "vllm_auto_choice": t.auto_choice.backend.name if t.auto_choice else None,
        "fused_routing_blocker": None if t.fused_routing or first_fail is None
        else f"{first_fail.backend.name}: {first_fail.gate}: {first_fail.reason}",
        "start_blocker": t.start_blockers[0]["message"] if t.start_blockers else None,
    }


def catalog_listing(vllm_version: str | None = None, flashinfer_version: str | None = None) -> list[dict]:
    """``moe-inspect catalog``: every built-in model with its resolved routing method and ids."""
    from . import catalog
    from .detect import describe_files

    rows = []
    for e in catalog.entries():
        d = describe_files(catalog.lookup(e.id), vllm_version=vllm_version, flashinfer_version=flashinfer_version)
        rows.append({
            "id": e.id, "aliases": list(e.aliases), "model_type": e.model_type, "snapshot_date": e.snapshot_date,
            "num_experts": d.moe.num_experts, "top_k": d.moe.top_k, "scoring_func": d.moe.scoring_func,
            "has_correction_bias": d.moe.has_correction_bias, "n_group": d.moe.n_group,
            "topk_group": d.moe.topk_group, "quantization": d.quantization.method, "method": d.routing.method,
            "vllm_value": d.routing.vllm_value, "flashinfer_value": d.routing.flashinfer_value,
            "rule": d.routing.rule, "warnings": d.warnings,
        })
    return rows
