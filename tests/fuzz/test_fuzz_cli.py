"""End to end: real ``python -m moe_inspect.cli.app`` processes on hostile inputs (the traceback
property through the real interpreter, stdout/stderr encodings and exit path), plus a small
``verify`` share (it imports torch + transformers: ~0.4 s a case)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..modelgen import make_model_dir, moe_config, moe_tensors, write_raw_safetensors
from . import corpus, harness

pytestmark = pytest.mark.fuzz

FUZZ = settings.get_profile("moe-fuzz")
N_VERIFY = harness.n_cases(40)
SUBPROCESS_LIMIT_S = 60


def _cases(root: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of hostile inputs, one of each family."""
    out: list[tuple[str, list[str]]] = []

    def cfg_dir(name: str, data: bytes) -> Path:
        d = root / name
        d.mkdir()
        (d / "config.json").write_bytes(data)
        return d

    out.append(("huge_int", ["detect", str(cfg_dir("huge_int", b'{"model_type": "mixtral", "num_local_experts": '
                                                              + b"9" * 5000 + b"}"))]))
    out.append(("lone_surrogate", ["detect", str(cfg_dir("surr", json.dumps(
        dict(corpus.ENTRIES[16].config, model_type="\ud800")).encode()))]))
    out.append(("not_utf8", ["detect", str(cfg_dir("latin1", b'{"model_type": "mixtral\xe9"}'))]))
    out.append(("deep", ["detect", str(cfg_dir("deep", b"[" * 200_000 + b"]" * 200_000))]))
    out.append(("dense", ["detect", str(cfg_dir("dense", b'{"model_type": "llama", "num_hidden_layers": 2}'))]))
    out.append(("topk", ["check", "--gpu", "B200", str(cfg_dir("topk", json.dumps(
        moe_config(num_experts_per_tok=9)).encode()))]))
    d = make_model_dir(root / "badst", moe_config(), {})
    write_raw_safetensors(d / "model.safetensors", b"{not json", length=9)
    out.append(("bad_header", ["detect", str(d), "--json"]))
    d = make_model_dir(root / "ok", moe_config(), moe_tensors())
    out.append(("ok_detect", ["detect", str(d)]))
    out.append(("ok_check", ["check", str(d), "--gpu", "all", "--format", "markdown"]))
    out.append(("missing_dir", ["detect", str(root / "nope")]))
    out.append(("bad_name", ["detect", "org/..//x"]))
    out.append(("non_utf8_path", ["detect", os.fsdecode(bytes(root) + b"/\xff\xfe")]))
    return out


def test_real_processes_never_print_a_traceback(tmp_path, fuzz_env):
    env = {k: v for k, v in os.environ.items() if k != "MOE_INSPECT_DEBUG"}
    env.update(HF_HOME=str(fuzz_env), HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9",
               PYTHONIOENCODING="utf-8")
    for name, argv in _cases(tmp_path):
        harness.COUNTS["subprocess"] += 1
        p = subprocess.run([sys.executable, "-m", "moe_inspect.cli.app", *argv], capture_output=True,
                           timeout=SUBPROCESS_LIMIT_S, env=env, cwd=tmp_path)
        harness.EXITS["subprocess"][p.returncode] += 1
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        assert p.returncode in (0, 1, 2), (name, p.returncode, err[-2000:])
        assert "Traceback" not in out + err, (name, err[-3000:])
        assert "internal error" not in err, (name, err)
        if p.returncode == 2:
            assert len(err.splitlines()) == 1 and err.startswith("error: "), (name, err)


@pytest.fixture(scope="module")
def verify_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("verify")


@settings(FUZZ, max_examples=N_VERIFY)
@given(case=corpus.mutated_config(), tokens=st.sampled_from(["1", "8", "64"]), seed=st.integers(-5, 2**31))
def test_verify_on_mutated_catalog_configs(verify_dir, case, tokens, seed):
    pytest.importorskip("torch")
    _id, cfg, _ops = case
    (verify_dir / "config.json").write_bytes(corpus.dump(cfg))
    harness.run_cli(["verify", str(verify_dir), "--tokens", tokens, "--seed", str(seed), "--json"],
                    family="verify_mutated")
