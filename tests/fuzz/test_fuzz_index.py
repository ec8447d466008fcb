"""Hostile ``model.safetensors.index.json`` files: missing shards, paths leaving the model
directory, wrong types, huge maps, shards that are directories/symlinks/other files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..modelgen import make_model_dir, moe_config, moe_tensors, shard_name
from . import corpus, harness

pytestmark = pytest.mark.fuzz

FUZZ = settings.get_profile("moe-fuzz")
N_INDEX = harness.n_cases(1200)

TENSORS = moe_tensors(layers=3, experts=4, first_dense=1)
N_SHARDS = 3
HOSTILE_NAMES = [
    "../outside.safetensors", "/etc/passwd", "/tmp", "..", ".", "", "sub/x.safetensors", "sub\\x.safetensors",
    "C:evil.safetensors", "x\x00.safetensors", "config.json", "model.safetensors.index.json", "missing.safetensors",
    "link_out.safetensors", "dir.safetensors", "fifo.safetensors", "~/.bashrc", "%2e%2e/x.safetensors",
    "model-00001-of-00003.safetensors", "model-00009-of-00003.safetensors", "a" * 300 + ".safetensors",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(model dir, its real weight_map, a secret file outside it)."""
    root = tmp_path_factory.mktemp("idx")
    d = make_model_dir(root / "model", moe_config(num_hidden_layers=3, n_routed_experts=4, n_group=1, topk_group=1),
                       TENSORS, shards=N_SHARDS)
    secret = root / "outside.safetensors"
    secret.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"secret": 1}   ')
    (d / "dir.safetensors").mkdir()
    os.symlink(secret, d / "link_out.safetensors")
    try:
        os.mkfifo(d / "fifo.safetensors")  # opening a FIFO for reading would block forever
    except (AttributeError, OSError):
        pass
    wm = json.loads((d / "model.safetensors.index.json").read_text())["weight_map"]
    return d, wm, secret


@st.composite
def hostile_index(draw, wm: dict) -> bytes:
    kind = draw(st.sampled_from(["entries"] * 8 + ["structure", "structure", "huge", "bytes"]))
    if kind == "structure":
        obj = draw(st.one_of(
            st.just({"metadata": {}}), st.just({"weight_map": None}), st.just({"weight_map": []}),
            st.builds(lambda v: {"weight_map": v}, corpus.json_value(5)), corpus.json_value(4)))
        return json.dumps(obj, allow_nan=True).encode()
    if kind == "bytes":
        good = json.dumps({"weight_map": wm}).encode()
        i = draw(st.integers(0, len(good)))
        return good[:i] + draw(st.sampled_from([b"", b"\xff\xfe", b"}", b"[" * 100_000]))
    new = dict(wm)
    if kind == "huge":
        for i in range(draw(st.sampled_from([500, 5_000]))):
            new[f"model.layers.{i}.mlp.experts.{i}.gate_proj.weight"] = shard_name(1 + i % N_SHARDS, N_SHARDS)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["rename_file", "retype", "drop", "add", "reroute"]))
        name = draw(st.sampled_from(sorted(wm)))
        if op == "rename_file":
            target = draw(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=12)))
            if draw(st.booleans()):
                new = {k: (target if v == new.get(name) else v) for k, v in new.items()}
            else:
                new[name] = target
        elif op == "retype":
            new[name] = draw(corpus.scalar())
        elif op == "drop":
            new.pop(name, None)
        elif op == "add":
            new[draw(st.text(max_size=30))] = draw(st.sampled_from(HOSTILE_NAMES))
        else:  # the router claimed by a shard that does not hold it
            new[name] = shard_name(draw(st.integers(1, N_SHARDS)), N_SHARDS)
    return json.dumps({"metadata": {"total_size": 1}, "weight_map": new}, allow_nan=True).encode()


@settings(FUZZ, max_examples=N_INDEX)
@given(data=st.data(), cmd=st.sampled_from(["detect", "detect", "detect", "check"]), json_out=st.booleans())
def test_hostile_index(base, data, cmd, json_out):
    d, wm, secret = base
    (d / "model.safetensors.index.json").write_bytes(data.draw(hostile_index(wm)))
    args = [cmd, str(d)] + (["--gpu", "H100"] if cmd == "check" else []) + (["--json"] if json_out else [])
    with harness.meter_safetensors_reads(pytest.MonkeyPatch()) as meter:
        r = harness.run_cli(args, family=f"index/{cmd}")
    shards = [d / shard_name(i, N_SHARDS) for i in range(1, N_SHARDS + 1)]
    harness.assert_header_only(meter, shards, where=" ".join(args))
    # never a byte of a file outside the model directory, through a name or through a symlink
    assert meter.bytes.get(os.path.realpath(secret), 0) == 0 or r.exit_code == 2, "read a file outside the model dir"
    assert "secret" not in r.stdout


def test_symlink_out_of_the_model_dir_is_followed_only_to_regular_files(base, tmp_path):
    """Shards that are symlinks (the HF cache layout) are read when they point at regular files; a
    symlink to a directory or a dangling one is a one-line error."""
    d, wm, _ = base
    m = tmp_path / "m"
    shutil.copytree(d, m, symlinks=True, ignore=shutil.ignore_patterns("fifo.safetensors"))
    target = m / shard_name(2, N_SHARDS)
    blob = tmp_path / "blob"
    target.rename(blob)
    target.symlink_to(blob)
    (m / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    r = harness.run_cli(["detect", str(m), "--json"], family="index_symlink/detect")
    assert r.exit_code == 0, r.stderr
    target.unlink()
    target.symlink_to(tmp_path)  # a directory
    r = harness.run_cli(["detect", str(m)], family="index_symlink/detect")
    assert r.exit_code == 2 and "not a regular file" in r.stderr, r.stderr
    target.unlink()
    target.symlink_to(tmp_path / "gone")  # dangling
    r = harness.run_cli(["detect", str(m)], family="index_symlink/detect")
    assert r.exit_code in (0, 2), r.stderr


def test_index_as_big_as_the_largest_real_checkpoint_is_bounded(base, tmp_path):
    """150k weight_map entries (DeepSeek-V3 has ~91k tensors): one run stays within the time bound."""
    d, wm, _ = base
    m = tmp_path / "m"
    shutil.copytree(d, m, symlinks=True, ignore=shutil.ignore_patterns("fifo.safetensors"))
    new = dict(wm)
    for i in range(150_000):
        new[f"model.layers.{i % 61}.mlp.experts.{i}.gate_proj.weight"] = shard_name(1 + i % N_SHARDS, N_SHARDS)
    (m / "model.safetensors.index.json").write_text(json.dumps({"weight_map": new}))
    r = harness.run_cli(["detect", str(m), "--json"], family="index_huge/detect", limit=harness.CASE_LIMIT_S * 2)
    assert r.exit_code == 0, r.stderr
