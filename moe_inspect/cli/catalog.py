"""`moe-inspect catalog`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import FlashinferVersionOpt, JsonOpt, VllmVersionOpt
from .output import console, handle_errors, print_json


def catalog_rows(vllm_version: str | None, flashinfer_version: str | None) -> list[dict]:
    from .. import catalog
    from ..detect import describe_files

    rows = []
    for e in catalog.entries():
        files = catalog.lookup(e.id)
        d = describe_files(files, vllm_version=vllm_version, flashinfer_version=flashinfer_version)
        rows.append({
            "id": e.id,
            "aliases": list(e.aliases),
            "model_type": e.model_type,
            "snapshot_date": e.snapshot_date,
            "num_experts": d.moe.num_experts,
            "top_k": d.moe.top_k,
            "scoring_func": d.moe.scoring_func,
            "has_correction_bias": d.moe.has_correction_bias,
            "n_group": d.moe.n_group,
            "topk_group": d.moe.topk_group,
            "quantization": d.quantization.method,
            "method": d.routing.method,
            "vllm_value": d.routing.vllm_value,
            "flashinfer_value": d.routing.flashinfer_value,
            "rule": d.routing.rule,
            "warnings": d.warnings,
        })
    return rows


def register(app: typer.Typer) -> None:
    @app.command("catalog", epilog=(
        "Examples:\n\n  moe-inspect catalog\n\n  moe-inspect catalog --json\n\n"
        "  moe-inspect catalog --check --gpu B200"))
    @handle_errors
    def catalog_cmd(
        vllm_version: VllmVersionOpt = None,
        flashinfer_version: FlashinferVersionOpt = None,
        json_out: JsonOpt = False,
        check: Annotated[bool, typer.Option(
            "--check", help="Run every model through `check`: which get fused routing / FlashInfer on --gpu.")] = False,
        gpu: Annotated[Optional[list[str]], typer.Option(
            "--gpu", help="Targets for --check (repeatable, comma-separated; default B200).")] = None,
    ) -> None:
        """List the built-in models (usable offline) with their resolved routing methods."""
        if check or gpu:
            _catalog_check(gpu or ["B200"], json_out)
            return
        rows = catalog_rows(vllm_version, flashinfer_version)
        if json_out:
            print_json({"schema_version": 1, "models": rows})
            return
        from rich.table import Table

        t = Table(title="built-in catalog (vLLM / FlashInfer ids)", header_style="bold", pad_edge=False)
        t.add_column("model", no_wrap=True)
        for c in ("E", "k", "scoring", "bias", "groups", "quant", "method", "ids"):
            t.add_column(c, no_wrap=c in ("method", "scoring", "quant"))
        for r in rows:
            groups = f"{r['n_group']}/{r['topk_group']}" if r["n_group"] else "—"
            fi = "—" if r["flashinfer_value"] is None else str(r["flashinfer_value"])
            t.add_row(r["id"], str(r["num_experts"]), str(r["top_k"]), r["scoring_func"],
                      "yes" if r["has_correction_bias"] else "no", groups, r["quantization"], r["method"],
                      f"{r['vllm_value']}/{fi}")
        console().print(t)


def _catalog_check(gpu: list[str], json_out: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from .. import gpus
    from ..check import catalog_matrix

    targets = gpus.parse_targets(gpu)
    rows = catalog_matrix(targets)
    if json_out:
        print_json({"schema_version": 1, "targets": [t.to_dict() for t in targets], "models": rows})
        return
    from rich import box

    t = Table(title="built-in catalog through `check` (✓ fused routing · ◐ FlashInfer modular only · ✗ no FlashInfer)",
              header_style="bold", pad_edge=False, box=box.SIMPLE_HEAD)
    t.add_column("model", overflow="fold")  # the one column that folds on a narrow terminal
    t.add_column("method", no_wrap=True, min_width=16)
    t.add_column("quant", no_wrap=True, min_width=11)
    for tg in targets:
        t.add_column(tg.label, no_wrap=True, min_width=len(tg.label))
    t.add_column("why", no_wrap=True, min_width=4)
    notes: dict[str, int] = {}  # reason -> footnote number (long reasons print below the table)
    for r in rows:
        cells = []
        for c in r["targets"]:
            if c["fused_routing"]:
                cells.append(Text("✓", style="green"))
            elif c["flashinfer"]:
                cells.append(Text("◐", style="yellow"))
            else:
                cells.append(Text("✗", style="red"))
        blocker = next((f"{tg.label}: {c['fused_routing_blocker']}" for tg, c in zip(targets, r["targets"])
                        if c["fused_routing_blocker"]), None)
        ref = f"[{notes.setdefault(blocker, len(notes) + 1)}]" if blocker else ""
        t.add_row(r["id"], r["method"], r["scheme"], *cells, ref)
    con = console()
    con.print(t)
    for reason, n in notes.items():
        con.print(Text.assemble((f"[{n}] ", "bold"), reason))
