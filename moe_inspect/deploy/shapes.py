"""Per-rank shape gates: will vLLM 0.33.0 load this model under this parallel layout?

Core only (no torch, typer or rich). :data:`SHAPE_GATES` is the declarative table: one row per
check vLLM 0.33.0 makes while it builds the model (or while it prepares the expert weights), each
with the quantization scheme it applies to, when it applies, its arithmetic, vLLM's own message
and the file:line it comes from. :func:`shape_report` evaluates every row for one model, one
layout, one scheme and one GPU architecture and sorts the findings into

* ``load_errors`` — vLLM raises while loading, whatever expert backend it picks;
* ``adjustments`` — model-wide changes vLLM makes silently (FP8 block scales refined, a forced
  backend's TP shard padded);
* ``backend_blocks`` — backends (``backends.py`` keys) that cannot run under this layout;
* ``backend_adjustments`` — silent paddings a backend makes (padded size, % extra expert memory).

Besides the routed experts it checks every layer that can refuse to load: dense MLP layers,
shared experts (replicated where vLLM replicates them) and attention projections when they are
block-quantized. Which layers a checkpoint quantizes comes from its quantization config's
ignore lists; for a what-if scheme every linear layer except the router and lm_head is taken as
quantized (the report says so).

All sources are vLLM 0.33.0 (the wheel), paths relative to the ``vllm`` package.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

from ..errors import MoeInspectError
from ..sources.strict_json import read_json_file
from .layout import Layout, local_experts

V = "vllm 0.33.0 "
_L = "model_executor/layers/"
_FM = _L + "fused_moe/"
_Q = _L + "quantization/"
_CT = _Q + "compressed_tensors/compressed_tensors_moe/"
_M = "model_executor/models/"


# ------------------------------------------------------------------------------------------------
# results (the contract with check.py)
# ------------------------------------------------------------------------------------------------
class LoadError(NamedTuple):
    layer: str
    message: str  # vLLM's own message
    source: str  # "vllm 0.33.0 path:line"


class Adjustment(NamedTuple):
    kind: str
    detail: str
    overhead_pct: float | None
    source: str


class ShapeReport(NamedTuple):
    per_rank: dict
    load_errors: tuple[LoadError, ...]
    adjustments: tuple[Adjustment, ...]
    backend_blocks: dict[str, str]
    backend_adjustments: dict[str, tuple[Adjustment, ...]]
    notes: tuple[str, ...] = ()  # what was assumed or could not be checked

    @property
    def starts(self) -> bool:
        return not self.load_errors

    def to_dict(self) -> dict:
        return {
            "per_rank": self.per_rank,
            "load_errors": [e._asdict() for e in self.load_errors],
            "adjustments": [a._asdict() for a in self.adjustments],
            "backend_blocks": dict(self.backend_blocks),
            "backend_adjustments": {k: [a._asdict() for a in v] for k, v in self.backend_adjustments.items()},
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------------------
# the model's raw files (config.json, quantization config, safetensors index)
# ------------------------------------------------------------------------------------------------
class RawModel(NamedTuple):
    config: dict | None  # config.json as written (None: not available)
    hf_quant_config: dict | None = None  # ModelOpt hf_quant_config.json
    index_total_size: int | None = None  # model.safetensors.index.json metadata.total_size
    where: str = ""  # "local directory …", "catalog (config subset)", …


def _read_json(path: Path) -> dict | None:
    """``path`` as a JSON object through the one strict reader, or None when it is missing,
    unreadable or not a JSON object (the caller falls back; ``check`` does not fail on it)."""
    try:
        return read_json_file(path, err=MoeInspectError, what="JSON file")
    except MoeInspectError:
        return None


def raw_model(desc) -> RawModel:
    """The raw files behind ``desc``: from its directory (local or HF snapshot) when it has one,
    else from the built-in catalog (a config subset: attention and vocabulary keys may be missing)."""
    path = getattr(desc.model, "path", None)
    if path:
        d = Path(path)
        cfg = _read_json(d / "config.json")
        if isinstance(cfg, dict):
            hq = _read_json(d / "hf_quant_config.json")
            idx = _read_json(d / "model.safetensors.index.json")
            total = None
            if isinstance(idx, dict) and isinstance(idx.get("metadata"), dict):
                t = idx["metadata"].get("total_size")
                total = int(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else None
            if total is None:
                total = _single_file_size(d)
            return RawModel(cfg, hq if isinstance(hq, dict) else None, total, f"{desc.model.source}: {d}")
    try:
        from .. import catalog

        e = catalog.find(desc.model.id)
    except Exception:  # noqa: BLE001 - the catalog is optional here
        e = None
    if e is not None:
        return RawModel(json.loads(json.dumps(e.config)), None, None, "catalog (config subset)")
    return RawModel(None, None, None, "no config available")


def _single_file_size(d: Path) -> int | None:
    p = d / "model.safetensors"
    try:
        return p.stat().st_size if p.is_file() else None
    except OSError:
        return None


def text_view(config: dict | None) -> dict:
    """config.json with a nested ``text_config`` (Qwen3.5, Llama 4, …) merged over the top level."""
    if not isinstance(config, dict):
        return {}
    sub = config.get("text_config")
    return {**config, **sub} if isinstance(sub, dict) else dict(config)


def _int(cfg: dict, *keys: str) -> int | None:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


# ------------------------------------------------------------------------------------------------
# which layers the checkpoint quantizes
# ------------------------------------------------------------------------------------------------
class IgnoreList(NamedTuple):
    """A checkpoint's list of layers left unquantized, matched as vLLM 0.33.0 matches it."""

    entries: tuple[str, ...]
    mode: str  # "exact" (Fp8Config: quantization/fp8.py:118), "ct" (re:/exact), "glob" (ModelOpt)
    source: str

    def skips(self, prefix: str) -> bool:
        for e in self.entries:
            if self.mode == "ct" and e.startswith("re:"):
                if re.match(e[3:], prefix):
                    return True
            elif self.mode == "glob":
                if fnmatch.fnmatchcase(prefix, e) or prefix.startswith(e.rstrip("*").rstrip(".") + "."):
                    return True
            elif prefix == e:
                return True
        return False


def ignore_list(raw: RawModel, producer: str | None) -> IgnoreList | None:
    """The ignore list vLLM reads: Fp8Config ``ignored_layers`` else ``modules_to_not_convert``
    (quantization/fp8.py:162-167), compressed-tensors ``ignore``, ModelOpt ``exclude_modules``."""
    qc = (raw.config or {}).get("quantization_config") or {}
    if not isinstance(qc, dict):
        return None
    if producer == "compressed-tensors" or qc.get("quant_method") == "compressed-tensors":
        return _mk_ignore(qc.get("ignore"), "ct", "config.json quantization_config.ignore")
    hq = (raw.hf_quant_config or {}).get("quantization") if raw.hf_quant_config else None
    if isinstance(hq, dict) and hq.get("exclude_modules") is not None:
        return _mk_ignore(hq.get("exclude_modules"), "glob", "hf_quant_config.json quantization.exclude_modules")
    if qc.get("quant_method") == "modelopt" or qc.get("exclude_modules") is not None:
        return _mk_ignore(qc.get("exclude_modules"), "glob", "config.json quantization_config.exclude_modules")
    for key in ("ignored_layers", "modules_to_not_convert"):
        if qc.get(key):
            return _mk_ignore(qc.get(key), "exact", f"config.json quantization_config.{key}")
    return _mk_ignore([], "exact", "config.json quantization_config (no ignore list)")


def _mk_ignore(value: Any, mode: str, source: str) -> IgnoreList:
    items = tuple(str(v) for v in value) if isinstance(value, list) else ()
    return IgnoreList(items, mode, source)


# ------------------------------------------------------------------------------------------------
# the evaluation context
# ------------------------------------------------------------------------------------------------
# model families whose shared expert becomes ReplicatedLinear-like (disable_tp) under
# sequence-parallel MoE: deepseek_v2.py:266,275,369; qwen3_next.py:218 (via qwen2_moe.py:90);
# llama4.py:115; models/deepseek_v4/nvidia/model.py:331
SP_REPLICATED_SHARED = frozenset({"deepseek_v2", "deepseek_v3", "glm_moe_dsa", "qwen3_next", "qwen3_5_moe", "llama4",
                                  "deepseek_v4"})
