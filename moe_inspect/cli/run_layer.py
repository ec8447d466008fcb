"""`moe-inspect run-layer`: one MoE layer through FlashInfer kernels on the local GPU."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import OfflineOpt, output_options
from .output import Output, fmt_value, handle_errors, md_cell

_QUANT_HELP = "Weight format: bf16, fp8 (per-tensor), fp8-block (128x128), nvfp4, mxfp4, mxfp8."
_EPILOG = (
    "Examples:\n\n"
    "  moe-inspect run-layer MiniMaxAI/MiniMax-M2.5 --quant nvfp4 --tokens 1,16,128,1024\n\n"
    "  moe-inspect run-layer deepseek-ai/DeepSeek-V3 --quant bf16 --json --plot dsv3.png\n\n"
    "  moe-inspect run-layer ./ckpt --weights checkpoint --layer 3 --quant fp8-block\n\n"
    "  moe-inspect run-layer --experts 64 --top-k 8 --hidden 2048 --intermediate 768 --routing-method Renormalize\n\n"
    "  moe-inspect run-layer deepseek-ai/DeepSeek-V3 --routing reference   (top-k from our reference router)\n\n"
    "  moe-inspect run-layer MiniMaxAI/MiniMax-M2.5 --tp 2 --compare-tp-ep   (2 GPUs: TP 2 and EP 2 side by side)\n\n"
    "  moe-inspect run-layer MiniMaxAI/MiniMax-M2.5 --quant nvfp4 --format markdown   (a table for a PR)\n\n"
    "Exit codes: 0 the accuracy verdict passed, 1 it failed, 2 bad input, no GPU, or a path this GPU "
    "cannot run."
)


app = typer.Typer()


@app.command("run-layer", epilog=_EPILOG)
@handle_errors
@output_options
def run_layer(
    out: Output,
    model: Annotated[Optional[str], typer.Argument(metavar="[MODEL]", help="Hub id, local checkpoint directory or catalog name; omit to give shapes explicitly.")] = None,
    quant: Annotated[str, typer.Option("--quant", help=_QUANT_HELP)] = "bf16",
    backend: Annotated[str, typer.Option("--backend", help="auto (cuTile on SM89/90/12x, TRT-LLM on SM100/103), cutile or trtllm.")] = "auto",
    act: Annotated[Optional[str], typer.Option("--act", help="Activation precision: bf16 (weight-only) or quant; default: the GPU's natural path.")] = None,
    tokens: Annotated[str, typer.Option("--tokens", help="Comma-separated token counts to run and time.")] = "1,16,128,1024",
    layer: Annotated[Optional[int], typer.Option("--layer", help="MoE layer index (default: the first MoE layer).")] = None,
    weights: Annotated[str, typer.Option("--weights", help="random (seeded, at the model's shapes) or checkpoint (read one layer from MODEL's local files).")] = "random",
    seed: Annotated[int, typer.Option("--seed", help="Seed for random weights and inputs.")] = 0,
    experts: Annotated[Optional[int], typer.Option("--experts", help="Number of routed experts (no MODEL).")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Experts per token (no MODEL).")] = None,
    hidden: Annotated[Optional[int], typer.Option("--hidden", help="Hidden size (no MODEL).")] = None,
    intermediate: Annotated[Optional[int], typer.Option("--intermediate", help="Expert intermediate size (no MODEL).")] = None,
    routing: Annotated[Optional[str], typer.Option("--routing-method", help="FlashInfer routing method, e.g. Renormalize, MiniMax2, DeepSeekV3 (no MODEL).")] = None,
    routing_impl: Annotated[Optional[str], typer.Option("--routing", metavar="kernel|reference", help="Who computes the top-k fed to a precomputed-routing expert kernel: kernel (FlashInfer's trtllm-gen routing kernel, or fused_topk_deepseek) or reference (our router; on TRT-LLM also forces the precomputed variant). Default: kernel where one runs for the method, else reference with the reason.")] = None,
    n_group: Annotated[Optional[int], typer.Option("--n-group", help="DeepSeekV3 expert groups (no MODEL).")] = None,
    topk_group: Annotated[Optional[int], typer.Option("--topk-group", help="DeepSeekV3 groups kept (no MODEL).")] = None,
    scale: Annotated[Optional[float], typer.Option("--routed-scaling-factor", help="Routed scaling factor (no MODEL).")] = None,
    precomputed_routing: Annotated[bool, typer.Option("--precomputed-routing", help="TRT-LLM: use the routed kernel variant even when in-kernel routing works.")] = False,
    repeat_ms: Annotated[float, typer.Option("--repeat-ms", help="Target measurement time per token count, ms.")] = 100.0,
    autotune: Annotated[bool, typer.Option("--autotune", help="Let FlashInfer's autotuner profile tactics on the first call of each token count (slow: each tactic compiles).")] = False,
    tp: Annotated[Optional[int], typer.Option("--tp", "--tensor-parallel-size", min=1, metavar="N", help="Shard the layer over N GPUs of this host with tensor parallelism (every expert's width split, output all-reduced), one process per GPU over NCCL.")] = None,
    dp: Annotated[Optional[int], typer.Option("--dp", "--data-parallel-size", min=1, metavar="N", help="Data-parallel ranks (vLLM --data-parallel-size): with --ep each GPU holds its own share of the tokens and an all-to-all moves them to the experts' owners.")] = None,
    ep: Annotated[bool, typer.Option("--ep", "--enable-expert-parallel", help="Expert parallelism (vLLM --enable-expert-parallel): experts split over tp·dp GPUs as vLLM places them; all-to-all with --dp > 1, all-reduce with --tp.")] = False,
    compare_tp_ep: Annotated[bool, typer.Option("--compare-tp-ep", help="With --tp N or --dp N --ep: also run the other scheme (TP N / EP N all-to-all) on the same tokens, side by side.")] = False,
    peer: Annotated[bool, typer.Option("--peer/--no-peer", help="Also time torch's grouped GEMM (torch._grouped_mm, BF16 weights, CUDA graph) on the same routed inputs: the peer µs and FlashInfer/peer columns.")] = True,
    offline: OfflineOpt = False,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write latency and % of limit vs tokens to this PNG (needs matplotlib).")] = None,
) -> None:
    """Run one MoE layer through FlashInfer on this GPU: check it against float32 torch and time it."""
    from ..layer.runner import RunLayerOptions, parse_tokens
    from ..layer.sharding import plan_layout

    shard = plan_layout(tp, dp, ep)
    if compare_tp_ep and shard is None:
        from ..errors import BadInputError

        raise BadInputError("--compare-tp-ep needs a multi-GPU layout (--tp N, or --dp N --ep)")

    opts = RunLayerOptions(
        model=model, quant=quant, backend=backend, act=act, tokens=parse_tokens(tokens), layer=layer,
        weights=weights, seed=seed, experts=experts, top_k=top_k, hidden=hidden, intermediate=intermediate,
        routing=routing, n_group=n_group, topk_group=topk_group, routed_scaling_factor=scale,
        precomputed_routing=precomputed_routing, routing_impl=routing_impl, repeat_ms=repeat_ms, autotune=autotune,
        peer=peer, plot=plot, offline=True if offline else None,
    )
    _execute(opts, shard, out, compare_tp_ep=compare_tp_ep)


def _execute(opts, shard, out: Output, *, compare_tp_ep: bool) -> None:
    """Run on one GPU, or on N with ``shard`` (layer/distributed.py); print through ``out`` after the
    kernel phase (stdout is ours again by then: moe_inspect/stdio.py); exit 1 on a failed verdict."""
    from ..layer.runner import run_layer as _run
    from ..stdio import library_output_to_stderr

    if shard is not None:  # N GPUs, one process each (layer/distributed.py)
        from ..layer.distributed import is_primary, run_distributed

        with out.status() as update, library_output_to_stderr():  # FlashInfer's C++ logs to stdout
            data = run_distributed(opts, shard, compare=compare_tp_ep, progress=update)
        if not is_primary():
            return
        out.dict(data, human=lambda d, o: render_distributed(d, o.console), markdown=markdown_distributed, id_key="verdict")
    else:
        with out.status() as update, library_output_to_stderr():  # FlashInfer's C++ logs to stdout
            data = _run(opts, progress=update).to_dict()
        out.dict(data, human=lambda d, o: render_human(d, o.console), markdown=markdown, id_key="verdict")
    if not data["passed"]:
        raise typer.Exit(1)


def _agreement(r: dict) -> str:
    a = r.get("agreement_reference")
    return "" if a is None else f" (top-k ids equal our reference router's on {100 * a:.1f}% of tokens)"


def _fmt(v, spec: str = ".1f") -> str:
    """THE formatter (cli/output.fmt_value) with run-layer's "–" placeholder; numbers always with ``spec``."""
    return fmt_value(float(v) if isinstance(v, int) and not isinstance(v, bool) else v, placeholder="–",
                     float_spec=spec)


