#!/usr/bin/env python3
"""Regenerate the generated blocks of docs/check.md: the catalog support matrix and the shape-gate table from `moe_inspect.check.catalog_matrix` (rendered by moe_inspect.cli.catalog).

    python scripts/gen_support_matrix.py          # rewrite the generated block
    python scripts/gen_support_matrix.py --check  # exit 1 when docs/check.md is stale

Only the text between the BEGIN/END markers is generated; everything else is hand-written.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "check.md"
BEGIN = "<!-- BEGIN GENERATED: support-matrix (scripts/gen_support_matrix.py) -->"
END = "<!-- END GENERATED: support-matrix -->"
TARGETS = ["H100", "B200", "B300", "RTX PRO 6000", "DGX Spark"]  # one per architecture


def generated_block() -> str:
    from moe_inspect import backends, gpus
    from moe_inspect.check import catalog_matrix
    from moe_inspect.cli.catalog import catalog_markdown

    rows = catalog_matrix(gpus.parse_targets(TARGETS))
    head = (f"Backend table: vLLM v{backends.VLLM_VERSION}, FlashInfer {backends.FLASHINFER_VERSION}; targets "
            + ", ".join(f"{t} (sm{gpus.parse_target(t)[0].arch})" for t in TARGETS)
            + "; tensor parallel, checkpoint quantization.\n\n"
            "✓ fused = a FlashInfer monolithic kernel routes in-kernel · ◐ FI modular = FlashInfer runs the experts, "
            "vLLM routes in Python · ✗ non-FI = only non-FlashInfer backends · ✗ none = nothing in the table\n\n")
    blockers = []
    for r in rows:
        b = next((t["fused_routing_blocker"] for t in r["targets"] if t["arch"] == "sm100"), None)
        if b:
            blockers.append(f"- {r['id']} (B200): {b}")
    tail = ("\nWhy no fused routing on B200:\n\n" + "\n".join(blockers) + "\n") if blockers else ""
    return f"{BEGIN}\n{head}{catalog_markdown(rows)}{tail}{END}"


GATES_BEGIN = "<!-- BEGIN GENERATED: shape-gates (scripts/gen_support_matrix.py) -->"
GATES_END = "<!-- END GENERATED: shape-gates -->"


def gates_block() -> str:
    """Every per-rank shape gate of moe_inspect.deploy.shapes (SHAPE_GATES), with its vLLM 0.33.0 source."""
    from moe_inspect.deploy.shapes import gate_table

    def cell(x: str) -> str:
        return x.replace("|", "\\|").replace("\n", " ")

    out = ["| gate | scheme | when | must hold | outcome | vLLM's message | source |", "|---|---|---|---|---|---|---|"]
    for g in gate_table():
        out.append("| " + " | ".join(cell(str(g[k])) for k in ("name", "scheme", "applies", "rule", "outcome",
                                                                 "message", "source")) + " |")
    return f"{GATES_BEGIN}\n" + "\n".join(out) + f"\n{GATES_END}"


def _replace(text: str, begin: str, end: str, block: str) -> str:
    if begin not in text or end not in text:
        raise SystemExit(f"{DOC}: generated-block markers {begin!r} not found")
    pre, rest = text.split(begin, 1)
    _, post = rest.split(end, 1)
    return pre + block + post


def render(text: str) -> str:
    text = _replace(text, BEGIN, END, generated_block())
    return _replace(text, GATES_BEGIN, GATES_END, gates_block())


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            sys.stderr.write("docs/check.md support matrix is stale: run python scripts/gen_support_matrix.py\n")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
