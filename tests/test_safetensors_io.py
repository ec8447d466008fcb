"""Bounded safetensors header parsing: real files, hostile files, byte-range parsing."""

from __future__ import annotations

import json
import os
import struct

import pytest

from moe_inspect.errors import CheckpointError
from moe_inspect.safetensors_io import (
    MAX_HEADER_BYTES,
    parse_header_from_bytes,
    read_local_header,
    read_local_header_ex,
)

try:
    from .modelgen import safetensors_header, write_raw_safetensors, write_safetensors
except ImportError:  # tests/ not a package
    from modelgen import safetensors_header, write_raw_safetensors, write_safetensors

TENSORS = {
    "model.layers.1.mlp.gate.weight": ("BF16", [8, 64]),
    "model.layers.1.mlp.gate.e_score_correction_bias": ("F32", [8]),
    "model.layers.1.mlp.experts.0.gate_proj.weight": ("F8_E4M3", [32, 64]),
    "model.layers.1.mlp.experts.0.gate_proj.weight_scale_inv": ("F32", [1, 1]),
    "w_fp4": ("U8", [32, 32]),
    "scalar": ("F32", []),
}


def test_written_file_reads_back_and_safe_open_accepts_it(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    p = write_safetensors(tmp_path / "m.safetensors", TENSORS, metadata={"format": "pt"})
    tensors, nread = read_local_header(p)
    assert {n: (t.dtype, t.shape) for n, t in tensors.items()} == {n: (d, s) for n, (d, s) in TENSORS.items()}
    assert all(t.file == "m.safetensors" for t in tensors.values())
    (n,) = struct.unpack("<Q", p.read_bytes()[:8])
    assert nread == 8 + n  # only the header was read
    with safetensors.safe_open(str(p), framework="np") as f:
        assert set(f.keys()) == set(TENSORS)
        assert f.metadata() == {"format": "pt"}
        assert list(f.get_slice("model.layers.1.mlp.gate.weight").get_shape()) == [8, 64]


def test_huge_shapes_make_sparse_files(tmp_path):
    # a DeepSeek-V3-sized expert tensor: 2048 x 7168 BF16 x 256 experts ~ 7.5 GB, written instantly
    p = write_safetensors(tmp_path / "big.safetensors", {"experts": ("BF16", [256, 2048, 7168])})
    assert p.stat().st_size > 7_000_000_000
    if hasattr(os.stat_result, "st_blocks"):
        assert p.stat().st_blocks * 512 < 10_000_000
    tensors, _ = read_local_header(p)
    assert tensors["experts"].shape == [256, 2048, 7168]


def test_metadata_is_skipped_and_symlinks_followed(tmp_path):
    p = write_safetensors(tmp_path / "blob", {"a": ("F16", [2])}, metadata={"x": "y"})
    link = tmp_path / "model.safetensors"
    link.symlink_to(p)
    r = read_local_header_ex(link)
    assert set(r.tensors) == {"a"} and r.metadata == {"x": "y"}
    assert r.tensors["a"].file == "model.safetensors"


def _err(path) -> str:
    with pytest.raises(CheckpointError) as ei:
        read_local_header(path)
    msg = ei.value.message
    assert "\n" not in msg and str(path) in msg
    return msg


def test_rejects_short_file(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"\x01\x02")
    assert "shorter than the 8-byte" in _err(p)


def test_rejects_length_beyond_file(tmp_path):
    p = write_raw_safetensors(tmp_path / "x.safetensors", "{}", length=10_000)
    assert "past the end of the file" in _err(p)


def test_rejects_header_over_100mb(tmp_path):
    p = write_raw_safetensors(tmp_path / "x.safetensors", "{}", length=MAX_HEADER_BYTES + 1)
    assert "exceeds the 100000000-byte limit" in _err(p)


@pytest.mark.parametrize(
    "header, expect",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[1, 2]", "not an object"),
        (json.dumps({"a": {"dtype": "F32", "shape": [2]}}), "has no data_offsets"),
        (json.dumps({"a": {"dtype": "F17", "shape": [2], "data_offsets": [0, 8]}}), "unknown dtype 'F17'"),
        (json.dumps({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}), "negative dimension"),
        (json.dumps({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}}), "not a list of integers"),
        (json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 9]}}), "needs 8"),
        (json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}), "out of order"),
        (json.dumps({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}), "beyond the 16-byte data section"),
        (json.dumps({"a": "F32"}), "entry is not an object"),
        (json.dumps({"__metadata__": [1]}), "__metadata__ is not an object"),
    ],
)
def test_rejects_hostile_headers(tmp_path, header, expect):
    p = write_raw_safetensors(tmp_path / "x.safetensors", header, data_size=16)
    assert expect in _err(p)


def test_rejects_non_regular_targets(tmp_path):
    link = tmp_path / "dev.safetensors"
    link.symlink_to("/dev/zero")
    assert "not a regular file" in _err(link)
    d = tmp_path / "dir.safetensors"
    d.mkdir()
    assert "not a regular file" in _err(d)
    dangling = tmp_path / "gone.safetensors"
    dangling.symlink_to(tmp_path / "nope")
    assert "dangling" in _err(dangling)


def test_parse_header_from_bytes_matches_local(tmp_path):
    head, data_size = safetensors_header(TENSORS)
    r = parse_header_from_bytes(head, where="org/m/x.safetensors", file_size=len(head) + data_size,
                                file_name="x.safetensors")
    assert set(r.tensors) == set(TENSORS) and r.bytes_read == len(head)
    with pytest.raises(CheckpointError, match="org/m/x.safetensors: got 20 bytes"):
        parse_header_from_bytes(head[:20], where="org/m/x.safetensors")
    # offsets are checked against the file size when the range reply gave it
    with pytest.raises(CheckpointError, match="data section"):
        parse_header_from_bytes(head, where="org/m/x.safetensors", file_size=len(head) + 10)
