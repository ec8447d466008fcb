"""Shared machinery of the fuzz suites: the CLI contract, a per-case time bound, a read meter.

The contract every ``detect`` / ``check`` / ``verify`` run must keep, whatever the input:

* exit code 0, 1 or 2 (never a crash, never another code);
* no ``Traceback`` anywhere in the output, and no exception escaping the command other than
  ``SystemExit``;
* exit 2 means exactly ONE line on stderr starting with ``error:`` — and not the catch-all
  ``error: internal error: ...`` line, which only a bug in moe-inspect produces;
  (``verify`` may also exit 2 with a printed "cannot_verify" result: that is its documented code)
* ``--json`` output on exit 0/1 is strict JSON (no NaN/Infinity literals);
* the run ends within a bounded time (a SIGALRM timer raises :class:`CaseTimeout`).

Commands run in-process through Click's runner on a Click command built ONCE from the Typer app
(rebuilding it per call costs ~10 ms, more than the command itself).
"""

from __future__ import annotations

import builtins
import collections
import io
import json
import mmap
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

#: family -> number of generated cases run (printed by the fuzz conftest at the end of the session)
COUNTS: collections.Counter = collections.Counter()
#: family -> exit-code histogram, e.g. {"config_mutated": Counter({2: 1700, 0: 1300})}
EXITS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

#: MOE_FUZZ_SCALE=0.1 runs a tenth of the cases (local iteration); CI runs the full counts.
SCALE = float(os.environ.get("MOE_FUZZ_SCALE", "1"))


def n_cases(base: int) -> int:
    return max(1, int(base * SCALE))


#: Default bound on one in-process detect/check run (seconds). A normal run takes ~5 ms.
CASE_LIMIT_S = 5.0
#: Bound on one verify run (imports torch/transformers, builds a router: ~0.4 s).
VERIFY_LIMIT_S = 30.0


class CaseTimeout(BaseException):
    """Raised by the timer when one case runs too long (a BaseException: no ``except Exception``
    inside moe-inspect can swallow it and turn it into an exit code)."""


@contextmanager
def time_limit(seconds: float):
    def _fire(signum, frame):
        raise CaseTimeout(f"case ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_COMMAND = None
_RUNNER = CliRunner()


def command():
    global _COMMAND
    if _COMMAND is None:
        import typer.main

        from moe_inspect.cli.app import app

        _COMMAND = typer.main.get_command(app)
    return _COMMAND


def _forbid_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name} in --json output")


def check_contract(result, args: list[str], *, verify: bool = False) -> None:
    """Assert the contract above on a Click ``Result``; the message shows the command line."""
    where = f"moe-inspect {' '.join(map(str, args))}"
    out, err = result.stdout, result.stderr
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        pytest.fail(f"{where}: exception escaped the command:\n{tb}")
    assert result.exit_code in (0, 1, 2), f"{where}: exit {result.exit_code}\nstdout={out[-2000:]}\nstderr={err[-2000:]}"
    assert "Traceback" not in out and "Traceback" not in err, f"{where}: traceback in output:\n{out[-3000:]}{err[-3000:]}"
    assert "internal error" not in err, f"{where}: a bug reached the catch-all handler: {err.strip()}"
    if result.exit_code == 2:
        if verify and "--json" in args and out.strip():
            data = json.loads(out, parse_constant=_forbid_constant)
            assert data.get("verdict") == "cannot_verify", f"{where}: exit 2 with verdict {data.get('verdict')!r}"
            return
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{where}: exit 2 stderr is not one error line: {err!r}"
    elif "--json" in args:
        try:
            json.loads(out, parse_constant=_forbid_constant)
        except ValueError as e:
            pytest.fail(f"{where}: --json output is not strict JSON ({e}): {out[:500]!r}")


def run_cli(args: list[str], *, family: str, limit: float | None = None) -> object:
    """Run one command in-process under the time bound and check the contract."""
    args = [str(a) for a in args]
    if limit is None:
        limit = VERIFY_LIMIT_S if bool(args) and args[0] == "verify" else CASE_LIMIT_S
    COUNTS[family] += 1
    return invoke(args, limit=limit, record=EXITS[family])


def invoke(args: list[str], *, limit: float = 60.0, record: collections.Counter | None = None) -> object:
    """``moe-inspect ARGS`` in-process (the whole application) under a time bound; the contract above is
    asserted on every run. ``result.wall``: seconds it took. ``record`` counts exit codes (fuzz stats)."""
    args = [str(a) for a in args]
    t0 = time.monotonic()
    with time_limit(limit):
        result = _RUNNER.invoke(command(), args, catch_exceptions=True)
    result.wall = time.monotonic() - t0
    if record is not None:
        record[result.exit_code] += 1
    check_contract(result, args, verify=bool(args) and args[0] == "verify")
    return result


# --------------------------------------------------------------------------------- read meter
class ReadMeter:
    """Bytes handed to the program from each ``*.safetensors`` file it opened."""

    def __init__(self) -> None:
        self.bytes = collections.Counter()  # real path -> bytes returned by read calls
        self.mapped: list[str] = []  # files that were mmap'ed (a mapping can read anything)

    def add(self, key: str, n: int) -> None:
        self.bytes[key] += n


