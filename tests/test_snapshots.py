"""Snapshots of what a person reads: every command's human (Rich) output and --help, at 80 and
120 columns, offline (built-in catalog, a generated local model), deterministic.

A change to a column, a label or a value's format shows up here as a unified diff. When the change
is intended, regenerate and read the diff in review:

    UPDATE_SNAPSHOTS=1 python -m pytest -q tests/test_snapshots.py
    git diff tests/snapshots/

Each file in tests/snapshots/ holds the command line, the exit code, stdout and stderr, with the
test's temporary directory written as <tmp>.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.hub_server import isolate_hf
from tests.modelgen import make_model_dir, moe_config, moe_tensors

SNAPSHOTS = Path(__file__).parent / "snapshots"
WIDTHS = (80, 120)
UPDATE = os.environ.get("UPDATE_SNAPSHOTS", "").strip() not in ("", "0")

_HAS_VERIFY_DEPS = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


# name -> (argv, widths, requirement); "{model}" is a generated tiny DeepSeek-V3-style checkpoint
CASES: dict[str, tuple[list[str], tuple[int, ...], str | None]] = {
    # --help of the app and of every command
    "help": (["--help"], WIDTHS, None),
    "detect-help": (["detect", "--help"], WIDTHS, None),
    "check-help": (["check", "--help"], WIDTHS, None),
    "verify-help": (["verify", "--help"], WIDTHS, None),
    "run-layer-help": (["run-layer", "--help"], WIDTHS, None),
    "catalog-help": (["catalog", "--help"], WIDTHS, None),
    # detect: catalog models of different shapes, a local checkpoint, Markdown, an error
    "detect-minimax-m2.5": (["detect", "MiniMaxAI/MiniMax-M2.5", "--offline"], WIDTHS, None),
    "detect-deepseek-v3": (["detect", "deepseek-ai/DeepSeek-V3", "--offline"], WIDTHS, None),
    "detect-gpt-oss-20b": (["detect", "openai/gpt-oss-20b", "--offline"], WIDTHS, None),
    "detect-deepseek-v4-flash": (["detect", "deepseek-ai/DeepSeek-V4-Flash", "--offline"], WIDTHS, None),
    "detect-local": (["detect", "{model}"], WIDTHS, None),
    "detect-old-vllm": (["detect", "MiniMaxAI/MiniMax-M2.5", "--offline", "--vllm-version", "0.19.1",
                         "--flashinfer-version", "0.6.7"], WIDTHS, None),
    "detect-markdown": (["detect", "deepseek-ai/DeepSeek-V3", "--offline", "--format", "markdown"], (80,), None),
    "detect-unknown": (["detect", "no-such-org/no-such-model", "--offline"], (80,), None),
    # check
    "check-minimax-m2.5": (["check", "MiniMaxAI/MiniMax-M2.5", "--gpu", "B200,H100", "--offline"], WIDTHS, None),
    "check-deepseek-v3-all": (["check", "deepseek-ai/DeepSeek-V3", "--gpu", "all", "--offline"], WIDTHS, None),
    "check-local-require": (["check", "{model}", "--gpu", "H200", "--require", "fused-routing"], WIDTHS, None),
    # verify (torch + transformers; CI has both)
    "verify-deepseek-v3": (["verify", "deepseek-ai/DeepSeek-V3", "--offline"], WIDTHS, "verify"),
    "verify-minimax-m2-forced": (["verify", "MiniMaxAI/MiniMax-M2", "--offline", "--method", "Default"],
                                 WIDTHS, "verify"),
    "check-markdown": (["check", "MiniMaxAI/MiniMax-M2.5", "--gpu", "B200,H100", "--offline", "--format", "markdown"],
                       (80,), None),
    # catalog
    "catalog": (["catalog"], WIDTHS, None),
    "catalog-markdown": (["catalog", "--format", "markdown"], (80,), None),
    "catalog-check-markdown": (["catalog", "--check", "--gpu", "B200,H100", "--format", "markdown"], (80,), None),
    "catalog-check": (["catalog", "--check", "--gpu", "B200,H100,RTX PRO 6000"], WIDTHS, None),
    # run-layer without a GPU: what it says before (or instead of) running
    "run-layer-catalog-cpu": (["run-layer", "MiniMaxAI/MiniMax-M2.5", "--offline"], WIDTHS, "no-cuda"),
    "run-layer-shapes-cpu": (["run-layer", "--experts", "64", "--top-k", "8", "--hidden", "2048",
                              "--intermediate", "768", "--routing-method", "Renormalize"], WIDTHS, "no-cuda"),
    # refused before any GPU is looked for (same text with or without one)
    "run-layer-bad-top-k": (["run-layer", "--experts", "64", "--top-k", "80", "--hidden", "2048",
                             "--intermediate", "768", "--routing-method", "Renormalize"], (80,), None),
    "run-layer-bad-layer": (["run-layer", "MiniMaxAI/MiniMax-M2.5", "--offline", "--layer", "99"], (80,), None),
}

# Results saved from real GPUs (`run-layer --json` on H200s, tests/data/run_layer/), rendered by run-layer's
# human and Markdown renderers: dropping a column (peer µs, FI/peer, a phase) fails here without a GPU.
# name -> (json file, renderer, widths); renderer: "human", "markdown", "human-mg", "markdown-mg"
RESULTS = Path(__file__).parent / "data" / "run_layer"
RESULT_CASES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "result-h200-minimax-bf16": ("h200-minimax-bf16.json", "human", WIDTHS),
    "result-h200-minimax-bf16-markdown": ("h200-minimax-bf16.json", "markdown", WIDTHS),
    "result-h200-dsv3-nvfp4": ("h200-dsv3-nvfp4.json", "human", WIDTHS),
    "result-h200-dsv3-nvfp4-markdown": ("h200-dsv3-nvfp4.json", "markdown", WIDTHS),
    "result-2xh200-minimax-bf16": ("2xh200-minimax-bf16.json", "human-mg", WIDTHS),
    "result-2xh200-minimax-bf16-markdown": ("2xh200-minimax-bf16.json", "markdown-mg", WIDTHS),
}

PARAMS = [pytest.param(name, width, id=f"{name}-{width}") for name, (_, widths, _) in CASES.items() for width in widths]


# The local model lives at a FIXED path: the human view prints it, and Rich wraps lines by the
# real length, so a per-test temporary path would wrap differently on every run.
MODEL_ROOT = Path("/tmp/moe-inspect-snapshots")


def _local_model() -> Path:
    d = MODEL_ROOT / "tiny-dsv3"
    try:  # rewritten every time: a cheap sparse file, never stale when modelgen changes
        make_model_dir(d, moe_config(), moe_tensors())
    except OSError as e:
        pytest.skip(f"cannot write the snapshot model at {d}: {e}")
    return d


def _normalize(text: str, tmp: Path) -> str:
    text = text.replace(str(tmp), "<tmp>").replace(str(MODEL_ROOT), "<models>")
    home = os.path.expanduser("~")
    if home not in ("", "/"):
        text = text.replace(home, "~")
    # Rich pads table rows to the width; trailing blanks carry no information
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n") + "\n"


def render(name: str, width: int, tmp: Path, monkeypatch) -> str:
    argv, _, need = CASES[name]
    if need == "verify" and not _HAS_VERIFY_DEPS:
        pytest.skip("verify needs torch and transformers")
    if need == "no-cuda" and _cuda():
        pytest.skip("snapshots of run-layer are taken without a GPU")
    import typer.rich_utils

    from moe_inspect.cli.app import app

    isolate_hf(monkeypatch, tmp / "hf_home", offline=True)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", None)  # help follows COLUMNS, not TERMINAL_WIDTH
    monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", False)
    if any("{model}" in a for a in argv):
        model = _local_model()
        argv = [a.replace("{model}", str(model)) for a in argv]
    env = {"COLUMNS": str(width), "LINES": "50", "NO_COLOR": "1", "TERM": "dumb", "TERMINAL_WIDTH": None,
           "MOE_INSPECT_DEBUG": None, "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    r = CliRunner().invoke(app, argv, env=env, prog_name="moe-inspect")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    shown = " ".join(f"'{a}'" if " " in a else a for a in argv)
    return _normalize(
        f"$ moe-inspect {shown}    # {width} columns\nexit {r.exit_code}\n"
        f"--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}",
        tmp,
    )


def render_result(name: str, width: int) -> str:
    import io
    import json

    from rich.console import Console

    from moe_inspect.cli import run_layer

    file, how, _ = RESULT_CASES[name]
    d = json.loads((RESULTS / file).read_text())
    if how.startswith("markdown"):
        text = (run_layer.markdown_distributed if how.endswith("-mg") else run_layer.markdown)(d)
    else:
        buf = io.StringIO()
        c = Console(file=buf, width=width, no_color=True, force_terminal=False, highlight=False, soft_wrap=False)
        if how.endswith("-mg"):
            run_layer.render_distributed(d, c)
        else:
            run_layer.render_human(d, c)
        text = buf.getvalue()
    return _normalize(f"# tests/data/run_layer/{file} through run-layer's {how} renderer    # {width} columns\n"
                      f"{text}", Path("/nonexistent"))


def _compare(name: str, width: int, got: str) -> None:
    path = SNAPSHOTS / f"{name}-{width}.txt"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        if not path.exists() or path.read_text() != got:
            path.write_text(got)
        return
    if not path.exists():
        pytest.fail(f"no snapshot {path.name}: run UPDATE_SNAPSHOTS=1 python -m pytest -q tests/test_snapshots.py")
    want = path.read_text()
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                            f"tests/snapshots/{path.name}", "now"))
        pytest.fail(f"human output of `{name}` at {width} columns changed:\n{diff}\n"
                    "(intended? UPDATE_SNAPSHOTS=1 python -m pytest -q tests/test_snapshots.py, then read git diff)",
                    pytrace=False)


@pytest.mark.parametrize("name, width", PARAMS)
def test_human_output_matches_snapshot(name, width, tmp_path, monkeypatch):
    _compare(name, width, render(name, width, tmp_path, monkeypatch))


@pytest.mark.parametrize("name, width", [pytest.param(n, w, id=f"{n}-{w}") for n, (_, _, ws) in RESULT_CASES.items()
                                         for w in ws])
def test_gpu_result_rendering_matches_snapshot(name, width):
    _compare(name, width, render_result(name, width))


def test_every_command_has_snapshots():
    from typer.main import get_command

    from moe_inspect.cli.app import app

    commands = set(get_command(app).list_commands(None))  # type: ignore[arg-type]
    covered = {argv[0] for argv, _, _ in CASES.values() if not argv[0].startswith("-")}
    helped = {argv[0] for argv, _, _ in CASES.values() if argv[-1] == "--help" and len(argv) == 2}
    assert commands <= covered, f"commands without a snapshot: {sorted(commands - covered)}"
    assert commands <= helped, f"commands without a --help snapshot: {sorted(commands - helped)}"


def test_no_snapshot_file_is_orphaned():
    expected = {f"{name}-{w}.txt" for name, (_, widths, _) in CASES.items() for w in widths}
    expected |= {f"{name}-{w}.txt" for name, (_, _, widths) in RESULT_CASES.items() for w in widths}
    orphans = sorted(p.name for p in SNAPSHOTS.glob("*.txt") if p.name not in expected)
    assert not orphans, f"snapshots no test renders (delete them): {orphans}"


def test_snapshots_hold_no_machine_specific_text():
    for p in SNAPSHOTS.glob("*.txt"):
        text = p.read_text()
        assert not re.search(r"/tmp/|pytest-of-|/root/|/home/", text), f"{p.name} holds a local path"
        assert "Traceback" not in text, f"{p.name} holds a traceback"
