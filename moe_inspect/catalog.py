"""The built-in catalog: config subsets and first-MoE-layer tensor names of popular MoE models.

Used when a model is neither a local directory nor in the Hugging Face cache and the Hub cannot
be reached (offline, air-gapped CI). Each entry carries its snapshot date; a description built
from it says so. The data lives in ``data/catalog.json`` (built by ``scripts/build_catalog.py``
from verified configs); this module only reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .spec import ModelFiles, ModelRef, TensorInfo


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    aliases: tuple[str, ...]
    architecture: str
    model_type: str
    snapshot_date: str
    config: dict
    tensors: dict  # name -> [dtype, shape]
    notes: str = ""


@lru_cache(maxsize=1)
def entries() -> tuple[CatalogEntry, ...]:
    raw = json.loads(resources.files("moe_inspect").joinpath("data/catalog.json").read_text())
    return tuple(
        CatalogEntry(
            id=m["id"],
            aliases=tuple(m.get("aliases", ())),
            architecture=m["architecture"],
            model_type=m["model_type"],
            snapshot_date=m["snapshot_date"],
            config=m["config"],
            tensors=m["tensors"],
            notes=m.get("notes", ""),
        )
        for m in raw["models"]
    )


def find(model_id: str) -> CatalogEntry | None:
    """The entry whose id or alias equals ``model_id`` (case-insensitive)."""
    key = model_id.strip().lower()
    for e in entries():
        if e.id.lower() == key or key in (a.lower() for a in e.aliases):
            return e
    return None


def lookup(model_id: str) -> ModelFiles | None:
    """A ModelFiles built from the catalog entry for ``model_id``, or None."""
    e = find(model_id)
    if e is None:
        return None
    # deep copy through JSON so callers may mutate what they get
    config = json.loads(json.dumps(e.config))
    tensors = {n: TensorInfo(name=n, dtype=d, shape=list(s), file=None) for n, (d, s) in e.tensors.items()}
    key = model_id.strip().lower()
    canonical = next((n for n in (e.id, *e.aliases) if n.lower() == key), model_id)
    ref = ModelRef(
        id=canonical,
        source="catalog",
        model_type=e.model_type,
        architecture=e.architecture,
        snapshot_date=e.snapshot_date,
    )
    notes = [f"catalog: {canonical} shares the routing config of {e.id}"] if canonical != e.id else []
    return ModelFiles(ref=ref, config=config, tensors=tensors, weight_map=None, warnings=notes)


def names() -> list[str]:
    """Every id and alias, in catalog order."""
    return [n for e in entries() for n in (e.id, *e.aliases)]


def short_name(model: str) -> str | None:
    """The one catalog name whose part after the organisation is ``model`` (case-insensitive),
    for a bare name such as ``DeepSeek-V3``; None when no name or several names match."""
    if "/" in model:
        return None
    key = model.strip().lower()
    hits = [n for n in names() if n.split("/", 1)[-1].lower() == key]
    return hits[0] if len(hits) == 1 else None


def suggestions(model: str, n: int = 3) -> list[str]:
    """Close catalog names for a mistyped ``model`` (typo in the name, wrong or missing org)."""
    import difflib

    key = model.strip().lower()
    every = names()
    full = {name.lower(): name for name in every}
    short: dict[str, list[str]] = {}
    for name in every:
        short.setdefault(name.split("/", 1)[-1].lower(), []).append(name)
    tail = key.split("/", 1)[-1]
    out = [full[m] for m in difflib.get_close_matches(key, list(full), n=n, cutoff=0.75)]
    for m in difflib.get_close_matches(tail, list(short), n=n, cutoff=0.8):
        out.extend(short[m])
    return list(dict.fromkeys(out))[:n]
