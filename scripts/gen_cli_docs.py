"""Generate docs/cli.md from the CLI's own --help output.

    python scripts/gen_cli_docs.py          # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is stale (CI runs this via tests)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"

HEADER = """# CLI reference

Generated from `moe-inspect --help` by `scripts/gen_cli_docs.py`; CI fails when this page is
stale. Regenerate with `python scripts/gen_cli_docs.py`.

Exit codes for every command: `0` fine, `1` findings (a failed check, an accuracy or routing
mismatch), `2` bad input or environment (unreadable model, unknown GPU name, no GPU, offline with
nothing cached). Errors are one line on stderr; set `MOE_INSPECT_DEBUG=1` for a traceback.
"""


def help_text(args: list[str]) -> str:
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app

    env = {"TERMINAL_WIDTH": "100", "COLUMNS": "100", "NO_COLOR": "1", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    r = CliRunner().invoke(app, [*args, "--help"], env=env, prog_name="moe-inspect")
    if r.exit_code != 0:
        raise SystemExit(f"--help failed for {args}: {r.output}")
    return "\n".join(line.rstrip() for line in r.output.strip("\n").splitlines())


def render() -> str:
    import typer.main

    from moe_inspect.cli.app import app

    group = typer.main.get_command(app)
    parts = [HEADER, "## moe-inspect\n", "```text", help_text([]), "```\n"]
    for name in group.list_commands(None):  # type: ignore[arg-type]
        parts += [f"## moe-inspect {name}\n", "```text", help_text([name]), "```\n"]
    return "\n".join(parts)


def main() -> int:
    os.environ.setdefault("TERMINAL_WIDTH", "100")
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
