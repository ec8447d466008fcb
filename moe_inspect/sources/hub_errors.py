"""Hub failures as one-line moe-inspect errors, each with a kind the source chain acts on."""

from __future__ import annotations

from ..errors import ConfigError, HubError, ModelNotFoundError, OfflineError
from .deadline import DeadlineExceeded
from .failures import DEADLINE_ADVICE, FailureKind, HubFailure
from .env import hub_endpoint


def httpx_module():
    """The httpx flavour huggingface_hub uses (``httpx2`` from 2.x, ``httpx`` before)."""
    try:
        import httpx2 as module
    except ImportError:  # pragma: no cover - older huggingface_hub uses httpx
        import httpx as module  # type: ignore[no-redef]
    return module


def _url_of(exc: BaseException) -> str | None:
    resp = getattr(exc, "response", None)
    try:
        return str(resp.request.url) if resp is not None and resp.request is not None else None
    except Exception:  # noqa: BLE001 - httpx raises if the request is unset
        return None


def map_hub_exception(exc: BaseException, *, repo_id: str, revision: str | None, what: str) -> HubFailure:
    """Translate huggingface_hub/httpx errors into one-line moe-inspect errors."""
    from huggingface_hub import errors as hfe

    _httpx = httpx_module()

    endpoint = hub_endpoint()
    # hf_hub_download wraps the HEAD error it got into LocalEntryNotFoundError(... ) from err
    seen = 0
    while isinstance(exc, hfe.LocalEntryNotFoundError) and exc.__cause__ is not None and seen < 5:
        exc = exc.__cause__
        seen += 1
    if isinstance(exc, DeadlineExceeded):
        return HubFailure(HubError(exc.message), FailureKind.UNREACHABLE, DEADLINE_ADVICE)
    url = _url_of(exc) or f"{endpoint}/{repo_id}"
    rev = revision or "main"
    if isinstance(exc, hfe.GatedRepoError):
        return HubFailure(HubError(
            f"{repo_id} is gated ({url}): accept the licence on the Hub and set HF_TOKEN"), FailureKind.GATED)
    if isinstance(exc, hfe.DisabledRepoError):
        return HubFailure(HubError(f"{repo_id}: access to this repository is disabled on the Hub"), FailureKind.GATED)
    if isinstance(exc, hfe.RevisionNotFoundError):
        return HubFailure(ModelNotFoundError(f"{repo_id}: revision {rev!r} not found on {endpoint}"), FailureKind.NOT_FOUND)
    if isinstance(exc, hfe.RepositoryNotFoundError):
        status = getattr(getattr(exc, "response", None), "status_code", 404)
        return HubFailure(ModelNotFoundError(
            f"{repo_id}: repository not found on {endpoint} (HTTP {status}; private repos need HF_TOKEN)"),
            FailureKind.NOT_FOUND)
    if isinstance(exc, hfe.RemoteEntryNotFoundError):
        return HubFailure(ConfigError(f"{repo_id}@{rev}: has no {what} on {endpoint}"), FailureKind.MISSING_CONFIG)
    if isinstance(exc, hfe.OfflineModeIsEnabled):
        return HubFailure(OfflineError(f"{repo_id}: offline mode (HF_HUB_OFFLINE) blocks {url}"), FailureKind.OFFLINE)
    if isinstance(exc, hfe.HfHubHTTPError) and getattr(exc, "response", None) is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return HubFailure(HubError(
                f"{url}: HTTP {code} (gated or private: accept the licence on the Hub and set HF_TOKEN)"), FailureKind.GATED)
        if code >= 500 or code in (408, 429):
            return HubFailure(HubError(f"{url}: HTTP {code} from the Hub (after retries)"), FailureKind.UNREACHABLE)
        return HubFailure(HubError(f"{url}: HTTP {code} from the Hub"), FailureKind.UNREACHABLE)
    if isinstance(exc, _httpx.TimeoutException):
        return HubFailure(HubError(f"{url}: timed out reading {what} (after retries)"), FailureKind.UNREACHABLE)
    if isinstance(exc, (_httpx.RemoteProtocolError, _httpx.ReadError)):
        # the server answered, then the connection broke mid-body (reset, truncated download)
        return HubFailure(HubError(f"{url}: the connection broke while downloading {what} "
                                    f"({type(exc).__name__}, after retries)"), FailureKind.UNREACHABLE)
    if isinstance(exc, (_httpx.TransportError, ConnectionError)):
        return HubFailure(HubError(f"cannot reach {endpoint} for {repo_id} ({type(exc).__name__})"),
                           FailureKind.UNREACHABLE)
    if isinstance(exc, hfe.FileMetadataError):
        return HubFailure(HubError(f"{url}: not a Hub-compatible answer ({str(exc).splitlines()[0][:120]})"),
                           FailureKind.UNREACHABLE)
    if isinstance(exc, hfe.LocalEntryNotFoundError):
        return HubFailure(HubError(f"cannot fetch {what} of {repo_id} from {endpoint}"), FailureKind.UNREACHABLE)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return HubFailure(HubError(f"{repo_id}: {what}: {first}"), FailureKind.UNREACHABLE)
