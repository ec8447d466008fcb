"""Find the first MoE layer in a checkpoint's tensor names and classify its tensors.

``find_evidence(tensors, weight_map)`` looks at names only (plus dtype/shape where the header was
read): it never loads tensor data. The tables below list the per-layer name suffixes seen in real
checkpoints (REFERENCE.md §4, models.json, vLLM v0.33 weight loaders); prefixes vary
(``model.``, ``model.language_model.``, ``language_model.model.``, ``backbone.``, none).
"""

from __future__ import annotations

import re

from .spec import TensorEvidence, TensorInfo

__all__ = ["find_evidence", "ROUTER_WEIGHT_SUFFIXES", "CORRECTION_BIAS_SUFFIXES", "LINEAR_BIAS_SUFFIXES",
           "HASH_TABLE_SUFFIXES"]

# Suffixes after "<prefix>layers.<L>." (or blocks.<L>.). Exact matches only, so
# "mlp.shared_expert_gate.weight" (Qwen's sigmoid gate on the shared expert) is never a router.
ROUTER_WEIGHT_SUFFIXES = (
    "mlp.gate.weight",  # DeepSeek V2/V3, Kimi, GLM, Qwen*, MiMo, ERNIE, Ling, EXAONE, AFMoE
    "block_sparse_moe.gate.weight",  # Mixtral, MiniMax
    "ffn.gate.weight",  # DeepSeek-V4 original naming
    "mlp.router.weight",  # gpt-oss
    "feed_forward.router.weight",  # Llama-4
    "feed_forward.gate.weight",  # LFM2-MoE
    "mixer.gate.weight",  # Nemotron-H (backbone.layers.L.mixer)
    "moe.gate.weight",  # Step-3 / Step-3.5
    "mlp.router.classifier.weight",  # LongCat-Flash
    "mlp.gate.wg.weight",  # HunYuan
    "block_sparse_moe.router.layer.weight",  # Granite-MoE
    "ffn.router.layer.weight",  # DBRX (transformer.blocks.L.ffn)
    "router.proj.weight",  # Gemma-4 MoE
)
CORRECTION_BIAS_SUFFIXES = (
    "mlp.gate.e_score_correction_bias",  # DeepSeek V3 family, Kimi, GLM, MiMo
    "block_sparse_moe.e_score_correction_bias",  # MiniMax-M2 (sibling of gate)
    "ffn.gate.bias",  # DeepSeek-V4 original naming: this IS the correction bias
    "mlp.moe_statics.e_score_correction_bias",  # ERNIE-4.5, shape [1, E]
    "mlp.gate.expert_bias",  # Ling / Bailing
    "mlp.e_score_correction_bias",  # EXAONE-MoE, MiniMax-M2 converted names
    "mlp.expert_bias",  # AFMoE
    "feed_forward.expert_bias",  # LFM2-MoE
    "mixer.gate.e_score_correction_bias",  # Nemotron-H
    "moe.router_bias",  # Step-3.5
    "mlp.router.e_score_correction_bias",  # LongCat-Flash
)
LINEAR_BIAS_SUFFIXES = ("mlp.router.bias",)  # gpt-oss: a real linear bias on the logits
HASH_TABLE_SUFFIXES = ("ffn.gate.tid2eid", "mlp.topk.tid2eid", "mlp.gate.tid2eid")  # DeepSeek-V4

_LAYER_RE = re.compile(r"^(?P<prefix>(?:.*\.)?)(?:layers|blocks)\.(?P<layer>\d+)\.(?P<rest>.+)$")
# prefixes that are not the main decoder stack
_SKIP_PREFIX = re.compile(r"(^|\.)(mtp|vision_model|vision_tower|visual|vision|audio_tower|audio_model|encoder)(\.|$)")
_EXPERT0_RE = re.compile(r"(^|\.)experts\.0\.")
_FUSED_LEAVES = {
    "gate_up_proj", "down_proj", "gate_up_proj_blocks", "gate_up_proj_scales", "gate_up_proj_bias",
    "down_proj_blocks", "down_proj_scales", "down_proj_bias",
}
# packed 3-D expert weights that are not under an "experts" component
_PACKED_SUFFIXES = (
    "moe.gate_proj.weight", "moe.up_proj.weight", "moe.down_proj.weight",  # Step-3 packed [E, out, in]
    "block_sparse_moe.input_linear.weight", "block_sparse_moe.output_linear.weight",  # Granite-MoE
    "ffn.experts.mlp.w1", "ffn.experts.mlp.v1", "ffn.experts.mlp.w2",  # DBRX [E*I, H]
)


