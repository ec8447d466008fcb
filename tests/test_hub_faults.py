"""Hub fault injection: every failure of the (local, fake) Hub ends in a clear one-line message or a
correct answer, after a bounded number of requests, and never leaves the HF cache holding a partial
file that a later run would trust.

Faults the shared ``tests/hub_server.FakeHub`` lacks (a connection reset before any response, a
wrong ``Content-Range``) are added by :class:`FaultyHub` below, a subclass, so the shared server is
left untouched.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import time
from pathlib import Path

import pytest

from .fuzz.harness import invoke
from .hub_server import FakeHub, _Handler, isolate_hf
from .modelgen import make_model_dir, moe_config, moe_tensors

REPO = "org/moe"


class FaultyHub(FakeHub):
    """FakeHub plus two faults: ``reset(pattern)`` drops the connection (RST) before answering;
    ``content_range(pattern, value)`` replaces the Content-Range header of 206 answers."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.extra: list[dict] = []

    def reset(self, pattern: str, *, times: int | None = None, method: str | None = None) -> None:
        self.extra.append({"kind": "reset", "pattern": pattern, "times": times, "method": method})

    def content_range(self, pattern: str, value: str, *, times: int | None = None) -> None:
        self.extra.append({"kind": "content_range", "pattern": pattern, "value": value, "times": times,
                           "method": None})

    def _take_extra(self, kind: str, method: str, path: str, filename: str | None) -> dict | None:
        import fnmatch

        with self._lock:
            for f in self.extra:
                if f["kind"] != kind or (f["method"] and f["method"] != method):
                    continue
                if f["times"] is not None and f["times"] <= 0:
                    continue
                if fnmatch.fnmatch(path, f["pattern"]) or (filename and fnmatch.fnmatch(filename, f["pattern"])):
                    if f["times"] is not None:
                        f["times"] -= 1
                    return f
        return None

    def start(self) -> "FaultyHub":
        hub = self

        class Handler(_Handler):
            _cr_value: str | None = None

            def _serve(self, method, path, repo_id, revision, filename, rng, cdn, entry):
                if hub._take_extra("reset", method, path, filename) is not None:
                    entry.status = 0  # no answer at all: RST on close
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                f = hub._take_extra("content_range", method, path, filename) if rng is not None else None
                self._cr_value = f["value"] if f else None
                super()._serve(method, path, repo_id, revision, filename, rng, cdn, entry)

            def send_header(self, keyword, value):
                if keyword == "Content-Range" and self._cr_value is not None:
                    value = self._cr_value
                super().send_header(keyword, value)

        Handler.hub = hub
        from http.server import ThreadingHTTPServer
        import threading

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that gave up (timeout, reset) is expected here, not news for stderr

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FaultyHub", daemon=True)
        self._thread.start()
        return self


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model_src(tmp_path_factory) -> Path:
    tensors = moe_tensors(layers=3, experts=8)
    return make_model_dir(tmp_path_factory.mktemp("hubsrc") / "src", moe_config(num_hidden_layers=3), tensors,
                          shards=3)


@pytest.fixture
def hub(tmp_path, monkeypatch, model_src):
    from huggingface_hub import constants

    with FaultyHub() as h:
        isolate_hf(monkeypatch, tmp_path / "hf_home", endpoint=h.url)
        # short timeouts so "slower than the timeout" costs little wall time
        monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 0.25)
        monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.25)
        # http_get sleeps 1 s before each of its 5 resume attempts: keep the count, drop the wait
        import types

        from huggingface_hub import file_download

        fake_time = types.SimpleNamespace(time=time.time, monotonic=time.monotonic, sleep=lambda s: None)
        monkeypatch.setattr(file_download, "time", fake_time)
        h.add_repo(REPO, model_src)
        h.home = tmp_path / "hf_home"
        yield h


def detect(*args: str, limit: float = 60.0):
    """Run ``moe-inspect detect`` in-process; the CLI contract is asserted on every run."""
    return invoke(["detect", *args], limit=limit)


def _gets(hub, pattern: str = "*") -> list:
    import fnmatch

    return [r for r in hub.log if fnmatch.fnmatch(r.filename or r.path, pattern)]


