"""The one strict JSON reader for files other people wrote (configs, indexes, safetensors headers).

Bounded and one-line: the size is judged before a byte is read (files), the text must be UTF-8,
nesting depth and integer literals are bounded by Python's own limits (``RecursionError``,
the 4300-digit int conversion limit), and the top level must be an object. Every failure is
raised as the caller's error class with ``where`` (a path or a Hub file name) first.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ..errors import MoeInspectError

#: Metadata JSON files larger than this are refused (real configs are < 100 kB, indexes < 10 MB).
MAX_JSON_BYTES = 64_000_000


def json_type(v: object) -> str:
    """JSON's name for the type of a decoded value ("array", "string", ...)."""
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(v), type(v).__name__)


def loads_object(raw: bytes, *, where: str, err: type[MoeInspectError], subject: str = "",
                 allow_bom: bool = True) -> dict:
    """Decode ``raw`` as a UTF-8 JSON object; ``subject`` prefixes the complaint
    (e.g. ``"safetensors header is "``). A BOM is accepted only where ``allow_bom``
    (config files written on Windows; a safetensors header never has one)."""
    try:
        text = raw.decode("utf-8-sig" if allow_bom else "utf-8")
    except UnicodeDecodeError as e:
        raise err(f"{where}: {subject}not UTF-8 text (byte {e.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise err(f"{where}: {subject}not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise err(f"{where}: {subject}not valid JSON (nested too deeply)") from None
    except ValueError:  # an integer literal over Python's 4300-digit conversion limit
        raise err(f"{where}: {subject}not valid JSON (a number literal is too long)") from None
    if not isinstance(obj, dict):
        raise err(f"{where}: {subject or 'top level is '}a JSON {json_type(obj)}, not an object")
    return obj


def open_regular(path: Path, *, err: type[MoeInspectError], where: str):
    """``(file, size)``: ``path`` opened for binary reading, following symlinks only to regular
    files (the HF cache is symlinks into ``blobs/``). The type is judged before opening (a FIFO
    would block, ``/dev/zero`` never ends) and again on the opened descriptor (the path may have
    been swapped in between). Every failure is one line, raised as ``err`` with ``where`` first."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise err(f"{where}: a dangling symlink (its target is missing)") from None
        raise err(f"{where}: no such file") from None
    except OSError as e:
        raise err(f"{where}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise err(f"{where}: not a regular file")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise err(f"{where}: cannot read ({e.strerror})") from None
    fst = os.fstat(f.fileno())
    if not stat.S_ISREG(fst.st_mode):
        f.close()
        raise err(f"{where}: not a regular file")
    return f, fst.st_size


def read_json_file(path: Path, *, err: type[MoeInspectError], what: str) -> dict:
    """Read a JSON object from ``path`` (opened by :func:`open_regular`) of at most
    :data:`MAX_JSON_BYTES`, judged before a byte is read."""
    where = str(path)
    f, size = open_regular(path, err=err, where=where)
    with f:
        if size > MAX_JSON_BYTES:
            raise err(f"{where}: {size} bytes is too large for a {what}")
        try:
            raw = f.read(MAX_JSON_BYTES + 1)
        except OSError as e:
            raise err(f"{where}: cannot read ({e.strerror})") from None
    if len(raw) > MAX_JSON_BYTES:  # it grew after the size was judged
        raise err(f"{where}: more than {MAX_JSON_BYTES} bytes is too large for a {what}")
    return loads_object(raw, where=where, err=err)
