"""``check``: which expert backends run this model on which GPU, and why not — the pre-deploy gate.

Core only (no typer, rich, torch or flashinfer): :func:`check` evaluates every backend row of
:mod:`moe_inspect.backends` for each target GPU, works out what vLLM v0.33 would pick in auto
mode (and what it silently falls back from), and whether a ``--require`` level is met.

Requirement levels (``require``):

* ``fused-routing`` — a FlashInfer monolithic kernel routes in-kernel with the resolved method
  (some FlashInfer monolithic row is supported);
* ``flashinfer`` — some FlashInfer-backed vLLM backend runs the experts (monolithic or modular,
  auto-selected or forced with ``--moe-backend``);
* ``any`` — vLLM can serve the MoE layers at all (some row is supported).

With a backend filter the requirement is evaluated over the selected rows only. Asking for
``fused-routing`` while the filter selects only modular rows (or ``flashinfer`` with only
non-FlashInfer rows) can never be met: that is a contradiction and raises BadInputError.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import backends as B
from .errors import BadInputError
from .gpus import Target
from .spec import SCHEMA_VERSION, ModelDescription

REQUIRE_LEVELS = ("fused-routing", "flashinfer", "any")
CHECK_SCHEMA_VERSION = 1


@dataclass
class TargetResult:
    target: Target
    verdicts: list[B.Verdict]  # rows shown for this target
    auto_choice: B.Verdict | None
    auto_trace: list[B.Verdict]  # candidates vLLM tried before the choice (the silent fallbacks)
    auto_source: str | None
    fused_routing: bool
    flashinfer: bool
    any: bool
    requirement_met: bool | None
    unified: list[tuple[B.UnifiedConfig, bool, str | None]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = self.target.to_dict()
        d["backends"] = [_verdict_dict(v) for v in self.verdicts]
        if self.auto_choice is not None:
            c = self.auto_choice.backend
            d["vllm_auto_choice"] = {
                "name": c.name, "key": c.key, "kind": c.kind, "flashinfer": c.flashinfer,
                "moe_backend": c.moe_backend,
                "fell_back_from": [{"name": v.backend.name, "key": v.backend.key, "gate": v.gate, "reason": v.reason}
                                   for v in self.auto_trace],
            }
        else:
            d["vllm_auto_choice"] = None
        d["auto_order_source"] = self.auto_source
        d["fused_routing"] = self.fused_routing
        d["flashinfer"] = self.flashinfer
        d["any"] = self.any
        d["requirement_met"] = self.requirement_met
        d["flashinfer_unified_api"] = [
            {"config": c.name, "runner": c.runner, "supported": ok, "reason": r, "routing_from_logits": c.routing_from_logits}
            for c, ok, r in self.unified
        ]
        return d


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
    scheme_source: str  # "checkpoint" | "--quant"
    targets: list[TargetResult]
    require: str | None
    backend_filter: list[str] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def requirement_met(self) -> bool | None:
        if self.require is None:
            return None
        return all(t.requirement_met for t in self.targets)

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
            "parallel": c.parallel,
            "require": self.require,
            "backend_filter": self.backend_filter,
            "table": {"vllm_version": B.VLLM_VERSION, "flashinfer_version": B.FLASHINFER_VERSION},
            "targets": [t.to_dict() for t in self.targets],
            "requirement_met": self.requirement_met,
            "warnings": list(self.warnings),
        }


# ------------------------------------------------------------------------------------------------
def parse_quant(name: str) -> str:
    """``--quant`` value -> scheme; BadInputError naming the value and the choices."""
    key = name.strip().lower().replace("_", "-")
    s = B.QUANT_ALIASES.get(key) or B.QUANT_ALIASES.get(key.replace("-", "_"))
    if s is None:
        import difflib

        close = difflib.get_close_matches(key, list(B.QUANT_ALIASES), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else None
        raise BadInputError(
            f"--quant {name}: unknown quantization (choices: fp8-block, fp8, nvfp4, mxfp4, mxfp8, bf16, int4, fp4-mixed)", hint=hint)
    return s


def parse_require(level: str | None) -> str | None:
    if level is None:
        return None
    lv = level.strip().lower().replace("_", "-")
    if lv not in REQUIRE_LEVELS:
        raise BadInputError(f"--require {level}: unknown level (choices: {', '.join(REQUIRE_LEVELS)})")
    return lv


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
                import difflib

                names = [b.key for b in B.BACKENDS] + sorted({b.family for b in B.BACKENDS})
                close = difflib.get_close_matches(part.strip().lower().replace("-", "_"), names, n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(names)}"
                raise BadInputError(f"--backend {part.strip()}: no backend matches", hint=hint)
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


def context_for(desc: ModelDescription, scheme: str | None = None, parallel: str = "tp") -> B.RoutingContext:
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
        parallel=parallel,
        swiglu_limit=m.swiglu_limit,
    )


def _relevant(b: B.Backend, scheme: str) -> bool:
    return scheme in b.schemes


def _met(require: str | None, fused: bool, fi: bool, anyok: bool) -> bool | None:
    if require is None:
        return None
    return {"fused-routing": fused, "flashinfer": fi, "any": anyok}[require]


def check(
    description: ModelDescription,
    targets: list[Target],
    quant: str | None = None,
    backends: list[str] | None = None,
    require: str | None = None,
    *,
    parallel: str = "tp",
    show_all: bool = False,
) -> CheckReport:
    """Evaluate every (selected) backend on every target.

    ``quant``: a --quant spelling or scheme name overriding the checkpoint's quantization.
    ``backends``: backend keys / names / families (see :func:`parse_backend_filter`).
    ``require``: None | "fused-routing" | "flashinfer" | "any".
    """
    if not targets:
        raise BadInputError("check: no GPU targets given")
    if parallel not in B.PARALLEL_MODES:
        raise BadInputError(f"--parallel {parallel}: unknown mode (choices: {', '.join(B.PARALLEL_MODES)})")
    require = parse_require(require)
    scheme = parse_quant(quant) if quant else None
    ctx = context_for(description, scheme, parallel)
    keys = parse_backend_filter(backends) if backends else None
    selected = [B.BACKEND_BY_KEY[k] for k in keys] if keys else None

    if selected is not None and require in ("fused-routing", "flashinfer"):
        if require == "fused-routing" and not any(b.kind == "monolithic" and b.flashinfer for b in selected):
            raise BadInputError(
                f"--require fused-routing needs a FlashInfer monolithic backend, but --backend selects only "
                f"{', '.join(b.name for b in selected)} (modular kernels never route in-kernel)")
        if require == "flashinfer" and not any(b.flashinfer for b in selected):
            raise BadInputError(
                f"--require flashinfer needs a FlashInfer backend, but --backend selects only "
                f"{', '.join(b.name for b in selected)}")

    shown = selected if selected is not None else [
        b for b in B.BACKENDS if show_all or _relevant(b, ctx.scheme)]
    pool = selected if selected is not None else list(B.BACKENDS)  # rows that count for --require

    warnings: list[str] = []
    if ctx.scheme.startswith("unknown:"):
        warnings.append(f"quantization {ctx.scheme[8:]!r} is not in the backend table; every backend is rejected "
                        "(use --quant to ask what-if)")
    results: list[TargetResult] = []
    for tgt in targets:
        cache = {b.key: B.evaluate(b, ctx, tgt.arch) for b in B.BACKENDS}
        order = B.auto_order(ctx.scheme, tgt.arch, parallel, ctx.activation)
        trace: list[B.Verdict] = []
        choice = None
        if order is not None:
            for k in order.order:
                v = cache[k]
                if v.supported:
                    choice = v
                    break
                trace.append(v)
        pv = [cache[b.key] for b in pool]
        fused = any(v.supported and v.backend.kind == "monolithic" and v.backend.flashinfer for v in pv)
        fi = any(v.supported and v.backend.flashinfer for v in pv)
        anyok = any(v.supported for v in pv)
        unified = [(c, *B.evaluate_unified(c, ctx.scheme, tgt.arch)) for c in B.UNIFIED_CONFIGS
                   if show_all or B.unified_takes(c, ctx.scheme)]
        results.append(TargetResult(
            target=tgt, verdicts=[cache[b.key] for b in shown], auto_choice=choice, auto_trace=trace,
            auto_source=order.source if order else None, fused_routing=fused, flashinfer=fi, any=anyok,
            requirement_met=_met(require, fused, fi, anyok), unified=unified))

    fi_warn = flashinfer_version_warning()
    if fi_warn:
        warnings.append(fi_warn)
    return CheckReport(description, ctx, "--quant" if scheme else "checkpoint", results, require, keys,
                       warnings + list(description.warnings))


# ------------------------------------------------------------------------------------------------
# FlashInfer version / metadata cross-check
# ------------------------------------------------------------------------------------------------
def installed_flashinfer_version() -> str | None:
    """The installed flashinfer-python version from package metadata (never imports flashinfer)."""
    import importlib.util

    try:  # cheap pre-check (no import of flashinfer): skip importlib.metadata's ~15 ms when absent
        if importlib.util.find_spec("flashinfer") is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    try:
        return version("flashinfer-python")
    except PackageNotFoundError:
        return None
    except Exception:  # broken metadata: treat as absent
        return None


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


def summary_cell(v: B.Verdict) -> str:
    """A short matrix cell: '✓' or '✗ <gate>'."""
    if v.supported:
        return "✓"
    short = {"device": "arch", "activation": "activation", "quant": "quant", "parallel": "parallel",
             "hash_routing": "hash layers", "routing_method": "method", "router_logits_dtype": "logit dtype",
             "shape": "limits"}[v.gate or "device"]
    return f"✗ {short}"


def to_markdown(report: CheckReport) -> str:
    """The backends × targets matrix as GitHub Markdown (for a PR)."""
    d = report.description
    c = report.ctx
    lines = [f"**{d.model.id}** — routing `{c.method}` ({c.pattern}), E={c.num_experts}, k={c.top_k}, "
             f"quant {B.SCHEME_LABEL.get(c.scheme, c.scheme)}"
             + (" (--quant)" if report.scheme_source == "--quant" else "") + "\n"]
    heads = [t.target.label for t in report.targets]
    lines.append("| backend | kind | " + " | ".join(heads) + " |")
    lines.append("|---|---|" + "---|" * len(heads))
    rows = report.targets[0].verdicts if report.targets else []
    for i, v0 in enumerate(rows):
        cells = []
        for t in report.targets:
            v = t.verdicts[i]
            cells.append("✓" if v.supported else f"✗ {v.reason}".replace("|", "\\|"))
        lines.append(f"| {v0.backend.name} | {v0.backend.kind} | " + " | ".join(cells) + " |")
    auto = []
    for t in report.targets:
        ch = t.auto_choice
        auto.append(f"{ch.backend.name} (`--moe-backend {ch.backend.moe_backend}`)" if ch else "none")
    lines.append("| **vLLM auto** | | " + " | ".join(auto) + " |")
    if report.require:
        lines.append(f"| **--require {report.require}** | | "
                     + " | ".join("met" if t.requirement_met else "NOT met" for t in report.targets) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# the whole built-in catalog through check (``moe-inspect catalog --check``, docs/check.md)
# ------------------------------------------------------------------------------------------------
def catalog_matrix(targets: list[Target], *, quant: str | None = None, require: str | None = None) -> list[dict]:
    """One row per catalog model: method, scheme, and per target whether fused routing / FlashInfer /
    anything runs, plus vLLM's auto pick and (when fused routing fails) the first reason."""
    from . import catalog
    from .detect import describe_files

    rows = []
    for e in catalog.entries():
        desc = describe_files(catalog.lookup(e.id))
        rep = check(desc, targets, quant=quant, require=require)
        per = []
        for t in rep.targets:
            mono = [v for v in t.verdicts if v.backend.kind == "monolithic" and v.backend.flashinfer]
            first_fail = next((v for v in mono if not v.supported), None)
            per.append({
                "gpu": t.target.label, "arch": f"sm{t.target.arch}", "fused_routing": t.fused_routing,
                "flashinfer": t.flashinfer, "any": t.any, "requirement_met": t.requirement_met,
                "vllm_auto_choice": t.auto_choice.backend.name if t.auto_choice else None,
                "fused_routing_blocker": None if t.fused_routing or first_fail is None
                else f"{first_fail.backend.name}: {first_fail.reason}",
            })
        rows.append({"id": e.id, "method": rep.ctx.method, "scheme": rep.ctx.scheme,
                     "num_experts": rep.ctx.num_experts, "top_k": rep.ctx.top_k, "targets": per})
    return rows


def catalog_markdown(rows: list[dict]) -> str:
    """The catalog support matrix as Markdown: ✓ fused routing, ◐ FlashInfer modular only, ✗ no FlashInfer."""
    if not rows:
        return ""
    heads = [t["gpu"] for t in rows[0]["targets"]]
    out = ["| model | method | quant | " + " | ".join(heads) + " |", "|---|---|---|" + "---|" * len(heads)]
    for r in rows:
        cells = []
        for t in r["targets"]:
            mark = "✓ fused" if t["fused_routing"] else ("◐ FI modular" if t["flashinfer"] else
                                                          ("✗ non-FI" if t["any"] else "✗ none"))
            cells.append(mark)
        out.append(f"| {r['id']} | {r['method']} | {B.SCHEME_LABEL.get(r['scheme'], r['scheme'])} | "
                   + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