def _row_cells(r: dict, has_peer: bool) -> tuple[str, ...]:
    a, tm, rl = r["accuracy"], r["timing"], r["roofline"]
    pr = r.get("peer") or {}
    peer_cells = (_fmt(pr.get("median_us")), _fmt(pr.get("flashinfer_over_peer"), ".2f")) if has_peer else ()
    return (str(r["tokens"]), _fmt(r["experts_hit"], ".0f"), f"{a['rel_l2']:.2e}", f"{a['cosine']:.5f}",
            f"{100 * a['within_tol']:.1f}%", _fmt(tm["median_us"]), f"{tm['p10_us']:.1f}–{tm['p90_us']:.1f}",
            _fmt(rl["achieved_tbs"], ".2f"), _fmt(rl["pct_bandwidth"]), _fmt(rl["achieved_tflops"], ".1f"),
            _fmt(rl["pct_compute"]), rl["bound"] or "–", "[green]pass[/]" if a["passed"] else "[red]FAIL[/]",
            *peer_cells)


def _table_or_lines(c, cols: tuple[str, ...], rows: list[tuple[str, ...]], *, key, skip: int) -> None:
    """A Rich table when every cell fits the terminal whole, else one line per row (80 columns, CI logs):
    ``key(cells)`` then "name value" for the columns after the first ``skip``. Nothing is ever cut."""
    from rich.table import Table

    from .output import table_fits

    t = Table(show_header=True, header_style="bold")
    for col in cols:
        t.add_column(col, justify="right")
    for cells in rows:
        t.add_row(*cells)
    if table_fits(c, t):
        c.print(t)
        return
    for cells in rows:
        c.print(key(cells) + " · ".join(f"{name} {v}" for name, v in zip(cols[skip:], cells[skip:])))


