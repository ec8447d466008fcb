"""Source d: the built-in catalog snapshot (``moe_inspect/data/catalog.json``), and the help it
gives for names it does not hold (short names, "did you mean")."""

from __future__ import annotations

from .. import catalog as snapshot
from ..spec import ModelFiles
from .failures import FailureKind, HubFailure


def expand_short_name(model: str) -> tuple[str, str | None]:
    """``(name to look up, note)``: a bare catalog short name (``DeepSeek-V3``) becomes its one
    full id (``deepseek-ai/DeepSeek-V3``), said in the note; anything else is kept."""
    full = snapshot.short_name(model)
    if full is None:
        return model, None
    return full, f"{model}: read as {full} (the one catalog model of that name)"


def did_you_mean(model: str) -> str | None:
    """``"did you mean a, b or c?"`` from close catalog names, or None."""
    close = [n for n in snapshot.suggestions(model) if n.lower() != model.lower()][:2]
    if not close:
        return None
    return f"did you mean {' or '.join(close)}?"


def catalog_lookup(model: str) -> tuple[ModelFiles | None, str]:
    """The catalog's files for ``model`` (or None) and the line for ``sources_tried``."""
    files = snapshot.lookup(model)
    if files is None:
        return None, "catalog: not in the built-in catalog"
    return files, f"catalog: snapshot of {files.ref.snapshot_date or 'unknown date'}"


def fallback_warning(files: ModelFiles, *, offline: bool, hub_failure: HubFailure | None) -> str:
    """The first warning of a catalog answer: why the catalog answered, and its date."""
    snap = f"using the built-in catalog snapshot of {files.ref.snapshot_date or 'unknown date'}"
    if offline:
        return f"offline: {snap}; the repository may have changed since"
    if hub_failure is None:
        return f"not a Hub repo id: {snap}"
    if hub_failure.kind is FailureKind.UNREACHABLE:
        return f"offline: {snap} ({hub_failure.error.message}; {hub_failure.advice})"
    if hub_failure.kind is FailureKind.OFFLINE:
        return f"offline: {snap} ({hub_failure.error.message})"
    return f"{hub_failure.error.message}; {snap}"
