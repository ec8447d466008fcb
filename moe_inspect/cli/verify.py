"""`moe-inspect verify`: our reference router vs the model's own transformers router (or the kernel)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import FlashinferVersionOpt, ModelArg, OfflineOpt, RevisionOpt, VllmVersionOpt, output_options
from .output import Output, handle_errors, md_cell

app = typer.Typer()

_VERDICT_STYLE = {"match": "bold green", "mismatch": "bold red", "cannot_verify": "bold yellow"}


def _weights(ws) -> str:
    return "[" + ", ".join(f"{w:.4g}" for w in ws) + "]"


def render(d: dict, con) -> None:
    """People's view of a VerifyResult dict."""
    from rich.markup import escape
    from rich.table import Table

    verdict = d["verdict"]
    style = _VERDICT_STYLE.get(verdict, "bold")
    con.print(f"[{style}]{verdict.upper().replace('_', ' ')}[/] {escape(d['model'])}")
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="dim")
    t.add_column(overflow="fold")
    method = d.get("method") or "—"
    if d.get("method_source") == "forced":
        method += " (forced by --method)"
    t.add_row("method", escape(method))
    if d.get("kernel"):
        t.add_row("kernel", f"{d['kernel']} (FlashInfer {d.get('oracle_version') or '?'})")
    else:
        t.add_row("transformers class", escape(d.get("transformers_class") or "—"))
    t.add_row("inputs", f"{d['tokens']} tokens, seed {d['seed']}, experts {d.get('num_experts')}, top-k {d.get('top_k')}")
    tol = d.get("tolerance") or {}
    t.add_row("tolerance", f"atol {tol.get('atol')}, rtol {tol.get('rtol')} ({tol.get('dtype')})")
    if d.get("max_weight_error") is not None:
        t.add_row("max weight error", f"{d['max_weight_error']:.3g}")
    if d.get("id_mismatches") or d.get("weight_mismatches"):
        t.add_row("differing tokens", f"{d['id_mismatches']} by experts, {d['weight_mismatches']} by weights")
    con.print(t)
    fd = d.get("first_difference")
    if fd:
        con.print(f"first differing token {fd['token']}: {escape(fd['reason'])}")
        if fd.get("reference_ids") is not None:
            con.print(f"  reference  ids {fd['reference_ids']}  weights {_weights(fd['reference_weights'])}")
        else:
            con.print("  reference  (no reference router for this method)")
        label = "kernel     " if d.get("kernel") else "transformers"
        con.print(f"  {label} ids {fd['oracle_ids']}  weights {_weights(fd['oracle_weights'])}")
    if d.get("agreement"):
        _render_kernel(d, con)
    con.print(escape(d.get("explanation") or ""))
    if d.get("reflects_note"):
        con.print(f"[yellow]note:[/] {escape(d['reflects_note'])}")
    for n in d.get("notes") or []:
        con.print(f"[dim]note: {escape(n)}[/]")


