"""One home for reading other people's JSON and regular files (moe_inspect.sources.strict_json):
``check``'s raw-model view (deploy/shapes.py) and the safetensors header reader go through it.

Expected values are written by hand: the model files are made here, byte by byte.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from moe_inspect.deploy import shapes as S
from moe_inspect.sources import strict_json

CFG = {"model_type": "made_up_moe", "hidden_size": 64}


def _desc(d: Path, model_id: str = "nobody/not-in-any-catalog-xyz"):
    return SimpleNamespace(model=SimpleNamespace(path=str(d), source="local directory", id=model_id))


def test_raw_model_reads_the_three_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CFG))
    (tmp_path / "hf_quant_config.json").write_text('{"quantization": {"quant_algo": "FP8"}}')
    (tmp_path / "model.safetensors.index.json").write_text('{"metadata": {"total_size": 123456}, "weight_map": {}}')
    r = S.raw_model(_desc(tmp_path))
    assert r.config == CFG
    assert r.hf_quant_config == {"quantization": {"quant_algo": "FP8"}}
    assert r.index_total_size == 123456
    assert r.where == f"local directory: {tmp_path}"


def test_raw_model_accepts_a_config_written_with_a_bom(tmp_path):
    # the one strict reader accepts a UTF-8 BOM in configs (detect reads such a file too)
    (tmp_path / "config.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(CFG).encode())
    assert S.raw_model(_desc(tmp_path)).config == CFG


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe{}", b"{" * 100_000 + b"}" * 100_000])
def test_raw_model_falls_back_when_the_config_is_not_a_json_object(tmp_path, body):
    (tmp_path / "config.json").write_bytes(body)
    r = S.raw_model(_desc(tmp_path))
    assert (r.config, r.where) == (None, "no config available")


def test_raw_model_falls_back_when_config_is_a_directory_or_missing(tmp_path):
    (tmp_path / "config.json").mkdir()
    assert S.raw_model(_desc(tmp_path)).where == "no config available"
    assert S.raw_model(_desc(tmp_path / "nowhere")).where == "no config available"


def test_raw_model_ignores_a_bad_quant_config_and_index(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CFG))
    (tmp_path / "hf_quant_config.json").write_text('["not", "an", "object"]')
    (tmp_path / "model.safetensors.index.json").write_text("{")
    # no index: the size of the single-file checkpoint is used (8-byte length + "{}" header)
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    r = S.raw_model(_desc(tmp_path))
    assert (r.config, r.hf_quant_config, r.index_total_size) == (CFG, None, 10)


def test_raw_model_refuses_an_index_over_the_one_size_limit(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CFG))
    with open(tmp_path / "model.safetensors.index.json", "wb") as f:  # sparse: no disk used
        f.truncate(64_000_001)
    assert S.raw_model(_desc(tmp_path)).index_total_size is None
    # the limit lives in one place
    assert strict_json.MAX_JSON_BYTES == 64_000_000
    assert not hasattr(S, "MAX_JSON_BYTES")


# ------------------------------------------------------------------ open_regular: one primitive, one wording
from moe_inspect.errors import CheckpointError, ConfigError  # noqa: E402
from moe_inspect.safetensors_io import read_local_header  # noqa: E402
from moe_inspect.sources import read_config  # noqa: E402

from .modelgen import make_model_dir, moe_config, moe_tensors  # noqa: E402


def _msg(fn, path, err):
    with pytest.raises(err) as e:
        fn(path)
    return str(e.value)


def _cases(tmp_path):
    gone = tmp_path / "gone"
    gone.symlink_to(tmp_path / "nothing-here")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    d = tmp_path / "a-dir"
    d.mkdir()
    return [
        (tmp_path / "absent", f"{tmp_path / 'absent'}: no such file"),
        (gone, f"{gone}: a dangling symlink (its target is missing)"),
        (loop, f"{loop}: cannot read (Too many levels of symbolic links)"),
        (d, f"{d}: not a regular file"),
    ]


def test_config_reader_and_safetensors_reader_say_the_same_thing(tmp_path):
    for path, expect in _cases(tmp_path):
        assert _msg(read_config, path, ConfigError) == expect
        assert _msg(read_local_header, path, CheckpointError) == expect


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block forever
    link = tmp_path / "model.safetensors"
    link.symlink_to(fifo)
    assert _msg(read_local_header, link, CheckpointError) == f"{link}: not a regular file"
    assert _msg(read_config, link, ConfigError) == f"{link}: not a regular file"


def test_open_regular_follows_a_symlink_to_a_regular_file(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"12345")
    link = tmp_path / "link"
    link.symlink_to(blob)
    f, size = strict_json.open_regular(link, err=ConfigError, where="w")
    with f:
        assert (size, f.read()) == (5, b"12345")


def test_detect_names_an_oversized_config_in_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner
    import typer.main

    from moe_inspect.cli.app import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    d = make_model_dir(tmp_path / "m", moe_config(), moe_tensors())
    with open(d / "config.json", "r+b") as f:
        f.truncate(64_000_001)  # sparse; judged by its size before a byte is read
    r = CliRunner().invoke(typer.main.get_command(app), ["detect", str(d)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: {d / 'config.json'}: 64000001 bytes is too large for a config"
