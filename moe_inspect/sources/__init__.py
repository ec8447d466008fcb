"""Model sources for ``detect``: local directory, Hugging Face cache, the Hub, the built-in catalog.

:func:`load_model` (chain.py) tries, in order,

a. ``local.py`` — a local directory (``model`` exists, or starts with ``.``, ``/`` or ``~``):
   config.json, hf_quant_config.json, model.safetensors.index.json and the headers of every shard;
b. ``cache.py`` — the Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``) for ``model``@``revision``:
   config + index from the snapshot, tensor headers from cached shards or from header JSON
   stored on an earlier online run (``$HF_HOME/moe_inspect/headers/``);
c. ``hub.py`` — the Hub (``HF_ENDPOINT``) through huggingface_hub, within one total deadline
   (``deadline.py``): config.json (+ quant config, index) into the HF cache, then ONLY the
   safetensors headers of the (at most :data:`MAX_HUB_SHARDS`) shards holding the first MoE
   layer (``layers.py``), by HTTP range requests; failures mapped to one line (``hub_errors.py``);
d. ``catalog.py`` — the built-in catalog snapshot (:mod:`moe_inspect.catalog`).

``strict_json.py`` is the one strict JSON reader (configs, indexes and safetensors headers).
``ref.bytes_read`` counts the bytes fetched over the network; cached files count 0. Nothing here
imports torch/transformers or runs repository code; huggingface_hub is imported lazily.
"""

from __future__ import annotations

import importlib

from .chain import load_model
from .env import hf_home, hub_cache_dir, hub_endpoint, hub_offline
from .failures import DEADLINE_ENV, FailureKind, HubFailure
from .files import (
    CONFIG_FILE,
    INDEX_FILE,
    QUANT_CONFIG_FILE,
    SINGLE_FILE,
    read_config,
    read_index,
)
from .lookup import Progress
from .strict_json import MAX_JSON_BYTES

#: Names imported on first use (PEP 562): the network and cache code, and the shard planner they
#: use (its regexes), stay off the cold-start path.
_LAZY = {
    "HEADER_CACHE_VERSION": "cache", "CacheHit": "cache", "load_from_cache": "cache",
    "DEFAULT_DEADLINE_S": "deadline", "DeadlineExceeded": "deadline", "HubDeadline": "deadline",
    "deadline_seconds": "deadline", "BODY_RETRIES": "hub", "load_from_hub": "hub",
    "MAX_HUB_SHARDS": "layers", "LayerPlan": "layers", "find_first_moe_layer": "layers",
    "load_local_dir": "local",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BODY_RETRIES", "CONFIG_FILE", "DEADLINE_ENV", "DEFAULT_DEADLINE_S", "HEADER_CACHE_VERSION", "INDEX_FILE",
    "MAX_HUB_SHARDS", "MAX_JSON_BYTES", "QUANT_CONFIG_FILE", "SINGLE_FILE", "CacheHit", "DeadlineExceeded",
    "FailureKind", "HubDeadline", "HubFailure", "LayerPlan", "Progress", "deadline_seconds",
    "find_first_moe_layer", "hf_home", "hub_cache_dir", "hub_endpoint", "hub_offline", "load_from_cache",
    "load_from_hub", "load_local_dir", "load_model", "read_config", "read_index",
]
