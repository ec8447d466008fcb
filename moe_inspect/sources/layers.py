"""Which tensors and shards describe the first MoE layer, from tensor names alone.

A Hub lookup reads only the headers of the (at most :data:`MAX_HUB_SHARDS`) shards holding the
first MoE layer's router and expert-0 tensors; this module picks them from the index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Most shards whose headers a Hub lookup reads (router shard + expert-0 shard).
MAX_HUB_SHARDS = 2

_LAYER_RE = re.compile(r"^(?P<prefix>(?:.*\.)?(?:layers|blocks|h))\.(?P<layer>\d+)\.(?P<rest>.+)$")
_MOE_MODULES = ("mlp", "block_sparse_moe", "ffn", "feed_forward", "moe", "mixer")
# (regex on the part after "layers.N.", group m = the MoE module path) - router-like tensor names
# (docs/detection.md §2 lists them with the models that use each).
_ROUTER_PATTERNS: tuple[tuple[re.Pattern, bool], ...] = (
    # (pattern, needs a sibling `experts`)
    (re.compile(r"^(?P<m>(?:.+\.)?(?:" + "|".join(_MOE_MODULES) + r"))\.gate\.weight$"), True),
    (re.compile(r"^(?P<m>.+)\.router\.(?:layer\.)?weight$"), False),  # gpt-oss, Llama-4, DBRX
    (re.compile(r"^(?P<m>.+)\.moe_statics\..+$"), False),  # ERNIE
    (re.compile(r"^(?P<m>.+?)\.(?:gate\.)?e_score_correction_bias$"), False),  # DeepSeek-V3, MiniMax-M2
    (re.compile(r"^(?P<m>.+)\.gate\.(?:bias|expert_bias|tid2eid)$"), False),  # DeepSeek-V4, Ling
)
_DEPRIORITISED = ("mtp", "nextn", "vision", "visual", "audio")


@dataclass
class LayerPlan:
    """Which tensors/shards describe the first MoE layer (from tensor names only)."""

    layer: int
    module: str  # e.g. "model.layers.3.mlp"
    router_tensors: list[str]
    expert0_tensors: list[str]
    files: list[str] = field(default_factory=list)  # shards to read, router shard first
    skipped_files: list[str] = field(default_factory=list)  # needed but over MAX_HUB_SHARDS


def _router_candidate(name: str, with_experts: set[str]) -> tuple[tuple, str, int] | None:
    """``(rank, module, layer)`` when ``name`` is a router-like tensor of a decoder layer."""
    m = _LAYER_RE.match(name)
    if not m:
        return None
    for pat, needs_experts in _ROUTER_PATTERNS:
        r = pat.match(m.group("rest"))
        if not r:
            continue
        module = f"{m.group('prefix')}.{m.group('layer')}.{r.group('m')}"
        if needs_experts and module not in with_experts:
            return None
        prefix, layer = m.group("prefix"), int(m.group("layer"))
        return (any(d in prefix.lower() for d in _DEPRIORITISED), layer, prefix), module, layer
    return None


def _is_router_like(rel: str) -> bool:
    """``rel`` is a name relative to the MoE module (e.g. "gate.weight")."""
    return rel.startswith(("gate.", "router.", "moe_statics.")) or "e_score_correction_bias" in rel


def _is_expert0(tail: str) -> bool:
    """``tail`` follows "experts.": expert 0's tensors, or fused tensors of all experts."""
    first = tail.split(".", 1)[0]
    return first == "0" or not first.isdigit()


def _shards_for(groups: Iterable[list[str]], weight_map: dict[str, str]) -> list[str]:
    """Shards holding the tensors of each group, the one holding most of a group first."""
    ordered: list[str] = []
    for group in groups:
        counts: dict[str, int] = {}
        for n in group:
            f = weight_map.get(n)
            if f is not None:
                counts[f] = counts.get(f, 0) + 1
        for f in sorted(counts, key=lambda f: (-counts[f], f)):
            if f not in ordered:
                ordered.append(f)
    return ordered


def find_first_moe_layer(names, weight_map: dict[str, str] | None = None,
                         max_files: int = MAX_HUB_SHARDS) -> LayerPlan | None:
    """The lowest decoder layer with a router-like tensor, its router/expert-0 tensors and shards.

    MTP / vision layers are only used when no main decoder layer has a router.
    """
    names = list(names)
    with_experts = {n.split(".experts.", 1)[0] for n in names if ".experts." in n}
    # router tensors never live under the experts (the bulk of the names)
    candidates = [(c, n) for n in names if ".experts." not in n
                  for c in [_router_candidate(n, with_experts)] if c is not None]
    if not candidates:
        return None
    (_, module, layer), _ = min(candidates)
    under = [n for n in names if n.startswith(module + ".")]
    experts_pfx = module + ".experts."
    router = [n for n in under if not n.startswith(experts_pfx) and _is_router_like(n[len(module) + 1:])]
    expert0 = [n for n in under if n.startswith(experts_pfx) and _is_expert0(n[len(experts_pfx):])]
    plan = LayerPlan(layer=layer, module=module, router_tensors=router, expert0_tensors=expert0)
    if weight_map is not None:
        ordered = _shards_for((router, expert0), weight_map)
        plan.files = ordered[:max_files]
        plan.skipped_files = ordered[max_files:]
    return plan