def _snapshot_state(home: Path) -> dict[str, str]:
    """Every regular file under HF_HOME (following the snapshot symlinks) -> sha256."""
    out = {}
    for p in sorted(home.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(home))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _assert_cache_trustworthy(hub, model_src: Path) -> None:
    """Every file a later run could trust is complete: snapshot files equal the repo's files;
    cached header JSON describes real shards; only ``.incomplete`` blobs may be partial."""
    home = hub.home
    for p in home.rglob("*"):
        if not p.is_file() and not p.is_symlink():
            continue
        rel = p.relative_to(home)
        if "snapshots" in rel.parts:
            assert p.is_file(), f"dangling snapshot link {rel}"
            original = model_src / p.name
            assert p.read_bytes() == original.read_bytes(), f"cache holds a partial/wrong {rel}"
        elif "headers" in rel.parts:
            obj = json.loads(p.read_text())
            assert obj["version"] >= 1 and obj["tensors"], rel
            shard = model_src / obj["file"]
            with open(shard, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
            assert obj["header_len"] == n, rel


def _clean_run_matches(hub, baseline: dict) -> None:
    """After the fault is gone, a new run gives exactly the fault-free answer."""
    hub.faults.clear()
    hub.extra.clear()
    r = detect(REPO, "--json")
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)
    for key in ("moe", "routing", "quantization"):
        assert got[key] == baseline[key], key


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, model_src):
    """The fault-free description, from a separate HF_HOME (computed once)."""
    with FakeHub() as h, pytest.MonkeyPatch.context() as mp:
        isolate_hf(mp, tmp_path_factory.mktemp("hf_home_baseline"), endpoint=h.url)
        h.add_repo(REPO, model_src)
        r = detect(REPO, "--json")
        assert r.exit_code == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture
def hub_b(baseline, hub):  # baseline first (its own env), then the faulty hub's env
    return hub


# ------------------------------------------------------------------------------------- tests
def test_repo_not_found_404(hub_b):
    r = detect("org/nope", "--no-catalog")
    assert r.exit_code == 2
    assert "org/nope: repository not found on" in r.stderr and "HTTP 404" in r.stderr
    assert len(hub_b.log) <= 3


def test_shard_missing_on_the_hub_404_is_a_warning(hub_b, baseline):
    hub_b.fault("*.safetensors", status=404, headers={"X-Error-Code": "EntryNotFound"})
    r = detect(REPO, "--json")
    assert r.exit_code == 0, r.stderr
    warnings = json.loads(r.stdout)["warnings"]
    assert any("the Hub has no such file" in w for w in warnings), warnings
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    _clean_run_matches(hub_b, baseline)


@pytest.mark.parametrize("status", [401, 403])
def test_gated_401_403(hub_b, status, baseline):
    hub_b.fault("*", status=status, headers={"X-Error-Code": "GatedRepo",
                                             "X-Error-Message": "Access to model org/moe is restricted."})
    r = detect(REPO, "--no-catalog")
    assert r.exit_code == 2
    assert "gated" in r.stderr and "HF_TOKEN" in r.stderr, r.stderr
    assert len(hub_b.log) <= 3, [x.path for x in hub_b.log]
    _clean_run_matches(hub_b, baseline)


def test_429_with_retry_after_is_retried_a_bounded_number_of_times(hub_b, baseline):
    hub_b.fault("config.json", status=429, headers={"Retry-After": "1"})
    r = detect(REPO, "--no-catalog", limit=30)
    assert r.exit_code == 2
    assert "HTTP 429" in r.stderr and "after retries" in r.stderr, r.stderr
    n = len(_gets(hub_b, "config.json"))
    assert 2 <= n <= 8, n  # retried, but not forever
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    _clean_run_matches(hub_b, baseline)


def test_429_once_then_success(hub_b, baseline):
    hub_b.fault("*.safetensors", status=429, headers={"Retry-After": "1"}, times=1)
    r = detect(REPO, "--json")
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["moe"] == baseline["moe"] and got["warnings"] == baseline["warnings"]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_config(hub_b, status, baseline, monkeypatch):
    from huggingface_hub import constants

    # not a timeout test: the fixture's 0.25 s metadata timeout fired under CI load and turned the
    # HTTP answer into a timeout (or an extra preflight try); every 5xx here is answered at once
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 10)
    hub_b.fault("config.json", status=status)
    r = detect(REPO, "--no-catalog", limit=30)
    assert r.exit_code == 2
    assert f"HTTP {status}" in r.stderr, r.stderr
    # bounded: our preflight HEAD (retried only on a timeout, at most PREFLIGHT_TRIES: under CI load the
    # 0.25 s test timeout can fire), then hf_hub_download's metadata HEAD once before resolving the commit
    # and 1 + 5 retries after (huggingface_hub 2.4 file_download.py:1117 and :1176, http_backoff max_retries=5)
    from moe_inspect.sources.hub import PREFLIGHT_TRIES

    assert 8 <= len(_gets(hub_b, "config.json")) <= PREFLIGHT_TRIES + 1 + 6
    _clean_run_matches(hub_b, baseline)