MLA_FAMILIES = frozenset({"deepseek_v2", "deepseek_v3", "glm_moe_dsa"})
NO_DENSE_MLP = frozenset({"nemotron_h"})  # its non-MoE layers are Mamba or attention blocks, not MLPs
# the shared-expert module name per family (for ignore-list matching and messages)
_SHARED_NAME = {"qwen2_moe": "mlp.shared_expert", "qwen3_next": "mlp.shared_expert", "qwen3_5_moe": "mlp.shared_expert",
                "llama4": "feed_forward.shared_expert"}
_MLP_NAME = {"llama4": "feed_forward"}


class LinearLayer(NamedTuple):
    """One tensor-parallel linear layer vLLM builds (a representative of identical layers)."""

    name: str  # checkpoint prefix, e.g. "model.layers.0.mlp.down_proj"
    kind: str  # "row" | "column" | "merged_column" | "replicated"
    input_size: int
    output_sizes: tuple[int, ...]  # global output size(s); merged layers list each part
    tp: int
    quantized: bool
    what: str  # "dense MLP (layers 0-2)", "shared expert", "attention"
    partitions: tuple[int, ...] | None = None  # per-rank output sizes when not output/tp (QKV)
    kv_heads: int = 0  # QKV: total KV heads (replicated when tp >= kv_heads, linear.py:1066-1070)


@dataclass(eq=False)  # a mutable working context, compared by identity
class ShapeContext:
    desc: Any
    layout: Layout
    scheme: str
    arch: int
    raw: RawModel
    cfg: dict
    what_if: bool
    config_class: str  # "fp8" | "compressed-tensors" | "modelopt" | "openai" | "other"
    family: str
    E: int
    H: int | None
    I: int | None
    block: tuple[int, int] = (128, 128)
    group_size: int | None = None
    gated: bool = True
    has_bias: bool = False
    w4a8_fp8: bool = False
    notes: list[str] = field(default_factory=list)
    linears: list[LinearLayer] = field(default_factory=list)
    ignore: IgnoreList | None = None

    @property
    def ispp(self) -> int | None:
        return self.I // self.layout.moe_tp if self.I else None

    @property
    def forced(self) -> str | None:
        return self.layout.moe_backend

    @property
    def global_experts(self) -> int:
        return self.E + self.layout.num_redundant_experts

    @property
    def ep_group(self) -> int:  # get_ep_group().world_size: tp * pcp * dp
        return self.layout.tp * self.layout.pcp * self.layout.dp


def _config_class(desc, scheme: str, what_if: bool) -> str:
    if what_if:
        return "fp8" if scheme.startswith("fp8") else "what-if"
    p = (desc.quantization.producer or "").lower()
    if p in ("compressed-tensors", "modelopt", "openai"):
        return p
    return "fp8" if scheme.startswith("fp8") or desc.quantization.method == "fp4_mixed" else (p or "other")


def _is_w4a8_fp8(cfg: dict) -> bool:
    """compressed-tensors W4A8-FP8: int4 weights with FP8 input activations in a config group."""
    qc = cfg.get("quantization_config") or {}
    groups = qc.get("config_groups") if isinstance(qc, dict) else None
    if not isinstance(groups, dict):
        return False
    for g in groups.values():
        w = (g or {}).get("weights") or {}
        a = (g or {}).get("input_activations") or {}
        if w.get("num_bits") == 4 and w.get("type") == "int" and a.get("num_bits") == 8 and a.get("type") == "float":
            return True
    return False


def build_context(desc, layout: Layout, *, scheme: str, arch: int, config: dict | None = None) -> ShapeContext:
    from .. import backends as B

    raw = raw_model(desc) if config is None else RawModel(config, None, None, "given config")
    cfg = text_view(raw.config)
    q = desc.quantization
    ckpt_scheme = B.scheme_from_quant(q.method, expert_format=q.expert_format, block_size=q.block_size)
    what_if = scheme != ckpt_scheme
    m = desc.moe
    ctx = ShapeContext(desc=desc, layout=layout, scheme=scheme, arch=arch, raw=raw, cfg=cfg, what_if=what_if,
                       config_class=_config_class(desc, scheme, what_if), family=m.family, E=m.num_experts,
                       H=m.hidden_size, I=m.moe_intermediate_size)
    if q.block_size and len(q.block_size) == 2 and not what_if:
        ctx.block = (int(q.block_size[0]), int(q.block_size[1]))
    ctx.group_size = (q.group_size if not what_if else None) or (32 if scheme == "int4" else None)
    ctx.gated = m.activation not in ("relu2", "gelu_plain")
    ctx.has_bias = m.family == "gpt_oss"
    ctx.w4a8_fp8 = not what_if and _is_w4a8_fp8(cfg)
    if what_if:
        ctx.notes.append(f"what-if --quant {scheme}: every linear layer except the router and lm_head is taken as "
                         "quantized, with vLLM's default block/group sizes")
    if scheme == "int4" and ctx.config_class not in ("compressed-tensors", "what-if") and not ctx.w4a8_fp8:
        ctx.notes.append(f"INT4 expert shape gates of {q.producer or 'this'} checkpoints (GPTQ/AWQ MoE methods) "
                         "are not modelled; only compressed-tensors WNA16's")
    if scheme == "fp8_block" and ctx.config_class == "modelopt":
        ctx.notes.append("ModelOpt FP8 block MoE shape gates are not modelled")
    if layout.use_all2all_kernels and layout.all2all_backend == "deepep_v2":
        ctx.notes.append("deepep_v2 hidden-size rounding is not modelled")
    ctx.ignore = None if what_if else ignore_list(raw, q.producer)
    ctx.linears = linear_layers(ctx)
    return ctx


# ------------------------------------------------------------------------------------------------
# the linear layers outside the routed experts
# ------------------------------------------------------------------------------------------------
def _quantized(ctx: ShapeContext, prefix: str) -> bool:
    if ctx.scheme in ("bf16", "mxfp4", "fp4_mixed") or ctx.config_class == "openai":
        return False  # MXFP4 configs leave every linear layer unquantized (quantization/mxfp4.py:94-105)
    if ctx.what_if:
        return True
    return not (ctx.ignore is not None and ctx.ignore.skips(prefix))


def _dense_layers(ctx: ShapeContext) -> list[int]:
    m = ctx.desc.moe
    n = m.num_hidden_layers or 0
    moe = set(m.moe_layers)
    return [i for i in range(n) if i not in moe] if moe else []


def _span(idx: list[int]) -> str:
    if not idx:
        return ""
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}" if len(idx) == 1 else f"{idx[0]}-{idx[-1]}"
    return ", ".join(map(str, idx[:4])) + (" …" if len(idx) > 4 else "")


def _first_quantized(ctx: ShapeContext, prefixes: list[str], leaf: str) -> tuple[str, bool]:
    """The first of identical layers the checkpoint quantizes (ignore lists may skip some of them)."""
    for p in prefixes:
        if _quantized(ctx, f"{p}.{leaf}"):
            return p, True
    return prefixes[0], False


def _mlp_layers(ctx: ShapeContext, prefixes: list[str], width: int, what: str, tp: int) -> list[LinearLayer]:
    H = ctx.H or 0
    gp, gq = _first_quantized(ctx, prefixes, "gate_proj")  # gate_up_proj's checkpoint shards: gate_proj/up_proj
    dp, dq = _first_quantized(ctx, prefixes, "down_proj")
    return [
        LinearLayer(f"{gp}.gate_up_proj", "merged_column", H, (width, width), tp, gq, what),
        LinearLayer(f"{dp}.down_proj", "row", width, (H,), tp, dq, what),
    ]


