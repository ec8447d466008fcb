"""Source c: the Hugging Face Hub (``HF_ENDPOINT``) through huggingface_hub.

config.json (+ hf_quant_config.json, model.safetensors.index.json) are downloaded into the HF
cache; then ONLY the safetensors headers of the (at most ``MAX_HUB_SHARDS``) shards holding the
first MoE layer's router and expert-0 tensors are read with HTTP range requests (8 bytes, then
exactly the header: never a byte of weights). Everything runs inside one :class:`HubDeadline`
(see deadline.py): a Hub that never answers costs at most its deadline.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..errors import CheckpointError, HubError, MoeInspectError
from ..safetensors_io import HeaderResult, header_length, parse_header_from_bytes
from ..spec import ModelFiles, TensorInfo
from .cache import cached_file, cached_tensors, needed_shards, plan_warnings, store_cached_header
from .deadline import DeadlineExceeded, HubDeadline
from .env import hub_cache_dir, hub_endpoint
from .files import (
    COMMIT_RE,
    CONFIG_FILE,
    INDEX_FILE,
    QUANT_CONFIG_FILE,
    SINGLE_FILE,
    model_files,
    read_config,
    read_index,
    read_quant_config,
)
from .hub_errors import HubFailure, httpx_module, map_hub_exception
from .lookup import Lookup

#: Extra attempts when a header range read is cut off mid-body.
BODY_RETRIES = 2
#: HEADs of config.json that time out before the Hub counts as not answering.
PREFLIGHT_TRIES = 3
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


# --------------------------------------------------------------------------- reachability
def _preflight(repo_id: str, revision: str | None, deadline: HubDeadline) -> None:
    """HEAD config.json without huggingface_hub's retries, so a dead endpoint fails fast.

    A refused connection / DNS failure ends here. A Hub that accepts but does not answer in
    time is asked :data:`PREFLIGHT_TRIES` times within the deadline, instead of hf_hub_download's
    five 60-second retries. Other HTTP answers (5xx, 429, not-Hub responses) are left to hf_hub_download's
    bounded retries; 404 / gated are raised as they are.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub import errors as hfe

    httpx = httpx_module()
    url = hf_hub_url(repo_id, CONFIG_FILE, revision=revision, endpoint=hub_endpoint())
    pause = 0.25
    for attempt in range(PREFLIGHT_TRIES):
        try:
            get_hf_file_metadata(url, timeout=constants.HF_HUB_ETAG_TIMEOUT, endpoint=hub_endpoint(),
                                 retry_on_errors=False)
            return
        except httpx.ConnectError:
            raise
        except httpx.TimeoutException as e:
            deadline.note_failure(e)
            if deadline.remaining() <= pause:
                raise DeadlineExceeded(deadline) from None
            if attempt + 1 == PREFLIGHT_TRIES:
                raise
            time.sleep(pause)
            pause *= 2
        except (httpx.TransportError, hfe.FileMetadataError):
            return  # let hf_hub_download retry
        except hfe.HfHubHTTPError as e:
            if e.response is not None and (e.response.status_code >= 500 or e.response.status_code in (408, 429)):
                return
            raise


