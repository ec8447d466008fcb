"""Memory per GPU: do the weights fit under this layout, and how much KV cache is left?

Core only (no torch, typer or rich). :func:`memory_estimate` counts the weights every GPU of a
vLLM 0.33.0 deployment holds:

* routed experts — split by expert parallelism (the largest rank's share of ``E + redundant``
  experts, ``local_experts``) or tensor-sharded over ``moe_tp``; padded by the chosen backend's
  silent padding (``padding`` adjustments from :mod:`.shapes`);
* attention, dense MLPs and shared experts — split by TP (replicated across DP ranks); shared
  experts replicated under sequence-parallel MoE where vLLM replicates them; MLA's ``q_a_proj`` /
  ``kv_a_proj_with_mqa`` are ``ReplicatedLinear`` on every rank;
* the vocabulary-parallel embedding and lm_head — vocab padded to 64 and split by TP
  (``vocab_parallel_embedding.py:36, :286-305``);
* routers and norms — replicated.

The parameter counts come from the config per architecture (MLA and GQA aware). When the model
directory has a safetensors index, its ``metadata.total_size`` is the checkpoint's size: the
config-derived checkpoint size is compared with it and the per-GPU numbers are scaled to it when
they differ. MTP / next-token-prediction layers are in the checkpoint but not loaded without
speculative decoding, so they are not counted per GPU.

Usable memory is ``gpu_memory_gib × gpu_memory_utilization``; what is left after the weights is
the KV-cache room, as bytes and as tokens (MLA: ``kv_lora_rank + qk_rope_head_dim`` elements per
layer, not split by TP; GQA: ``2 · kv_heads/tp · head_dim`` per layer). vLLM also reserves its
activation peak and CUDA-graph memory, measured at startup: not modelled, so the KV room is an
upper bound and says so. Every number that cannot be known is listed in ``unknowns`` and left None.
"""

from __future__ import annotations

from typing import NamedTuple

from .layout import Layout, local_experts
from .shapes import MLA_FAMILIES, Adjustment, RawModel, ShapeContext, _int, build_context

GIB = 1024 ** 3
V = "vllm 0.33.0 "
VOCAB_PAD = 64  # DEFAULT_VOCAB_PADDING_SIZE, model_executor/layers/vocab_parallel_embedding.py:36

# bytes per weight element as stored for a scheme (values + their scales)
BYTES_PER_PARAM: dict[str, float] = {
    "bf16": 2.0,
    "fp8_block": 1.0 + 4 / (128 * 128),  # e4m3 + one fp32 scale per 128×128 block
    "fp8_per_tensor": 1.0,
    "mxfp8": 1.0 + 1 / 32,  # e4m3 + one e8m0 scale per 32
    "nvfp4": 0.5 + 1 / 16,  # e2m1 + one e4m3 scale per 16
    "mxfp4": 0.5 + 1 / 32,  # e2m1 + one e8m0 scale per 32
    "fp4_mixed": 0.5 + 1 / 32,  # DeepSeek-V4 FP4 experts (MXFP4)
    "int4": 0.5 + 2 / 32,  # int4 + one bf16 scale per group of 32 (group size from the checkpoint)
}
# KV cache element size per --kv-cache-dtype (utils/torch_utils.py:40-60); fp8_ds_mla is a
# 656-byte row per token and layer (model_executor/layers/attention/mla_attention.py:1386)
KV_DTYPE_BYTES: dict[str, int] = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4, "fp8": 1,
                                  "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1, "int8": 1}
KV_ROW_BYTES: dict[str, int] = {"fp8_ds_mla": 656, "nvfp4_ds_mla": 352}


