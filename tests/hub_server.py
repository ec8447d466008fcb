"""A local fake of the Hugging Face Hub, enough for huggingface_hub 2.4 (``HF_ENDPOINT=...``).

Speaks the parts of the protocol that ``hf_hub_download`` / ``get_hf_file_metadata`` and
range reads use (read from huggingface_hub 2.4 ``file_download.py`` and ``utils/_http.py``):

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``: 200 with ``X-Repo-Commit``,
  ``ETag`` (+ ``X-Linked-Etag``/``X-Linked-Size`` for LFS files), ``Content-Length``,
  ``Accept-Ranges``; ``Range: bytes=a-b`` -> 206 + ``Content-Range: bytes a-b/total``.
  LFS files (``*.safetensors`` by default) answer with a 302 to ``/_cdn/...`` on the same
  server, like the real Hub's redirect to its CDN; the 302 carries the linked etag/size.
* ``GET /api/models/{repo_id}`` and ``/api/models/{repo_id}/revision/{rev}``: model info with
  ``sha`` and ``siblings``.
* errors: unknown repo -> 404 ``X-Error-Code: RepoNotFound``; unknown revision -> 404
  ``RevisionNotFound``; unknown file -> 404 ``EntryNotFound`` (with ``X-Repo-Commit``); gated
  repos -> 401/403 ``X-Error-Code: GatedRepo``.
* faults per path: status, extra headers, delay, truncated body, ignored Range, a number of times.
* a request log (method, path, filename, range, status, body bytes sent) for assertions.

Usage::

    with FakeHub() as hub:
        hub.add_repo("org/model", "/path/to/model_dir")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_CHUNK = 1 << 16


@dataclass
class Repo:
    repo_id: str
    files: dict[str, bytes | Path]
    commit: str
    revisions: dict[str, str]  # branch/tag -> commit
    gated: int | None = None  # 401 / 403 when gated
    lfs_patterns: tuple[str, ...] = ("*.safetensors", "*.bin")


@dataclass
class Fault:
    pattern: str  # fnmatch against the request path (e.g. "*/config.json") or the file name
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: int | None = None  # send only this many body bytes, then close the connection
    times: int | None = None  # None: forever
    method: str | None = None
    body: bytes | None = None
    ignore_range: bool = False  # answer 200 with the whole body, like a server without Range support

    def matches(self, method: str, path: str, filename: str | None) -> bool:
        if self.method and self.method != method:
            return False
        if self.times is not None and self.times <= 0:
            return False
        return fnmatch.fnmatch(path, self.pattern) or (
            filename is not None and fnmatch.fnmatch(filename, self.pattern)
        )


@dataclass
class LoggedRequest:
    method: str
    path: str
    repo_id: str | None
    revision: str | None
    filename: str | None
    range: tuple[int, int | None] | None
    status: int
    body_bytes: int  # bytes of body actually sent
    headers: dict[str, str] = field(default_factory=dict)


def _commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class FakeHub:
    def __init__(self, *, lfs_redirect: bool = True):
        self.repos: dict[str, Repo] = {}
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self.lfs_redirect = lfs_redirect
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ setup
    def add_repo(
        self,
        repo_id: str,
        files: str | Path | dict[str, bytes | str | Path],
        *,
        commit: str | None = None,
        revisions: dict[str, str] | None = None,
        gated: int | None = None,
    ) -> Repo:
        """Serve ``files`` (a directory, or name -> bytes/str/Path) as ``repo_id``."""
        if isinstance(files, (str, Path)):
            root = Path(files)
            fmap: dict[str, bytes | Path] = {
                str(p.relative_to(root)).replace("\\", "/"): p for p in sorted(root.rglob("*")) if p.is_file()
            }
        else:
            fmap = {k: (v.encode() if isinstance(v, str) else v) for k, v in files.items()}
        commit = commit or _commit_of(repo_id)
        revs = {"main": commit}
        revs.update(revisions or {})
        repo = Repo(repo_id, fmap, commit, revs, gated)
        self.repos[repo_id] = repo
        return repo

    def fault(self, pattern: str, **kw) -> Fault:
        f = Fault(pattern, **kw)
        self.faults.append(f)
        return f

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # ------------------------------------------------------------------ queries for tests
    def requests(self, filename: str | None = None, method: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [
                r for r in self.log
                if (filename is None or r.filename == filename or fnmatch.fnmatch(r.filename or "", filename))
                and (method is None or r.method == method)
            ]

    def files_read(self, method: str = "GET") -> list[str]:
        """Distinct file names with a body-carrying ``method`` request, in first-request order."""
        seen: list[str] = []
        for r in self.requests(method=method):
            if r.filename and r.status < 400 and r.filename not in seen and r.status not in (301, 302, 307):
                seen.append(r.filename)
        return seen

    def body_bytes(self, filename: str | None = None) -> int:
        return sum(r.body_bytes for r in self.requests(filename))

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FakeHub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _take_fault(self, method: str, path: str, filename: str | None) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.matches(method, path, filename):
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.log.append(entry)


def _size(data: bytes | Path) -> int:
    return len(data) if isinstance(data, bytes) else data.stat().st_size


def _etag(repo: Repo, name: str, data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha256(f"{repo.commit}/{name}/{_size(data)}".encode()).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_HEAD(self):
        self._handle("HEAD")

    def do_GET(self):
        self._handle("GET")

    # --------------------------------------------------------------
    def _handle(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        repo_id = revision = filename = None
        rng: tuple[int, int | None] | None = None
        rng_header = self.headers.get("Range")
        if rng_header:
            m = _RANGE.match(rng_header)
            if m and (m.group(1) or m.group(2)):
                start = int(m.group(1)) if m.group(1) else None
                end = int(m.group(2)) if m.group(2) else None
                rng = (start if start is not None else -(end or 0), end if start is not None else None)
        cdn = False
        if path.startswith("/_cdn/"):
            # /_cdn/{commit}/{repo_id}/-/{filename}
            cdn = True
            rest = path[len("/_cdn/"):]
            revision, _, rest = rest.partition("/")
            repo_id, _, filename = rest.partition("/-/")
        elif "/resolve/" in path:
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            revision, _, filename = rest.partition("/")
        elif path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            if "/revision/" in rest:
                repo_id, _, revision = rest.partition("/revision/")
            else:
                repo_id, revision = rest.rstrip("/"), "main"
        entry = LoggedRequest(method, path, repo_id, revision, filename, rng, 0, 0,
                              {k: v for k, v in self.headers.items()})
        try:
            self._serve(method, path, repo_id, revision, filename, rng, cdn, entry)
        finally:
            self.hub._record(entry)

    def _send(self, entry: LoggedRequest, status: int, headers: dict[str, str], body: bytes = b"",
              *, method: str = "GET") -> None:
        entry.status = status
        self.send_response(status)
        headers = dict(headers)
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)
            entry.body_bytes += len(body)

    def _error(self, entry, method, status, code: str | None, message: str, extra: dict | None = None):
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        headers["X-Error-Message"] = message
        headers.update(extra or {})
        self._send(entry, status, headers, json.dumps({"error": message}).encode(), method=method)

    def _serve(self, method, path, repo_id, revision, filename, rng, cdn, entry) -> None:
        hub = self.hub
        fault = hub._take_fault(method, path, filename)
        if fault is not None and fault.delay:
            threading.Event().wait(fault.delay)
        if fault is not None and fault.status is not None:
            body = fault.body if fault.body is not None else json.dumps({"error": f"fault {fault.status}"}).encode()
            self._send(entry, fault.status, {"Content-Type": "application/json", **fault.headers}, body, method=method)
            return

        repo = hub.repos.get(repo_id or "")
        if repo is None:
            self._error(entry, method, 404, "RepoNotFound", "Repository not found")
            return
        if repo.gated and not cdn:
            self._error(entry, method, repo.gated, "GatedRepo",
                        "Access to model is restricted. You must have access to it and be authenticated to access it.")
            return
        commit = repo.revisions.get(revision or "main") or (revision if revision in repo.revisions.values() else None)
        if commit is None:
            self._error(entry, method, 404, "RevisionNotFound", "Invalid rev id: " + str(revision))
            return

        if path.startswith("/api/models/"):
            info = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": commit, "private": False,
                    "gated": False, "siblings": [{"rfilename": n} for n in sorted(repo.files)]}
            self._send(entry, 200, {"Content-Type": "application/json"}, json.dumps(info).encode(), method=method)
            return

        data = repo.files.get(filename or "")
        if data is None:
            self._error(entry, method, 404, "EntryNotFound", f"{filename} does not exist on \"{revision}\"",
                        {"X-Repo-Commit": commit})
            return

        size = _size(data)
        etag = _etag(repo, filename, data)
        is_lfs = any(fnmatch.fnmatch(filename, p) for p in repo.lfs_patterns)
        base = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if is_lfs:
            base["X-Linked-Etag"] = f'"{etag}"'
            base["X-Linked-Size"] = str(size)
        if fault is not None:
            base.update(fault.headers)

        if is_lfs and hub.lfs_redirect and not cdn:
            loc = f"/_cdn/{commit}/{repo.repo_id}/-/{filename}"
            self._send(entry, 302, {**base, "Location": loc, "ETag": f'"{etag[:40]}"'}, b"", method=method)
            return

        status = 200
        start, end = 0, size - 1
        headers = {**base, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        if fault is not None and fault.ignore_range:
            rng = None
        if rng is not None:
            s, e = rng
            if s < 0:  # suffix range bytes=-N
                start, end = max(0, size + s), size - 1
            else:
                start, end = s, min(size - 1, e if e is not None else size - 1)
            if start >= size or start > end:
                self._send(entry, 416, {**base, "Content-Range": f"bytes */{size}"}, b"", method=method)
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        headers["Content-Length"] = str(length)
        entry.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method == "HEAD" or length == 0:
            return
        limit = length if fault is None or fault.truncate is None else min(length, fault.truncate)
        sent = 0
        try:
            if isinstance(data, bytes):
                chunk = data[start:start + limit]
                self.wfile.write(chunk)
                sent = len(chunk)
            else:
                with open(data, "rb") as f:
                    f.seek(start)
                    while sent < limit:
                        buf = f.read(min(_CHUNK, limit - sent))
                        if not buf:
                            break
                        self.wfile.write(buf)
                        sent += len(buf)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (a bounded reader closing early)
        finally:
            entry.body_bytes = sent
        if sent < length:
            self.close_connection = True


def isolate_hf(monkeypatch, home, *, endpoint: str | None = None, offline: bool = False,
               fast_retries: bool = True, hub_deadline: float | None = 120) -> None:
    """Point huggingface_hub at ``home`` (HF_HOME) and ``endpoint``; no real token, no real cache.

    huggingface_hub 2.4 reads HF_HOME / HF_HUB_CACHE / HF_ENDPOINT / HF_HUB_OFFLINE into
    ``huggingface_hub.constants`` at import time, so both the environment and the constants are
    patched. ``fast_retries`` makes huggingface_hub's backoff sleeps instant (the retry COUNT is
    unchanged: 5xx still costs 1 + 5 requests). ``hub_deadline`` sets MOE_INSPECT_HUB_DEADLINE:
    generous by default, so a loaded machine never turns a fault test (which counts retries and
    checks messages) into a deadline answer; tests of the deadline itself set their own.
    """
    import types
    from pathlib import Path as _P

    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    home = _P(home)
    cache = home / "hub"
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                "TRANSFORMERS_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", bool(offline))
    # huggingface_hub 2.4 builds its user agent with detect_agent(), which GETs
    # {ENDPOINT}/api/agent-harnesses once a day unless telemetry is disabled: keep request logs clean.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if hub_deadline is None:
        monkeypatch.delenv("MOE_INSPECT_HUB_DEADLINE", raising=False)
    else:
        monkeypatch.setenv("MOE_INSPECT_HUB_DEADLINE", str(hub_deadline))
    ep = endpoint or "http://127.0.0.1:9"  # discard port: nothing listens
    monkeypatch.setenv("HF_ENDPOINT", ep)
    monkeypatch.setattr(constants, "ENDPOINT", ep)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", ep + "/{repo_id}/resolve/{revision}/{filename}")
    if fast_retries:
        fake_time = types.SimpleNamespace(**{k: getattr(__import__("time"), k) for k in ("time", "monotonic")})
        fake_time.sleep = lambda s: None
        monkeypatch.setattr(_http, "time", fake_time)