def _dense_linears(ctx: ShapeContext) -> list[LinearLayer]:
    dense = _dense_layers(ctx)
    if not dense or not ctx.H:
        return []
    if ctx.family in NO_DENSE_MLP:
        ctx.notes.append(f"layers {_span(dense)} are not MoE layers of a hybrid model (Mamba / attention "
                         "blocks): not checked")
        return []
    key = "intermediate_size_mlp" if ctx.family == "llama4" else "intermediate_size"
    width = _int(ctx.cfg, key)
    if width is None:
        ctx.notes.append(f"dense MLP layers {_span(dense)} not checked: the config has no {key}")
        return []
    name = _MLP_NAME.get(ctx.family, "mlp")
    return _mlp_layers(ctx, [f"model.layers.{i}.{name}" for i in dense], width,
                       f"dense MLP (layers {_span(dense)})", ctx.layout.tp)


def _shared_linears(ctx: ShapeContext) -> list[LinearLayer]:
    m = ctx.desc.moe
    if not m.num_shared_experts or not m.shared_expert_intermediate_size or not ctx.H or not m.moe_layers:
        return []
    width = m.num_shared_experts * m.shared_expert_intermediate_size  # one MLP of n × width (deepseek_v2.py:362)
    replicated = ctx.layout.sequence_parallel_moe and ctx.family in SP_REPLICATED_SHARED
    tp = 1 if replicated else ctx.layout.tp
    what = "shared expert" + (" (replicated: sequence-parallel MoE)" if replicated else "")
    name = _SHARED_NAME.get(ctx.family, "mlp.shared_experts")
    return _mlp_layers(ctx, [f"model.layers.{i}.{name}" for i in m.moe_layers], width, what, tp)