class MemoryEstimate(NamedTuple):
    weights_per_gpu_gib: float | None
    usable_gib: float | None
    fits: bool | None
    kv_cache_gib: float | None
    kv_tokens: int | None
    basis: str
    unknowns: tuple[str, ...]
    # ---- additions beyond the contract ----
    breakdown_gib: dict = {}  # per-GPU GiB by part (never mutated)
    checkpoint_gib: float | None = None  # index total_size (or the config-derived size)
    kv_bytes_per_token: int | None = None  # per GPU
    max_model_len: int | None = None
    kv_fits_max_model_len: bool | None = None
    load_error: str | None = None  # vLLM's startup error when one request of max_model_len does not fit
    weights_lower_bound_gib: float | None = None  # the known parts, when some are unknown
    # True when weights are unknown (fits None) but the known parts alone exceed the usable memory:
    # vLLM certainly cannot load the model there
    known_parts_exceed_usable: bool | None = None

    def to_dict(self) -> dict:
        d = self._asdict()
        d["breakdown_gib"] = dict(self.breakdown_gib)
        return d


class Part(NamedTuple):
    name: str
    params: float  # global parameter count (whole model, loaded layers only)
    bytes_per_param: float
    split: str  # "experts" | "tp" | "vocab" | "replicated"
    layers: int = 0  # decoder layers it spans (0: not layer-bound — embedding, lm_head, final norm)

    @property
    def bytes(self) -> float:
        return self.params * self.bytes_per_param


# ------------------------------------------------------------------------------------------------
# parameter counts per architecture
# ------------------------------------------------------------------------------------------------
def _lin_bytes(ctx: ShapeContext, quantized: bool) -> float:
    if not quantized:
        return 2.0
    if ctx.scheme == "int4" and ctx.group_size:
        return 0.5 + 2 / ctx.group_size
    return BYTES_PER_PARAM.get("fp8_block" if ctx.scheme == "fp4_mixed" else ctx.scheme, 2.0)


def _attn_quantized(ctx: ShapeContext) -> bool:
    return any(lin.quantized for lin in ctx.linears if "attention" in lin.what) if ctx.linears else (
        ctx.scheme not in ("bf16", "mxfp4", "fp4_mixed") and (ctx.what_if or ctx.scheme.startswith("fp8")))


def attention_params(ctx: ShapeContext) -> tuple[float, float, str] | None:
    """(TP-split params, replicated params, kind) of one attention layer; None when unknown."""
    c, H = ctx.cfg, ctx.H or 0
    heads = _int(c, "num_attention_heads")
    if heads is None or not H:
        return None
    if ctx.family in MLA_FAMILIES and _int(c, "kv_lora_rank"):
        kvl, rope = _int(c, "kv_lora_rank"), _int(c, "qk_rope_head_dim")
        nope, v = _int(c, "qk_nope_head_dim"), _int(c, "v_head_dim")
        if None in (kvl, rope, nope, v):
            return None
        qlr = _int(c, "q_lora_rank")
        q_tp = (qlr or H) * heads * (nope + rope)  # q_b_proj / q_proj (deepseek_v2.py:1083, :1091)
        rep = (H * qlr + qlr if qlr else 0) + H * (kvl + rope) + kvl  # q_a/kv_a_proj + their norms (replicated)
        tp = q_tp + kvl * heads * (nope + v) + heads * v * H  # + kv_b_proj + o_proj
        return float(tp), float(rep), "MLA"
    if ctx.family in ("qwen3_next", "qwen3_5_moe", "nemotron_h", "minimax_m1", "jamba", "deepseek_v4"):
        return None  # hybrid / non-standard attention: not modelled from the config
    kv = _int(c, "num_key_value_heads") or heads
    hd = _int(c, "head_dim") or H // heads
    return float(H * heads * hd * 2 + H * kv * hd * 2), 0.0, "GQA"  # q, o + k, v


def _num_attention_kv_layers(ctx: ShapeContext) -> tuple[int | None, str]:
    c = ctx.cfg
    n = ctx.desc.moe.num_hidden_layers
    lt = c.get("layer_types")
    if isinstance(lt, list) and lt:
        full = sum(1 for t in lt if isinstance(t, str) and "attention" in t and "linear" not in t)
        note = "sliding-window layers counted as full attention (upper bound)" if any(
            isinstance(t, str) and "sliding" in t for t in lt) else ""
        return full, note
    interval = _int(c, "full_attention_interval")
    if interval and n:
        return n // interval, "only full-attention layers hold KV (linear-attention state not counted)"
    return n, ""


