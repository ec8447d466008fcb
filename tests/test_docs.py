"""Docs stay true: the CLI reference is generated from --help and must be current."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    r = subprocess.run([sys.executable, "scripts/gen_cli_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + "\n(regenerate with: python scripts/gen_cli_docs.py)"


def test_readme_starts_with_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```")
    # the first two fenced blocks are the set-up commands: run the main job, run the tests
    first, second = blocks[1], blocks[3]
    assert "moe-inspect detect MiniMaxAI/MiniMax-M2.5" in first
    assert "pytest" in second and "torch==2.13.0" in second
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = [l for l in second.splitlines() if "pytest" in l][0].strip()
    assert test_cmd in ci, "'.ci/run' must run the README's test command verbatim"
