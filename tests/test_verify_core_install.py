"""`verify` in a core install (no torch / transformers): one line naming the oracle extra, exit 2
(issue 11 item 3 — the same audit as run-layer's). `--kernel` used to die with
"internal error: ModuleNotFoundError: No module named 'torch'"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

EXPECTED = "error: verify needs the oracle extra: pip install 'moe-inspect[oracle]'"


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
    assert lines == [EXPECTED]


def test_transformers_missing_alone_is_said_too(tmp_path):
    pytest.importorskip("torch")
    rc, lines = _verify(tmp_path, "MiniMaxAI/MiniMax-M2.5", "--offline", hide=("transformers",))
    assert rc == 2
    assert lines == [EXPECTED]