# bits per element of safetensors dtypes (safetensors 0.8)
_DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
               "F8_E5M2FNUZ": 8, "F4": 4, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32,
               "F32": 32, "I64": 64, "U64": 64, "F64": 64}


def header_expert_bytes(ctx: ShapeContext) -> tuple[float, str] | None:
    """Bytes of one routed expert (weights, scales, biases) as the checkpoint stores it, from the headers
    of the first MoE layer's tensors; fused 3-D tensors are divided by the expert count."""
    ev = ctx.desc.tensors
    if ev is None or not ev.experts or not ctx.E:
        return None
    total = 0.0
    for t in ev.experts:
        bits = _DTYPE_BITS.get((t.dtype or "").upper())
        if bits is None or not t.shape:
            return None
        n = 1
        for d in t.shape:
            n *= d
        per_expert = ".experts.0." in "." + t.name
        total += n * bits / 8 / (1 if per_expert else ctx.E)
    return total, f"model.layers.{ev.layer}"


def parts(ctx: ShapeContext, unknowns: list[str], notes: list[str] | None = None) -> list[Part]:
    """The loaded weights by part (MTP layers excluded)."""
    m, c, H = ctx.desc.moe, ctx.cfg, ctx.H
    notes = [] if notes is None else notes
    out: list[Part] = []
    n_moe = len(m.moe_layers)
    if H and ctx.I:
        per_expert = 3 * H * ctx.I + ((2 * ctx.I + H) if ctx.has_bias else 0)
        bpp = BYTES_PER_PARAM.get(ctx.scheme, 2.0) if ctx.scheme != "int4" else _lin_bytes(ctx, True)
        header = None if ctx.what_if else header_expert_bytes(ctx)
        if header is not None:
            bpp = header[0] / per_expert
            notes.append(f"routed-expert bytes from the safetensors header of {header[1]} "
                         f"({header[0] / 2**20:.2f} MiB per expert)")
        out.append(Part("routed experts", float(n_moe * m.num_experts * per_expert), bpp, "experts", n_moe))
        out.append(Part("routers", float(n_moe * m.num_experts * (H + 1)), 2.0, "replicated", n_moe))
    else:
        unknowns.append("routed experts: expert width or hidden size unknown")
    shared = {lin.what: lin for lin in ctx.linears if "shared" in lin.what and lin.kind == "row"}
    for lin in shared.values():
        split = "replicated" if lin.tp == 1 and ctx.layout.tp > 1 else "tp"
        out.append(Part("shared experts", float(n_moe * 3 * H * lin.input_size), _lin_bytes(ctx, lin.quantized), split,
                        n_moe))
    dense = [lin for lin in ctx.linears if lin.what.startswith("dense") and lin.kind == "row"]
    n_dense = (m.num_hidden_layers or 0) - n_moe
    for lin in dense:
        out.append(Part("dense MLPs", float(n_dense * 3 * H * lin.input_size), _lin_bytes(ctx, lin.quantized), "tp",
                        n_dense))
    att = attention_params(ctx)
    n_layers = m.num_hidden_layers or 0
    if att is None:
        unknowns.append("attention weights: the config lacks the attention dimensions (or the attention is hybrid)")
    else:
        ab = _lin_bytes(ctx, _attn_quantized(ctx))
        out.append(Part(f"attention ({att[2]})", att[0] * n_layers, ab, "tp", n_layers))
        out.append(Part("attention (replicated)", att[1] * n_layers, ab, "replicated", n_layers))
    vocab = _int(c, "vocab_size")
    if vocab is None or not H:
        unknowns.append("embedding and lm_head: the config has no vocab_size")
    else:
        n_emb = 1 if c.get("tie_word_embeddings") else 2
        out.append(Part("embedding + lm_head", float(n_emb * vocab * H), 2.0, "vocab"))
    if H:
        out.append(Part("norms", float((2 * n_layers + 1) * H), 2.0, "replicated", n_layers))
    arch = (ctx.desc.model.architecture or "") if ctx.desc.model else ""
    if arch.endswith("ForConditionalGeneration") or isinstance((ctx.raw.config or {}).get("vision_config"), dict):
        unknowns.append("vision/audio encoder weights not counted (multimodal checkpoint)")
    if ctx.desc.moe.model_type in ("deepseek_v32", "glm_moe_dsa"):
        unknowns.append("sparse-attention indexer weights and its KV cache not counted")
    return out


