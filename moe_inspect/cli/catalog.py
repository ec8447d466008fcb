"""`moe-inspect catalog`: the built-in models, and (``--check``) every one of them through `check`.

The rows come from the core (:func:`moe_inspect.check.catalog_listing`, :func:`~moe_inspect.check.catalog_matrix`);
this module only renders them. A table is printed when it fits the terminal (piped output: 80 columns);
otherwise each model becomes a short block of lines, so no column shrinks to nothing, no method name
is cut and no model id is split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .layout_options import deploy_options
from .options import FlashinferVersionOpt, VllmVersionOpt, output_options
from .output import Column, Output, handle_errors, table_fits

if TYPE_CHECKING:
    from ..deploy.vllm_args import DeployFlags

app = typer.Typer()

EPILOG = ("Examples:\n\n  moe-inspect catalog\n\n  moe-inspect catalog --json\n\n"
          "  moe-inspect catalog --check --gpu B200\n\n"
          "  moe-inspect catalog --check --gpu H100,B200,'RTX PRO 6000' --tp 8\n\n"
          "  moe-inspect catalog --check --gpu B200 --flashinfer-version 0.6.7")

LEGEND = "✓ fused routing · ◐ FlashInfer modular only · ✗ no FlashInfer · ! vLLM would not start"


@app.command("catalog", epilog=EPILOG)
@handle_errors
@output_options
@deploy_options
def catalog_cmd(
    out: Output,
    deploy: DeployFlags,
    vllm_version: VllmVersionOpt = None,
    flashinfer_version: FlashinferVersionOpt = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Run every model through `check`: which get fused routing / FlashInfer on --gpu.")] = False,
    gpu: Annotated[Optional[list[str]], typer.Option(
        "--gpu", help="Targets for --check (repeatable, comma-separated; default B200).")] = None,
) -> None:
    """List the built-in models (usable offline) with their resolved routing methods."""
    from .. import check as core
    from .. import gpus

    if check or gpu:
        targets = gpus.parse_targets(gpu or ["B200"])
        deployment, _, notes = core.deployment_from_flags(deploy)
        for n in notes:
            out.warning(n)
        rows = core.catalog_matrix(targets, deployment=deployment, vllm_version=vllm_version,
                                   flashinfer_version=flashinfer_version)
        data = {"schema_version": 1, "targets": [t.to_dict() for t in targets],
                "deployment": deployment.to_dict(), "models": rows}
        if out.is_quiet:  # the models that get fused routing on every target, one per line
            _ids(out, [r for r in rows if all(c["fused_routing"] and c["starts"] for c in r["targets"])])
            return
        out.dict(data, human=lambda d, o: render_matrix(d, o.console), markdown=lambda d: catalog_markdown(d["models"]))
        return
    if deploy.layout_given() or deploy.parallel:
        from ..errors import BadInputError

        raise BadInputError("catalog: deployment flags (--tp, --dp, --ep, --vllm-args, …) need --check")
    rows = core.catalog_listing(vllm_version, flashinfer_version)
    if out.is_quiet:
        _ids(out, rows)
        return
    out.dict({"schema_version": 1, "models": rows}, human=lambda d, o: render_listing(d["models"], o.console),
             markdown=lambda d: listing_markdown(d["models"]))


def _ids(out: Output, rows: list[dict]) -> None:
    """Quiet mode: the model ids, one per line (out.table's quiet view of its first column)."""
    out.table(rows, [Column("model", "id", fmt=str)])


# ------------------------------------------------------------------------------------------------
# plain listing
# ------------------------------------------------------------------------------------------------
def _quant(method: str | None) -> str:
    from .. import backends as B

    s = B.scheme_from_quant(method)
    return B.SCHEME_LABEL.get(s, s)


def _listing_cells(r: dict) -> list[str]:
    scoring = r["scoring_func"] + ("+bias" if r["has_correction_bias"] else "")
    groups = f"{r['n_group']}/{r['topk_group']}" if r["n_group"] else "—"
    fi = "—" if r["flashinfer_value"] is None else str(r["flashinfer_value"])
    return [r["id"], str(r["num_experts"]), str(r["top_k"]), scoring, groups, _quant(r["quantization"]), r["method"],
            f"{r['vllm_value']}/{fi}"]


_LISTING_HEADS = ["model", "E", "k", "scoring", "groups", "quant", "method", "ids vLLM/FI"]


def render_listing(rows: list[dict], con) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cells = [_listing_cells(r) for r in rows]
    title = "built-in catalog (routing ids: vLLM / FlashInfer)"
    t = Table(title=title, header_style="bold", pad_edge=False, box=box.SIMPLE_HEAD)
    for h in _LISTING_HEADS:
        t.add_column(h, no_wrap=True, justify="right" if h in ("E", "k") else "left")
    for c in cells:
        t.add_row(*c)
    if table_fits(con, t):
        con.print(t)
        return
    con.print(Text(title, style="bold"))
    for c in cells:  # narrow terminal: one block per model, nothing cut
        con.print(Text(c[0], style="bold"))
        con.print(Text(f"  {c[6]} · E={c[1]} k={c[2]} · {c[3]} · groups {c[4]} · {c[5]} · ids {c[7]}"))


def listing_markdown(rows: list[dict]) -> str:
    from .output import md_cell

    out = ["| " + " | ".join(_LISTING_HEADS) + " |", "|" + "---|" * len(_LISTING_HEADS)]
    out += ["| " + " | ".join(md_cell(x) for x in _listing_cells(r)) + " |" for r in rows]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# catalog --check
# ------------------------------------------------------------------------------------------------
def _mark(c: dict) -> str:
    m = "✓" if c["fused_routing"] else "◐" if c["flashinfer"] else "✗"
    return m if c["starts"] else m + "!"


def _notes(rows: list[dict], targets: list[str]) -> tuple[dict[str, int], list[str]]:
    """Footnotes: per model the first target's fused-routing blocker and start blocker."""
    notes: dict[str, int] = {}
    refs = []
    for r in rows:
        mine = []
        for tg, c in zip(targets, r["targets"]):
            for reason in (c["fused_routing_blocker"], c["start_blocker"]):
                if reason:
                    mine.append(notes.setdefault(f"{tg}: {reason}", len(notes) + 1))
                    break
        refs.append(",".join(str(n) for n in dict.fromkeys(mine)))
    return notes, refs


def render_matrix(data: dict, con) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rows, targets = data["models"], [t["gpu"] for t in data["targets"]]
    notes, refs = _notes(rows, targets)
    heads = ["model", "method", "quant", *targets, "why"]
    cells = [[r["id"], r["method"], r["quant_label"], *[_mark(c) for c in r["targets"]], refs[i]]
             for i, r in enumerate(rows)]
    con.print(Text(f"built-in catalog through `check` ({LEGEND})", style="bold"))
    t = Table(header_style="bold", pad_edge=False, box=box.SIMPLE_HEAD)
    for h in heads:
        t.add_column(h, no_wrap=True)
    for c in cells:
        t.add_row(*[Text(x, style=_style(x)) for x in c])
    if table_fits(con, t):
        con.print(t)
    else:  # narrow terminal: the model id on its own line, never split
        for c in cells:
            con.print(Text(c[0], style="bold"))
            marks = "  ".join(f"{tg} {m}" for tg, m in zip(targets, c[3:-1]))
            con.print(Text(f"  {c[1]} · {c[2]} · {marks}" + (f" [{c[-1]}]" if c[-1] else "")))
    for reason, n in notes.items():
        con.print(Text.assemble((f"[{n}] ", "bold"), reason))


def _style(x: str) -> str:
    return {"✓": "green", "◐": "yellow", "✗": "red"}.get(x[:1], "") if len(x) <= 2 else ""


def catalog_markdown(rows: list[dict]) -> str:
    """The catalog support matrix as Markdown: ✓ fused routing, ◐ FlashInfer modular only, ✗ no FlashInfer."""
    from .output import md_cell

    if not rows:
        return ""
    heads = [t["gpu"] for t in rows[0]["targets"]]
    out = ["| model | method | quant | " + " | ".join(heads) + " |", "|---|---|---|" + "---|" * len(heads)]
    for r in rows:
        cells = []
        for t in r["targets"]:
            mark = "✓ fused" if t["fused_routing"] else ("◐ FI modular" if t["flashinfer"] else
                                                          ("✗ non-FI" if t["any"] else "✗ none"))
            cells.append(mark if t["starts"] else f"{mark}, does not start")
        out.append(f"| {r['id']} | {r['method']} | {md_cell(r['quant_label'])} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
