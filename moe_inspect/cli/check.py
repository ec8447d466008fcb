"""`moe-inspect check`: will vLLM start this model on these GPUs under this layout, with which expert backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .layout_options import deploy_options
from .options import FlashinferVersionOpt, NoCatalogOpt, OfflineOpt, RevisionOpt, VllmVersionOpt, output_options
from .output import Output, handle_errors, table_fits

if TYPE_CHECKING:
    from ..deploy.vllm_args import DeployFlags

app = typer.Typer()

EPILOG = (
    "Examples:\n\n"
    "  moe-inspect check MiniMaxAI/MiniMax-M2.5 --gpu B200\n\n"
    "  moe-inspect check deepseek-ai/DeepSeek-V3 --gpu B200 --tp 8             # one node of 8 GPUs\n\n"
    "  moe-inspect check Qwen/Qwen3-235B-A22B --gpu H100 --tp 4 --dp 2 --ep --quant fp8-block\n\n"
    "  moe-inspect check --gpu B200 --vllm-args \"vllm serve openai/gpt-oss-120b -tp 8 --max-model-len 32k\"\n\n"
    "  moe-inspect check ./ckpt --gpu B200 --tp 8 --require fused-routing   # CI gate: exit 1 when not met\n\n"
    "  moe-inspect check openai/gpt-oss-20b --gpu all --format markdown\n\n"
    "Exit codes: 0 vLLM would start (and --require met) on every target, 1 it would not (with a layout "
    "given) or --require is not met, 2 bad input."
)

OptModelArg = Annotated[Optional[str], typer.Argument(
    metavar="[MODEL]", help="Hub id (org/name), local directory, or catalog name; optional with --vllm-args.")]


@app.command("check", epilog=EPILOG)
@handle_errors
@output_options
@deploy_options
def check_cmd(
    out: Output,
    deploy: DeployFlags,
    model: OptModelArg = None,
    gpu: Annotated[Optional[list[str]], typer.Option(
        "--gpu", help="Target GPU or arch, repeatable or comma-separated: H100, H200, B200, GB200, B300, GB300, "
                      "'RTX PRO 6000', 'RTX 5090', 'DGX Spark', sm90, sm100, sm103, sm120, sm121, all, local. "
                      "Default: the local GPU if nvidia-smi sees one, else all.")] = None,
    quant: Annotated[Optional[str], typer.Option(
        help="What-if quantization overriding the checkpoint's: fp8-block, fp8, nvfp4, mxfp4, mxfp8, bf16, int4.")] = None,
    backend: Annotated[Optional[list[str]], typer.Option(
        "--backend", help="Only these backends (key, --moe-backend value or name words), repeatable.")] = None,
    require: Annotated[Optional[str], typer.Option(
        help="CI gate: starts | any | flashinfer | fused-routing (each implies starts). "
             "Exit 1 unless met on every target.")] = None,
    all_backends: Annotated[bool, typer.Option(
        "--all-backends", help="Also list backends that do not take this quantization.")] = False,
    cross_check: Annotated[bool, typer.Option(
        "--cross-check", help="Import FlashInfer and compare its enum and backend metadata with our table.")] = False,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    no_catalog: NoCatalogOpt = False,
    vllm_version: VllmVersionOpt = None,
    flashinfer_version: FlashinferVersionOpt = None,
) -> None:
    """Will vLLM v0.33 start this model on these GPUs, with which expert backend, and why not?"""
    from .. import check as core
    from .. import gpus

    # validate every flag before any I/O
    targets = gpus.parse_targets(gpu) if gpu else None
    if quant:
        core.parse_quant(quant)
    req = core.parse_require(require)
    if backend:
        core.parse_backend_filter(backend)
    deployment, va, notes = core.deployment_from_flags(deploy)
    model = _model_id(model, va)
    if targets is None:
        local = gpus.detect_local_gpu()
        targets = [local] if local is not None else gpus.all_targets()

    from ..detect import describe

    with out.status() as update:
        desc = describe(model, revision=revision or (va.revision if va else None), offline=True if offline else None,
                        use_catalog=not no_catalog, vllm_version=vllm_version, flashinfer_version=flashinfer_version,
                        progress=update)
    args_quant, qnote = core.quant_from_vllm_args(va, desc)
    if qnote:
        notes.append(qnote)
    report = core.check(desc, targets, quant=quant or args_quant, backends=backend, require=req,
                        deployment=deployment, flashinfer_version=flashinfer_version, show_all=all_backends)
    if args_quant and not quant:
        report.scheme_source = "--vllm-args --quantization"
    for n in notes:
        out.warning(n)
    problems = _cross_check() if cross_check else []
    report.warnings.extend(f"cross-check: {p}" for p in problems)
    data = report.to_dict()
    if cross_check:
        data["cross_check"] = {"problems": problems, "ok": not problems}
    out.dict(data, human=lambda _d, o: render_check(report, o.console), markdown=lambda _d: to_markdown(report),
             id_key="starts")
    failed = report.requirement_met is False or (deployment.layout_given and not report.starts)
    if problems or failed:
        raise typer.Exit(1)


def _model_id(model: str | None, va) -> str:
    from ..errors import BadInputError

    from_args = va.model if va is not None else None
    if model and from_args and model != from_args:
        raise BadInputError(f"MODEL {model} contradicts the model of --vllm-args ({from_args})")
    if not (model or from_args):
        raise BadInputError("check: no MODEL given (pass it, or a --vllm-args line that names one)")
    return model or from_args


def _cross_check() -> list[str]:
    from .. import check as core
    from ..errors import EnvironmentError_

    try:
        import flashinfer  # noqa: F401
    except Exception as e:  # ImportError, or a CUDA/toolchain error at import
        raise EnvironmentError_(f"--cross-check: flashinfer is not importable ({type(e).__name__}: {e})") from None
    return core.cross_check_flashinfer()


# ------------------------------------------------------------------------------------------------
# presentation (the core returns data; these render it)
# ------------------------------------------------------------------------------------------------
def summary_cell(v) -> str:
    """A matrix cell: '✓' or '✗ <gate>' — the gate word is the one in the reasons, the JSON and docs/check.md."""
    return "✓" if v.supported else f"✗ {v.gate}"


def _gib(x: float | None) -> str:
    return "?" if x is None else f"{x:.1f} GiB"


def memory_line(m, dep) -> str | None:
    """'weights 82.3 GiB/GPU of 162.0 GiB usable: fits · KV cache 60.1 GiB ≈ 1.2M tokens'."""
    if m is None:
        return None
    verdict = {True: "fits", False: "does NOT fit", None: "fit unknown"}[m.fits]
    weights = _gib(m.weights_per_gpu_gib)
    if m.weights_per_gpu_gib is None and m.weights_lower_bound_gib is not None:
        weights = f"≥ {m.weights_lower_bound_gib:.1f} GiB"
        if m.known_parts_exceed_usable:
            verdict = "does NOT fit"
    line = f"weights {weights}/GPU of {_gib(m.usable_gib)} usable (×{dep.gpu_memory_utilization:g}): {verdict}"
    if m.kv_cache_gib is not None:
        line += f" · KV cache {_gib(m.kv_cache_gib)}"
        if m.kv_tokens is not None:
            line += f" ≈ {m.kv_tokens:,} tokens"
    missing = [u for u in m.unknowns if "upper bound" not in u]
    if missing:
        line += f" (unknown: {missing[0].split(':')[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "") \
            + "; --json lists them)"
    return line


def start_line(tr) -> str:
    """'vLLM 0.33 would start: yes — TRT-LLM FP8 block monolithic (auto)' / ': no — <first blocker>'."""
    from .. import backends as B

    head = f"vLLM {B.VLLM_VERSION} would start: "
    if tr.starts:
        ch = tr.auto_choice
        if ch is None:  # a forced backend the table has no row for
            return head + f"yes, as far as checked — --moe-backend {tr.forced} (not modelled)"
        how = "forced by --moe-backend" if tr.forced else "auto"
        return head + f"yes — {ch.backend.name} ({how})"
    b = tr.start_blockers[0]
    if b["kind"] == "memory":  # the memory line below says from what
        return head + f"no — {b['message']}"
    return head + f"no — {b['message']} ({b['source']})"


def _header(report, con) -> None:
    from rich.text import Text

    from .. import backends as B

    d, c = report.description, report.ctx
    quant = B.SCHEME_LABEL.get(c.scheme, c.scheme) + ("" if report.scheme_source == "checkpoint"
                                                      else f" ({report.scheme_source})")
    con.print(Text.assemble((d.model.id, "bold"), "  routing ", (c.method, "bold"), f" ({c.pattern}) · E={c.num_experts} "
                            f"k={c.top_k}" + (f" groups {c.n_group}/{c.topk_group}" if c.n_group else "")
                            + f" · {quant} · {c.activation}"))
    dep = report.deployment
    said = "" if dep.layout_given else " (nothing given: one GPU assumed; say --tp/--dp/--ep or --vllm-args)"
    con.print(Text.assemble(("deployment ", "bold"), dep.layout.describe() + said))
    con.print(Text.assemble(("tables ", "bold"), f"vLLM {B.VLLM_VERSION}.0 · FlashInfer {c.flashinfer_version}"))
    line = per_rank_line(report.per_rank)
    if line:
        con.print(Text.assemble(("per rank ", "bold"), line))
    for n in report.shape_notes:
        con.print(Text(f"note: {n}", style="dim"))


def per_rank_line(pr: dict) -> str | None:
    """'expert width 1536/8 = 192 · 256 experts per rank (block FP8 [128, 128] → [64, 64])'."""
    if not pr or not pr.get("intermediate_size_global"):
        return None
    tp = pr.get("moe_tp", 1)
    parts = [f"expert width {pr['intermediate_size_global']}" + (f"/{tp} = {pr['intermediate_size']}" if tp > 1 else "")]
    le = pr.get("local_experts") or {}
    if le:
        n = le["max"] if le["max"] == le["min"] else f"{le['min']}–{le['max']}"
        parts.append(f"{n} experts per rank")
    fb = pr.get("fp8_block")
    if fb and fb.get("used") != fb.get("checkpoint"):
        parts.append(f"FP8 blocks {fb['checkpoint']} → {fb['used']} ({fb['outcome']})")
    return " · ".join(parts)


def _column_groups(report) -> list[list]:
    """Targets whose whole column is identical share it (H100 · H200 → one sm90 column)."""
    groups: dict[tuple, list] = {}
    for tr in report.targets:
        key = (tuple(summary_cell(v) for v in tr.verdicts), tr.auto_choice.backend.name if tr.auto_choice else None,
               tr.requirement_met, tr.starts)
        groups.setdefault(key, []).append(tr)
    return list(groups.values())


def _group_head(trs) -> list[str]:
    archs = sorted({f"sm{tr.target.arch}" for tr in trs})
    return ["/".join(archs)] + [tr.target.label + (" (local)" if tr.target.local else "") for tr in trs]


def _pick_name(tr) -> str:
    return tr.auto_choice.backend.name if tr.auto_choice else ("(forced, not modelled)" if tr.forced else "none")


def _matrix(report, con) -> None:
    """Backends × targets, ✓ / ✗ <gate>; one block per target group when the table would not fit."""
    from rich.table import Table
    from rich.text import Text

    cols = _column_groups(report)
    t = Table(header_style="bold", pad_edge=False)
    t.add_column("backend", no_wrap=True)
    t.add_column("kind", style="dim", no_wrap=True)
    for trs in cols:
        t.add_column("\n".join(_group_head(trs)), no_wrap=True)
    rows = report.targets[0].verdicts if report.targets else []
    for i, v0 in enumerate(rows):
        cells = [Text(summary_cell(trs[0].verdicts[i]), style="green" if trs[0].verdicts[i].supported else "red")
                 for trs in cols]
        t.add_row(v0.backend.name, {"monolithic": "mono", "modular": "mod"}.get(v0.backend.kind), *cells)
    t.add_section()
    t.add_row(Text("vLLM picks", style="bold"), "", *[
        Text(_pick_name(trs[0]), style="bold" if trs[0].auto_choice else "bold red") for trs in cols])
    t.add_row(Text("starts", style="bold"), "", *[
        Text("yes", style="bold green") if trs[0].starts else Text("no", style="bold red") for trs in cols])
    if report.require:
        t.add_row(Text(f"--require {report.require}", style="bold"), "",
                  *[Text("met", style="bold green") if trs[0].requirement_met else Text("NOT met", style="bold red")
                    for trs in cols])
    if table_fits(con, t):
        con.print(t)
    else:  # one block per target group when the table would not fit
        _matrix_stacked(report, cols, con)


def _matrix_stacked(report, cols, con) -> None:
    """The same matrix for a narrow terminal: per target group, the backends that run and, per gate, those
    that do not (nothing cut, no column squeezed to nothing)."""
    from rich.text import Text

    for trs in cols:
        head = _group_head(trs)
        tr = trs[0]
        verdict = "starts" if tr.starts else "does NOT start"
        req = "" if report.require is None else (" · --require met" if tr.requirement_met else " · --require NOT met")
        con.print(Text.assemble((f"{' · '.join(head[1:])} ({head[0]})", "bold"),
                                f": vLLM picks {_pick_name(tr)} · {verdict}{req}"))
        ok = [v.backend.name for v in tr.verdicts if v.supported]
        con.print(Text("  ✓ " + (", ".join(ok) if ok else "none"), style="green"))
        by_gate: dict[str, list[str]] = {}
        for v in tr.verdicts:
            if not v.supported:
                by_gate.setdefault(v.gate, []).append(v.backend.name)
        for gate, names in by_gate.items():
            con.print(Text(f"  ✗ {gate}: {', '.join(names)}", style="red"))


def _per_target(report, con) -> None:
    from rich.text import Text

    for tr in report.targets:
        con.print(Text.assemble((f"{tr.target.label}: ", "bold"),
                                (start_line(tr), "green" if tr.starts else "bold red")))
        ch = tr.auto_choice
        if ch is not None:
            why = f"first in vLLM's order ({tr.auto_source})" if not tr.auto_trace else \
                "after " + "; ".join(f"{v.backend.name} ✗ {v.gate}" for v in tr.auto_trace)
            if tr.forced:
                why = f"--moe-backend {tr.forced}"
            con.print(Text(f"  picked {ch.backend.name}: {why}; force with --moe-backend {ch.backend.moe_backend}"))
            if tr.without_package:
                p = tr.without_package
                con.print(Text(f"  needs the {p['package']} package ({p['note']}); without it vLLM picks "
                               f"{p['then'] or 'nothing'}"))
        for b in tr.start_blockers[1:]:
            con.print(Text(f"  also: {b['message']} ({b['source']})", style="red"))
        for a in tr.adjustments:
            pct = f" (+{a.overhead_pct:.1f} %)" if a.overhead_pct and "%" not in a.detail else ""
            con.print(Text(f"  adjustment: {a.kind}: {a.detail}{pct}"))
        ml = memory_line(tr.memory, report.deployment)
        if ml:
            con.print(Text(f"  memory: {ml}"))


def render_check(report, con) -> None:
    """Human view: header, deployment, the backend matrix, per target start/pick/adjustments/memory, reasons."""
    from rich.text import Text

    _header(report, con)
    _matrix(report, con)
    _per_target(report, con)
    why: dict[tuple[str, str], list[str]] = {}
    for tr in report.targets:
        for v in tr.verdicts:
            if not v.supported:
                why.setdefault((v.backend.name, f"{v.gate}: {v.reason}"), []).append(tr.target.label)
    if why:
        con.print(Text("why not:", style="bold"))
        for (name, reason), labels in why.items():
            where = "all targets" if len(labels) == len(report.targets) and len(labels) > 1 else ", ".join(labels)
            con.print(Text.assemble("  ", (name, "bold"), f" [{where}] ", reason))
    for w in report.warnings:
        con.print(Text.assemble(("warning: ", "bold yellow"), w))


def to_markdown(report) -> str:
    """The backends × targets matrix as GitHub Markdown (for a PR), with the start verdict per target."""
    from .. import backends as B
    from .output import md_cell

    d, c = report.description, report.ctx
    lines = [f"**{d.model.id}** — routing `{c.method}` ({c.pattern}), E={c.num_experts}, k={c.top_k}, "
             f"quant {B.SCHEME_LABEL.get(c.scheme, c.scheme)}"
             + ("" if report.scheme_source == "checkpoint" else f" ({report.scheme_source})")
             + f"; {report.deployment.layout.describe()}\n"]
    heads = [t.target.label for t in report.targets]
    lines.append("| backend | kind | " + " | ".join(heads) + " |")
    lines.append("|---|---|" + "---|" * len(heads))
    rows = report.targets[0].verdicts if report.targets else []
    for i, v0 in enumerate(rows):
        cells = [md_cell("✓" if t.verdicts[i].supported else f"✗ {t.verdicts[i].gate}: {t.verdicts[i].reason}")
                 for t in report.targets]
        lines.append(f"| {v0.backend.name} | {v0.backend.kind} | " + " | ".join(cells) + " |")
    auto = [f"{t.auto_choice.backend.name} (`--moe-backend {t.auto_choice.backend.moe_backend}`)" if t.auto_choice
            else "none" for t in report.targets]
    lines.append("| **vLLM picks** | | " + " | ".join(auto) + " |")
    lines.append("| **starts** | | " + " | ".join(
        "yes" if t.starts else md_cell("no: " + t.start_blockers[0]["message"]) for t in report.targets) + " |")
    if report.require:
        lines.append(f"| **--require {report.require}** | | "
                     + " | ".join("met" if t.requirement_met else "NOT met" for t in report.targets) + " |")
    mem = [memory_line(t.memory, report.deployment) for t in report.targets]
    if any(mem):
        lines.append("| **memory** | | " + " | ".join(md_cell(m or "—") for m in mem) + " |")
    return "\n".join(lines) + "\n"