def _attention_linears(ctx: ShapeContext) -> list[LinearLayer]:
    c, tp = ctx.cfg, ctx.layout.tp
    heads = _int(c, "num_attention_heads")
    if ctx.family in ("deepseek_v4",) or heads is None or not ctx.H:
        ctx.notes.append("attention projections not checked: " + (
            "DeepSeek-V4 attention is not modelled" if ctx.family == "deepseek_v4"
            else "the config has no num_attention_heads"))
        return []
    p = "model.layers.0.self_attn"
    if ctx.family in MLA_FAMILIES and _int(c, "kv_lora_rank"):
        nope, rope, v = _int(c, "qk_nope_head_dim"), _int(c, "qk_rope_head_dim"), _int(c, "v_head_dim")
        if None in (nope, rope, v):
            ctx.notes.append("MLA attention not checked: the config lacks qk_nope/qk_rope/v_head_dim")
            return []
        qlr = _int(c, "q_lora_rank")
        qname = "q_b_proj" if qlr else "q_proj"  # deepseek_v2.py:1083 / :1091 (ColumnParallelLinear)
        return [
            LinearLayer(f"{p}.{qname}", "column", qlr or ctx.H, (heads * (nope + rope),), tp,
                        _quantized(ctx, f"{p}.{qname}"), "attention (MLA)"),
            LinearLayer(f"{p}.kv_b_proj", "column", _int(c, "kv_lora_rank") or 0, (heads * (nope + v),), tp,
                        _quantized(ctx, f"{p}.kv_b_proj"), "attention (MLA)"),  # deepseek_v2.py:1099
            LinearLayer(f"{p}.o_proj", "row", heads * v, (ctx.H,), tp, _quantized(ctx, f"{p}.o_proj"),
                        "attention (MLA)"),  # deepseek_v2.py:1106
        ]
    kv = _int(c, "num_key_value_heads") or heads
    hd = _int(c, "head_dim") or ctx.H // heads
    kv_part = hd * (kv // tp if tp < kv else 1)  # QKVParallelLinear replicates KV heads when tp >= kv
    # output_sizes as QKVParallelLinear declares them (linear.py:1073-1078): per-rank parts x tp
    qkv = LinearLayer(f"{p}.qkv_proj", "merged_column", ctx.H, (heads * hd, kv_part * tp, kv_part * tp), tp,
                      _quantized(ctx, f"{p}.q_proj"), "attention",
                      partitions=(heads * hd // tp if heads % tp == 0 else 0, kv_part, kv_part), kv_heads=kv)
    return [qkv, LinearLayer(f"{p}.o_proj", "row", heads * hd, (ctx.H,), tp, _quantized(ctx, f"{p}.o_proj"),
                             "attention")]


def linear_layers(ctx: ShapeContext) -> list[LinearLayer]:
    """Attention, dense-MLP and shared-expert projections, in the order vLLM builds them."""
    if ctx.family == "qwen3_next" or ctx.family == "qwen3_5_moe":
        ctx.notes.append("gated-DeltaNet (linear attention) projections not checked")
    return [*_attention_linears(ctx), *_dense_linears(ctx), *_shared_linears(ctx)]


# ------------------------------------------------------------------------------------------------
# the declarative gate table
# ------------------------------------------------------------------------------------------------
Finding = dict  # message values; optional keys: layer, backends, detail, overhead_pct


class ShapeGate(NamedTuple):
    name: str
    scheme: str  # the scheme(s) / config class it applies to, for people
    applies: str  # when vLLM runs this check, for people
    rule: str  # the arithmetic that must hold, for people
    message: str  # vLLM's message (str.format template over the finding's values)
    source: str  # "vllm 0.33.0 path:line"
    outcome: str  # "load_error" | "adjustment" | "backend_block" | "backend_adjustment"
    when: Callable[[ShapeContext], bool]
    test: Callable[[ShapeContext], Iterable[Finding]]
    verbatim: bool = True  # message is vLLM's own text (False: a bare assert, a silent change, or vLLM's
    #                        wrapper text around a kernel's reason, quoted from two places)


def _one(cond: bool, **values) -> list[Finding]:
    return [values] if cond else []


def _pct(i: int, h: int, ip: int, hp: int) -> float:
    return round((ip * hp) / (i * h) * 100 - 100, 1)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


# ---- FP8 block (Fp8Config): refine / forced-backend pad / validate (oracle/fp8.py:292-395) ------
_TRITON_FP8_FORCED = frozenset({"triton"})  # map_fp8_backend: only TRITON's TritonExperts takes any block


def fp8_block_outcome(ctx: ShapeContext) -> tuple[str, list[int] | None]:
    """("ok" | "refine" | "pad" | "pad_error" | "forced_refine_rejected" | "validate", refined shape)
    exactly as resolve_fp8_moe_weight_block_shape (oracle/fp8.py:359-395) decides."""
    bn, bk = ctx.block
    ispp, tp, H = ctx.ispp, ctx.layout.moe_tp, ctx.H or 0
    if not ispp:
        return "ok", None
    aligned = ispp % bn == 0 and (tp == 1 or ispp % bk == 0)  # oracle/fp8.py:316
    refined = None
    if not aligned:
        r = math.gcd(bn, bk, ispp, H)  # oracle/fp8.py:318
        refined = [r, r] if r >= 32 else None
    if ctx.forced is not None:  # oracle/fp8.py:364 (checkpoint assumed FP8-serialized)
        can_refine = refined is not None and ctx.forced in _TRITON_FP8_FORCED
        if not can_refine:
            pad = _pad_decision(ctx)
            if pad != "no":
                return pad, None
            if refined is not None:
                return "forced_refine_rejected", refined
    if refined is None:
        return ("ok" if aligned else "validate"), None
    return "refine", refined


def _pad_decision(ctx: ShapeContext) -> str:
    """pad_tp_shard_to_weight_blocks (oracle/fp8.py:324-355): "no" | "pad" | "pad_error"."""
    bn, bk = ctx.block
    if bn != bk or ctx.layout.moe_tp == 1 or (ctx.ispp or 0) % bn == 0:
        return "no"
    if (ctx.I or 0) % bn or (ctx.H or 0) % bn or ctx.layout.moe_ep != 1 or ctx.has_bias:
        return "pad_error"
    return "pad"


def _fp8cfg(ctx: ShapeContext) -> bool:
    return ctx.scheme == "fp8_block" and ctx.config_class == "fp8" and bool(ctx.I)


def _refine_finding(ctx: ShapeContext) -> list[Finding]:
    from .. import backends as B

    outcome, shape = fp8_block_outcome(ctx)
    if outcome != "refine":
        return []
    blocked = tuple(b.key for b in B.BACKENDS if "fp8_block" in b.schemes and b.key != "triton")
    return [dict(ckpt=list(ctx.block), refined=shape, ispp=ctx.ispp, backends=blocked, overhead_pct=None,
                 detail=f"FP8 block scales refined from {list(ctx.block)} to {shape} (per-rank intermediate size "
                        f"{ctx.ispp}); only Triton takes the refined block")]


def _pad_finding(ctx: ShapeContext) -> list[Finding]:
    if fp8_block_outcome(ctx)[0] != "pad":
        return []
    ip = _round_up(ctx.ispp, ctx.block[0])
    return [dict(backend=ctx.forced, ispp=ip, orig=ctx.ispp, overhead_pct=_pct(ctx.ispp, 1, ip, 1),
                 detail=f"--moe-backend {ctx.forced}: TP shard padded from {ctx.ispp} to {ip} (whole "
                        f"{ctx.block[0]}-blocks, scales stay rank-local)")]


def _validate_findings(ctx: ShapeContext, which: str) -> list[Finding]:
    bn, bk = ctx.block
    ispp = ctx.ispp or 0
    if which == "n":
        return _one(ispp % bn != 0, ispp=ispp, block_n=bn)
    return _one(ispp % bn == 0 and ctx.layout.tp > 1 and ispp % bk != 0, ispp=ispp, block_k=bk)


# ---- linear layers ---------------------------------------------------------------------------
def _row_block_k(ctx: ShapeContext) -> list[Finding]:
    """validate_fp8_block_shape, RowParallel input (quantization/utils/fp8_utils.py:1318-1327)."""
    bk = ctx.block[1]
    out = []
    for lin in ctx.linears:
        if lin.kind == "row" and lin.quantized and lin.tp > 1 and lin.input_size % lin.tp == 0:
            part = lin.input_size // lin.tp
            if part % bk:
                out.append(dict(layer=f"{lin.name} ({lin.what})", ispp=part, block_k=bk))
    return out


def _column_block_n(ctx: ShapeContext) -> list[Finding]:
    """validate_fp8_block_shape, ColumnParallel outputs (fp8_utils.py:1329-1343); merged layers are
    exempt under Fp8Config when a part does not divide (linear.py:562-581), not under compressed-tensors
    (its config has no weight_block_size, linear.py:564-570)."""
    bn = ctx.block[0]
    out = []
    for lin in ctx.linears:
        if lin.kind not in ("column", "merged_column") or not lin.quantized or lin.tp <= 1:
            continue
        parts = lin.partitions or tuple(o // lin.tp for o in lin.output_sizes)
        if lin.kind == "merged_column" and ctx.config_class != "compressed-tensors":
            continue  # exempt (or every part divides)
        tp_split = sum(lin.output_sizes) // max(1, sum(parts)) == lin.tp
        check = parts if tp_split or lin.kind == "column" else parts[:-1]
        bad = [p for p in check if p % bn]
        if bad:
            out.append(dict(layer=f"{lin.name} ({lin.what})", size=bad[0], block_n=bn))
    return out


def _tp_divide(ctx: ShapeContext) -> list[Finding]:
    """divide() in Row/ColumnParallelLinear (linear.py:1708, :497; distributed/utils.py:51-55)."""
    out = []
    for lin in ctx.linears:
        if lin.kv_heads and lin.tp >= lin.kv_heads and lin.tp % lin.kv_heads:  # divide(tp, kv) (linear.py:1068)
            out.append(dict(layer=f"{lin.name} ({lin.what})", num=lin.tp, den=lin.kv_heads))
        if lin.tp <= 1 or lin.name.endswith("qkv_proj"):
            continue
        n = lin.input_size if lin.kind == "row" else next((o for o in lin.output_sizes if o % lin.tp), None)
        if n is not None and n % lin.tp:
            out.append(dict(layer=f"{lin.name} ({lin.what})", num=n, den=lin.tp))
    return out


def _mxfp8_linear(ctx: ShapeContext) -> list[Finding]:
    out = []
    for lin in ctx.linears:
        if not lin.quantized or lin.kind == "replicated":
            continue
        n = lin.input_size // lin.tp if lin.kind == "row" else lin.input_size
        if n % 32:
            out.append(dict(layer=f"{lin.name} ({lin.what})", n=n))
    return out


# ---- silent paddings per backend --------------------------------------------------------------
class Padding(NamedTuple):
    scheme: str
    backends: tuple[str, ...]
    i_align: int
    h_align: int | None
    source: str
    i_align_ungated: int | None = None
    logged: bool = True  # vLLM logs "Padding intermediate size from …" (utils/flashinfer_utils.py:239-243, :357-361)


PADDINGS: tuple[Padding, ...] = (
    Padding("nvfp4", ("trtllm_nvfp4_mono", "trtllm_nvfp4_mod"), 64, 256,
            _Q + "utils/flashinfer_fp4_moe.py:399-430 (hidden: trtllm_nvfp4_hidden_alignment, "
                 "utils/flashinfer_utils.py:283-295; log: utils/flashinfer_utils.py:239-243)", 128),
    Padding("nvfp4", ("flashinfer_cutedsl",), 64, 256,
            _Q + "utils/flashinfer_fp4_moe.py:149-170 (log: utils/flashinfer_utils.py:239-243)", 128),
    Padding("mxfp4", ("trtllm_mxfp4_mono", "trtllm_mxfp4_mod"), 128, 256, _FM + "oracle/mxfp4.py:871-873", logged=False),
    Padding("fp4_mixed", ("trtllm_mxfp4_mono", "trtllm_mxfp4_mod"), 128, 256, _FM + "oracle/mxfp4.py:871-873", logged=False),
    Padding("mxfp4", ("flashinfer_cutlass",), 128, 128, _FM + "oracle/mxfp4.py:874-879", logged=False),
    Padding("fp4_mixed", ("flashinfer_cutlass",), 128, 128, _FM + "oracle/mxfp4.py:874-879", logged=False),
    Padding("mxfp4", ("marlin",), 128, 256, _FM + "oracle/mxfp4.py:866-870", logged=False),
    Padding("fp4_mixed", ("marlin",), 128, 256, _FM + "oracle/mxfp4.py:866-870", logged=False),
    Padding("mxfp4", ("triton", "humming"), 64, None, _FM + "oracle/mxfp4.py:915-916 (the default branch)", logged=False),
    Padding("fp4_mixed", ("humming",), 64, None, _FM + "oracle/mxfp4.py:915-916 (the default branch)", logged=False),
    Padding("fp4_mixed", ("deep_gemm_mxfp4",), 128, 128, _FM + "oracle/mxfp4.py:857-860", logged=False),
    Padding("bf16", ("trtllm_bf16_mono", "trtllm_bf16_mod"), 128, None,
            _FM + "oracle/unquantized.py:391-392, :471-477", logged=False),
    Padding("mxfp8", ("trtllm_mxfp8_mono", "trtllm_mxfp8_mod"), 128, 256,
            _Q + "utils/flashinfer_utils.py:575-590 (log: :357-361)"),
    Padding("fp8_per_tensor", ("trtllm_fp8_tensor_mono", "flashinfer_cutlass"), 16, None,
            _Q + "utils/flashinfer_utils.py:613-620 (log: :357-361)", 128),
)


def padded_sizes(ctx: ShapeContext, p: Padding) -> tuple[int, int]:
    ia = p.i_align if ctx.gated or p.i_align_ungated is None else p.i_align_ungated
    H = ctx.H or 0
    return _round_up(ctx.ispp or 0, ia), (_round_up(H, p.h_align) if p.h_align else H)


def _padding_finding(p: Padding) -> Callable[[ShapeContext], list[Finding]]:
    def test(ctx: ShapeContext) -> list[Finding]:
        if ctx.scheme != p.scheme or not ctx.ispp or not ctx.H:
            return []
        ip, hp = padded_sizes(ctx, p)
        if (ip, hp) == (ctx.ispp, ctx.H):
            return []
        h = f", hidden size {ctx.H} -> {hp}" if hp != ctx.H else ""
        return [dict(i=ctx.ispp, ip=ip, backends=p.backends, overhead_pct=_pct(ctx.ispp, ctx.H, ip, hp),
                     detail=f"per-rank intermediate size {ctx.ispp} -> {ip}{h}: "
                            f"+{_pct(ctx.ispp, ctx.H, ip, hp)}% expert memory and GEMM work")]
    return test


# ---- EPLB support per MoE quant method (routed_experts.py:186-199) ------------------------------
class EplbSupport(NamedTuple):
    scheme: str
    config_class: str | None  # None = any
    method: str  # vLLM's quant-method class (named in the message)
    supported: bool | tuple[str, ...]  # True/False, or the backend keys that support it
    source: str


EPLB_SUPPORT: tuple[EplbSupport, ...] = (
    EplbSupport("fp8_block", "compressed-tensors", "CompressedTensorsW8A8Fp8MoEMethod", True,
                _CT + "compressed_tensors_moe_w8a8_fp8.py:397-399"),
    EplbSupport("fp8_per_tensor", "compressed-tensors", "CompressedTensorsW8A8Fp8MoEMethod", True,
                _CT + "compressed_tensors_moe_w8a8_fp8.py:397-399"),
    EplbSupport("fp8_per_tensor", "modelopt", "ModelOptFp8MoEMethod", False, _FM + "fused_moe_method_base.py:126-128"),
    EplbSupport("fp8_block", None, "Fp8MoEMethod", True, _Q + "fp8.py:801-803"),
    EplbSupport("fp8_per_tensor", None, "Fp8MoEMethod", True, _Q + "fp8.py:801-803"),
    EplbSupport("mxfp8", None, "ModelOptMxFp8FusedMoE", False, _FM + "fused_moe_method_base.py:126-128"),
    EplbSupport("nvfp4", "compressed-tensors", "CompressedTensorsW4A4Nvfp4MoEMethod",
                ("trtllm_nvfp4_mono", "trtllm_nvfp4_mod", "flashinfer_cutedsl"),
                _CT + "compressed_tensors_moe_w4a4_nvfp4.py:39-45, :72-74"),
    EplbSupport("nvfp4", None, "ModelOptNvFp4FusedMoE", True, _Q + "modelopt.py:1144-1146"),
    EplbSupport("mxfp4", "openai", "GptOssMxfp4MoEMethod", False,
                _Q + "mxfp4.py:152 (defines no supports_eplb: fused_moe_method_base.py:126-128)"),
    EplbSupport("mxfp4", None, "Mxfp4MoEMethod", True, _Q + "mxfp4.py:591-593"),
    EplbSupport("fp4_mixed", None, "Mxfp4MoEMethod", True, _Q + "mxfp4.py:591-593"),
    EplbSupport("int4", "compressed-tensors", "CompressedTensorsWNA16MoEMethod", ("triton",), _CT + "compressed_tensors_moe_wna16.py:561-563"),
    EplbSupport("bf16", None, "UnquantizedFusedMoEMethod", True, _FM + "unquantized_fused_moe_method.py:64-66"),
)


def eplb_support(ctx: ShapeContext) -> EplbSupport | None:
    if ctx.w4a8_fp8:
        return EplbSupport("w4a8_fp8", "compressed-tensors", "CompressedTensorsW4A8Fp8MoEMethod", False,
                           _CT + "compressed_tensors_moe_w4a8_fp8.py:233-235")
    cc = "openai" if ctx.family == "gpt_oss" and ctx.scheme == "mxfp4" else ctx.config_class
    for row in EPLB_SUPPORT:
        if row.scheme == ctx.scheme and (row.config_class is None or row.config_class == cc):
            return row
    return None


def _eplb_findings(ctx: ShapeContext, want_backends: bool) -> list[Finding]:
    row = eplb_support(ctx)
    if row is None or row.supported is True:
        return []
    if row.supported is False:
        return [] if want_backends else [dict(cls=row.method, src=row.source)]
    if not want_backends:
        return []
    from .. import backends as B

    blocked = tuple(b.key for b in B.BACKENDS if ctx.scheme in b.schemes and b.key not in row.supported)
    return [dict(cls=row.method, backends=blocked)]


# ---- model-level gates ----------------------------------------------------------------------
# "Tensor parallel size {tp} is greater than the number of experts {E}." per model file
TP_GT_EXPERTS_SOURCES: dict[str, str] = {
    "qwen2_moe": _M + "qwen2_moe.py:136-140", "qwen3_moe": _M + "qwen3_moe.py:154-158",
    "qwen3_next": _M + "qwen3_next.py:176-180", "qwen3_5_moe": _M + "qwen3_next.py:176-180 (Qwen3NextSparseMoeBlock)",
    "minimax_m2": _M + "minimax_m2.py:80-84", "ernie4_5_moe": _M + "ernie45_moe.py:150-154",
    "lfm2_moe": _M + "lfm2_moe.py:112-116", "step3_text": _M + "step3_text.py:66-70",
    "mimo_v2": _M + "mimo_v2.py:138-142", "exaone_moe": _M + "exaone_moe.py:83-87", "step3p5": _M + "step3p5.py:332-336",
}

# all2all backends that round the MoE hidden size up before allocating the experts
# (fused_moe_method_base.py:96-100 -> all2all_utils.py:148-187)
_DEEPEP_LL_SIZES = (2048, 2560, 3072, 4096, 5120, 6144, 7168, 8192)  # deepep_ll.py:57, nixl_ep.py:54
_A2A_HIDDEN_SRC = {
    "deepep_low_latency": _FM + "prepare_finalize/deepep_ll.py:57-79 (via all2all_utils.py:172-175)",
    "nixl_ep": _FM + "prepare_finalize/nixl_ep.py:54-69 (via all2all_utils.py:182-185)",
    "deepep_high_throughput": _FM + "prepare_finalize/deepep_ht.py:51-64 (via all2all_utils.py:167-170)",
}


def a2a_hidden(ctx: ShapeContext) -> int | None:
    """The hidden size the experts are allocated with under the all2all backend (None: > 8192 on
    DeepEP LL / NIXL EP, which raise)."""
    H, a2a = ctx.H or 0, ctx.layout.all2all_backend
    if not ctx.layout.use_all2all_kernels or a2a not in _A2A_HIDDEN_SRC:
        return H
    if a2a == "deepep_high_throughput":
        return _round_up(H * 2, 512) // 2  # bf16 activations: 512-byte transfer atoms
    return next((x for x in _DEEPEP_LL_SIZES if x >= H), None)


def _a2a_hidden_too_big(ctx: ShapeContext) -> list[Finding]:
    if not ctx.H or a2a_hidden(ctx) is not None:
        return []
    return [dict(layer=_ROUTED, H=ctx.H, max=_DEEPEP_LL_SIZES[-1], src=_A2A_HIDDEN_SRC[ctx.layout.all2all_backend])]


def _a2a_hidden_pad(ctx: ShapeContext) -> list[Finding]:
    hp = a2a_hidden(ctx) if ctx.H else None
    if hp is None or hp == ctx.H:
        return []
    a2a = ctx.layout.all2all_backend
    return [dict(H=ctx.H, hp=hp, a2a=a2a, src=_A2A_HIDDEN_SRC[a2a], overhead_pct=_pct(1, ctx.H, 1, hp),
                 detail=f"--all2all-backend {a2a}: MoE hidden size {ctx.H} -> {hp} "
                        f"(+{_pct(1, ctx.H, 1, hp)}% expert memory)")]


def _a2a_one_sided_fp8(ctx: ShapeContext) -> list[Finding]:
    """flashinfer_nvlink_one_sided with DeepSeek-style FP8 block dispatch (all2all_utils.py:88-97); the
    DeepEP LL / NIXL EP FP8-dispatch asserts (deepep_ll.py:250-253, nixl_ep.py:223-226) cannot fire:
    their hidden size is first rounded to a multiple of 128."""
    L = ctx.layout
    if not (L.use_all2all_kernels and L.all2all_backend == "flashinfer_nvlink_one_sided"
            and ctx.scheme == "fp8_block" and list(ctx.block) == [128, 128] and ctx.H):
        return []
    return _one(ctx.H % 128 != 0, layer=_ROUTED, H=ctx.H)


def _wna16(ctx: ShapeContext) -> bool:
    """compressed-tensors WNA16 MoE (what-if INT4 is taken as that, group 32); GPTQ/AWQ MoE not modelled."""
    return (ctx.scheme == "int4" and bool(ctx.group_size) and not ctx.w4a8_fp8
            and ctx.config_class in ("compressed-tensors", "what-if"))


def _gate(name, scheme, applies, rule, message, source, outcome, when, test, verbatim=True) -> ShapeGate:
    return ShapeGate(name, scheme, applies, rule, message, V + source, outcome, when, test, verbatim)


_ALWAYS = lambda c: True  # noqa: E731
_HAS_I = lambda c: bool(c.I)  # noqa: E731
_ROUTED = "routed experts"
_B12X = "B12X_MXFP4_MXFP8"  # oracle/mxfp4.py:639-646: W4A8 preferred unless VLLM_B12X_MOE_FP4_FORCE_A16

SHAPE_GATES: tuple[ShapeGate, ...] = (
    # ---- config-time / model construction, in the order vLLM hits them ----
    _gate("attention_heads_tp", "any", "always (ModelConfig.verify_with_parallel_config)",
          "num_attention_heads % tp == 0",
          "Total number of attention heads ({heads}) must be divisible by tensor parallel size ({tp}).",
          "config/model.py:1557-1564", "load_error",
          lambda c: _int(c.cfg, "num_attention_heads") is not None,
          lambda c: _one(_int(c.cfg, "num_attention_heads") % c.layout.tp != 0, layer="attention",
                         heads=_int(c.cfg, "num_attention_heads"), tp=c.layout.tp)),
    _gate("linear_tp_divide", "any", "every tensor-parallel linear layer (attention, dense MLP, shared expert)",
          "sharded dimension % tp == 0", "{num} is not divisible by {den}",
          "model_executor/layers/linear.py:1708 (RowParallel), :497 (ColumnParallel), :1068 (QKV: tp % kv heads "
          "when tp >= kv heads) -> distributed/utils.py:51-55",
          "load_error", _ALWAYS, _tp_divide),
    _gate("vocab_parallel_divide", "any", "VocabParallelEmbedding / ParallelLMHead (vocab padded to 64)",
          "round_up(vocab_size, 64) % tp == 0", "{num} is not divisible by {den}",
          "model_executor/layers/vocab_parallel_embedding.py:95-97, :289-306 -> distributed/utils.py:51-55",
          "load_error", lambda c: _int(c.cfg, "vocab_size") is not None,
          lambda c: _one(_round_up(_int(c.cfg, "vocab_size"), 64) % c.layout.tp != 0, layer="embed_tokens",
                         num=_round_up(_int(c.cfg, "vocab_size"), 64), den=c.layout.tp)),
    _gate("fp8_block_row_parallel", "fp8_block (any FP8 block config)",
          "quantized RowParallelLinear (o_proj, down_proj of dense MLPs and TP-sharded shared experts), tp > 1",
          "(input_size / tp) % block_k == 0",
          "Weight input_size_per_partition = {ispp} is not divisible by weight quantization block_k = {block_k}.",
          _Q + "utils/fp8_utils.py:1318-1327", "load_error",
          lambda c: c.scheme == "fp8_block", _row_block_k),
    _gate("fp8_block_column_parallel", "fp8_block",
          "quantized ColumnParallelLinear (q_b_proj, kv_b_proj, …), tp > 1; merged ones (gate_up_proj, qkv_proj) "
          "exempt under Fp8Config (linear.py:562-581), checked under compressed-tensors",
          "(output_size / tp) % block_n == 0 for each output part",
          "Weight output_partition_size = {size} is not divisible by weight quantization block_n = {block_n}.",
          _Q + "utils/fp8_utils.py:1329-1343", "load_error",
          lambda c: c.scheme == "fp8_block", _column_block_n),
    _gate("mxfp8_linear_input", "mxfp8 (ModelOpt)", "quantized linear layers",
          "input_size_per_partition % 32 == 0", "MXFP8 requires input size divisible by 32, got {n}",
          _Q + "modelopt.py:2335-2339", "load_error", lambda c: c.scheme == "mxfp8", _mxfp8_linear),
    _gate("tp_greater_than_experts", "any", "MoE block of " + ", ".join(sorted(TP_GT_EXPERTS_SOURCES)),
          "tp <= num_experts", "Tensor parallel size {tp} is greater than the number of experts {E}.",
          ", ".join(sorted(set(TP_GT_EXPERTS_SOURCES.values()))), "load_error",
          lambda c: c.family in TP_GT_EXPERTS_SOURCES,
          lambda c: _one(c.layout.tp > c.E, layer=_ROUTED, tp=c.layout.tp, E=c.E,
                         src=TP_GT_EXPERTS_SOURCES[c.family])),
    _gate("gpt_oss_world_size", "any", "gpt-oss MoE block (world size = tp * pp * dp: the torch.distributed world "
          "spans every DP rank, distributed/parallel_state.py:1872)",
          "intermediate_size % world_size == 0",
          "AssertionError: assert config.intermediate_size % self.world_size == 0 "
          "(intermediate_size {I}, world size {ws})",
          _M + "gpt_oss.py:381, :389", "load_error", lambda c: c.family == "gpt_oss" and bool(c.I),
          lambda c: _one(c.I % c.layout.gpus != 0, layer=_ROUTED, I=c.I, ws=c.layout.gpus), verbatim=False),
    _gate("dsv4_megamoe_needs_ep", "any", "DeepSeek-V4 with --moe-backend deep_gemm_mega_moe",
          "--enable-expert-parallel", "DeepSeek V4 MegaMoE currently requires expert parallel. Enable it with "
          "--enable-expert-parallel, or pick a different moe backend.",
          "models/deepseek_v4/nvidia/model.py:227-236", "load_error",
          lambda c: c.family == "deepseek_v4" and c.forced == "deep_gemm_mega_moe",
          lambda c: _one(not c.layout.ep_enabled, layer=_ROUTED)),
    _gate("dsv4_megamoe_physical_experts", "any", "DeepSeek-V4 with --moe-backend deep_gemm_mega_moe and EP",
          "(num_experts + num_redundant_experts) % ep_size == 0",
          "n_physical_experts={n} must be divisible by ep_size={ep}. Adjust num_redundant_experts.",
          "models/deepseek_v4/nvidia/model.py:350-359", "load_error",
          lambda c: c.family == "deepseek_v4" and c.forced == "deep_gemm_mega_moe" and c.layout.ep_enabled,
          lambda c: _one(c.global_experts % c.ep_group != 0, layer=_ROUTED, n=c.global_experts, ep=c.ep_group)),
    _gate("eplb_even_spread", "any", "--enable-eplb with expert parallelism in use",
          "(num_experts + num_redundant_experts) % ep_size == 0",
          "EPLB currently only supports even distribution of experts across ranks. Got {n} experts and {ep} EP ranks.",
          _FM + "layer.py:270-279", "load_error", lambda c: c.layout.eplb and c.layout.use_ep,
          lambda c: _one(c.global_experts % c.layout.moe_ep != 0, layer=_ROUTED, n=c.global_experts,
                         ep=c.layout.moe_ep)),
    _gate("redundant_experts_need_eplb", "any", "--num-redundant-experts without --enable-eplb (the config check "
          "config/parallel.py:586-592 refuses first)", "num_redundant_experts == 0",
          "Redundant experts are only supported with EPLB.", _FM + "layer.py:281-284", "load_error",
          lambda c: not c.layout.eplb and not c.layout.refusals,
          lambda c: _one(c.layout.num_redundant_experts != 0, layer=_ROUTED)),
    _gate("moe_intermediate_tp", "any", "FusedMoEConfig (experts tensor-sharded over moe_tp = tp * pcp * dp "
          "without EP)", "moe_intermediate_size % moe_tp == 0",
          "AssertionError: assert self.intermediate_size % tp_size == 0 (intermediate_size {I}, moe tp {tp})",
          _FM + "config.py:1351-1352", "load_error", _HAS_I,
          lambda c: _one(c.I % c.layout.moe_tp != 0, layer=_ROUTED, I=c.I, tp=c.layout.moe_tp), verbatim=False),
    _gate("eplb_quant_method", "per quant method (EPLB_SUPPORT)", "--enable-eplb",
          "the MoE quant method's supports_eplb", "EPLB is not supported {cls}.", _FM + "routed_experts.py:186-199",
          "load_error", lambda c: c.layout.eplb, lambda c: _eplb_findings(c, False)),
    _gate("eplb_quant_backend", "nvfp4 (compressed-tensors), int4 (WNA16)", "--enable-eplb",
          "the backend is one the quant method supports EPLB with", "EPLB is not supported {cls}.",
          _FM + "routed_experts.py:186-199", "backend_block", lambda c: c.layout.eplb,
          lambda c: _eplb_findings(c, True)),
    # ---- FP8 block, Fp8Config (DeepSeek / Qwen / MiniMax "fp8" checkpoints) ----
    _gate("fp8_block_refine", "fp8_block (Fp8Config)",
          "I/moe_tp not a multiple of the block (auto backend, or --moe-backend triton)",
          "refine = gcd(block_n, block_k, I/moe_tp, hidden) >= 32 -> block scales [refine, refine]; "
          "only Triton takes the refined QuantKey",
          "FP8 MoE block scales refined from {ckpt} to {refined} to fit the TP-sharded intermediate size {ispp}.",
          _FM + "oracle/fp8.py:292-321, :383-395; experts/triton_moe.py:167-178", "adjustment", _fp8cfg,
          _refine_finding),
    _gate("fp8_block_refined_quantkey", "fp8_block (Fp8Config)", "after a refine",
          "backend must accept the refined block QuantKey (TritonExperts only)",
          "kernel does not support quantization scheme (FP8 {refined} block weights)x(kFp8Dynamic128Sym): block "
          "scales refined from {ckpt} to {refined}; only Triton-based kernels take the refined block",
          _FM + "oracle/fp8.py:296-310, modular_kernel.py:596-599", "backend_block", _fp8cfg, _refine_finding, verbatim=False),
    _gate("fp8_block_forced_pad", "fp8_block (Fp8Config)", "--moe-backend other than triton, I/moe_tp misaligned",
          "pad I/moe_tp up to a whole block (needs block_n == block_k, I % block == 0, hidden % block == 0, "
          "ep_size == 1, no expert bias)",
          "FP8 {backend} TP loading uses complete checkpoint blocks: local allocation {ispp}, without weight "
          "requantization.", _FM + "oracle/fp8.py:324-355, :375-382", "adjustment", _fp8cfg, _pad_finding),
    _gate("fp8_block_forced_pad_error", "fp8_block (Fp8Config)", "--moe-backend other than triton, "
          "I/moe_tp misaligned, padding impossible", "I % block_n == 0, hidden % block_n == 0, ep_size == 1, no bias",
          "Block-aligned FP8 TP sharding requires {block}-aligned global expert dimensions, pure TP, and no LoRA or "
          "expert bias.", _FM + "oracle/fp8.py:336-346", "load_error", _fp8cfg,
          lambda c: _one(fp8_block_outcome(c)[0] == "pad_error", layer=_ROUTED, block=c.block[0])),
    _gate("fp8_block_forced_refine_rejected", "fp8_block (Fp8Config)", "--moe-backend other than triton, "
          "refinable shape, no padding (moe_tp == 1)", "the forced backend must take the refined QuantKey",
          "FP8 MoE backend {backend} does not support the deployment configuration since kernel does not support "
          "quantization scheme (FP8 {refined} block weights)x(kFp8Dynamic128Sym).",
          _FM + "oracle/fp8.py:426-452", "load_error", _fp8cfg,
          lambda c: _one(fp8_block_outcome(c)[0] == "forced_refine_rejected", layer=_ROUTED,
                         backend=(c.forced or "").upper(), refined=fp8_block_outcome(c)[1]), verbatim=False),
    _gate("fp8_block_moe_block_n", "fp8_block (Fp8Config without a refine; compressed-tensors always)",
          "I/moe_tp misaligned and not refined/padded", "(I/moe_tp) % block_n == 0",
          "The output_size of gate's and up's weight = {ispp} is not divisible by weight quantization "
          "block_n = {block_n}.", _Q + "utils/fp8_utils.py:1361-1366 (called at quantization/fp8.py:554-558, "
          "compressed_tensors_moe_w8a8_fp8.py:137)", "load_error",
          lambda c: c.scheme == "fp8_block" and bool(c.I) and (
              c.config_class == "compressed-tensors" or (c.config_class == "fp8" and fp8_block_outcome(c)[0] == "validate")),
          lambda c: [dict(f, layer=_ROUTED) for f in _validate_findings(c, "n")]),
    _gate("fp8_block_moe_block_k", "fp8_block (as above)", "tp > 1, I/moe_tp misaligned and not refined/padded",
          "(I/moe_tp) % block_k == 0",
          "The input_size of down's weight = {ispp} is not divisible by weight quantization block_k = {block_k}.",
          _Q + "utils/fp8_utils.py:1367-1373", "load_error",
          lambda c: c.scheme == "fp8_block" and bool(c.I) and (
              c.config_class == "compressed-tensors" or (c.config_class == "fp8" and fp8_block_outcome(c)[0] == "validate")),
          lambda c: [dict(f, layer=_ROUTED) for f in _validate_findings(c, "k")]),
    # ---- other schemes' expert shapes ----
    _gate("mxfp8_moe_hidden", "mxfp8", "ModelOptMxFp8FusedMoE.create_weights", "hidden_size % 32 == 0",
          "MXFP8 MoE requires hidden_size divisible by 32, got {H}.", _Q + "modelopt.py:1320-1324", "load_error",
          lambda c: c.scheme == "mxfp8" and bool(c.H), lambda c: _one(c.H % 32 != 0, layer=_ROUTED, H=c.H)),
    _gate("mxfp8_moe_intermediate", "mxfp8", "ModelOptMxFp8FusedMoE.create_weights", "(I/moe_tp) % 32 == 0",
          "MXFP8 MoE requires intermediate_size_per_partition divisible by 32, got {ispp}.",
          _Q + "modelopt.py:1325-1329", "load_error", lambda c: c.scheme == "mxfp8" and bool(c.I),
          lambda c: _one(c.ispp % 32 != 0, layer=_ROUTED, ispp=c.ispp)),
    _gate("wna16_group_hidden", "int4 (compressed-tensors WNA16, group strategy)", "create_weights",
          "hidden_size % group_size == 0", "CompressedTensors WNA16 MoE requires hidden_size ({H}) to be divisible "
          "by group_size ({g}).", _CT + "compressed_tensors_moe_wna16.py:238-243", "load_error",
          lambda c: _wna16(c) and bool(c.H),
          lambda c: _one(c.H % c.group_size != 0, layer=_ROUTED, H=c.H, g=c.group_size)),
    _gate("wna16_group_intermediate", "int4 (compressed-tensors WNA16, group strategy)", "create_weights",
          "(I/moe_tp) % group_size == 0",
          "CompressedTensors WNA16 MoE with static group scales requires the MoE intermediate size per "
          "tensor-parallel partition ({ispp}) to be divisible by group_size ({g}). Scale groups would otherwise cross "
          "TP shard boundaries; use a compatible TP size or enable expert parallelism.",
          _CT + "compressed_tensors_moe_wna16.py:244-251", "load_error",
          lambda c: _wna16(c) and bool(c.I),
          lambda c: _one(c.ispp % c.group_size != 0, layer=_ROUTED, ispp=c.ispp, g=c.group_size)),
    _gate("w4a8_fp8_hidden", "w4a8-fp8 (compressed-tensors)", "create_weights (CUTLASS reorder_tensor)",
          "hidden_size % 256 == 0", "AssertionError: hidden_size={H} must be divisible by 256",
          _CT + "compressed_tensors_moe_w4a8_fp8.py:69-70", "load_error", lambda c: c.w4a8_fp8 and bool(c.H),
          lambda c: _one(c.H % 256 != 0, layer=_ROUTED, H=c.H)),
    _gate("w4a8_fp8_intermediate", "w4a8-fp8 (compressed-tensors)", "create_weights (CUTLASS reorder_tensor)",
          "(I/moe_tp) % 256 == 0", "AssertionError: intermediate_size_per_partition={ispp} must be divisible by 256",
          _CT + "compressed_tensors_moe_w4a8_fp8.py:71-73", "load_error", lambda c: c.w4a8_fp8 and bool(c.I),
          lambda c: _one(c.ispp % 256 != 0, layer=_ROUTED, ispp=c.ispp)),
    _gate("b12x_expert_bias", "mxfp4, fp4_mixed", "--moe-backend b12x (the b12x package's MXFP4 experts)",
          "no expert biases (gpt-oss has them)", "Mxfp4 MoE backend '{b}' does not support the deployment "
          "configuration since kernel does not support expert biases.",
          _FM + "b12x.py:448-449, oracle/mxfp4.py:563-567, :611", "load_error",
          lambda c: c.scheme in ("mxfp4", "fp4_mixed") and c.forced == "b12x",
          lambda c: _one(c.has_bias, layer=_ROUTED, b=_B12X), verbatim=False),
    _gate("b12x_mxfp4_intermediate", "mxfp4, fp4_mixed", "--moe-backend b12x (the b12x package's MXFP4 experts)",
          "(I/moe_tp) % 32 == 0", "Mxfp4 MoE backend '{b}' does not support the deployment configuration since "
          "MXFP4 requires the per-rank intermediate size to be divisible by 32.",
          _FM + "b12x.py:468-476, oracle/mxfp4.py:563-567, :611", "load_error",
          lambda c: c.scheme in ("mxfp4", "fp4_mixed") and c.forced == "b12x" and bool(c.I) and not c.has_bias,
          lambda c: _one(c.ispp % 32 != 0, layer=_ROUTED, b=_B12X), verbatim=False),
    _gate("a2a_hidden_max", "any", "EP all2all kernels on deepep_low_latency / nixl_ep",
          "hidden_size <= 8192", "Hidden Size {H} is greater than the maximum supported hidden size {max}",
          _FM + "prepare_finalize/deepep_ll.py:76-79, nixl_ep.py:66-69", "load_error", _ALWAYS, _a2a_hidden_too_big),
    _gate("a2a_hidden_roundup", "any", "EP all2all kernels on deepep_low_latency / nixl_ep (next of 2048, 2560, "
          "3072, 4096, 5120, 6144, 7168, 8192) / deepep_high_throughput (512-byte atoms)",
          "MoE hidden size rounded up (silent)", "(silent) MoE hidden size {H} -> {hp} for --all2all-backend {a2a}",
          _FM + "all2all_utils.py:148-187", "adjustment", _ALWAYS, _a2a_hidden_pad, verbatim=False),
    _gate("fp8_all2all_dispatch_hidden", "fp8_block [128, 128]",
          "EP all2all kernels on flashinfer_nvlink_one_sided (DeepSeek FP8 dispatch)", "hidden_size % 128 == 0",
          "flashinfer_nvlink_one_sided DeepSeek Blockwise FP8 dispatch requires hidden_dim divisible by 128; got {H}",
          _FM + "all2all_utils.py:88-97", "load_error", _ALWAYS, _a2a_one_sided_fp8),
    # ---- silent paddings (per backend) ----
    *(_gate(f"pad_{p.scheme}_{p.backends[0]}", p.scheme, "backend " + ", ".join(p.backends) + " picked",
            f"I/moe_tp rounded up to {p.i_align}" + (f" ({p.i_align_ungated} non-gated)" if p.i_align_ungated else "")
            + (f", hidden to {p.h_align}" if p.h_align else ""),
            "Padding intermediate size from {i} to {ip} for up/down projection weights." if p.logged else
            "(silent: maybe_roundup_sizes) intermediate size per partition {i} -> {ip}", p.source,
            "backend_adjustment", _HAS_I, _padding_finding(p), verbatim=p.logged) for p in PADDINGS),
)


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------
def _emit(g: ShapeGate, f: Finding, out: dict) -> None:
    message = g.message.format(**f)
    source = V + f["src"] if "src" in f else g.source
    if g.outcome == "load_error":
        out["errors"].append(LoadError(f.get("layer", _ROUTED), message, source))
    elif g.outcome == "adjustment":
        out["adjustments"].append(Adjustment(g.name, f.get("detail", message), f.get("overhead_pct"), source))
    elif g.outcome == "backend_block":
        for key in f.get("backends", ()):
            out["blocks"].setdefault(key, f"{message} ({source})")
    else:
        adj = Adjustment(g.name, f.get("detail", message), f.get("overhead_pct"), source)
        for key in f.get("backends", ()):
            out["backend_adj"].setdefault(key, []).append(adj)


def _per_rank(ctx: ShapeContext) -> dict:
    L = ctx.layout
    counts = local_experts(ctx.E, L)
    d: dict[str, Any] = {
        "moe_tp": L.moe_tp, "moe_ep": L.moe_ep, "hidden_size": ctx.H, "intermediate_size": ctx.ispp,
        "intermediate_size_global": ctx.I, "experts_global": ctx.global_experts,
        "local_experts": {"max": max(counts), "min": min(counts)},
    }
    if ctx.scheme == "fp8_block" and ctx.config_class == "fp8" and ctx.I:
        outcome, shape = fp8_block_outcome(ctx)
        d["fp8_block"] = {"checkpoint": list(ctx.block), "used": shape or list(ctx.block), "outcome": outcome}
    pads = {}
    for p in PADDINGS:
        if p.scheme == ctx.scheme and ctx.ispp and ctx.H:
            ip, hp = padded_sizes(ctx, p)
            for k in p.backends:
                pads[k] = {"intermediate_size": ip, "hidden_size": hp}
    if pads:
        d["padded"] = pads
    d["layers_checked"] = [f"{lin.name} ({lin.what}, {'quantized' if lin.quantized else 'unquantized'}, "
                           f"tp {lin.tp})" for lin in ctx.linears]
    return d


def shape_report(desc, layout: Layout, *, scheme: str, arch: int, config: dict | None = None,
                 ctx: ShapeContext | None = None) -> ShapeReport:
    """Every :data:`SHAPE_GATES` row for ``desc`` under ``layout`` with ``scheme`` on ``arch``.

    ``config`` is the raw config.json (read from the model's directory or the catalog when None);
    ``ctx`` a context from :func:`build_context` to reuse (memory_estimate takes the same one)."""
    ctx = ctx or build_context(desc, layout, scheme=scheme, arch=arch, config=config)
    if not ctx.I or not ctx.H:
        ctx.notes.append("routed-expert shape gates not checked: the model's expert width or hidden size is unknown")
    out: dict[str, Any] = {"errors": [], "adjustments": [], "blocks": {}, "backend_adj": {}}
    for g in SHAPE_GATES:
        if g.when(ctx):
            for f in g.test(ctx):
                _emit(g, f, out)
    return ShapeReport(
        per_rank=_per_rank(ctx), load_errors=tuple(out["errors"]), adjustments=tuple(out["adjustments"]),
        backend_blocks=dict(out["blocks"]), backend_adjustments={k: tuple(v) for k, v in out["backend_adj"].items()},
        notes=tuple(dict.fromkeys(ctx.notes)))


def gate_table() -> list[dict]:
    """SHAPE_GATES as rows for docs/check.md: name, scheme, applies, rule, message, source, outcome,
    verbatim (False: the message is ours — vLLM asserts without text, changes sizes silently, or
    wraps a kernel's reason)."""
    return [{"name": g.name, "scheme": g.scheme, "applies": g.applies, "rule": g.rule, "message": g.message,
             "source": g.source, "outcome": g.outcome, "verbatim": g.verbatim} for g in SHAPE_GATES]


__all__ = ["LoadError", "Adjustment", "ShapeReport", "ShapeGate", "SHAPE_GATES", "PADDINGS", "EPLB_SUPPORT",
           "shape_report", "gate_table", "fp8_block_outcome", "raw_model", "text_view", "RawModel",
           "build_context", "ShapeContext", "LinearLayer"]
