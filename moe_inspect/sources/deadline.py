"""A total deadline for everything one Hub attempt sends, huggingface_hub's own retries included.

Why: huggingface_hub 2.4 retries a metadata HEAD that timed out with a 60 s timeout and 5 retries
(``file_download.py`` ``_ETAG_RETRY_TIMEOUT = 60``, ``hf_hub_download`` → ``_get_metadata_or_catch_error(
retry_on_errors=True)``; ``utils/_http.py`` ``_http_backoff_base``: ``max_retries=5``, sleeps 1, 2, 4, 8, 8 s,
``Retry-After + 1`` on 429). A Hub that accepts connections but never answers cost 407 s before
the catalog answer, with only raw "Retrying in 8s" log lines to look at.

How: huggingface_hub sends every request through one shared ``httpx2.Client`` built by its
client factory (``set_client_factory``, public API). We wrap the factory once so each client
carries two event hooks. While a :class:`HubDeadline` is active they

- refuse a request once the deadline has passed (:class:`DeadlineExceeded` is not an httpx
  error, so huggingface_hub neither retries nor wraps it);
- cap each request's connect/read/write/pool timeouts at the time left;
- give up at once on a retryable answer (408/429/5xx) when the wait huggingface_hub would take
  before its next try (``Retry-After + 1``, else its backoff 1, 2, 4, 8, 8 s) does not fit;
- stop a body that keeps trickling past the deadline. Time spent receiving a body at a useful
  rate (:data:`MIN_RATE`) is not counted, up to :data:`HARD_CAP_FACTOR` times the deadline in all,
  so a slow link can still download a large index while a silent or trickling Hub cannot hold on.

Outside a :class:`HubDeadline` the hooks do nothing. While one is active, huggingface_hub's
retry chatter ("Retrying in 8s") is kept off stderr (unless its logging is set to INFO/DEBUG) and
``progress`` gets a "waiting for …" line every second once a request has gone unanswered for a
second. The deadline is ``MOE_INSPECT_HUB_DEADLINE`` seconds (default :data:`DEFAULT_DEADLINE_S`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from ..errors import BadInputError
from .failures import DEADLINE_ENV

#: Default total seconds for one Hub attempt. With Python's start-up and the catalog answer, a Hub
#: that never answers costs < 15 s in total (the budget of issue 11).
DEFAULT_DEADLINE_S = 10.0
#: A body arriving at least this fast (bytes/s) is a transfer in progress, not a wait: its time
#: does not count against the deadline ...
MIN_RATE = 32 * 1024
#: ... up to this multiple of the deadline in total (a slow but moving link still ends).
HARD_CAP_FACTOR = 6
#: Seconds without an answer before ``progress`` hears about it.
PROGRESS_AFTER_S = 1.0
#: huggingface_hub 2.4 ``_http_backoff_base``: base_wait_time=1, max_wait_time=8, doubling.
_HF_BACKOFF = (1.0, 2.0, 4.0, 8.0)
_RETRYABLE = (408, 429, 500, 502, 503, 504)  # _DEFAULT_RETRY_ON_STATUS_CODES
_NOISY_LOGGERS = ("huggingface_hub.utils._http", "huggingface_hub.file_download")


def deadline_seconds() -> float:
    """``MOE_INSPECT_HUB_DEADLINE`` as seconds (> 0), or the default."""
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return DEFAULT_DEADLINE_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 < value < 1e6):
        raise BadInputError(f"{DEADLINE_ENV}={raw!r}: expected a number of seconds > 0")
    return value


class DeadlineExceeded(Exception):
    """The Hub attempt ran out of time (deliberately not an httpx error: never retried)."""

    def __init__(self, deadline: HubDeadline, why: str | None = None):
        self.seconds = deadline.seconds
        self.endpoint = deadline.endpoint
        self.answered = deadline.answered
        self.why = why or deadline.last_failure
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.answered:
            return f"{self.endpoint} did not answer within {self.seconds:g} s"
        why = f" ({self.why})" if self.why else ""
        return f"{self.endpoint} answered too slowly{why}: gave up after {self.seconds:g} s"


_ACTIVE: HubDeadline | None = None
_FACTORY = None  # the factory we installed
_MISSING = object()
_LOCK = threading.Lock()


def _deadline_stream(inner, deadline: HubDeadline):
    """A response body that stops once the deadline has passed (a trickling server)."""
    from .hub_errors import httpx_module

    class DeadlineStream(httpx_module().SyncByteStream):
        def __iter__(self):
            last = time.monotonic()
            for chunk in inner:
                now = time.monotonic()
                deadline.received(len(chunk), now - last)
                last = now
                if deadline.remaining() <= 0:
                    raise DeadlineExceeded(deadline, "the body arrived too slowly")
                yield chunk

        def close(self) -> None:
            inner.close()

    return DeadlineStream()


def _on_request(request) -> None:
    dl = _ACTIVE
    if dl is not None:
        dl.before_request(request)


def _on_response(response) -> None:
    dl = _ACTIVE
    if dl is not None:
        dl.after_response(response)


def _install_hooks() -> None:
    """Wrap huggingface_hub's client factory so every client it builds has our hooks; again if
    someone set another factory since (``set_client_factory`` is public API)."""
    global _FACTORY
    with _LOCK:
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils import _http

        previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _MISSING)
        if _FACTORY is not None and previous in (_FACTORY, _MISSING):
            return
        if previous is _MISSING:
            previous = _http.default_client_factory

        def factory():
            client = previous()
            hooks = client.event_hooks
            client.event_hooks = {"request": [*hooks.get("request", []), _on_request],
                                  "response": [*hooks.get("response", []), _on_response]}
            return client

        set_client_factory(factory)
        _FACTORY = factory


class HubDeadline:
    """``with HubDeadline(endpoint, progress):`` bounds every Hub request made inside."""

    def __init__(self, endpoint: str, progress: Callable[[str], None] | None = None,
                 seconds: float | None = None):
        self.endpoint = endpoint
        self.seconds = deadline_seconds() if seconds is None else seconds
        self.progress = progress
        self.answered = False
        self.last_failure: str | None = None
        self._credit = 0.0  # seconds of moving transfers, not counted
        self._start = time.monotonic()
        self._waiting_since: float | None = None
        self._retries: dict[str, int] = {}
        self._stop = threading.Event()
        self._levels: list[tuple[logging.Logger, int]] = []

    # ------------------------------------------------------------------ clock
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def remaining(self) -> float:
        elapsed = self.elapsed()
        return min(self.seconds + self._credit - elapsed, self.seconds * HARD_CAP_FACTOR - elapsed)

    def received(self, n_bytes: int, seconds: float) -> None:
        """A body chunk of ``n_bytes`` took ``seconds``: time spent on a transfer that keeps
        moving (>= :data:`MIN_RATE` bytes/s) does not count against the deadline, so a slow
        link can still fetch a large index; waiting and trickling do."""
        self.answered = True
        if seconds > 0 and n_bytes / seconds >= MIN_RATE:
            self._credit += seconds

    def note_failure(self, exc: BaseException) -> None:
        self.last_failure = type(exc).__name__

    # ------------------------------------------------------------------ hooks
    def before_request(self, request) -> None:
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(self)
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        timeout = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            k: left if timeout.get(k) is None else min(timeout[k], left)
            for k in ("connect", "read", "write", "pool")
        }

    def after_response(self, response) -> None:
        self.answered = True
        self._waiting_since = None
        if response.status_code in _RETRYABLE:
            key = f"{response.request.method} {response.request.url}"
            n = self._retries.get(key, 0)
            self._retries[key] = n + 1
            self.last_failure = f"HTTP {response.status_code}"
            if self.remaining() < _next_wait(response, n):
                response.close()
                raise DeadlineExceeded(self)
        response.stream = _deadline_stream(response.stream, self)

    # ------------------------------------------------------------------ context
    def __enter__(self) -> HubDeadline:
        global _ACTIVE
        _install_hooks()
        self._start = time.monotonic()
        _ACTIVE = self
        for name in _NOISY_LOGGERS:
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() >= logging.WARNING:
                self._levels.append((logger, logger.level))
                logger.setLevel(logging.ERROR)
        if self.progress is not None:
            threading.Thread(target=self._report, name="moe-inspect-hub-wait", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        global _ACTIVE
        self._stop.set()
        _ACTIVE = None
        for logger, level in self._levels:
            logger.setLevel(level)
        self._levels.clear()

    def _report(self) -> None:
        while not self._stop.wait(PROGRESS_AFTER_S / 2):
            since = self._waiting_since
            if since is None or time.monotonic() - since < PROGRESS_AFTER_S:
                continue
            self.progress(f"waiting for {self.endpoint}: no answer for {time.monotonic() - since:.0f} s "
                          f"(gives up after {self.seconds:g} s; --offline skips the Hub)")


def _next_wait(response, retries_before: int) -> float:
    """Seconds huggingface_hub will sleep before retrying this answer."""
    ra = response.headers.get("Retry-After", "").strip()
    if ra.isdigit():
        return float(ra) + 1
    return _HF_BACKOFF[min(retries_before, len(_HF_BACKOFF) - 1)]
