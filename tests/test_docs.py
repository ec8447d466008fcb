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


def test_upstream_facts_release_table_matches_the_code():
    """docs/upstream-facts.md says which vLLM release carries which table; enums.VLLM_RELEASES is
    what --vllm-version uses. They must agree release by release."""
    import re

    from packaging.version import Version

    from moe_inspect import enums

    text = (ROOT / "docs" / "upstream-facts.md").read_text()
    section = text.split("## vLLM releases: which table each one carries", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[1].startswith("`"):
            continue
        key = cells[1].split("`")[1]
        bounds = re.findall(r"\d+\.\d+\.\d+", cells[0].replace("*", ""))
        lo, hi = Version(bounds[0]), Version(bounds[-1])
        for r in enums.VLLM_RELEASES:
            if lo <= Version(r.version) <= hi:
                documented[r.version] = key
    assert documented == {r.version: r.key for r in enums.VLLM_RELEASES}