def test_5xx_on_header_read_names_the_file(hub_b, baseline):
    hub_b.fault("*.safetensors", status=503)
    r = detect(REPO, "--no-catalog", limit=30)
    assert r.exit_code == 2
    assert ".safetensors" in r.stderr and "503" in r.stderr, r.stderr
    assert len(_gets(hub_b, "*.safetensors")) <= 16
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    _clean_run_matches(hub_b, baseline)


@pytest.mark.parametrize("target", ["config.json", "model.safetensors.index.json", "*.safetensors"])
def test_connection_reset(hub_b, baseline, target):
    hub_b.reset(target)
    r = detect(REPO, "--no-catalog", limit=30)
    assert r.exit_code == 2, r.stdout
    assert r.stderr.startswith("error: ") and hub_b.url.split("//")[1] in r.stderr or "cannot reach" in r.stderr \
        or "connection" in r.stderr.lower(), r.stderr
    assert len(_gets(hub_b, target)) <= 16
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    _clean_run_matches(hub_b, baseline)


def test_connection_reset_once_is_retried(hub_b, baseline):
    hub_b.reset("*.safetensors", times=1)
    r = detect(REPO, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["moe"] == baseline["moe"]


@pytest.mark.parametrize("target", ["config.json", "*.safetensors"])
def test_slower_than_the_timeout(hub_b, baseline, target):
    hub_b.fault(target, delay=0.6)
    r = detect(REPO, "--no-catalog", limit=60)
    assert r.exit_code == 2, r.stdout
    assert "timed out" in r.stderr or "cannot reach" in r.stderr or "cannot fetch" in r.stderr, r.stderr
    assert r.wall < 40, r.wall
    assert len(_gets(hub_b, target)) <= 16
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    _clean_run_matches(hub_b, baseline)


@pytest.mark.parametrize("target", ["config.json", "model.safetensors.index.json"])
def test_truncated_metadata_download_never_poisons_the_cache(hub_b, baseline, target):
    hub_b.fault(target, truncate=10, method="GET")
    r = detect(REPO, "--no-catalog", limit=30)
    assert r.exit_code == 2, r.stdout
    assert len(_gets(hub_b, target)) <= 16
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    # the HF snapshot holds no truncated config/index a later (offline) run would read
    snap = list(hub_b.home.rglob(f"snapshots/*/{target}"))
    for p in snap:
        assert p.read_bytes() == (hub_b.repos[REPO].files["config.json"].parent / target).read_bytes()
    _clean_run_matches(hub_b, baseline)


def test_truncated_header_body_every_time(hub_b, baseline):
    hub_b.fault("/_cdn/*", truncate=20)
    r = detect(REPO, "--no-catalog", limit=30)
    assert r.exit_code == 2, r.stdout
    assert "connection broke" in r.stderr or "truncated" in r.stderr, r.stderr
    assert len(_gets(hub_b, "*.safetensors")) <= 16
    assert not list(hub_b.home.rglob("headers/**/*.json")), "a header from a truncated read was cached"
    _clean_run_matches(hub_b, baseline)


@pytest.mark.parametrize("value", ["bytes 5-7/100", "bytes 0-7/4", "garbage", "bytes 0-7/*", "bytes */100"])
def test_wrong_content_range(hub_b, baseline, value):
    hub_b.content_range("/_cdn/*", value)
    r = detect(REPO, "--no-catalog", "--json", limit=30)
    assert r.exit_code in (0, 2), r.stderr
    if r.exit_code == 2:
        assert "Content-Range" in r.stderr or "safetensors header" in r.stderr, r.stderr
    else:  # an answer that could still be checked (unknown total size): it must be the true one
        assert json.loads(r.stdout)["moe"] == baseline["moe"]
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    _clean_run_matches(hub_b, baseline)


@pytest.mark.parametrize("target", ["config.json", "*.safetensors"])
def test_redirect_loop(hub_b, baseline, target):
    if target == "config.json":
        path = f"/{REPO}/resolve/main/config.json"
        hub_b.fault(path, status=302, headers={"Location": path})
    else:
        hub_b.fault("/_cdn/*", status=302, headers={"Location": "/_cdn/loop/org/moe/-/x.safetensors"})
    r = detect(REPO, "--no-catalog", limit=30)
    assert r.exit_code == 2, r.stdout
    assert len(hub_b.log) <= 60, len(hub_b.log)
    _assert_cache_trustworthy(hub_b, hub_b.repos[REPO].files["config.json"].parent)
    _clean_run_matches(hub_b, baseline)


def test_unreachable_hub_falls_back_to_the_catalog_with_a_warning(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf", endpoint="http://127.0.0.1:9")
    r = detect("deepseek-ai/DeepSeek-V3", "--json")
    assert r.exit_code == 0, r.stderr
    assert any("catalog snapshot" in w for w in json.loads(r.stdout)["warnings"])