def render_human(d: dict, c) -> None:
    """The people's view of one GPU's result: a header, the per-token table (one line per token count
    when the terminal is too narrow for it), peer line, notes, verdict."""
    s, p, g = d["shapes"], d["path"], d["gpu"]
    c.print(f"[bold]{d['model'] or 'custom layer'}[/] layer {d['layer']}: E={s['num_experts']} k={s['top_k']} "
            f"H={s['hidden_size']} I={s['intermediate_size']} routing={s['routing_method']}"
            + (f" groups={s['n_group']}/{s['topk_group']}" if s.get("n_group") else "")
            + (f" scale={s['routed_scaling_factor']}" if s.get("routed_scaling_factor") else "")
            + (f" shared={s['num_shared_experts']}" if s.get("num_shared_experts") else ""))
    c.print(f"{g['name']} (SM{g['arch']}), FlashInfer {d['versions']['flashinfer']}: {p['config_class']} "
            f"({p['weight_format']}×{p['activation_format']}), routing {d['routing_mode']} via {d['routing_source']}"
            + _agreement(d.get("routing") or {}))
    has_peer = any(r.get("peer") for r in d["rows"])
    cols = ("tokens", "experts hit", "rel L2", "cosine", "within tol", "µs (median)", "p10–p90", "TB/s",
            "% BW", "TFLOP/s", "% compute", "bound", "ok") + (("peer µs", "FI/peer") if has_peer else ())
    rows = [_row_cells(r, has_peer) for r in d["rows"]]
    _table_or_lines(c, cols, rows, key=lambda cells: f"T={cells[0]}: ", skip=1)
    peers = [r["peer"] for r in d["rows"] if r.get("peer")]
    if peers:
        errs = {p["error"] for p in peers if p.get("error")}
        c.print(f"[dim]peer: {peers[0]['name']}, {peers[0].get('weights') or ''}; same token sets and routed ids; "
                "FI/peer > 1 means FlashInfer is slower[/]" + (f" [yellow]peer not run: {'; '.join(errs)}[/]" if errs else ""))
    for n in d["notes"]:
        c.print(f"[dim]note: {n}[/]")
    c.print("[green]verdict: pass[/]" if d["passed"] else "[red]verdict: FAIL (accuracy outside the format's threshold)[/]")


def render_distributed(d: dict, console) -> None:
    """N GPUs (layer/distributed.py): per-phase table (max over ranks), TP and EP side by side for each token count."""

    s = d["shapes"]
    console.print(f"[bold]{d['model'] or 'custom layer'}[/] layer {d['layer']}: E={s['num_experts']} k={s['top_k']} "
                  f"H={s['hidden_size']} I={s['intermediate_size']} {d['quant']} on {d['gpu']['count']}× "
                  f"{d['gpu']['name']} (SM{d['gpu']['arch']}), {d['path']['config_class']}, NCCL "
                  f"{d['versions'].get('nccl')}")
    for pl in d["plans"]:
        console.print(f"[dim]{pl['label']}: {pl['layout_text']}[/]")
    cols = ("tokens", "scheme", "route µs", "dispatch µs", "experts µs", "combine µs", "total µs",
            "moved MB", "link GB/s", "rel L2", "ok")
    rows = []
    for r in d["rows"]:
        for sc in r["schemes"]:
            ph, a = sc["phases_us"], sc["accuracy"] or {}
            moved = (sc["bytes"]["dispatch"] + sc["bytes"]["combine"]) / 1e6
            links = [v for v in sc["link_gbs"].values() if v]
            rows.append((str(r["tokens"]), sc["label"], f"{ph['route']:.1f}", f"{ph['dispatch']:.1f}",
                         f"{ph['experts']:.1f}", f"{ph['combine']:.1f}", f"{ph['total']:.1f}", f"{moved:.2f}",
                         "–" if not links else "/".join(f"{v:.1f}" for v in links),
                         f"{a.get('rel_l2', float('nan')):.2e}",
                         "[green]pass[/]" if a.get("passed") else "[red]FAIL[/]"))
    _table_or_lines(console, cols, rows, key=lambda cells: f"T={cells[0]} {cells[1]}: ", skip=2)
    for n in d["notes"]:
        console.print(f"[dim]note: {n}[/]")
    console.print("[green]verdict: pass[/]" if d["passed"] else "[red]verdict: FAIL (accuracy outside the format's threshold)[/]")