def _key(file) -> str | None:
    if isinstance(file, int):
        return None
    try:
        p = os.fspath(file)
    except TypeError:
        return None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p.endswith(".safetensors"):
        return None
    return os.path.realpath(p)


class _CountingFile:
    """Delegates to a real binary file object, counting the bytes every read returns."""

    def __init__(self, f, key: str, meter: ReadMeter):
        self._f, self._key, self._meter = f, key, meter

    def _n(self, data):
        if data is not None:
            self._meter.add(self._key, len(data))
        return data

    def read(self, *a):
        return self._n(self._f.read(*a))

    def read1(self, *a):
        return self._n(self._f.read1(*a))

    def readline(self, *a):
        return self._n(self._f.readline(*a))

    def readlines(self, *a):
        lines = self._f.readlines(*a)
        for line in lines:
            self._n(line)
        return lines

    def readinto(self, b):
        n = self._f.readinto(b)
        self._meter.add(self._key, n or 0)
        return n

    def readinto1(self, b):
        n = self._f.readinto1(b)
        self._meter.add(self._key, n or 0)
        return n

    def __iter__(self):
        for line in self._f:
            yield self._n(line)

    def __enter__(self):
        self._f.__enter__()
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


def proc_rchar() -> int | None:
    """Bytes this process has read through read(2)-like syscalls (Linux), for a backstop check."""
    try:
        with builtins.open("/proc/self/io", "rb") as f:
            for line in f:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@contextmanager
def meter_safetensors_reads(monkeypatch_ctx):
    """Patch ``open``/``io.open``/``os.open``+``os.read``/``mmap`` to meter ``*.safetensors`` reads."""
    meter = ReadMeter()
    real_open = builtins.open
    real_os_open, real_os_read, real_pread = os.open, os.read, getattr(os, "pread", None)
    real_mmap = mmap.mmap
    fds: dict[int, str] = {}

    def fake_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        key = _key(file)
        if key is not None and "b" in mode and not any(c in mode for c in "wax+"):
            return _CountingFile(f, key, meter)
        if key is not None and "b" not in mode:
            return _CountingFile(f, key, meter)  # text reads count characters: still bounded
        return f

    def fake_os_open(path, flags, *a, **k):
        fd = real_os_open(path, flags, *a, **k)
        key = _key(path)
        if key is not None:
            fds[fd] = key
        return fd

    def fake_os_read(fd, n):
        data = real_os_read(fd, n)
        if fd in fds:
            meter.add(fds[fd], len(data))
        return data

    def fake_pread(fd, n, off):
        data = real_pread(fd, n, off)
        if fd in fds:
            meter.add(fds[fd], len(data))
        return data

    class FakeMmap(real_mmap):  # type: ignore[misc, valid-type]
        def __new__(cls, fileno, *a, **k):
            key = fds.get(fileno)
            if key is None:
                try:
                    key = _key(os.readlink(f"/proc/self/fd/{fileno}"))
                except OSError:
                    key = None
            if key is not None:
                meter.mapped.append(key)
            return real_mmap.__new__(cls, fileno, *a, **k)

    monkeypatch_ctx.setattr(builtins, "open", fake_open)
    monkeypatch_ctx.setattr(io, "open", fake_open)
    monkeypatch_ctx.setattr(os, "open", fake_os_open)
    monkeypatch_ctx.setattr(os, "read", fake_os_read)
    if real_pread is not None:
        monkeypatch_ctx.setattr(os, "pread", fake_pread)
    monkeypatch_ctx.setattr(mmap, "mmap", FakeMmap)
    try:
        yield meter
    finally:
        monkeypatch_ctx.undo()


def header_len_of(path: Path) -> int | None:
    """The declared header length N of a file (None when shorter than 8 bytes)."""
    with builtins.open(path, "rb") as f:
        b = f.read(8)
    if len(b) < 8:
        return None
    return int.from_bytes(b, "little")


def assert_header_only(meter: ReadMeter, files: list[Path], *, where: str) -> None:
    """Every metered ``*.safetensors`` file gave at most 8 + min(N, file size - 8) bytes."""
    assert not meter.mapped, f"{where}: safetensors file(s) were mmap'ed: {meter.mapped}"
    for p in files:
        key = os.path.realpath(p)
        got = meter.bytes.get(key, 0)
        if not got:
            continue
        n = header_len_of(p)
        size = os.path.getsize(p)
        bound = 8 + min(n or 0, max(size - 8, 0))
        assert got <= bound, f"{where}: read {got} bytes of {p.name} but its header ends at byte {bound}"
    unknown = [k for k in meter.bytes if k not in {os.path.realpath(p) for p in files}]
    for k in unknown:  # a safetensors file the case did not create (e.g. through a symlink): still bounded
        n = header_len_of(Path(k))
        size = os.path.getsize(k)
        bound = 8 + min(n or 0, max(size - 8, 0))
        assert meter.bytes[k] <= bound, f"{where}: read {meter.bytes[k]} bytes of {k}, header ends at {bound}"