def _render_kernel(d: dict, con) -> None:
    """verify --kernel: the agreement table, each kernel's status, the disagreements and their cost."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"agreement on {d['tokens']} tokens (logits N(0, {d.get('logit_scale') or 1:g}²))",
              title_justify="left")
    for c in ("router", "vs", "same experts", "max weight error"):
        t.add_column(c, overflow="fold")
    for r in d["agreement"]:
        err = "—" if r["max_weight_error"] is None else f"{r['max_weight_error']:.2g}"
        t.add_row(escape(r["a"]), escape(r["b"]), f"{r['same_experts']}/{r['tokens']} ({100 * r['fraction']:.1f} %)", err)
    con.print(t)
    for name, k in (d.get("kernels") or {}).items():
        if not k.get("ran"):
            con.print(f"[yellow]not run:[/] {escape(name)}: {escape(str(k.get('reason')))}")
        elif k.get("build"):
            b = k["build"]
            con.print(f"[dim]{escape(name)}: {escape(str(b.get('how')))}; compiled for {b.get('compiled_for') or 'as shipped'}"
                      f"{'; ' + escape(b['note']) if b.get('note') else ''}[/]")
    for name, rows in (d.get("disagreements") or {}).items():
        for r in rows[:5]:
            gap = "—" if r["score_gap"] is None else f"{r['score_gap']:.3g}"
            con.print(f"  {escape(name)} token {r['token']}: kernel only {r['kernel_only']}, reference only "
                      f"{r['reference_only']}, score gap {gap}")
        c = (d.get("consequence") or {}).get(name) or {}
        if rows:
            con.print(f"  {escape(name)}: {c.get('tokens_affected')} of {d['tokens']} tokens "
                      f"({100 * (c.get('fraction_affected') or 0):.2f} %) route differently; layer-output rel-L2 "
                      f"{c.get('all_tokens', 0):.3g} over all tokens, {c.get('divergent_tokens') or 0:.3g} over those "
                      f"tokens ({escape(str(c.get('experts')))})")


EPILOG = (
    "Exit codes: 0 match, 1 mismatch (a finding), 2 cannot verify (no transformers class, "
    "missing torch/transformers, no GPU for --kernel).\n\n"
    "Examples:\n\n"
    "  moe-inspect verify deepseek-ai/DeepSeek-V3\n\n"
    "  moe-inspect verify MiniMaxAI/MiniMax-M2.5 --tokens 256 --seed 1 --json\n\n"
    "  moe-inspect verify MiniMaxAI/MiniMax-M2 --method Default   # what a wrong label would do\n\n"
    "  moe-inspect verify deepseek-ai/DeepSeek-V3 --kernel       # FlashInfer's routing kernels on this GPU\n\n"
    "  moe-inspect verify MiniMaxAI/MiniMax-M2.5 --kernel --logit-scale 3 --tokens 1024\n\n"
    "  moe-inspect verify deepseek-ai/DeepSeek-V3 --kernel --trtllm-headers ./trtllm-gen-headers   # SM90 build"
)
TokensOpt = Annotated[int, typer.Option("--tokens", min=1, help="Random tokens to route.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random router weights, bias and inputs.")]
MethodOpt = Annotated[Optional[str], typer.Option(
    "--method", help="Compare against this RoutingMethodType instead of the one vLLM resolves.")]
KernelOpt = Annotated[bool, typer.Option(
    "--kernel", help="Three-way: the model's transformers router, our references and every FlashInfer routing "
                     "kernel implementing the method (trtllm-gen; fused_topk_deepseek for DeepSeekV3) on this GPU.")]
LogitScaleOpt = Annotated[float, typer.Option(
    "--logit-scale", help="--kernel: router logits ~ N(0, scale^2) (1 = N(0,1); 3 = a wider, stated 'realistic' "
                          "spread).")]
HeadersOpt = Annotated[Optional[str], typer.Option(
    "--trtllm-headers", metavar="DIR", help="--kernel on SM90: include root holding "
    "flashinfer/trtllm/batched_gemm/trtllmGen_bmm_export/ (else FlashInfer's artifact cache, "
    "$MOE_INSPECT_TRTLLM_HEADERS, $TRTLLM_GEN_EXPORT_HEADERS, flashinfer-cubin).")]


@app.command("verify", epilog=EPILOG)
@handle_errors
@output_options
def verify(
    model: ModelArg,
    out: Output,
    tokens: TokensOpt = 64,
    seed: SeedOpt = 0,
    method: MethodOpt = None,
    kernel: KernelOpt = False,
    logit_scale: LogitScaleOpt = 1.0,
    trtllm_headers: HeadersOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    vllm_version: VllmVersionOpt = None,
    flashinfer_version: FlashinferVersionOpt = None,
) -> None:
    """Does our reference router compute what the model's own code computes?

    Builds the architecture's own router from transformers with the model's real routing
    keys (experts, top-k, groups, scaling) and small seeded random weights, routes the same
    tokens through it and through the reference for the resolved RoutingMethodType, and
    compares expert ids (exactly) and weights (fp32, atol 1e-5 / rtol 1e-4).
    """
    from ..stdio import library_output_to_stderr
    from ..verify import verify_model

    # --kernel: FlashInfer's C++ logs to stdout (spdlog); it goes to stderr so stdout holds only our output
    with out.status() as update, library_output_to_stderr(kernel):
        result = verify_model(model, tokens=tokens, seed=seed, method=method, revision=revision,
                              offline=True if offline else None, vllm_version=vllm_version,
                              flashinfer_version=flashinfer_version, kernel=kernel, logit_scale=logit_scale,
                              trtllm_headers=trtllm_headers, progress=update)
    out.dict(result.to_dict(), human=lambda d, o: render(d, o.console), markdown=markdown, id_key="verdict")
    raise typer.Exit(result.exit_code)


def markdown(d: dict) -> str:
    """A verdict for a PR or an issue: verdict, method, explanation, the --kernel agreement table."""
    lines = [f"**{d['verdict'].upper().replace('_', ' ')}** `{d['model']}`", "",
             f"- method: {md_cell(d.get('method') or '—')}",
             f"- inputs: {d['tokens']} tokens, seed {d['seed']}, experts {d.get('num_experts')}, "
             f"top-k {d.get('top_k')}", f"- {md_cell(d.get('explanation') or '')}"]
    if d.get("agreement"):
        lines += ["", "| router | vs | same experts | max weight error |", "|---|---|---|---|"]
        for r in d["agreement"]:
            err = "—" if r["max_weight_error"] is None else f"{r['max_weight_error']:.2g}"
            lines.append(f"| {r['a']} | {r['b']} | {r['same_experts']}/{r['tokens']} | {err} |")
    lines += [f"- note: {md_cell(n)}" for n in d.get("notes") or []]
    return "\n".join(lines) + "\n"