# ----------------------------------------------------------------------------- --format markdown
def _verdict_md(d: dict) -> str:
    return "**verdict: pass**" if d["passed"] else "**verdict: FAIL** (accuracy outside the format's threshold)"


def _notes_md(d: dict) -> list[str]:
    return [f"- note: {md_cell(n)}" for n in d.get("notes") or []]


def markdown(d: dict) -> str:
    """One GPU's result for a PR or an issue: what ran, then tokens, µs, peer µs, FI/peer, rel-L2, verdict."""
    s, p, g = d["shapes"], d["path"], d["gpu"]
    head = (f"`{d['model'] or 'custom layer'}` layer {d['layer']}: E={s['num_experts']} k={s['top_k']} "
            f"H={s['hidden_size']} I={s['intermediate_size']} routing={s['routing_method']}, {d['quant']} on "
            f"{g['name']} (SM{g['arch']}), FlashInfer {d['versions']['flashinfer']}: {p['config_class']} "
            f"({p['weight_format']}×{p['activation_format']}), routing {d['routing_mode']} via {d['routing_source']}")
    lines = [md_cell(head), "",
             "| tokens | µs (median) | peer µs | FI/peer | rel L2 | verdict |", "|---:|---:|---:|---:|---:|---|"]
    for r in d["rows"]:
        tm, pr, a = r.get("timing") or {}, r.get("peer") or {}, r["accuracy"]
        rel = a.get("rel_l2")
        lines.append(f"| {r['tokens']} | {_fmt(tm.get('median_us'))} | {_fmt(pr.get('median_us'))} | "
                     f"{_fmt(pr.get('flashinfer_over_peer'), '.2f')} | {'–' if rel is None else f'{rel:.2e}'} | "
                     f"{'pass' if a.get('passed') else 'FAIL'} |")
    peers = [r["peer"] for r in d["rows"] if r.get("peer")]
    errs = sorted({p["error"] for p in peers if p.get("error")})
    foot = ([f"peer: {md_cell(peers[0]['name'])}; FI/peer > 1 means FlashInfer is slower"
             + (f"; peer not run: {md_cell('; '.join(errs))}" if errs else "")] if peers else [])
    return "\n".join(lines + [""] + foot + _notes_md(d) + ([""] if foot or d.get("notes") else []) + [_verdict_md(d)]) + "\n"


def markdown_distributed(d: dict) -> str:
    """N GPUs (layer/distributed.py): per token count and scheme, the phases (max over ranks), rel-L2, verdict."""
    s, g = d["shapes"], d["gpu"]
    head = (f"`{d['model'] or 'custom layer'}` layer {d['layer']}: E={s['num_experts']} k={s['top_k']} "
            f"H={s['hidden_size']} I={s['intermediate_size']} {d['quant']} on {g['count']}× {g['name']} "
            f"(SM{g['arch']}), {d['path']['config_class']}, NCCL {d['versions'].get('nccl')}")
    lines = [md_cell(head), ""] + [f"- {md_cell(pl['label'])}: {md_cell(pl['layout_text'])}" for pl in d["plans"]]
    lines += ["", "| tokens | scheme | route µs | dispatch µs | experts µs | combine µs | total µs | rel L2 | verdict |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in d["rows"]:
        for sc in r["schemes"]:
            ph, a = sc["phases_us"], sc["accuracy"] or {}
            rel = a.get("rel_l2")
            lines.append(f"| {r['tokens']} | {md_cell(sc['label'])} | "
                         + " | ".join(_fmt(ph.get(k)) for k in ("route", "dispatch", "experts", "combine", "total"))
                         + f" | {'–' if rel is None else f'{rel:.2e}'} | {'pass' if a.get('passed') else 'FAIL'} |")
    notes = _notes_md(d)
    return "\n".join(lines + [""] + notes + ([""] if notes else []) + [_verdict_md(d)]) + "\n"
