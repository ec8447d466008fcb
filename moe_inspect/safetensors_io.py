"""Bounded safetensors header parsing (local files and Hub byte ranges).

A safetensors file is ``<u64 little-endian N><N bytes of UTF-8 JSON header><data section>``.
Only the header is ever read here: at most ``8 + N`` bytes, with ``N`` capped at
:data:`MAX_HEADER_BYTES` (the limit of the safetensors Rust loader, safetensors 0.8
``MAX_HEADER_SIZE``). Every entry is validated the way the safetensors loader would:
known dtype, non-negative integer dims, ``data_offsets`` ``[begin, end]`` inside the data
section and ``end - begin == numel * bits / 8``.

Every failure is a :class:`~moe_inspect.errors.CheckpointError` with a one-line message that
names the file and what is wrong. No torch, no safetensors import: plain ``json`` + ``struct``.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError
from .spec import TensorInfo

#: Largest header we accept (bytes of JSON after the 8-byte length). Source: safetensors 0.8
#: (Rust ``MAX_HEADER_SIZE = 100_000_000``). huggingface_hub 2.4 uses a smaller 25 MB bound.
MAX_HEADER_BYTES = 100_000_000

#: Bits per element of every dtype string the safetensors format defines (safetensors 0.8
#: ``Dtype`` enum; ``F4`` = e2m1, ``F6_*`` = MX 6-bit, ``F8_E8M0`` = MX scale).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


@dataclass
class HeaderResult:
    """A parsed header: its tensors and what reading it cost."""

    tensors: dict[str, TensorInfo]
    header_len: int  # N, the JSON length
    bytes_read: int  # bytes actually read from the file / network for this header
    metadata: dict | None = None  # the ``__metadata__`` string map, if any


def header_length(prefix: bytes, *, where: str, file_size: int | None = None) -> int:
    """Decode and bound the 8-byte little-endian header length at the start of ``prefix``.

    ``file_size`` (when known) must hold the 8 bytes plus the header.
    """
    if len(prefix) < 8:
        raise CheckpointError(
            f"{where}: not a safetensors file ({len(prefix)} bytes, shorter than the 8-byte header length)"
        )
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{where}: safetensors header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit"
        )
    if n < 2:
        raise CheckpointError(f"{where}: safetensors header length {n} is too small for a JSON object")
    if file_size is not None and 8 + n > file_size:
        raise CheckpointError(
            f"{where}: safetensors header length {n} runs past the end of the file ({file_size} bytes)"
        )
    return n


def _numel(shape: list[int]) -> int:
    return math.prod(shape) if shape else 1


def parse_header_bytes(
    header: bytes,
    *,
    where: str,
    data_size: int | None = None,
    file_name: str | None = None,
) -> tuple[dict[str, TensorInfo], dict | None]:
    """Validate and parse the JSON header (the N bytes after the length prefix).

    ``data_size`` is the size of the data section (file size - 8 - N) when known; offsets are
    then checked against it. ``file_name`` goes into ``TensorInfo.file``.
    Returns ``(tensors, __metadata__)``.
    """
    from .sources.strict_json import loads_object  # here, not at the top: sources imports this module

    obj = loads_object(header, where=where, err=CheckpointError, subject="safetensors header is ",
                       allow_bom=False)
    metadata = obj.get("__metadata__")
    if metadata is not None and not isinstance(metadata, dict):
        raise CheckpointError(f"{where}: __metadata__ is not an object")
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in obj.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = _tensor_entry(name, entry, where=where, data_size=data_size)
        tensors[name] = TensorInfo(name=name, dtype=dtype, shape=list(shape), file=file_name)
        spans.append((begin, end, name))
    _check_contiguous(spans, where)
    return tensors, metadata


def _tensor_entry(name: str, entry: object, *, where: str, data_size: int | None) -> tuple[str, list, list]:
    """``(dtype, shape, data_offsets)`` of one header entry, validated as the safetensors loader does."""
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: tensor {name!r} entry is not an object")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise CheckpointError(f"{where}: tensor {name!r} has no {'/'.join(missing)}")
    dtype, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise CheckpointError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int for d in shape):
        raise CheckpointError(f"{where}: tensor {name!r} shape {shape!r} is not a list of integers")
    if any(d < 0 for d in shape):
        raise CheckpointError(f"{where}: tensor {name!r} has a negative dimension in shape {shape}")
    if not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs):
        raise CheckpointError(f"{where}: tensor {name!r} data_offsets {offs!r} is not [begin, end]")
    begin, end = offs
    if begin < 0 or end < begin:
        raise CheckpointError(f"{where}: tensor {name!r} data_offsets {offs} are out of order")
    if data_size is not None and end > data_size:
        raise CheckpointError(
            f"{where}: tensor {name!r} data_offsets {offs} lie beyond the {data_size}-byte data section"
        )
    bits = _numel(shape) * DTYPE_BITS[dtype]
    if bits % 8 != 0 or end - begin != bits // 8:
        raise CheckpointError(
            f"{where}: tensor {name!r} data_offsets {offs} span {end - begin} bytes but "
            f"{dtype}{shape} needs {bits / 8:g}"
        )
    return dtype, shape, offs


def _check_contiguous(spans: list[tuple[int, int, str]], where: str) -> None:
    """Like the safetensors loader (0.8 ``Metadata::validate``): sorted by offset, every tensor
    starts where the previous one ended -- no overlaps, no gaps."""
    prev_end, prev_name = 0, None
    for begin, end, name in sorted(spans):
        if begin != prev_end:
            after = f"the end of {prev_name!r} ({prev_end})" if prev_name is not None else "the data section start (0)"
            raise CheckpointError(
                f"{where}: tensor {name!r} data_offsets [{begin}, {end}] "
                f"{'overlap' if begin < prev_end else 'leave a gap after'} {after}"
            )
        prev_end, prev_name = end, name


def read_local_header_ex(path: str | os.PathLike, *, file_name: str | None = None) -> HeaderResult:
    """Read and validate the header of a local safetensors file (never the data)."""
    path = Path(path)
    where = str(path)
    name = file_name if file_name is not None else path.name
    from .sources.strict_json import open_regular  # here, not at the top: sources imports this module

    f, size = open_regular(path, err=CheckpointError, where=where)
    with f:
        prefix = f.read(8)
        n = header_length(prefix, where=where, file_size=size)
        header = f.read(n)
        if len(header) != n:
            raise CheckpointError(f"{where}: file ended inside the {n}-byte safetensors header")
    tensors, metadata = parse_header_bytes(header, where=where, data_size=size - 8 - n, file_name=name)
    return HeaderResult(tensors=tensors, header_len=n, bytes_read=8 + n, metadata=metadata)


def read_local_header(path: str | os.PathLike, *, file_name: str | None = None) -> tuple[dict[str, TensorInfo], int]:
    """``(tensors, bytes_read)`` of a local safetensors file; see :func:`read_local_header_ex`."""
    r = read_local_header_ex(path, file_name=file_name)
    return r.tensors, r.bytes_read


def parse_header_from_bytes(
    data: bytes,
    *,
    where: str,
    file_size: int | None = None,
    file_name: str | None = None,
) -> HeaderResult:
    """Parse a header from the first bytes of a safetensors file (e.g. a Hub range read).

    ``data`` must start at byte 0 and hold at least ``8 + N`` bytes; ``file_size`` is the total
    file size when known (from ``Content-Range``), enabling the offset bounds check.
    """
    n = header_length(data, where=where, file_size=file_size)
    if len(data) < 8 + n:
        raise CheckpointError(
            f"{where}: got {len(data)} bytes, fewer than the {8 + n} the safetensors header needs"
        )
    data_size = None if file_size is None else file_size - 8 - n
    tensors, metadata = parse_header_bytes(data[8 : 8 + n], where=where, data_size=data_size, file_name=file_name)
    return HeaderResult(tensors=tensors, header_len=n, bytes_read=len(data), metadata=metadata)


def tensors_to_json(tensors: dict[str, TensorInfo]) -> dict:
    """Compact JSON form used by the on-disk header cache."""
    return {name: {"dtype": t.dtype, "shape": t.shape} for name, t in tensors.items()}


def tensors_from_json(obj: object, *, where: str, file_name: str | None) -> dict[str, TensorInfo]:
    """Inverse of :func:`tensors_to_json`, validating types (the cache file may be stale/hostile)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where}: cached header is not an object")
    out: dict[str, TensorInfo] = {}
    for name, e in obj.items():
        if (
            not isinstance(e, dict)
            or e.get("dtype") not in DTYPE_BITS
            or not isinstance(e.get("shape"), list)
            or not all(type(d) is int and d >= 0 for d in e["shape"])
        ):
            raise CheckpointError(f"{where}: cached header entry {name!r} is malformed")
        out[name] = TensorInfo(name=name, dtype=e["dtype"], shape=list(e["shape"]), file=file_name)
    return out
