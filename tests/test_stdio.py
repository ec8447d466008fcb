"""--json stays valid JSON when a GPU library writes to stdout during the kernel phase.

FlashInfer 0.7.2.post1's C++ logs with spdlog to stdout (data/include/flashinfer/logging.h:24): on SM90
run-layer's first TRT-LLM routing launch printed ``[info] TRT-LLM fused MoE cooperative launch SM
allocation ...`` ahead of the JSON (issue 13 notes). The kernel phase is simulated here with the three
ways a library reaches stdout: a raw write to fd 1, C stdio (buffered printf), and Python print.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

_CHATTER = textwrap.dedent('''
    import ctypes, os

    def chatter():
        os.write(1, b"[info] TRT-LLM fused MoE cooperative launch SM allocation: 132 SMs used for MoE\\n")
        ctypes.CDLL(None).printf(b"[c-stdio] buffered printf from a library\\n")
        print("[python] print from a library")
''')


def _run(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MOE_INSPECT_CACHE": os.environ.get("MOE_INSPECT_CACHE", "/tmp/moe-inspect-test-cache")}
    return subprocess.run([sys.executable, "-c", _CHATTER + textwrap.dedent(script)], capture_output=True, text=True,
                          env=env, timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _assert_json_only(p: subprocess.CompletedProcess, key: str) -> dict:
    data = json.loads(p.stdout)  # the whole of stdout is one JSON document
    for line in ("[info] TRT-LLM fused MoE cooperative launch", "[c-stdio] buffered printf", "[python] print from"):
        assert line not in p.stdout
        assert line in p.stderr  # redirected, not discarded
    assert key in data
    return data


def test_run_layer_json_survives_library_stdout():
    p = _run('''
        import sys
        from moe_inspect.layer import runner

        class Result:
            passed = True
            def to_dict(self):
                return {"model": "fake", "passed": True}

        def fake_run_layer(opts, *, progress=None, describe=None):
            chatter()
            return Result()

        runner.run_layer = fake_run_layer
        from moe_inspect.cli.app import app
        sys.argv = ["moe-inspect", "run-layer", "--experts", "8", "--top-k", "2", "--hidden", "128",
                    "--intermediate", "128", "--routing-method", "Renormalize", "--json"]
        app()
    ''')
    assert p.returncode == 0, p.stderr[-2000:]
    assert _assert_json_only(p, "passed")["model"] == "fake"


def test_verify_kernel_json_survives_library_stdout():
    pytest.importorskip("typer")
    p = _run('''
        import sys
        from moe_inspect import verify

        class Result:
            exit_code = 0
            def to_dict(self):
                return {"verdict": "match", "kernel": "fake"}

        def fake_verify_model(model, **kw):
            assert kw["kernel"] is True
            chatter()
            return Result()

        verify.verify_model = fake_verify_model
        from moe_inspect.cli.app import app
        sys.argv = ["moe-inspect", "verify", "some/model", "--kernel", "--json"]
        app()
    ''')
    assert p.returncode == 0, p.stderr[-2000:]
    assert _assert_json_only(p, "verdict")["kernel"] == "fake"


def test_stdout_is_ours_again_after_the_kernel_phase(capfd):
    from moe_inspect.stdio import library_output_to_stderr

    with library_output_to_stderr():
        os.write(1, b"inside\n")
        print("py inside")
    os.write(1, b"after\n")
    print("py after", flush=True)
    out, err = capfd.readouterr()
    assert out == "after\npy after\n"
    assert "inside\n" in err and "py inside\n" in err