# --------------------------------------------------------------------------- metadata files
def _hub_download(repo_id: str, filename: str, revision: str | None, run: Lookup, *, optional: bool) -> str | None:
    """hf_hub_download into the HF cache; counts the file size when it was not cached before."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub import errors as hfe

    before = cached_file(repo_id, filename, revision)
    run.say(f"downloading {filename}")
    try:
        path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=str(hub_cache_dir()),
                               endpoint=hub_endpoint(), etag_timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except hfe.RemoteEntryNotFoundError:
        if optional:
            return None
        raise
    if not (isinstance(before, str) and os.path.samefile(before, path)):
        try:
            run.bytes_read += os.path.getsize(path)
        except OSError:
            pass
    return path


def _download_metadata(repo_id: str, revision: str | None, run: Lookup, deadline: HubDeadline) -> ModelFiles:
    """config.json (required), quant config and index (optional) of ``repo_id``@``revision``."""
    try:
        _preflight(repo_id, revision, deadline)
        cfg_path = _hub_download(repo_id, CONFIG_FILE, revision, run, optional=False)
    except MoeInspectError:
        raise
    except Exception as e:  # noqa: BLE001 - mapped to one line below
        raise map_hub_exception(e, repo_id=repo_id, revision=revision, what=CONFIG_FILE) from None
    snap = Path(cfg_path).parent
    commit = snap.name if COMMIT_RE.fullmatch(snap.name) else (revision or "main")
    config = read_config(Path(cfg_path))
    try:
        q = _hub_download(repo_id, QUANT_CONFIG_FILE, commit, run, optional=True)
        idx = _hub_download(repo_id, INDEX_FILE, commit, run, optional=True)
    except Exception as e:  # noqa: BLE001
        raise map_hub_exception(e, repo_id=repo_id, revision=commit, what="metadata files") from None
    return model_files(config, model_id=repo_id, source="hub", path=str(snap), revision=commit,
                       hf_quant_config=read_quant_config(Path(q)) if q else None,
                       weight_map=read_index(Path(idx)) if idx else None)


# --------------------------------------------------------------------------- header range reads
def _range_get(url: str, start: int, end: int, headers: dict, *, where: str) -> tuple[bytes, int | None, int]:
    """GET bytes [start, end] (inclusive) of ``url``, reading at most that many body bytes.

    Returns ``(data, total_file_size or None, bytes_received)``. Uses huggingface_hub's session
    and bounded retries (``http_stream_backoff``: 5xx/429/timeouts while connecting); a body cut
    short is retried :data:`BODY_RETRIES` times here (huggingface_hub's stream helper cannot retry
    errors raised while the caller consumes the body). A server ignoring Range is cut off.
    """
    received_total = 0
    for _ in range(BODY_RETRIES + 1):
        data, total, received, body_error = _range_get_once(url, start, end, headers, where=where)
        received_total += received
        if body_error is None:
            return data, total, received_total
    raise HubError(f"{where}: connection broke while reading bytes {start}-{end} ({body_error})")


def _body_start(resp, start: int, end: int, where: str) -> tuple[int, int | None]:
    """``(bytes to skip, total file size or None)`` for a range answer; refuses a wrong one."""
    cr = resp.headers.get("Content-Range")
    if resp.status_code == 206 and cr:
        m = _CONTENT_RANGE.match(cr)
        if not m or int(m.group(1)) != start:
            raise HubError(f"{where}: bad Content-Range {cr!r} for bytes={start}-{end}")
        return 0, (int(m.group(3)) if m.group(3) != "*" else None)
    if resp.status_code == 200:  # the server ignored Range: the body starts at byte 0
        cl = resp.headers.get("Content-Length")
        return start, (int(cl) if cl and cl.isdigit() else None)
    raise HubError(f"{where}: unexpected HTTP {resp.status_code} for a range request")


def _range_get_once(url, start, end, headers, *, where):
    from huggingface_hub import constants
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    httpx = httpx_module()
    want = end - start + 1
    hdrs = {**headers, "Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
    chunks: list[bytes] = []
    got = received = 0
    body_error: str | None = None
    with http_stream_backoff("GET", url, headers=hdrs, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as resp:
        hf_raise_for_status(resp)
        skip, total = _body_start(resp, start, end, where)
        try:
            for chunk in resp.iter_raw(1 << 16):
                received += len(chunk)
                drop = min(skip, len(chunk))
                chunk, skip = chunk[drop:], skip - drop
                if chunk:
                    chunks.append(chunk[: want - got])
                    got += len(chunks[-1])
                if got >= want:
                    break  # leaving the context closes the stream: no more bytes are read
        except (httpx.TransportError, httpx.StreamError) as e:
            # must not propagate inside http_stream_backoff's context (it would try to retry and
            # fail with "generator didn't stop after throw()")
            body_error = str(e) or type(e).__name__
    return b"".join(chunks), total, received, body_error


def _hub_read_header(repo_id: str, commit: str, filename: str, run: Lookup) -> HeaderResult:
    """Read only the safetensors header of ``filename`` @ ``commit`` with two range requests."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo_id, filename, revision=commit, endpoint=hub_endpoint())
    headers = build_hf_headers()
    where = f"{repo_id}/{filename}"
    run.say(f"reading header of {filename}")
    prefix, total, rcv = _range_get(url, 0, 7, headers, where=where)
    run.bytes_read += rcv
    n = header_length(prefix, where=where, file_size=total)
    body, total2, rcv = _range_get(url, 8, 8 + n - 1, headers, where=where)
    run.bytes_read += rcv
    if len(body) != n:
        raise CheckpointError(f"{where}: got {len(body)} of the {n} header bytes (truncated response)")
    hdr = parse_header_from_bytes(prefix + body, where=where, file_size=total or total2, file_name=filename)
    hdr.bytes_read = 8 + n
    return hdr


def _shard_tensors(files: ModelFiles, name: str, run: Lookup) -> dict[str, TensorInfo]:
    """Tensors of one needed shard: from a cache, else its header over the network (then cached).
    A shard the Hub does not have is a warning, not an error."""
    from huggingface_hub import errors as hfe

    repo_id, commit = files.ref.id, files.ref.revision or "main"
    got = cached_tensors(repo_id, commit, name)
    if isinstance(got, dict):
        return got
    try:
        hdr = _hub_read_header(repo_id, commit, name, run)
    except MoeInspectError:
        raise
    except hfe.RemoteEntryNotFoundError:
        if name == SINGLE_FILE and files.weight_map is None:
            files.warnings.append(f"{repo_id}: no {SINGLE_FILE} or {INDEX_FILE}; tensor evidence unavailable")
        else:
            files.warnings.append(f"{repo_id}@{commit[:12]}: {INDEX_FILE} lists {name} but the Hub has no "
                                  "such file; tensor evidence is incomplete")
        return {}
    except Exception as e:  # noqa: BLE001
        raise map_hub_exception(e, repo_id=repo_id, revision=commit, what=f"the header of {name}") from None
    store_cached_header(repo_id, commit, name, hdr)
    return hdr.tensors


def load_from_hub(repo_id: str, revision: str | None, run: Lookup) -> ModelFiles:
    """Config/index from the Hub (into the HF cache) + headers of the first-MoE-layer shards,
    all within one deadline. Raises :class:`HubFailure` (mapped, one line) when the Hub fails."""
    with HubDeadline(hub_endpoint(), run.progress) as deadline:
        files = _download_metadata(repo_id, revision, run, deadline)
        if run.read_tensors:
            needed, plan = needed_shards(files.weight_map)
            files.warnings.extend(plan_warnings(repo_id, plan, files.weight_map))
            for name in needed:
                files.tensors.update(_shard_tensors(files, name, run))
    return files


__all__ = ["BODY_RETRIES", "HubFailure", "load_from_hub"]
