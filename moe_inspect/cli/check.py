"""`moe-inspect check`: which expert backends run this model on which GPU, and why not."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import FlashinferVersionOpt, ModelArg, NoCatalogOpt, OfflineOpt, RevisionOpt, VllmVersionOpt
from .output import OutputFormat, console, handle_errors, print_json, progress

EPILOG = (
    "Examples:\n\n"
    "  moe-inspect check MiniMaxAI/MiniMax-M2.5 --gpu B200\n\n"
    "  moe-inspect check deepseek-ai/DeepSeek-V3 --gpu H100,B200 --quant nvfp4\n\n"
    "  moe-inspect check ./ckpt --gpu B200 --require fused-routing   # CI gate: exit 1 when not met\n\n"
    "  moe-inspect check openai/gpt-oss-20b --gpu all --format markdown\n\n"
    "Exit codes: 0 fine (or requirement met on every target), 1 requirement not met, 2 bad input."
)


def register(app: typer.Typer) -> None:
    @app.command("check", epilog=EPILOG)
    @handle_errors
    def check_cmd(
        model: ModelArg,
        gpu: Annotated[Optional[list[str]], typer.Option(
            "--gpu", help="Target GPU or arch, repeatable or comma-separated: H100, H200, B200, GB200, B300, GB300, "
                          "'RTX PRO 6000', 'RTX 5090', 'DGX Spark', sm90, sm100, sm103, sm120, sm121, all, local. "
                          "Default: the local GPU if nvidia-smi sees one, else all.")] = None,
        quant: Annotated[Optional[str], typer.Option(
            help="What-if quantization overriding the checkpoint's: fp8-block, fp8, nvfp4, mxfp4, mxfp8, bf16, int4.")] = None,
        backend: Annotated[Optional[list[str]], typer.Option(
            "--backend", help="Only these backends (key, --moe-backend value or name words), repeatable.")] = None,
        require: Annotated[Optional[str], typer.Option(
            help="CI gate: fused-routing | flashinfer | any. Exit 1 unless met on every target.")] = None,
        parallel: Annotated[str, typer.Option(help="Parallel mode the gates assume: tp, ep (all2all), eplb.")] = "tp",
        all_backends: Annotated[bool, typer.Option(
            "--all-backends", help="Also list backends that do not take this quantization.")] = False,
        cross_check: Annotated[bool, typer.Option(
            "--cross-check", help="Import FlashInfer and compare its enum and backend metadata with our table.")] = False,
        revision: RevisionOpt = None,
        offline: OfflineOpt = False,
        no_catalog: NoCatalogOpt = False,
        vllm_version: VllmVersionOpt = None,
        flashinfer_version: FlashinferVersionOpt = None,
        json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (same as --format json).")] = False,
        fmt: Annotated[OutputFormat, typer.Option("--format", help="table | json | markdown.")] = OutputFormat.table,
    ) -> None:
        """Which expert backends run this model on which GPU, what vLLM v0.33 picks, and why not."""
        from .. import check as core
        from .. import gpus

        # validate every flag before any I/O
        targets = gpus.parse_targets(gpu) if gpu else None
        if quant:
            core.parse_quant(quant)
        req = core.parse_require(require)
        if backend:
            core.parse_backend_filter(backend)
        if json_out:
            fmt = OutputFormat.json
        if targets is None:
            local = gpus.detect_local_gpu()
            targets = [local] if local is not None else gpus.all_targets()

        from ..detect import describe

        with progress(fmt == OutputFormat.table) as update:
            desc = describe(model, revision=revision, offline=True if offline else None, use_catalog=not no_catalog,
                            vllm_version=vllm_version, flashinfer_version=flashinfer_version, progress=update)
        report = core.check(desc, targets, quant=quant, backends=backend, require=req, parallel=parallel,
                            show_all=all_backends)
        problems: list[str] = []
        if cross_check:
            problems = _cross_check()
            report.warnings.extend(f"cross-check: {p}" for p in problems)

        if fmt == OutputFormat.json:
            data = report.to_dict()
            if cross_check:
                data["cross_check"] = {"problems": problems, "ok": not problems}
            print_json(data)
        elif fmt == OutputFormat.markdown:
            import sys

            sys.stdout.write(core.to_markdown(report))
        else:
            render_check(report, console())
        if problems or report.requirement_met is False:
            raise typer.Exit(1)


def _cross_check() -> list[str]:
    from .. import check as core
    from ..errors import EnvironmentError_

    try:
        import flashinfer  # noqa: F401
    except Exception as e:  # ImportError, or a CUDA/toolchain error at import
        raise EnvironmentError_(f"--cross-check: flashinfer is not importable ({type(e).__name__}: {e})") from None
    return core.cross_check_flashinfer()


def render_check(report, con) -> None:
    """Rich matrix: backends × targets, ✓ / ✗ <gate>, then the distinct reasons and vLLM's auto pick."""
    from rich.table import Table
    from rich.text import Text

    from .. import backends as B
    from ..check import summary_cell

    d, c = report.description, report.ctx
    quant = B.SCHEME_LABEL.get(c.scheme, c.scheme) + (" (--quant)" if report.scheme_source == "--quant" else "")
    con.print(Text.assemble((d.model.id, "bold"), "  routing ", (c.method, "bold"), f" ({c.pattern}) · E={c.num_experts} "
                            f"k={c.top_k}" + (f" groups {c.n_group}/{c.topk_group}" if c.n_group else "")
                            + f" · {quant} · {c.activation} · {c.parallel}"))
    # targets whose whole column is identical (same arch) share one column: H100 · H200 → sm90
    def column_key(tr):
        return (tuple(summary_cell(v) for v in tr.verdicts),
                tr.auto_choice.backend.name if tr.auto_choice else None, tr.requirement_met)

    groups: dict[tuple, list] = {}
    for tr in report.targets:
        groups.setdefault(column_key(tr), []).append(tr)
    cols = list(groups.values())
    t = Table(header_style="bold", pad_edge=False,
              title=f"expert backends (vLLM v{B.VLLM_VERSION}, FlashInfer {B.FLASHINFER_VERSION})")
    t.add_column("backend", no_wrap=True)
    t.add_column("kind", style="dim")
    for trs in cols:
        archs = sorted({f"sm{tr.target.arch}" for tr in trs})
        names = " · ".join(tr.target.label + (" (local)" if tr.target.local else "") for tr in trs)
        t.add_column(f"{'/'.join(archs)}\n{names}", justify="left")
    rows = report.targets[0].verdicts if report.targets else []
    for i, v0 in enumerate(rows):
        cells = []
        for trs in cols:
            v = trs[0].verdicts[i]
            cells.append(Text(summary_cell(v), style="green" if v.supported else "red"))
        kind = {"monolithic": "mono", "modular": "mod"}.get(v0.backend.kind, v0.backend.kind)
        t.add_row(v0.backend.name, kind, *cells)
    t.add_section()
    auto_cells = []
    for trs in cols:
        ch = trs[0].auto_choice
        auto_cells.append(Text(ch.backend.name if ch else "none", style="bold" if ch else "bold red"))
    t.add_row(Text("vLLM auto pick", style="bold"), "", *auto_cells)
    if report.require:
        t.add_row(Text(f"--require {report.require}", style="bold"), "",
                  *[Text("met", style="bold green") if trs[0].requirement_met else Text("NOT met", style="bold red")
                    for trs in cols])
    con.print(t)

    # distinct reasons, with the targets they apply to
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
    for tr in report.targets:
        ch = tr.auto_choice
        if ch is None:
            continue
        if tr.auto_trace:
            fell = "; ".join(f"{v.backend.name} ✗ {v.gate}" for v in tr.auto_trace)
            con.print(Text.assemble(("auto ", "bold"), f"{tr.target.label}: {ch.backend.name} "
                                    f"(silently after: {fell}); force with --moe-backend {ch.backend.moe_backend}"))
    for w in report.warnings:
        con.print(Text.assemble(("warning: ", "bold yellow"), w))