def _split(name: str) -> tuple[str, int, str] | None:
    m = _LAYER_RE.match(name)
    if m is None:
        return None
    prefix = m.group("prefix")
    if _SKIP_PREFIX.search(prefix):
        return None
    return prefix, int(m.group("layer")), m.group("rest")


def _is_expert_tensor(rest: str) -> bool:
    if _EXPERT0_RE.search(rest):
        return True
    parts = rest.split(".")
    if "experts" in parts:
        i = parts.index("experts")
        tail = parts[i + 1:]
        # fused: experts.gate_up_proj, experts.down_proj_blocks, ... (no expert index)
        if len(tail) == 1 and tail[0] in _FUSED_LEAVES:
            return True
        if len(tail) == 2 and tail[0] in _FUSED_LEAVES and tail[1] in ("weight", "weight_scale", "weight_scale_inv"):
            return True
    for s in _PACKED_SUFFIXES:
        base = s[: -len(".weight")] if s.endswith(".weight") else s
        if rest == s or rest.startswith(base + "."):
            return True
    return False


def _layout(experts: list[TensorInfo]) -> str | None:
    names = [t.name for t in experts]
    if not names:
        return None
    leaves = set()
    for n in names:
        parts = n.split(".")
        leaves.update(parts)
    if any(n.endswith("gate_up_proj_blocks") for n in names):
        return "fused_gate_up_mxfp4"
    if any(".experts.0." in "." + n for n in names):
        if "gate_proj" in leaves:
            return "per_expert_gate_up_down"
        if "w1" in leaves or "w3" in leaves:
            return "per_expert_w1w3w2"
        if "up_proj" in leaves and "gate_proj" not in leaves:
            return "per_expert_up_down"  # Nemotron-H: non-gated experts
        return "per_expert"
    if "gate_up_proj" in leaves:
        return "fused_gate_up"
    if "input_linear" in leaves:
        return "fused_input_output_linear"
    if any(n.endswith(("ffn.experts.mlp.w1", "ffn.experts.mlp.v1")) for n in names):
        return "fused_dbrx_w1v1w2"
    if "gate_proj" in leaves:
        return "packed_3d_gate_up_down"
    return "unknown"


def find_evidence(
    tensors: dict[str, TensorInfo],
    weight_map: dict[str, str] | None = None,
    *,
    layer: int | None = None,
) -> TensorEvidence:
    """Classify the tensors of the first MoE layer (the lowest layer index with a router; for
    DeepSeek-V4 the lowest non-hash layer, so the correction bias is visible). ``layer`` forces a
    layer. Names known only from ``weight_map`` get dtype ``"?"`` and shape ``[]``."""
    infos: dict[str, TensorInfo] = dict(tensors or {})
    for name, file in (weight_map or {}).items():
        if name not in infos:
            infos[name] = TensorInfo(name=name, dtype="?", shape=[], file=file)

    by_layer: dict[int, dict[str, TensorInfo]] = {}
    for name, info in infos.items():
        parts = _split(name)
        if parts is None:
            continue
        _, idx, rest = parts
        by_layer.setdefault(idx, {})[rest] = info

    def suffix_hit(rests: dict[str, TensorInfo], suffixes: tuple[str, ...]) -> TensorInfo | None:
        for s in suffixes:
            if s in rests:
                return rests[s]
        return None

    router_layers = sorted(i for i, rests in by_layer.items() if suffix_hit(rests, ROUTER_WEIGHT_SUFFIXES))
    hash_table = None
    for i in sorted(by_layer):
        hit = suffix_hit(by_layer[i], HASH_TABLE_SUFFIXES)
        if hit is not None:
            hash_table = hit
            break

    ev = TensorEvidence(total_tensors=len(infos), hash_table=hash_table)
    if layer is None:
        plain = [i for i in router_layers if suffix_hit(by_layer[i], HASH_TABLE_SUFFIXES) is None]
        candidates = plain or router_layers
        if not candidates:
            return ev
        layer = candidates[0]
    rests = by_layer.get(layer, {})
    ev.layer = layer
    ev.router_weight = suffix_hit(rests, ROUTER_WEIGHT_SUFFIXES)
    ev.router_bias = suffix_hit(rests, CORRECTION_BIAS_SUFFIXES)
    ev.linear_bias = suffix_hit(rests, LINEAR_BIAS_SUFFIXES)
    own_hash = suffix_hit(rests, HASH_TABLE_SUFFIXES)
    if own_hash is not None:
        ev.hash_table = own_hash
    experts = [info for rest, info in sorted(rests.items()) if _is_expert_tensor(rest)]
    ev.experts = experts
    ev.expert_layout = _layout(experts)
    # files whose headers were read (weight_map-only names are not "read")
    ev.files_read = sorted({t.file for t in (tensors or {}).values() if t.file})
    return ev