# ------------------------------------------------------------------------------------------------
# per-GPU bytes
# ------------------------------------------------------------------------------------------------
def _padding_factor(padding: tuple[Adjustment, ...]) -> float:
    f = 1.0
    for a in padding:
        if a.overhead_pct:
            f *= 1 + a.overhead_pct / 100
    return f


def _stage_share(p: Part, ctx: ShapeContext) -> float:
    """Share of a part on the fullest pipeline stage: at most ceil(layers / pp) of its layers; one of
    embedding / lm_head (first / last stage). An upper bound per stage."""
    pp = ctx.layout.pp
    if pp <= 1:
        return 1.0
    if p.layers:
        per_stage = -(-(ctx.desc.moe.num_hidden_layers or p.layers) // pp)
        return min(p.layers, per_stage) / p.layers
    if p.split == "vocab" and not ctx.cfg.get("tie_word_embeddings"):
        return 0.5
    return 1.0


def per_gpu_bytes(p: Part, ctx: ShapeContext, pad: float) -> float:
    return _per_rank_bytes(p, ctx, pad) * _stage_share(p, ctx)


def _per_rank_bytes(p: Part, ctx: ShapeContext, pad: float) -> float:
    L = ctx.layout
    if p.split == "experts":
        counts = local_experts(ctx.E, L)
        share = max(counts) / ctx.E if L.moe_ep > 1 else 1 / L.moe_tp
        return p.bytes * share * pad
    if p.split == "tp":
        return p.bytes / L.tp
    if p.split == "vocab":
        vocab = _int(ctx.cfg, "vocab_size") or 1
        padded = -(-vocab // VOCAB_PAD) * VOCAB_PAD
        return p.bytes * padded / vocab / L.tp
    return p.bytes


def _mtp_bytes(ctx: ShapeContext, loaded: list[Part]) -> float:
    """Bytes of the MTP layers a checkpoint stores but vLLM does not load without speculative decoding:
    one decoder layer each (+ DeepSeek-style copies of embedding and lm_head, and eh_proj)."""
    m = ctx.desc.moe
    n_mtp = len(m.mtp_layers)
    if not n_mtp or not m.num_hidden_layers:
        return 0.0
    n_layers, n_moe = m.num_hidden_layers, max(1, len(m.moe_layers))
    layer = 0.0
    for p in loaded:
        if p.name in ("routed experts", "routers", "shared experts"):
            layer += p.bytes / n_moe
        elif p.name.startswith("attention") or p.name == "norms":
            layer += p.bytes / n_layers
    if ctx.family in MLA_FAMILIES and ctx.H:
        emb = next((p.bytes for p in loaded if p.name == "embedding + lm_head"), 0.0)
        layer += emb + 2 * ctx.H * ctx.H * _lin_bytes(ctx, True)  # embed_tokens + shared_head + eh_proj
    return n_mtp * layer


# ------------------------------------------------------------------------------------------------
# KV cache
# ------------------------------------------------------------------------------------------------
def kv_bytes_per_token(ctx: ShapeContext, kv_cache_dtype: str | None, unknowns: list[str],
                       notes: list[str]) -> int | None:
    """KV-cache bytes one token takes on one GPU."""
    c, L = ctx.cfg, ctx.layout
    n_layers, note = _num_attention_kv_layers(ctx)
    if note:
        notes.append(note)
    dt = (kv_cache_dtype or "auto").lower()
    if n_layers is None:
        unknowns.append("KV cache: number of attention layers unknown")
        return None
    per_stage = -(-n_layers // L.pp)
    if ctx.family in MLA_FAMILIES and _int(c, "kv_lora_rank"):
        width = (_int(c, "kv_lora_rank") or 0) + (_int(c, "qk_rope_head_dim") or 0)
        row = KV_ROW_BYTES.get(dt) or width * (2 if dt == "auto" else KV_DTYPE_BYTES.get(dt, 0))
    else:
        heads = _int(c, "num_attention_heads")
        if heads is None or ctx.family == "deepseek_v4":
            unknowns.append("KV cache: the config lacks num_attention_heads (or the attention is not modelled)")
            return None
        kv = _int(c, "num_key_value_heads") or heads
        hd = _int(c, "head_dim") or (ctx.H or 0) // heads
        kv_rank = kv // L.tp if L.tp <= kv else 1  # KV heads replicated when tp > kv heads
        row = 2 * kv_rank * hd * (2 if dt == "auto" else KV_DTYPE_BYTES.get(dt, 0))
    if not row:
        unknowns.append(f"KV cache: --kv-cache-dtype {kv_cache_dtype} is not modelled")
        return None
    if dt == "auto":
        notes.append("KV cache in the model dtype (bf16) for --kv-cache-dtype auto")
    return per_stage * row


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------
def _weights(ctx: ShapeContext, padding: tuple[Adjustment, ...], unknowns: list[str],
             notes: list[str]) -> tuple[float | None, dict, float | None, str]:
    loaded = parts(ctx, unknowns, notes)
    pad = _padding_factor(padding)
    breakdown = {}
    for p in loaded:
        breakdown[p.name] = breakdown.get(p.name, 0.0) + per_gpu_bytes(p, ctx, pad)
    if ctx.layout.pp > 1:
        notes.append(f"pipeline parallel {ctx.layout.pp}: the fullest stage, counted as ceil(layers/pp) of each "
                     "layer kind plus one of embedding / lm_head (an upper bound)")
    computed_ckpt = sum(p.bytes for p in loaded) + _mtp_bytes(ctx, loaded)
    total = ctx.raw.index_total_size
    complete = not any(u.startswith(("routed", "attention", "embedding")) for u in unknowns)
    basis = "parameter counts from config.json per architecture"
    if total and complete:
        ratio = total / computed_ckpt
        basis += f"; checkpoint size from the safetensors index ({total / GIB:.1f} GiB)"
        if abs(ratio - 1) > 0.03:
            notes.append(f"config-derived checkpoint size {computed_ckpt / GIB:.1f} GiB differs from the index "
                         f"total_size {total / GIB:.1f} GiB by {100 * (ratio - 1):+.1f}%: per-GPU numbers scaled "
                         "to the index")
            breakdown = {k: v * ratio for k, v in breakdown.items()}
    elif total and not complete:
        rest = max(0.0, total - computed_ckpt)
        breakdown["non-expert remainder (assumed TP-split)"] = rest / ctx.layout.tp
        unknowns[:] = [u for u in unknowns if not u.startswith(("attention", "embedding"))]
        notes.append(f"attention/embedding sizes from the index total_size minus the config-derived parts "
                     f"({rest / GIB:.1f} GiB), taken as TP-split (MTP layers and replicated parts not separable)")
        basis += f"; safetensors index total_size {total / GIB:.1f} GiB"
    elif not complete:
        notes.append(f"the parts that are known take {sum(breakdown.values()) / GIB:.2f} GiB per GPU (a lower bound)")
        return None, {k: round(v / GIB, 2) for k, v in breakdown.items()}, None, basis
    ckpt = total or computed_ckpt
    return sum(breakdown.values()) / GIB, {k: round(v / GIB, 2) for k, v in breakdown.items()}, ckpt / GIB, basis


def memory_estimate(desc, layout: Layout, *, scheme: str, gpu_memory_gib: float, gpu_memory_utilization: float = 0.9,
                    max_model_len: int | None = None, kv_cache_dtype: str | None = None,
                    padding: tuple[Adjustment, ...] = (), config: dict | None = None,
                    ctx: ShapeContext | None = None) -> MemoryEstimate:
    """Weights per GPU, fit against ``gpu_memory_gib × gpu_memory_utilization``, KV-cache room.

    ``padding``: the silent-padding adjustments of the backend vLLM picks (their overhead_pct grows
    the routed experts). ``config``: the raw config.json (read from the model when None)."""
    ctx = ctx or build_context(desc, layout, scheme=scheme, arch=0, config=config)
    unknowns: list[str] = []
    notes: list[str] = []
    weights, breakdown, ckpt, basis = _weights(ctx, padding, unknowns, notes)
    usable = gpu_memory_gib * gpu_memory_utilization if gpu_memory_gib else None
    if usable is None:
        unknowns.append("GPU memory unknown")
    lower = sum(breakdown.values()) if weights is None and breakdown else None
    fits = None if weights is None or usable is None else weights <= usable
    # the known parts alone exceed the usable memory: "does not fit" is certain, whatever is unknown
    known_too_big = True if lower is not None and usable is not None and lower > usable else None
    kv_gib = None if not fits or weights is None else usable - weights
    per_tok = kv_bytes_per_token(ctx, kv_cache_dtype, unknowns, notes)
    tokens = int(kv_gib * GIB // per_tok) if kv_gib is not None and per_tok else None
    mml, mml_src = _max_model_len(ctx, max_model_len)
    kv_ok, err = _kv_startup(mml, tokens, per_tok, kv_gib)
    unknowns.append("activation peak and CUDA-graph memory (measured by vLLM at startup) not subtracted: "
                    "the KV room is an upper bound")
    if mml_src:
        notes.append(mml_src)
    return MemoryEstimate(
        weights_per_gpu_gib=None if weights is None else round(weights, 2),
        usable_gib=None if usable is None else round(usable, 2), fits=fits,
        kv_cache_gib=None if kv_gib is None else round(kv_gib, 2), kv_tokens=tokens,
        basis="; ".join([basis, *dict.fromkeys(notes)]), unknowns=tuple(dict.fromkeys(unknowns)),
        breakdown_gib=breakdown, checkpoint_gib=None if ckpt is None else round(ckpt, 1),
        kv_bytes_per_token=per_tok, max_model_len=mml, kv_fits_max_model_len=kv_ok, load_error=err,
        weights_lower_bound_gib=None if lower is None else round(lower, 2), known_parts_exceed_usable=known_too_big)


def _max_model_len(ctx: ShapeContext, given: int | None) -> tuple[int | None, str]:
    if given:
        return given, ""
    derived = _int(ctx.cfg, "max_position_embeddings")
    return derived, (f"max_model_len {derived} from config.json max_position_embeddings (vLLM's default)"
                     if derived else "")


def _kv_startup(mml: int | None, tokens: int | None, per_tok: int | None,
                kv_gib: float | None) -> tuple[bool | None, str | None]:
    """vLLM refuses to start when one request of max_model_len does not fit the KV cache
    (v1/core/kv_cache_planning.py:67-86)."""
    if mml is None or tokens is None or per_tok is None or kv_gib is None:
        return None, None
    if tokens >= mml:
        return True, None
    need = mml * per_tok / GIB
    return False, (f"To serve at least one request with the model's max seq len ({mml}), ({need:.2f} GiB KV cache is "
                   f"needed, which is larger than the available KV cache memory ({kv_gib:.2f} GiB). Based on the "
                   f"available memory, the estimated maximum model length is {tokens}. ({V}"
                   "v1/core/kv_cache_planning.py:67-86)")


__all__ = ["MemoryEstimate", "memory_estimate", "parts", "Part", "BYTES_PER_PARAM", "kv_bytes_per_token",
           "attention_params", "RawModel"]
