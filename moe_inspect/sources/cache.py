"""Source b: the Hugging Face cache, and moe-inspect's own header cache.

Config + index come from the snapshot of ``model``@``revision`` in ``HF_HUB_CACHE``; tensor
headers from cached shards, or from header JSON an earlier online run stored under
``$HF_HOME/moe_inspect/headers/`` (only headers that parsed are stored).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..safetensors_io import HeaderResult, read_local_header_ex, tensors_from_json, tensors_to_json
from ..spec import ModelFiles, TensorInfo
from .env import hf_home, hub_cache_dir
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
    valid_shard_name,
)
from .layers import LayerPlan, find_first_moe_layer
from .lookup import Progress

#: Format version of the on-disk header cache ($HF_HOME/moe_inspect/headers/...).
HEADER_CACHE_VERSION = 1


# --------------------------------------------------------------------------- header cache (JSON)
def _header_cache_path(repo_id: str, commit: str, filename: str) -> Path | None:
    if not COMMIT_RE.fullmatch(commit or "") or not valid_shard_name(filename):
        return None
    folder = "models--" + repo_id.replace("/", "--")
    return hf_home() / "moe_inspect" / "headers" / folder / commit / (filename + ".json")


def load_cached_header(repo_id: str, commit: str, filename: str) -> dict[str, TensorInfo] | None:
    p = _header_cache_path(repo_id, commit, filename)
    if p is None or not p.is_file():
        return None
    try:
        obj = json.loads(p.read_text("utf-8"))
        if not isinstance(obj, dict) or obj.get("version") != HEADER_CACHE_VERSION:
            return None
        return tensors_from_json(obj.get("tensors"), where=str(p), file_name=filename)
    except (OSError, ValueError, CheckpointError):
        return None  # a broken cache entry is just a miss


def store_cached_header(repo_id: str, commit: str, filename: str, hdr: HeaderResult) -> None:
    p = _header_cache_path(repo_id, commit, filename)
    if p is None:
        return
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": HEADER_CACHE_VERSION, "repo_id": repo_id, "commit": commit,
                                   "file": filename, "header_len": hdr.header_len,
                                   "tensors": tensors_to_json(hdr.tensors)}))
        os.replace(tmp, p)
    except OSError:
        pass  # read-only HF_HOME: the cache is an optimisation only


# --------------------------------------------------------------------------- HF cache
@dataclass
class CacheHit:
    files: ModelFiles
    complete: bool  # tensors found for everything needed (or not needed)
    commit: str
    missing: list[str]


def cached_file(repo_id: str, filename: str, revision: str | None, cache_dir: Path | None = None):
    """huggingface_hub's ``try_to_load_from_cache``: a path, ``_CACHED_NO_EXIST`` or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_dir or hub_cache_dir()),
                                      revision=revision)
    except (ValueError, OSError):
        return None


def needed_shards(weight_map: dict[str, str] | None) -> tuple[list[str], LayerPlan | None]:
    if weight_map is None:
        return [SINGLE_FILE], None
    plan = find_first_moe_layer(weight_map, weight_map)
    return (plan.files if plan else []), plan


def plan_warnings(repo_id: str, plan: LayerPlan | None, weight_map: dict[str, str] | None) -> list[str]:
    """What a reader of only the first MoE layer's shards should be told."""
    if plan is None and weight_map is not None:
        return [f"{repo_id}: no router-like tensor names in {INDEX_FILE}; no headers read"]
    if plan is not None and plan.skipped_files:
        return [f"{repo_id}: the first MoE layer spans {len(plan.files) + len(plan.skipped_files)} shards; "
                f"read {len(plan.files)}"]
    return []


def cached_tensors(repo_id: str, commit: str, name: str, progress: Progress = None):
    """Tensors of shard ``name`` from the HF cache or the header cache; else the cache's answer
    (None, or ``_CACHED_NO_EXIST`` when the Hub said the file does not exist)."""
    local = cached_file(repo_id, name, commit)
    if isinstance(local, str):
        if progress:
            progress(f"reading cached header of {name}")
        return read_local_header_ex(Path(local), file_name=name).tensors
    hdr = load_cached_header(repo_id, commit, name)
    return hdr if hdr is not None else local


def load_from_cache(repo_id: str, revision: str | None, *, read_tensors: bool = True,
                    progress: Progress = None) -> CacheHit | None:
    """The cached snapshot of ``repo_id``@``revision``, or None when its config is not cached."""
    from huggingface_hub import _CACHED_NO_EXIST

    cfg_path = cached_file(repo_id, CONFIG_FILE, revision)
    if not isinstance(cfg_path, str):
        return None
    snap = Path(cfg_path).parent
    commit = snap.name
    q = cached_file(repo_id, QUANT_CONFIG_FILE, commit)
    idx = cached_file(repo_id, INDEX_FILE, commit)
    files = model_files(read_config(Path(cfg_path)), model_id=repo_id, source="cache", path=str(snap),
                        revision=commit, hf_quant_config=read_quant_config(Path(q)) if isinstance(q, str) else None,
                        weight_map=read_index(Path(idx)) if isinstance(idx, str) else None)
    if not read_tensors:
        return CacheHit(files, True, commit, [])
    if idx is None:  # unknown whether there is an index: the Hub would know
        single = cached_file(repo_id, SINGLE_FILE, commit)
        if not isinstance(single, str) and load_cached_header(repo_id, commit, SINGLE_FILE) is None:
            return CacheHit(files, False, commit, [INDEX_FILE])
    needed, plan = needed_shards(files.weight_map)
    missing: list[str] = []
    for name in needed:
        got = cached_tensors(repo_id, commit, name, progress)
        if isinstance(got, dict):
            files.tensors.update(got)
        elif got is _CACHED_NO_EXIST and name == SINGLE_FILE:
            files.warnings.append(f"{repo_id}: no {SINGLE_FILE} or {INDEX_FILE}; tensor evidence unavailable")
        else:
            missing.append(name)
    files.warnings.extend(plan_warnings(repo_id, plan, files.weight_map))
    return CacheHit(files, not missing, commit, missing)
