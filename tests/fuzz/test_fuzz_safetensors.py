"""Hostile safetensors headers in a local model directory: detect/check must give exit 0/1 or one
error line, and read at most ``8 + N`` bytes of each file (the data sections here are 1 GiB sparse
holes: reading them would also show in the process' read counter)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..modelgen import moe_config, moe_tensors, safetensors_header
from . import corpus, harness

pytestmark = pytest.mark.fuzz

FUZZ = settings.get_profile("moe-fuzz")
N_STRUCTURED = harness.n_cases(1500)
N_RAW = harness.n_cases(800)

GIB = 1 << 30
DTYPES = ["BF16", "F32", "F8_E4M3", "U8", "I8", "F4", "F6_E2M3", "BOOL", "F8_E8M0", "C64", "I64"]
BAD_DTYPES = ["bf16", "F128", "", "Q4_K", None, 16, ["BF16"], "F8_E4M3 ", "BF16\x00"]


def _base_header() -> dict:
    """A real header (DeepSeek-V3 style, 2 layers, 4 experts) as a dict."""
    raw, _ = safetensors_header(moe_tensors(layers=2, experts=4, first_dense=1))
    return json.loads(raw[8:])


BASE = _base_header()


@st.composite
def hostile_header(draw) -> tuple[bytes, int, str]:
    """(file bytes without the data section, data-section size, description)."""
    hdr = json.loads(json.dumps(BASE))
    names = [k for k in hdr if k != "__metadata__"]
    ops = []
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from([
            "dtype", "shape", "offsets", "overlap", "entry_type", "drop_field", "metadata", "extra_field",
            "rename", "huge_dims", "empty", "many_tensors",
        ]))
        ops.append(op)
        name = draw(st.sampled_from(names)) if names else None
        if name is None or name not in hdr:
            continue
        e = hdr[name]
        if op == "dtype" and isinstance(e, dict):
            e["dtype"] = draw(st.sampled_from(BAD_DTYPES + DTYPES))
        elif op == "shape" and isinstance(e, dict):
            e["shape"] = draw(st.one_of(
                st.lists(st.integers(-3, 2**40), max_size=4), corpus.scalar(), st.just([1.5, 2]),
                st.just([True, 2]), st.just([[2]])))
        elif op == "offsets" and isinstance(e, dict):
            e["data_offsets"] = draw(st.one_of(
                st.lists(st.integers(-5, 2**65), max_size=3), corpus.scalar(), st.just([0.0, 2.0])))
        elif op == "overlap" and isinstance(e, dict) and len(names) > 1:
            other = hdr[draw(st.sampled_from(names))]
            if isinstance(other, dict):
                e["data_offsets"] = other.get("data_offsets")
                e["shape"], e["dtype"] = other.get("shape"), other.get("dtype")
        elif op == "entry_type":
            hdr[name] = draw(corpus.json_value(4))
        elif op == "drop_field" and isinstance(e, dict):
            e.pop(draw(st.sampled_from(["dtype", "shape", "data_offsets"])), None)
        elif op == "metadata":
            hdr["__metadata__"] = draw(corpus.json_value(4))
        elif op == "extra_field" and isinstance(e, dict):
            e[draw(st.text(max_size=6))] = draw(corpus.scalar())
        elif op == "rename":
            hdr[draw(st.sampled_from(["", "\x00", "model.layers.1.mlp.gate.weight", "a" * 3000,
                                      "model.layers.99999999999999999999.mlp.gate.weight",
                                      "model.layers.-1.mlp.gate.weight", "[bold]x", "\ud800"]))] = hdr.pop(name)
        elif op == "huge_dims" and isinstance(e, dict):
            e["shape"] = [2**62, 2**62]
            e["data_offsets"] = [0, 2**64]
        elif op == "empty":
            hdr = {}
            names = []
        elif op == "many_tensors":
            for i in range(draw(st.sampled_from([100, 20_000]))):
                hdr[f"model.layers.{i % 50}.mlp.experts.{i}.w{i % 3}.weight"] = {
                    "dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}
    text = json.dumps(hdr, allow_nan=True).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # byte-level damage of the JSON text
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from([b"\xff", b"{", b"\x00", b'"', b"]]]"])) + text[i + 1:]
        ops.append("bytes")
    length_kind = draw(st.sampled_from(["exact", "exact", "exact", "beyond_file", "over_limit", "tiny", "u64max",
                                        "short_by_one", "padded"]))
    n = {
        "exact": len(text),
        "padded": len(text),
        "beyond_file": len(text) + GIB + 4096,
        "over_limit": 100_000_001 + draw(st.integers(0, 10**6)),
        "tiny": draw(st.integers(0, 1)),
        "u64max": 2**64 - 1,
        "short_by_one": max(0, len(text) - 1),
    }[length_kind]
    if length_kind == "padded":
        text += b" " * (-len(text) % 8)
        n = len(text)
    ops.append(f"len:{length_kind}")
    data_kind = draw(st.sampled_from(["gib", "exact", "none", "short"]))
    data = {"gib": GIB, "exact": 4096, "none": 0, "short": 1}[data_kind]
    return struct.pack("<Q", n) + text, data, ",".join(ops)


@st.composite
def raw_file(draw) -> tuple[bytes, int, str]:
    kind = draw(st.sampled_from(["binary", "prefix_only", "short", "json_array", "json_scalar", "utf16",
                                 "random_length"]))
    if kind == "binary":
        b = draw(st.binary(max_size=300))
    elif kind == "prefix_only":
        b = struct.pack("<Q", draw(st.integers(0, 2**64 - 1)))
    elif kind == "short":
        b = draw(st.binary(max_size=7))
    elif kind == "json_array":
        t = b"[1, 2, 3]"
        b = struct.pack("<Q", len(t)) + t
    elif kind == "json_scalar":
        t = draw(st.sampled_from([b"null", b"1", b'"x"', b"NaN", b"1" + b"0" * 5000]))
        b = struct.pack("<Q", len(t)) + t
    elif kind == "utf16":
        t = json.dumps(BASE).encode("utf-16")
        b = struct.pack("<Q", len(t)) + t
    else:
        t = draw(st.binary(max_size=200))
        b = struct.pack("<Q", draw(st.integers(0, len(t) + 16))) + t
    return b, draw(st.sampled_from([0, GIB])), kind


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("st")
    (d / "config.json").write_text(json.dumps(moe_config(num_hidden_layers=2, n_routed_experts=4, n_group=1,
                                                         topk_group=1)))
    return d


def _write(path: Path, head: bytes, data: int) -> None:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + data)


def _run(d: Path, cmd: str, family: str, json_out: bool) -> None:
    st_file = d / "model.safetensors"
    args = [cmd, str(d)] + (["--gpu", "B200"] if cmd == "check" else []) + (["--json"] if json_out else [])
    before = harness.proc_rchar()
    with harness.meter_safetensors_reads(pytest.MonkeyPatch()) as meter:
        harness.run_cli(args, family=family)
    after = harness.proc_rchar()
    harness.assert_header_only(meter, [st_file], where=" ".join(args))
    if before is not None and after is not None:  # backstop: not one byte of the 1 GiB hole was read
        n = harness.header_len_of(st_file) or 0
        assert after - before < 8 + min(n, 200_000_000) + 16_000_000, f"{args}: process read {after - before} bytes"


@settings(FUZZ, max_examples=N_STRUCTURED)
@given(case=hostile_header(), cmd=st.sampled_from(["detect", "detect", "detect", "check"]), json_out=st.booleans())
def test_hostile_headers(model_dir, case, cmd, json_out):
    head, data, _desc = case
    _write(model_dir / "model.safetensors", head, data)
    _run(model_dir, cmd, f"safetensors_structured/{cmd}", json_out)


@settings(FUZZ, max_examples=N_RAW)
@given(case=raw_file(), json_out=st.booleans())
def test_raw_header_bytes(model_dir, case, json_out):
    head, data, _kind = case
    _write(model_dir / "model.safetensors", head, data)
    _run(model_dir, "detect", "safetensors_raw/detect", json_out)


def test_valid_header_with_gib_data_reads_only_the_header(model_dir):
    """Baseline for the meter: a valid file, 1 GiB of data, exactly 8 + N bytes read."""
    raw, size = safetensors_header(moe_tensors(layers=2, experts=4, first_dense=1))
    _write(model_dir / "model.safetensors", raw, size + GIB)
    with harness.meter_safetensors_reads(pytest.MonkeyPatch()) as meter:
        r = harness.run_cli(["detect", str(model_dir), "--json"], family="safetensors_baseline/detect")
    assert r.exit_code == 0, r.stderr
    assert sum(meter.bytes.values()) == len(raw)
