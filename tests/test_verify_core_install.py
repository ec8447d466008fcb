"""`verify` in a core install (no torch / transformers): one line naming the missing package and the
oracle extra, exit 2 (issue 11 item 3 — the same audit as run-layer's; the wording is
moe_inspect/extras.py's, shared by every command). `--kernel` used to die with
"internal error: ModuleNotFoundError: No module named 'torch'"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NO_TORCH = "error: verify needs torch, which is not installed: pip install 'moe-inspect[oracle]'"
NO_TRANSFORMERS = "error: verify needs transformers, which is not installed: pip install 'moe-inspect[oracle]'"


def _verify(tmp_path, *args, hide=("torch", "transformers")):
    code = ("import sys\n"
            f"for m in {list(hide)!r}: sys.modules[m] = None\n"
            "from moe_inspect.cli.app import main\n"
            f"sys.argv = ['moe-inspect', 'verify', *{list(args)!r}]\n"
            "main()\n")
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                       cwd=tmp_path)
    return r.returncode, [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]


@pytest.mark.parametrize("extra_args", [[], ["--kernel"], ["--kernel", "--json"]])
def test_core_install_names_the_oracle_extra(tmp_path, extra_args):
    rc, lines = _verify(tmp_path, "MiniMaxAI/MiniMax-M2.5", "--offline", *extra_args)
    assert rc == 2
    assert lines == [NO_TORCH]


def test_transformers_missing_alone_is_said_too(tmp_path):
    pytest.importorskip("torch")
    rc, lines = _verify(tmp_path, "MiniMaxAI/MiniMax-M2.5", "--offline", hide=("transformers",))
    assert rc == 2
    assert lines == [NO_TRANSFORMERS]


# the same through typer's CliRunner, in this process: the import fails because sys.modules says so
@pytest.mark.parametrize(("hide", "expected"), [
    (("torch",), NO_TORCH),
    (("torch", "transformers"), NO_TORCH),  # torch is asked for first
    (("transformers",), NO_TRANSFORMERS),
])
@pytest.mark.parametrize("extra_args", [[], ["--json"]])
def test_in_process_missing_package_is_one_line_exit_2(tmp_path, monkeypatch, hide, expected, extra_args):
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for m in hide:
        monkeypatch.setitem(sys.modules, m, None)
    r = CliRunner().invoke(app, ["verify", "MiniMaxAI/MiniMax-M2.5", "--offline", *extra_args])
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.strip() == expected


def test_in_process_kernel_without_torch_is_one_line_exit_2(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "torch", None)
    r = CliRunner().invoke(app, ["verify", "MiniMaxAI/MiniMax-M2.5", "--offline", "--kernel"])
    assert (r.exit_code, r.stderr.strip()) == (2, NO_TORCH)
