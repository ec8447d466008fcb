"""Hostile config.json files: random, mutated real configs (the 22 catalog entries), broken bytes.

Every case runs the real CLI (``detect``, and ``check`` for a share of the cases) on a local model
directory and checks the contract of :mod:`tests.fuzz.harness`. Mutated catalog configs sit next
to a real safetensors file built from that model's first-MoE-layer tensors (a sparse file), so
the tensor-evidence paths run too, with the header-only read meter on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..modelgen import write_safetensors
from . import corpus, harness

pytestmark = pytest.mark.fuzz

FUZZ = settings.get_profile("moe-fuzz")

N_RANDOM = harness.n_cases(2500)
N_MUTATED = harness.n_cases(3000)
N_BYTES = harness.n_cases(1200)


def _slug(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", model_id)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cfg")


@pytest.fixture(scope="module")
def catalog_dirs(tmp_path_factory) -> dict[str, Path]:
    """One directory per catalog model with a real (sparse) model.safetensors of its first MoE layer."""
    root = tmp_path_factory.mktemp("catalog_models")
    out = {}
    for e in corpus.ENTRIES:
        d = root / _slug(e.id)
        d.mkdir()
        write_safetensors(d / "model.safetensors", {n: (dt if dt != "?" else "BF16", shape) for n, (dt, shape) in e.tensors.items()})
        out[e.id] = d
    return out


def _args(cmd: str, path: Path, json_out: bool) -> list[str]:
    a = [cmd, str(path)]
    if cmd == "check":
        a += ["--gpu", "all"]
    return a + (["--json"] if json_out else [])


@settings(FUZZ, max_examples=N_RANDOM)
@given(cfg=corpus.random_config(), json_out=st.booleans())
def test_random_configs(work, cfg, json_out):
    d = work / "random"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_bytes(corpus.dump(cfg))
    harness.run_cli(_args("detect", d, json_out), family="config_random/detect")


@settings(FUZZ, max_examples=N_MUTATED)
@given(case=corpus.mutated_config(), json_out=st.booleans(), also_check=st.integers(0, 3))
def test_mutated_catalog_configs(catalog_dirs, case, json_out, also_check):
    model_id, cfg, _ops = case
    d = catalog_dirs[model_id]
    (d / "config.json").write_bytes(corpus.dump(cfg))
    cmds = ["detect"] + (["check"] if also_check == 0 else [])
    for cmd in cmds:
        with harness.meter_safetensors_reads(pytest.MonkeyPatch()) as meter:
            harness.run_cli(_args(cmd, d, json_out), family=f"config_mutated/{cmd}")
        harness.assert_header_only(meter, [d / "model.safetensors"], where=f"{cmd} {model_id} {_ops}")


@settings(FUZZ, max_examples=N_BYTES)
@given(case=corpus.config_bytes(), json_out=st.booleans())
def test_broken_config_bytes(work, case, json_out):
    kind, data = case
    d = work / "bytes"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_bytes(data)
    harness.run_cli(_args("detect", d, json_out), family="config_bytes/detect")


def test_unmutated_catalog_configs_pass(catalog_dirs):
    """Baseline: every real config with its real first-layer header describes cleanly (exit 0)."""
    for e in corpus.ENTRIES:
        d = catalog_dirs[e.id]
        (d / "config.json").write_bytes(corpus.dump(e.config))
        r = harness.run_cli(["detect", str(d), "--json"], family="config_catalog/detect")
        assert r.exit_code == 0, (e.id, r.stderr)
        r = harness.run_cli(["check", str(d), "--gpu", "all", "--json"], family="config_catalog/check")
        assert r.exit_code in (0, 1), (e.id, r.stderr)


def test_enormous_config_is_refused_without_reading_it(work):
    """A config.json over the size limit (a 65 MB sparse file) is refused from its size alone."""
    d = work / "enormous"
    d.mkdir(exist_ok=True)
    with open(d / "config.json", "wb") as f:
        f.write(b'{"model_type": "mixtral", "pad": "')
        f.truncate(65_000_000)
    before = harness.proc_rchar()
    r = harness.run_cli(["detect", str(d)], family="config_enormous/detect", limit=10)
    after = harness.proc_rchar()
    assert r.exit_code == 2 and "too large" in r.stderr, r.stderr
    if before is not None and after is not None:
        assert after - before < 8_000_000


def test_large_but_legal_config_is_bounded(work):
    """A 20 MB config (a huge unused array) still parses within the time bound."""
    d = work / "large"
    d.mkdir(exist_ok=True)
    e = corpus.ENTRIES[1]
    cfg = dict(e.config, junk=list(range(2_000_000)))
    (d / "config.json").write_bytes(corpus.dump(cfg))
    assert os.path.getsize(d / "config.json") > 10_000_000
    r = harness.run_cli(["detect", str(d), "--json"], family="config_enormous/detect", limit=20)
    assert r.exit_code == 0, r.stderr
