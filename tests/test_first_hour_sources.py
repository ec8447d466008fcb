"""Issue 11, the source side of a new user's first hour: a Hub that never answers costs a bounded,
explained wait; typos get "did you mean"; bare catalog short names work; a pinned revision is
never answered silently from the catalog (which has no revisions)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from moe_inspect.errors import MoeInspectError
from moe_inspect.sources import DEADLINE_ENV, deadline_seconds, load_model

from .fuzz.harness import invoke
from .hub_server import FakeHub, isolate_hf

ROOT = Path(__file__).resolve().parents[1]


class BlackHole:
    """A TCP listener on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __enter__(self) -> "BlackHole":
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def __exit__(self, *exc) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


def detect(*args: str, limit: float = 60.0):
    """``moe-inspect detect`` in-process; the one-line error contract is checked on every run."""
    return invoke(["detect", *args], limit=limit)


def _error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


# ------------------------------------------------------------------ 1. a Hub that never answers
def test_default_deadline_fits_the_15_second_budget(monkeypatch):
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    # Python start-up plus the catalog answer take about a second on top of the deadline
    assert deadline_seconds() <= 12


def test_silent_hub_costs_the_deadline_then_the_catalog_answers(tmp_path):
    """The issue's repro, as a user runs it: a real process, a listener that never replies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", **{DEADLINE_ENV: "2"})
    with BlackHole() as hole:
        env["HF_ENDPOINT"] = hole.url
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "moe_inspect.cli.app", "detect", "deepseek-ai/DeepSeek-V3",
                            "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=40)
        wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert 2 <= wall < 12, wall  # the deadline, plus start-up; 407 s before the fix
    assert "Retrying in" not in r.stderr and "thrown while requesting" not in r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert out["model"]["source"] == "catalog"
    first = out["warnings"][0]
    assert f"{hole.url} did not answer within 2 s" in first
    for what in ("--offline", "HF_HUB_OFFLINE=1", "HF_ENDPOINT", DEADLINE_ENV):
        assert what in first, first


def test_silent_hub_reports_progress_after_a_second(tmp_path, monkeypatch):
    seen: list[tuple[float, str]] = []
    with BlackHole() as hole:
        isolate_hf(monkeypatch, tmp_path / "hf", endpoint=hole.url, hub_deadline=2.5)
        t0 = time.monotonic()
        with pytest.raises(Exception) as ei:
            load_model("org/some-moe", progress=lambda m: seen.append((time.monotonic() - t0, m)))
        wall = time.monotonic() - t0
    assert wall < 6, wall
    waits = [(t, m) for t, m in seen if m.startswith(f"waiting for {hole.url}")]
    assert waits and all(t >= 1.0 for t, _ in waits), seen
    assert "--offline" in waits[0][1]
    # the error says what to do, in one line
    msg = f"{ei.value.message} ({ei.value.hint})"
    assert "did not answer within 2.5 s" in msg and "--offline" in msg and "\n" not in msg, msg


def test_a_retry_wait_that_does_not_fit_the_deadline_is_not_taken(tmp_path, monkeypatch):
    """503 + Retry-After: 30 would make huggingface_hub sleep 31 s (then retry 5 times); within a
    10-second deadline the first answer ends the attempt, and the catalog answers."""
    with FakeHub() as hub:
        isolate_hf(monkeypatch, tmp_path / "hf", endpoint=hub.url, hub_deadline=None)  # the default
        hub.fault("config.json", status=503, headers={"Retry-After": "30"})
        f = load_model("deepseek-ai/DeepSeek-V3")
        config_requests = [r for r in hub.log if (r.filename or "").endswith("config.json")]
    assert f.ref.source == "catalog"
    assert "answered too slowly (HTTP 503): gave up after 10 s" in f.warnings[0], f.warnings[0]
    # the preflight HEAD (no retries) and hf_hub_download's HEAD: no retry after either
    assert len(config_requests) <= 2, [(r.method, r.path) for r in config_requests]


def test_a_moving_transfer_outlasts_the_deadline_but_a_trickle_does_not():
    """A slow link downloading a large index is not a silent Hub: time spent receiving a body at a
    useful rate does not count; a body trickling in does (and everything ends at 6x the deadline)."""
    from moe_inspect.sources.deadline import DeadlineExceeded, HubDeadline, _deadline_stream

    def body(chunk: int, gap: float, n: int):
        for _ in range(n):
            time.sleep(gap)
            yield b"x" * chunk

    moving = HubDeadline("http://hub", seconds=0.5)
    got = sum(len(c) for c in _deadline_stream(body(64 * 1024, 0.05, 20), moving))  # ~1 s at ~1 MB/s
    assert got == 20 * 64 * 1024
    trickle = HubDeadline("http://hub", seconds=0.5)
    with pytest.raises(DeadlineExceeded, match="too slowly"):
        for _ in _deadline_stream(body(1, 0.1, 20), trickle):  # 2 s at 10 bytes/s
            pass
    endless = HubDeadline("http://hub", seconds=0.2)
    with pytest.raises(DeadlineExceeded):
        for _ in _deadline_stream(body(64 * 1024, 0.02, 10**6), endless):  # moving, but past 6 x 0.2 s
            pass
    assert endless.elapsed() < 3


def test_bad_deadline_value_is_one_line(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf", hub_deadline=None)
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    r = detect("org/some-moe")
    assert r.exit_code == 2
    assert f"{DEADLINE_ENV}='soon'" in _error_line(r)


# ------------------------------------------------------------------ 4. typos get help
@pytest.mark.parametrize("offline", [True, False], ids=["offline", "hub-unreachable"])
@pytest.mark.parametrize("typo", ["DeepSeek-V33", "deepseek/DeepSeek-V3"])
def test_typo_offers_the_catalog_id_in_one_short_line(tmp_path, monkeypatch, typo, offline):
    isolate_hf(monkeypatch, tmp_path / "hf", offline=offline)  # endpoint: a closed port
    r = detect(typo)
    assert r.exit_code == 2
    line = _error_line(r)
    assert "did you mean deepseek-ai/DeepSeek-V3" in line, line
    assert len(line) < 200, line
    assert line.count("cannot reach") <= 1 and "tried" not in line, line


def test_typo_in_the_org_on_a_hub_that_says_404(tmp_path, monkeypatch):
    with FakeHub() as hub:
        isolate_hf(monkeypatch, tmp_path / "hf", endpoint=hub.url)
        r = detect("deepseek/DeepSeek-V3")
    line = _error_line(r)
    assert r.exit_code == 2
    assert "repository not found" in line and "did you mean deepseek-ai/DeepSeek-V3" in line, line


def test_bare_catalog_short_name_is_read_as_its_id_and_says_so(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf", offline=True)
    r = detect("DeepSeek-V3", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"]["id"] == "deepseek-ai/DeepSeek-V3"
    assert out["routing"]["method"] == "DeepSeekV3"
    assert any("DeepSeek-V3: read as deepseek-ai/DeepSeek-V3" in w for w in out["warnings"]), out["warnings"]


def test_ambiguous_or_unknown_short_name_is_not_guessed(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf", offline=True)
    with pytest.raises(MoeInspectError) as ei:
        load_model("Llama-3-8B")  # no catalog name ends like this
    assert ei.value.hint and "did you mean" not in ei.value.hint


# ------------------------------------------------------------------ 9. a pinned revision
def test_pinned_revision_offline_is_not_answered_from_the_catalog(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf", offline=True)
    r = detect("deepseek-ai/DeepSeek-V3", "--revision", "nonexistent", "--offline")
    assert r.exit_code == 2 and not r.stdout
    line = _error_line(r)
    assert "deepseek-ai/DeepSeek-V3@nonexistent" in line and "catalog has no revisions" in line, line
    assert "drop --revision" in line


def test_revision_main_offline_still_uses_the_catalog(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf", offline=True)
    r = detect("deepseek-ai/DeepSeek-V3", "--revision", "main", "--offline", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["model"]["source"] == "catalog"
