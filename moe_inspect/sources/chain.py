"""The source chain: local directory → HF cache → Hub → built-in catalog; the first that answers wins.

Each attempt adds one line to ``ref.sources_tried``; the winner is ``ref.source``. A bare catalog
short name (``DeepSeek-V3``) is read as its full id first (said in a warning); a name nothing
answers for gets "did you mean …" from the catalog, in one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFoundError, OfflineError
from ..spec import ModelFiles
from .catalog import catalog_lookup, did_you_mean, expand_short_name, fallback_warning
from .env import hub_cache_dir, hub_endpoint, hub_offline, looks_like_path, path_exists
from .failures import FailureKind, HubFailure
from .lookup import Lookup, Progress

# local.py, cache.py and hub.py are imported where they are used: an offline catalog answer (the
# cold-start path of `detect`/`check`) needs none of them

#: Revisions the catalog snapshot stands for (it is a snapshot of the default branch).
CATALOG_REVISIONS = (None, "main")


@dataclass
class _Remote:
    """What the cache and Hub steps found out for a repo id."""

    offline: bool
    valid_repo: bool = True
    cache_hit: object | None = None  # cache.CacheHit
    hub_failure: HubFailure | None = None


def _try_local(model: str, run: Lookup) -> ModelFiles | None:
    """Source a: ``model`` names a directory (or looks like a path)."""
    p = Path(os.path.expanduser(model))
    if not (path_exists(p) or looks_like_path(model)):
        run.tried.append("local: no such directory")
        return None
    if not path_exists(p):
        raise ModelNotFoundError(f"{model}: no such directory")
    if not p.is_dir():
        raise ModelNotFoundError(f"{model}: not a directory (give the model directory that holds config.json)")
    from .local import load_local_dir

    run.say(f"reading local directory {p}")
    files = load_local_dir(p, model_id=model, read_tensors=run.read_tensors, progress=run.progress)
    run.tried.append(f"local: {p}")
    if run.revision is not None:
        files.warnings.append(f"--revision {run.revision} ignored: {model} is a local directory")
    return run.finish(files, "local")


def _hf_usable(model: str, run: Lookup, remote: _Remote) -> bool:
    """Whether the HF cache / Hub can be asked for ``model`` (records why not)."""
    # offline with no cache folder for this repo: neither the cache nor the Hub can answer, and
    # huggingface_hub (about 0.1 s to import) is not needed to find that out
    if remote.offline and not (hub_cache_dir() / ("models--" + model.replace("/", "--"))).is_dir():
        run.tried.append(f"cache: {model} not in {hub_cache_dir()}")
        run.tried.append("hub: skipped (offline)")
        return False
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        remote.valid_repo = False
        run.tried.append("cache/hub: not a valid Hub repo id")
        return False
    return True


def _try_cache_and_hub(model: str, run: Lookup, remote: _Remote) -> ModelFiles | None:
    """Sources b and c; an incomplete cache entry answers when the Hub cannot complete it."""
    from .cache import load_from_cache
    from .hub import load_from_hub

    run.say(f"looking for {model} in the HF cache")
    hit = remote.cache_hit = load_from_cache(model, run.revision, read_tensors=run.read_tensors,
                                             progress=run.progress)
    if hit is None:
        run.tried.append(f"cache: {model}@{run.revision or 'main'} not in {hub_cache_dir()}")
    elif hit.complete:
        run.tried.append(f"cache: {model}@{hit.commit[:12]}")
        return run.finish(hit.files, "cache")
    else:
        run.tried.append(f"cache: {model}@{hit.commit[:12]} has config.json but not the header(s) of "
                         f"{', '.join(hit.missing)}")
    if remote.offline:
        run.tried.append("hub: skipped (offline)")
    else:
        run.say(f"asking {hub_endpoint()} for {model}")
        try:
            files = load_from_hub(model, run.revision, run)
        except HubFailure as f:
            remote.hub_failure = f
            run.tried.append(f"hub: {f.error.message}")
            if f.kind is FailureKind.MISSING_CONFIG:
                raise f.error from None
        else:
            n_hdr = len({t.file for t in files.tensors.values()})
            run.tried.append(f"hub: {hub_endpoint()} ({n_hdr} header(s), {run.bytes_read} bytes)")
            return run.finish(files, "hub")
    if hit is None:
        return None
    why = "offline" if remote.offline else "Hub unreachable"
    hit.files.warnings.append(f"{why}: tensor headers of {', '.join(hit.missing)} are not cached for "
                              f"{model}@{hit.commit[:12]}; tensor evidence is incomplete")
    return run.finish(hit.files, "cache")


def _try_catalog(model: str, run: Lookup, remote: _Remote) -> ModelFiles | None:
    """Source d, refused for a pinned revision: the snapshot has none."""
    files, line = catalog_lookup(model)
    run.tried.append(line)
    if files is None:
        return None
    if run.revision not in CATALOG_REVISIONS:
        failure = remote.hub_failure
        if failure is not None and failure.kind in (FailureKind.NOT_FOUND, FailureKind.GATED):
            return None  # the Hub's answer (e.g. "revision not found") is the error
        why = ("offline and not in the HF cache" if remote.offline
               else f"the Hub could not be asked ({failure.error.message})" if failure is not None
               else "not a Hub repo id")
        raise ModelNotFoundError(
            f"{model}@{run.revision}: {why}; the built-in catalog has no revisions "
            f"(its snapshot of {files.ref.snapshot_date} is of main: drop --revision to use it)")
    files.warnings.insert(0, fallback_warning(files, offline=remote.offline, hub_failure=remote.hub_failure))
    return run.finish(files, "catalog")


def _not_found(model: str, run: Lookup, remote: _Remote) -> Exception:
    """The one-line error when no source answered."""
    tried = "tried " + ", ".join(dict.fromkeys(t.split(":", 1)[0] for t in run.tried))
    failure = remote.hub_failure
    suggestion = did_you_mean(model)
    if failure is not None and failure.kind is FailureKind.UNREACHABLE and suggestion:
        return ModelNotFoundError(f"{model}: not in the built-in catalog, and {hub_endpoint()} cannot be "
                                  "reached", hint=suggestion)
    if failure is not None and failure.kind in (FailureKind.GATED, FailureKind.NOT_FOUND, FailureKind.UNREACHABLE):
        err = failure.error
        hint = suggestion or (f"{failure.advice}; {tried}" if failure.kind is FailureKind.UNREACHABLE else tried)
        return type(err)(err.message, hint=hint)
    if remote.valid_repo and (remote.offline or (failure is not None and failure.kind is FailureKind.OFFLINE)):
        return OfflineError(f"{model}: offline and not in the HF cache or the built-in catalog",
                            hint=suggestion or tried)
    if not remote.valid_repo:
        return ModelNotFoundError(f"{model}: not a local directory or a catalog name, and not a valid Hub "
                                  "repo id", hint=suggestion or tried)
    return ModelNotFoundError(f"{model}: not found", hint=suggestion or tried)


def load_model(
    model: str,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    use_catalog: bool = True,
    read_tensors: bool = True,
    progress: Progress = None,
) -> ModelFiles:
    """Find ``model`` in a local directory, the HF cache, the Hub or the built-in catalog.

    Raises ConfigError / CheckpointError for broken files, ModelNotFoundError when no source
    has the model, HubError for gated/failing Hub access, OfflineError when offline with
    nothing cached and nothing in the catalog.
    """
    if not isinstance(model, str) or not model.strip():
        raise ModelNotFoundError("empty model name: give a local directory or a Hub repo id")
    run = Lookup(model.strip(), revision, read_tensors, progress)
    files = _try_local(run.model, run)
    if files is not None:
        return files
    name, note = expand_short_name(run.model)
    remote = _Remote(offline=hub_offline() if offline is None else bool(offline))
    files = _try_cache_and_hub(name, run, remote) if _hf_usable(name, run, remote) else None
    if files is None and use_catalog:
        files = _try_catalog(name, run, remote)
    elif files is None:
        run.tried.append("catalog: disabled")
    if files is None:
        raise _not_found(name, run, remote)
    if note:
        files.warnings.insert(0, note)
    return files
