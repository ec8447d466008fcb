"""``verify``: does our reference router compute what the model's own code computes?

For a :class:`~moe_inspect.spec.ModelDescription`, ``verify_description`` builds the
architecture's OWN router from ``transformers`` (the ``*TopkRouter`` / ``*Router`` class of
that architecture) from a config that carries the model's real routing keys (number of experts,
top-k, groups, scaling, renormalisation, scoring where transformers reads it) with the hidden
size shrunk to :data:`DEFAULT_HIDDEN` (routing does not depend on it) and seeded random router
weights and correction bias. No checkpoint is downloaded. The same hidden states go through it
and, as logits, through :func:`moe_inspect.reference.routers.route` for the routing method vLLM
resolves for the model (``description.routing.method``). Expert sets are compared exactly
(order-insensitive per token); weights are matched by expert id, both sides in fp32, within
:data:`TOLERANCE`.

``verify_kernel`` does the same with FlashInfer's standalone DeepSeek-V3 routing kernel
(``flashinfer.fused_moe.fused_topk_deepseek``) on a CUDA GPU instead of transformers.

Which side a verdict reflects: transformers hard-codes parts of some architectures' routing
(sigmoid for deepseek_v3, glm4_moe, minimax_m2 …; always-renormalise for minimax_m2, qwen3.5 …)
and ignores the config keys that claim otherwise. :data:`ORACLES` records those hard-coded
facts per row; where the description's config disagrees, ``VerifyResult.reflects`` says the
comparison reflects the architecture, not the config key.

Out of scope: DeepSeek-V4 hash-routed layers (``tid2eid``), LongCat zero experts' outputs,
expert computation (routing only). torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK, EnvironmentError_, UnsupportedError
from .extras import installed_flashinfer_version, require
from .spec import ModelDescription, MoESpec

__all__ = [
    "DEFAULT_HIDDEN",
    "DEFAULT_TOKENS",
    "TOLERANCE",
    "ORACLES",
    "OracleRow",
    "TokenDifference",
    "VerifyResult",
    "oracle_for",
    "verify_description",
    "verify_model",
    "verify_kernel",
    "KERNEL_TOLERANCE",
    "kernel_runners",
]

DEFAULT_TOKENS = 64
DEFAULT_HIDDEN = 64
MAX_EXPERTS = 65536  # bound on the random router built for a (possibly hostile) config
_ORACLE = ("oracle", "verify")  # extras.require(module, extra, purpose): the extra to install, who needs it

# Both sides are compared in fp32 (the reference is called with output_dtype=None). fp32 lets
# a semantic difference as small as a missing epsilon or a 1e-3 rescale show up, while leaving
# room for summation order, exp vs tanh-based sigmoid (FlashInfer's sigmoid_accurate) and the
# renormalisation epsilons (1e-20, LFM2's 1e-6). The kernel writes bf16 in production; a bf16
# comparison would need atol 1e-2 / rtol 1.6e-2 and would hide such differences.
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4, "dtype": "float32"}
_TF = "transformers 5.24 models/"


@dataclass(frozen=True)
class OracleRow:
    """How to build one architecture's own router in transformers and what it hard-codes.

    ``config_keys`` maps a :class:`MoESpec` field to the transformers config kwarg that carries
    it (values of None fall back to ``defaults``). ``hard_codes`` lists MoESpec facts the
    transformers router computes regardless of the config (``scoring_func``, ``renormalize``,
    ``has_correction_bias`` -- "checkpoint" there means the bias is a buffer that is zero
    unless the checkpoint has one, which we mirror).
    """

    key: str  # transformers models/<key>
    model_types: tuple[str, ...]  # MoESpec.model_type values this row covers
    config_class: str
    router_class: str
    source: str
    config_keys: tuple[tuple[str, str], ...] = (("num_experts", "num_local_experts"), ("top_k", "num_experts_per_tok"))
    defaults: tuple[tuple[str, Any], ...] = ()
    extra_config: tuple[tuple[str, Any], ...] = ()  # constant kwargs (e.g. Cohere2 expert_selection_fn)
    weight: str = "weight"  # attribute path of the [E, H] router matrix
    bias: str | None = None  # attribute path of the correction bias, "arg" = forward argument
    bias_shape: str = "flat"  # "flat" [E] | "row" [1, E] (ERNIE moe_statics)
    linear_bias: str | None = None  # gpt-oss: a real Linear bias, part of the logits
    output: str = "triple"  # "triple" (logits, weights, ids) | "dense_scores" (Llama4: scores [T,E], logits)
    input_rank: int = 2  # AFMoE's router wants [B, S, H]
    scale_in_router: bool = False  # the transformers router multiplies weights by the scale
    scale_key: str = "routed_scaling_factor"
    experts_extra: str | None = None  # LongCat: zero experts add to the router width
    hard_codes: tuple[tuple[str, Any], ...] = ()
    init_args: tuple[Any, ...] = ()  # extra positional args after config (HunYuan layer_idx)
    logits: str = "linear"  # how the router's logits follow from x: "linear" (x W^T [+ b]) | "gemma4"
    notes: tuple[str, ...] = ()


_DSV3_KEYS = (
    ("num_experts", "n_routed_experts"),
    ("top_k", "num_experts_per_tok"),
    ("n_group", "n_group"),
    ("topk_group", "topk_group"),
    ("routed_scaling_factor", "routed_scaling_factor"),
    ("renormalize", "norm_topk_prob"),
)
_DSV3_DEFAULTS = (("n_group", 1), ("topk_group", 1), ("routed_scaling_factor", 1.0))
_DSV3_HARD = (("scoring_func", "sigmoid"), ("has_correction_bias", "checkpoint"))


def _dsv3_like(key: str, model_types: tuple[str, ...], config_class: str, router_class: str, **kw) -> OracleRow:
    module = f"{_TF}{key}/modeling_{key}.py"
    return OracleRow(
        key=key,
        model_types=model_types,
        config_class=config_class,
        router_class=router_class,
        source=f"{module} {router_class} (sigmoid + e_score_correction_bias, grouped top-2-sum, "
        "renormalise iff norm_topk_prob, x routed_scaling_factor)",
        config_keys=kw.pop("config_keys", _DSV3_KEYS),
        defaults=_DSV3_DEFAULTS,
        bias="e_score_correction_bias",
        scale_in_router=True,
        hard_codes=_DSV3_HARD,
        **kw,
    )


def _softmax_topk(key: str, model_types: tuple[str, ...], config_class: str, router_class: str, *,
                  renorm: Any, experts_key: str = "num_experts", what: str = "", **kw) -> OracleRow:
    keys = [("num_experts", experts_key), ("top_k", kw.pop("topk_key", "num_experts_per_tok"))]
    hard: list[tuple[str, Any]] = [("scoring_func", "softmax"), ("has_correction_bias", False)]
    if renorm is None:
        keys.append(("renormalize", "norm_topk_prob"))
    else:
        hard.append(("renormalize", renorm))
    return OracleRow(
        key=key,
        model_types=model_types,
        config_class=config_class,
        router_class=router_class,
        source=f"{_TF}{key}/modeling_{key}.py {router_class} ({what or 'softmax, top-k'})",
        config_keys=tuple(keys),
        hard_codes=tuple(hard),
        **kw,
    )


# One row per transformers architecture whose router we can build. Keys are transformers'
# models/<dir>; model_types are the values our normaliser writes into MoESpec.model_type.
ORACLES: tuple[OracleRow, ...] = (
    OracleRow(
        key="deepseek_v2",
        model_types=("deepseek_v2",),
        config_class="DeepseekV2Config",
        router_class="DeepseekV2TopkRouter",
        source=f"{_TF}deepseek_v2/modeling_deepseek_v2.py DeepseekV2TopkRouter (softmax; topk_method "
        "greedy | group_limited_greedy with group score = max, masked to 0; never renormalises; "
        "x routed_scaling_factor)",
        config_keys=(
            ("num_experts", "n_routed_experts"),
            ("top_k", "num_experts_per_tok"),
            ("n_group", "n_group"),
            ("topk_group", "topk_group"),
            ("routed_scaling_factor", "routed_scaling_factor"),
            ("topk_method", "topk_method"),
        ),
        defaults=(("n_group", 1), ("topk_group", 1), ("routed_scaling_factor", 1.0), ("topk_method", "greedy")),
        scale_in_router=True,
        hard_codes=(("scoring_func", "softmax"), ("renormalize", False), ("has_correction_bias", False)),
    ),
    _dsv3_like("deepseek_v3", ("deepseek_v3", "kimi_k2"), "DeepseekV3Config", "DeepseekV3TopkRouter"),
    _dsv3_like("deepseek_v32", ("deepseek_v32",), "DeepseekV32Config", "DeepseekV32TopkRouter"),
    _dsv3_like("glm4_moe", ("glm4_moe",), "Glm4MoeConfig", "Glm4MoeTopkRouter"),
    _dsv3_like("glm4_moe_lite", ("glm4_moe_lite",), "Glm4MoeLiteConfig", "Glm4MoeLiteTopkRouter"),
    _dsv3_like("glm_moe_dsa", ("glm_moe_dsa",), "GlmMoeDsaConfig", "GlmMoeDsaTopkRouter"),
    _dsv3_like("mimo_v2_flash", ("mimo_v2_flash", "mimo_v2"), "MiMoV2FlashConfig", "MiMoV2FlashTopkRouter",
               config_keys=(("num_experts", "n_routed_experts"), *_DSV3_KEYS[1:])),
    _dsv3_like("exaone_moe", ("exaone_moe",), "ExaoneMoeConfig", "ExaoneMoeTopkRouter",
               config_keys=(("num_experts", "num_experts"), *_DSV3_KEYS[1:])),
    _dsv3_like("nemotron_h", ("nemotron_h",), "NemotronHConfig", "NemotronHTopkRouter"),
    OracleRow(
        key="deepseek_v4",
        model_types=("deepseek_v4",),
        config_class="DeepseekV4Config",
        router_class="DeepseekV4TopKRouter",
        source=f"{_TF}deepseek_v4/modeling_deepseek_v4.py DeepseekV4TopKRouter (ACT2FN[scoring_func] + "
        "e_score_correction_bias for selection, always renormalised (+1e-20), x routed_scaling_factor)",
        config_keys=(
            ("num_experts", "n_routed_experts"),
            ("top_k", "num_experts_per_tok"),
            ("routed_scaling_factor", "routed_scaling_factor"),
            ("scoring_func", "scoring_func"),
        ),
        defaults=(("routed_scaling_factor", 1.0),),
        bias="e_score_correction_bias",
        scale_in_router=True,
        hard_codes=(("renormalize", True), ("has_correction_bias", "checkpoint")),
    ),
    OracleRow(
        key="minimax_m2",
        model_types=("minimax_m2",),
        config_class="MiniMaxM2Config",
        router_class="MiniMaxM2TopKRouter",
        source=f"{_TF}minimax_m2/modeling_minimax_m2.py MiniMaxM2TopKRouter (sigmoid + bias passed "
        "from MiniMaxM2SparseMoeBlock.e_score_correction_bias, always renormalised, no scale)",
        bias="arg",
        hard_codes=(("scoring_func", "sigmoid"), ("renormalize", True), ("has_correction_bias", "checkpoint"),
                    ("routed_scaling_factor", None)),
    ),
    _softmax_topk("minimax", ("minimax", "minimax_text_01"), "MiniMaxConfig", "MiniMaxTopKRouter",
                  renorm=True, experts_key="num_local_experts", what="softmax, top-k, renormalised"),
    _softmax_topk("qwen2_moe", ("qwen2_moe",), "Qwen2MoeConfig", "Qwen2MoeTopKRouter", renorm=None,
                  what="softmax, top-k, renormalise iff norm_topk_prob"),
    _softmax_topk("qwen3_moe", ("qwen3_moe",), "Qwen3MoeConfig", "Qwen3MoeTopKRouter", renorm=None,
                  what="softmax, top-k, renormalise iff norm_topk_prob"),
    _softmax_topk("qwen3_vl_moe", ("qwen3_vl_moe", "qwen3_vl_moe_text"), "Qwen3VLMoeTextConfig",
                  "Qwen3VLMoeTextTopKRouter", renorm=True, what="softmax, top-k, always renormalised"),
    _softmax_topk("qwen3_next", ("qwen3_next",), "Qwen3NextConfig", "Qwen3NextTopKRouter", renorm=None,
                  what="softmax, top-k, renormalise iff norm_topk_prob"),
    _softmax_topk("qwen3_5_moe", ("qwen3_5_moe", "qwen3_5_moe_text"), "Qwen3_5MoeTextConfig",
                  "Qwen3_5MoeTopKRouter", renorm=True, what="softmax, top-k, always renormalised"),
    _softmax_topk("mixtral", ("mixtral",), "MixtralConfig", "MixtralTopKRouter", renorm=True,
                  experts_key="num_local_experts", what="softmax, top-k, always renormalised"),
    _softmax_topk("granitemoe", ("granitemoe",), "GraniteMoeConfig", "GraniteMoeTopKRouter", renorm=True,
                  experts_key="num_local_experts", what="top-k logits, softmax over them"),
    _softmax_topk("olmoe", ("olmoe",), "OlmoeConfig", "OlmoeTopKRouter", renorm=None,
                  what="softmax, top-k, renormalise iff norm_topk_prob"),
    _softmax_topk("jamba", ("jamba",), "JambaConfig", "JambaTopKRouter", renorm=False,
                  what="softmax, top-k, never renormalised"),
    _softmax_topk("hunyuan_v1_moe", ("hunyuan_v1_moe", "hunyuan"), "HunYuanMoEV1Config", "HunYuanMoEV1Gate",
                  renorm=True, topk_key="moe_topk", weight="wg.weight", init_args=(0,),
                  what="softmax, top-k, always renormalised"),
    OracleRow(
        key="gpt_oss",
        model_types=("gpt_oss",),
        config_class="GptOssConfig",
        router_class="GptOssTopKRouter",
        source=f"{_TF}gpt_oss/modeling_gpt_oss.py GptOssTopKRouter (Linear with bias, top-k of the "
        "logits, softmax over them)",
        linear_bias="bias",
        hard_codes=(("scoring_func", "softmax"), ("renormalize", True), ("has_correction_bias", False)),
    ),
    OracleRow(
        key="ernie4_5_moe",
        model_types=("ernie4_5_moe",),
        config_class="Ernie4_5_MoeConfig",
        router_class="Ernie4_5_MoeTopKRouter",
        source=f"{_TF}ernie4_5_moe/modeling_ernie4_5_moe.py Ernie4_5_MoeTopKRouter (softmax; "
        "moe_statics.e_score_correction_bias added for selection; renormalised, clamp moe_norm_min)",
        config_keys=(("num_experts", "moe_num_experts"), ("top_k", "moe_k")),
        bias="moe_statics.e_score_correction_bias",
        bias_shape="row",
        hard_codes=(("scoring_func", "softmax"), ("renormalize", True), ("has_correction_bias", "checkpoint")),
    ),
    OracleRow(
        key="llama4",
        model_types=("llama4", "llama4_text"),
        config_class="Llama4TextConfig",
        router_class="Llama4Router",
        source=f"{_TF}llama4/modeling_llama4.py Llama4Router (top-k logits, sigmoid of the kept "
        "ones, dense [T, E] scores; applied to the expert input by Llama4TextMoe)",
        output="dense_scores",
        hard_codes=(("scoring_func", "sigmoid"), ("renormalize", False), ("has_correction_bias", False)),
    ),
    OracleRow(
        key="lfm2_moe",
        model_types=("lfm2_moe",),
        config_class="Lfm2MoeConfig",
        router_class="Lfm2MoeTopKRouter",
        source=f"{_TF}lfm2_moe/modeling_lfm2_moe.py Lfm2MoeTopKRouter (sigmoid, expert_bias for "
        "selection iff use_expert_bias, renormalise iff norm_topk_prob (+1e-6), x routed_scaling_factor)",
        config_keys=(
            ("num_experts", "num_experts"),
            ("top_k", "num_experts_per_tok"),
            ("renormalize", "norm_topk_prob"),
            ("routed_scaling_factor", "routed_scaling_factor"),
            ("has_correction_bias", "use_expert_bias"),
        ),
        defaults=(("routed_scaling_factor", 1.0),),
        bias="arg",
        scale_in_router=True,
        hard_codes=(("scoring_func", "sigmoid"),),
    ),
    OracleRow(
        key="afmoe",
        model_types=("afmoe",),
        config_class="AfmoeConfig",
        router_class="AfmoeTokenChoiceRouter",
        source=f"{_TF}afmoe/modeling_afmoe.py AfmoeTokenChoiceRouter (sigmoid + expert_bias for "
        "selection, always renormalised, x route_scale)",
        config_keys=(("num_experts", "num_experts"), ("top_k", "num_experts_per_tok"),
                     ("routed_scaling_factor", "route_scale")),
        defaults=(("routed_scaling_factor", 1.0),),
        weight="gate.weight",
        bias="arg",
        input_rank=3,
        scale_in_router=True,
        scale_key="route_scale",
        hard_codes=(("scoring_func", "sigmoid"), ("renormalize", True), ("has_correction_bias", "checkpoint")),
    ),
    OracleRow(
        key="longcat_flash",
        model_types=("longcat_flash",),
        config_class="LongcatFlashConfig",
        router_class="LongcatFlashTopkRouter",
        source=f"{_TF}longcat_flash/modeling_longcat_flash.py LongcatFlashTopkRouter (softmax over "
        "routed + zero experts, + e_score_correction_bias for selection, no renormalisation, "
        "x routed_scaling_factor)",
        config_keys=(("num_experts", "n_routed_experts"), ("top_k", "moe_topk"),
                     ("routed_scaling_factor", "routed_scaling_factor"), ("zero_expert_num", "zero_expert_num")),
        defaults=(("routed_scaling_factor", 1.0), ("zero_expert_num", 0)),
        weight="classifier.weight",
        bias="e_score_correction_bias",
        scale_in_router=True,
        experts_extra="zero_expert_num",
        hard_codes=(("scoring_func", "softmax"), ("renormalize", False), ("has_correction_bias", "checkpoint")),
    ),
    OracleRow(
        key="cohere2_moe",
        model_types=("cohere2_moe",),
        config_class="Cohere2MoeConfig",
        router_class="Cohere2MoeTopKRouter",
        source=f"{_TF}cohere2_moe/modeling_cohere2_moe.py Cohere2MoeTopKRouter (top-k logits; "
        "expert_selection_fn softmax: softmax over them; sigmoid: sigmoid, renormalise iff norm_topk_prob)",
        config_keys=(("num_experts", "num_experts"), ("top_k", "num_experts_per_tok"),
                     ("renormalize", "norm_topk_prob"), ("scoring_func", "expert_selection_fn")),
        hard_codes=(("has_correction_bias", False),),
    ),
    OracleRow(
        key="gemma4",
        model_types=("gemma4", "gemma4_text"),
        config_class="Gemma4TextConfig",
        router_class="Gemma4TextRouter",
        source=f"{_TF}gemma4/modeling_gemma4.py Gemma4TextRouter (RMS-normed, scaled input; softmax, "
        "top-k, renormalised, x per_expert_scale)",
        config_keys=(("num_experts", "num_experts"), ("top_k", "top_k_experts")),
        extra_config=(("enable_moe_block", True),),
        weight="proj.weight",
        logits="gemma4",
        hard_codes=(("has_correction_bias", False),),
    ),
    OracleRow(
        key="phimoe",
        model_types=("phimoe",),
        config_class="PhimoeConfig",
        router_class="PhimoeTopKRouter",
        source=f"{_TF}phimoe/modeling_phimoe.py PhimoeTopKRouter (sparsemixer, top-2)",
        hard_codes=(("has_correction_bias", False),),
    ),
)

# model types transformers does not register, mapped onto the architecture it loads them as
MAPPED: dict[str, str] = {
    "kimi_k2": "model_type kimi_k2 is not registered in transformers 5.24; its architecture "
    "DeepseekV3ForCausalLM loads as deepseek_v3 (DeepseekV3TopkRouter)",
}

# model types transformers 5.24 does not have, with the reason verify gives
ABSENT: dict[str, str] = {
    "minimax_m1": "model_type minimax_m1 is remote code (modeling_minimax_m1.py), absent from transformers "
    "5.24; its closest transformers class, MiniMaxTopKRouter (MiniMax-Text-01), is not this model's code",
    "bailing_moe": "model_type bailing_moe is remote code, absent from transformers 5.24",
    "bailing_moe_v2": "model_type bailing_moe_v2 is remote code, absent from transformers 5.24",
    "step3_text": "Step-3 text is remote code, absent from transformers 5.24",
    "step3p5": "Step-3.5 (step3p5) is remote code, absent from transformers 5.24 (which has step3p7 only)",
    "openpangu": "openPangu is remote code, absent from transformers 5.24",
    "dbrx": "transformers 5.24's DbrxRouter returns logits only (top-k and the p-norm live in DbrxExperts); "
    "verify does not adapt it",
}


def oracle_for(spec: MoESpec) -> OracleRow | None:
    """The transformers row for this model's architecture, or None."""
    mt = (spec.model_type or "").lower()
    for row in ORACLES:
        if mt in row.model_types:
            return row
    arch = spec.architecture or ""
    if arch.startswith("DeepseekV3") or arch.startswith("MistralLarge3"):
        return next(r for r in ORACLES if r.key == "deepseek_v3")
    return None


# --------------------------------------------------------------------------------- results
@dataclass
class TokenDifference:
    """The first token whose expert set or weights differ (each side sorted by weight, desc.)."""

    token: int
    reason: str
    reference_ids: list[int] | None
    reference_weights: list[float] | None
    oracle_ids: list[int]
    oracle_weights: list[float]


@dataclass
class VerifyResult:
    model: str
    verdict: str  # "match" | "mismatch" | "cannot_verify"
    method: str | None  # RoutingMethodType name compared (the reference router's method)
    method_source: str  # "resolved" (vLLM's rules) | "forced" (--method)
    oracle: str  # "transformers" | "flashinfer"
    transformers_class: str | None  # e.g. transformers.models.deepseek_v3.modeling_deepseek_v3.DeepseekV3TopkRouter
    kernel: str | None  # e.g. flashinfer.fused_moe.fused_topk_deepseek
    oracle_version: str | None
    tokens: int
    seed: int
    hidden_size: int
    num_experts: int | None
    top_k: int | None
    id_mismatches: int = 0  # tokens whose expert SETS differ
    weight_mismatches: int = 0  # tokens with equal sets whose weights differ beyond tolerance
    max_weight_error: float | None = None  # max |w_ref - w_oracle| over tokens with equal sets
    tolerance: dict = field(default_factory=lambda: dict(TOLERANCE))
    first_difference: TokenDifference | None = None
    explanation: str = ""
    reflects: str | None = None  # "architecture" | "config" | None, with the reason in reflects_note
    reflects_note: str | None = None
    config: dict = field(default_factory=dict)  # routing kwargs given to the transformers config
    flashinfer_version: str | None = None
    vllm_version: str | None = None
    source: str | None = None  # upstream file of the oracle row
    notes: list[str] = field(default_factory=list)
    # verify --kernel only
    logit_scale: float | None = None  # logits are N(0, logit_scale^2)
    kernels: dict = field(default_factory=dict)  # name -> {"ran": bool, "reason"/"build": ...}
    agreement: list = field(default_factory=list)  # Pair.to_dict() rows
    disagreements: dict = field(default_factory=dict)  # kernel -> [{token, kernel_only, reference_only, score_gap, cause}]
    consequence: dict = field(default_factory=dict)  # kernel -> layer rel-L2 (all / divergent tokens), fraction

    @property
    def exit_code(self) -> int:
        return {"match": EXIT_OK, "mismatch": EXIT_FINDINGS}.get(self.verdict, EXIT_BAD_INPUT)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        return d


# --------------------------------------------------------------------------------- helpers
def _oracle_transformers():
    """transformers for the oracle; torch first (transformers imports without torch, its model
    classes do not work): each missing package is one line naming the extra."""
    require("torch", *_ORACLE)
    return require("transformers", *_ORACLE)


def _getattr_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _spec_value(spec: MoESpec, name: str):
    return getattr(spec, name, None)


def _config_kwargs(row: OracleRow, spec: MoESpec, hidden: int) -> dict:
    defaults = dict(row.defaults)
    kw: dict[str, Any] = {"hidden_size": hidden}
    for field_name, key in row.config_keys:
        v = _spec_value(spec, field_name)
        if v is None:
            v = defaults.get(field_name)
        if v is None:
            continue
        if field_name == "n_group" or field_name == "topk_group":
            v = max(int(v), 1)
        kw[key] = v
    kw.update(dict(row.extra_config))
    return kw


def _reflects(row: OracleRow, spec: MoESpec) -> tuple[str, str | None]:
    """Which side the comparison reflects, and why, from the row's hard-coded facts."""
    diffs = []
    for name, value in row.hard_codes:
        if value == "checkpoint":
            continue
        have = _spec_value(spec, name)
        if name == "routed_scaling_factor":
            if have not in (None, 1.0):
                diffs.append(f"transformers applies no routed_scaling_factor; the config says {have}")
            continue
        if have is None:
            continue
        if have != value:
            what = {"scoring_func": "scoring", "renormalize": "renormalisation",
                    "has_correction_bias": "correction bias"}.get(name, name)
            diffs.append(f"transformers hard-codes {what} = {value!r}; the config says {have!r}")
    if not diffs:
        return "config", None
    return "architecture", "; ".join(diffs) + " -- the comparison reflects the architecture, not the config key"


def _sorted_pair(ids, weights) -> tuple[list[int], list[float]]:
    pairs = sorted(zip(ids, weights), key=lambda p: (-p[1], p[0]))
    return [int(i) for i, _ in pairs], [float(w) for _, w in pairs]


@dataclass
class _Comparison:
    id_mismatches: int
    weight_mismatches: int
    max_weight_error: float | None
    first: TokenDifference | None


def _compare(ref_ids, ref_w, or_ids, or_w, *, atol: float, rtol: float) -> _Comparison:
    """Per token: expert sets exactly (order-insensitive), weights matched by expert id."""
    torch = require("torch", *_ORACLE)
    ref_ids = ref_ids.long().cpu()
    or_ids = or_ids.long().cpu()
    ref_w = ref_w.double().cpu()
    or_w = or_w.double().cpu()
    rs, rperm = torch.sort(ref_ids, dim=-1)
    os_, operm = torch.sort(or_ids, dim=-1)
    rw = torch.gather(ref_w, 1, rperm)
    ow = torch.gather(or_w, 1, operm)
    same_set = (rs == os_).all(dim=-1)
    err = (rw - ow).abs()
    bad_w = (err > atol + rtol * ow.abs()).any(dim=-1) & same_set
    max_err = float(err[same_set].max()) if bool(same_set.any()) else None
    first = None
    bad = (~same_set) | bad_w
    if bool(bad.any()):
        t = int(torch.nonzero(bad)[0, 0])
        if not bool(same_set[t]):
            only_ref = sorted(set(ref_ids[t].tolist()) - set(or_ids[t].tolist()))
            only_or = sorted(set(or_ids[t].tolist()) - set(ref_ids[t].tolist()))
            reason = f"expert ids differ: reference only {only_ref}, oracle only {only_or}"
        else:
            e = float(err[t].max())
            reason = f"weights differ by {e:.3g} (> atol {atol:g} + rtol {rtol:g} x |w|)"
        r_ids, r_w = _sorted_pair(ref_ids[t].tolist(), ref_w[t].tolist())
        o_ids, o_w = _sorted_pair(or_ids[t].tolist(), or_w[t].tolist())
        first = TokenDifference(token=t, reason=reason, reference_ids=r_ids, reference_weights=r_w,
                                oracle_ids=o_ids, oracle_weights=o_w)
    return _Comparison(int((~same_set).sum()), int(bad_w.sum()), max_err, first)


def _check_forced(method_name: str) -> None:
    from .errors import BadInputError
    from .reference import METHODS

    if method_name not in METHODS and method_name not in ("Unspecified", "Custom"):
        raise BadInputError(
            f"--method {method_name!r} is not a RoutingMethodType (known: {', '.join([*METHODS, 'Unspecified', 'Custom'])})"
        )


def _method_name(method: str) -> str:
    from .reference import canonical_method

    try:
        return canonical_method(method)
    except Exception:
        return {"unspecified": "Unspecified", "custom": "Custom"}.get(str(method).strip().lower(), method)


# --------------------------------------------------------------------------------- main path
class _CannotVerify(Exception):
    """Raised by a step: the one way a verification ends as cannot_verify (exit 2)."""


@dataclass
class _Setup:
    spec: MoESpec
    method: str
    fi_version: str | None
    notes: list[str]
    base: dict


@dataclass
class _Oracle:
    """The model's own router, built and run on seeded random inputs."""

    row: OracleRow
    router: Any
    x: Any  # hidden states [T, H]
    w: Any  # router weight [E', H]
    bias: Any  # correction bias [E'] (zeros where the model has none)
    lin_bias: Any
    has_bias: bool
    ids: Any  # transformers' expert ids [T, k]
    weights: Any  # transformers' weights [T, k] fp32


def _setup(description: ModelDescription, *, tokens: int, seed: int, method: str | None, hidden_size: int,
           flashinfer_version: str | None, oracle: str) -> _Setup:
    from .errors import BadInputError

    if tokens < 1:
        raise BadInputError(f"--tokens must be >= 1, got {tokens}")
    if hidden_size < 1:
        raise BadInputError(f"hidden size must be >= 1, got {hidden_size}")
    spec, routing = description.moe, description.routing
    fi_version = flashinfer_version or routing.flashinfer_version
    method_name = _method_name(method if method is not None else routing.method)
    if method is not None:
        _check_forced(method_name)
    base = dict(model=description.model.id, method=method_name, method_source="forced" if method else "resolved",
                oracle=oracle, kernel=None, tokens=tokens, seed=seed, hidden_size=hidden_size,
                num_experts=spec.num_experts, top_k=spec.top_k, flashinfer_version=fi_version,
                vllm_version=routing.vllm_version, transformers_class=None, oracle_version=None)
    return _Setup(spec, method_name, fi_version, [], base)


def _oracle_row(s: _Setup) -> OracleRow:
    spec = s.spec
    e, k = spec.num_experts, spec.top_k
    if not (isinstance(e, int) and isinstance(k, int) and 1 <= k <= e <= MAX_EXPERTS):
        raise _CannotVerify(f"num_experts={e!r}, top_k={k!r}: verify needs 1 <= top_k <= num_experts <= {MAX_EXPERTS}")
    row = oracle_for(spec)
    if row is None:
        raise _CannotVerify(ABSENT.get((spec.model_type or "").lower()) or (
            f"model_type {spec.model_type!r} (architecture {spec.architecture!r}) has no router class "
            "in transformers that verify knows how to build"))
    s.base["source"] = row.source
    s.notes.extend(row.notes)
    if (spec.model_type or "").lower() in MAPPED:
        s.notes.append(MAPPED[(spec.model_type or "").lower()])
    if spec.num_hash_layers:
        s.notes.append(f"the first {spec.num_hash_layers} layers route by a hash table (tid2eid): out of scope, "
                       "only learned-router layers are compared")
    if spec.zero_expert_num:
        s.notes.append(f"{spec.zero_expert_num} zero (identity) experts take part in selection")
    return row


def _router_classes(s: _Setup, row: OracleRow):
    transformers = _oracle_transformers()
    s.base["oracle_version"] = s.base["oracle_version"] or transformers.__version__
    try:
        modeling = importlib.import_module(f"transformers.models.{row.key}.modeling_{row.key}")
        configuration = importlib.import_module(f"transformers.models.{row.key}.configuration_{row.key}")
        return getattr(modeling, row.router_class), getattr(configuration, row.config_class)
    except (ImportError, AttributeError) as e:
        raise _CannotVerify(f"transformers {transformers.__version__} has no {row.key}.{row.router_class} ({e})") from None


def _build_oracle(s: _Setup, row: OracleRow, *, tokens: int, seed: int, hidden: int, logit_scale: float = 1.0,
                  given: tuple | None = None) -> _Oracle:
    """Build the architecture's router with seeded random weights (or ``given`` = the checkpoint's
    (router weight [E, H], correction bias [E] or None)) and run it on random hidden states."""
    torch = require("torch", *_ORACLE)
    router_cls, config_cls = _router_classes(s, row)
    kw = _config_kwargs(row, s.spec, hidden)
    reflects, reflects_note = _reflects(row, s.spec)
    s.base.update(transformers_class=f"{router_cls.__module__}.{router_cls.__qualname__}", config=kw,
                  reflects=reflects, reflects_note=reflects_note)
    gen = torch.Generator().manual_seed(seed)
    width = s.spec.num_experts + (int(s.spec.zero_expert_num or 0) if row.experts_extra else 0)
    try:
        with torch.no_grad():
            router = router_cls(config_cls(**kw), *row.init_args).float().eval()
    except Exception as e:
        raise _CannotVerify(f"could not build {row.router_class} from {row.config_class}({kw}): "
                            f"{type(e).__name__}: {e}") from None
    w = torch.randn(width, hidden, generator=gen) / math.sqrt(hidden) * logit_scale
    x = torch.randn(tokens, hidden, generator=gen)
    bias = torch.randn(width, generator=gen) * 0.1  # comparable to the spread of sigmoid scores
    if given is not None:
        w = given[0].float()
        bias = given[1].float() if given[1] is not None else torch.zeros(width)
    lin_bias = torch.randn(width, generator=gen) * 0.5 * logit_scale
    has_bias = bool(s.spec.has_correction_bias)
    tf_bias = bias if has_bias else torch.zeros(width)
    with torch.no_grad():
        _getattr_path(router, row.weight).copy_(w)
        if row.linear_bias:
            _getattr_path(router, row.linear_bias).copy_(lin_bias)
        if row.bias and row.bias != "arg":
            _getattr_path(router, row.bias).copy_(tf_bias.view(1, -1) if row.bias_shape == "row" else tf_bias)
        args: list[Any] = [x.view(1, tokens, hidden) if row.input_rank == 3 else x]
        if row.bias == "arg":
            args.append(tf_bias)
        try:
            out = router(*args)
        except Exception as e:
            raise _CannotVerify(f"{row.router_class} failed on random inputs: {type(e).__name__}: {e}") from None
    if row.output == "dense_scores":
        tf_w, tf_ids = torch.topk(out[0].float().reshape(tokens, -1), s.spec.top_k, dim=-1)
    else:
        tf_w, tf_ids = out[1].float().reshape(tokens, -1), out[2].reshape(tokens, -1)
    return _Oracle(row, router, x, w, tf_bias, lin_bias, has_bias, tf_ids, tf_w)


def _oracle_logits(o: _Oracle):
    torch = require("torch", *_ORACLE)
    with torch.no_grad():
        if o.row.logits == "gemma4":  # the router normalises and rescales its input first
            r = o.router
            return r.proj(r.norm(o.x) * r.scale * r.scalar_root_size).float()
        return torch.nn.functional.linear(o.x, o.w, o.lin_bias if o.row.linear_bias else None).float()


def _unscale_oracle(s: _Setup, o: _Oracle) -> None:
    """transformers folds the scale into the weights; where the FlashInfer method does not apply
    it, vLLM scales outside the routing kernel: compare unscaled weights then."""
    from .reference import METHODS, scale_applies

    scale = s.spec.routed_scaling_factor
    if s.method in METHODS and o.row.scale_in_router and scale not in (None, 1.0) and not scale_applies(s.method, s.fi_version):
        o.weights = o.weights / float(scale)
        s.notes.append(f"transformers multiplies the routing weights by {o.row.scale_key}={scale:g}; FlashInfer's "
                       f"{s.method} does not (vLLM scales outside the routing kernel): transformers' weights "
                       f"were divided by {scale:g} before comparing")


def _route_kwargs(s: _Setup, o: _Oracle | None, bias) -> dict:
    from .reference import METHODS

    info = METHODS[s.method]
    if info.uses_bias and o is not None and not o.has_bias:
        s.notes.append(f"{s.method} selects with a correction bias; the model has none (zeros passed, as vLLM does)")
    return dict(top_k=s.spec.top_k, bias=bias if info.uses_bias else None, n_group=s.spec.n_group,
                topk_group=s.spec.topk_group, routed_scaling_factor=s.spec.routed_scaling_factor,
                norm_topk_prob=bool(s.spec.renormalize))


def _no_reference(s: _Setup, o: _Oracle, why: str) -> VerifyResult:
    ids, ws = _sorted_pair(o.ids[0].tolist(), o.weights[0].tolist())
    first = TokenDifference(token=0, reason="no reference router", reference_ids=None, reference_weights=None,
                            oracle_ids=ids, oracle_weights=ws)
    return VerifyResult(verdict="mismatch", first_difference=first, explanation=why, notes=s.notes, **s.base)


def _reference(s: _Setup, o: _Oracle, logits):
    """Our reference for the method; None when no reference exists (a finding, not an error)."""
    from .reference import METHODS, UnimplementedRoutingMethod
    from .reference.routers import route

    if s.method not in METHODS:
        return None, _unimplemented_pattern(s.spec, s.method)
    try:
        return route(s.method, logits, flashinfer_version=s.fi_version, output_dtype=None,
                     **_route_kwargs(s, o, o.bias.float())), None
    except UnimplementedRoutingMethod as e:
        return None, str(e)
    except Exception as e:  # RouterInputError: shapes/groups the method cannot take
        raise _CannotVerify(f"the {s.method} reference router rejects this model's shape: {e}") from None


def _flashinfer_lacks(s: _Setup) -> str | None:
    """A finding when the method is vLLM-internal: no FlashInfer routing method computes it."""
    from .reference import METHODS

    info = METHODS.get(s.method)
    if info is None or not info.vllm_internal:
        return None
    return (f"no FlashInfer routing method computes {s.method}: FlashInfer {s.fi_version or '0.7.2.post1'} has no "
            f"RoutingMethodType member for it (vLLM-internal id 100); vLLM routes it with its own kernel "
            f"({info.source.split(';')[0]})")


def verify_description(
    description: ModelDescription,
    *,
    tokens: int = DEFAULT_TOKENS,
    seed: int = 0,
    method: str | None = None,
    hidden_size: int = DEFAULT_HIDDEN,
    flashinfer_version: str | None = None,
) -> VerifyResult:
    """Compare the model's own transformers router with our reference router for ``method``
    (default: the method vLLM resolves, ``description.routing.method``) on ``tokens`` seeded
    random hidden states. Raises EnvironmentError_ when torch/transformers are missing.

    Steps: set up -> the transformers row -> build and run the router -> our reference -> compare.
    Any step may end the run as cannot_verify (one path, :class:`_CannotVerify`)."""
    s = _setup(description, tokens=tokens, seed=seed, method=method, hidden_size=hidden_size,
               flashinfer_version=flashinfer_version, oracle="transformers")
    _oracle_transformers()
    try:
        row = _oracle_row(s)
        o = _build_oracle(s, row, tokens=tokens, seed=seed, hidden=hidden_size)
        logits = _oracle_logits(o)
        _unscale_oracle(s, o)
        ref, why_none = _reference(s, o, logits)
    except _CannotVerify as e:
        return VerifyResult(verdict="cannot_verify", explanation=str(e), notes=s.notes, **s.base)
    if ref is None:
        return _no_reference(s, o, why_none)
    cmp = _compare(ref.topk_ids, ref.topk_weights, o.ids, o.weights, atol=TOLERANCE["atol"], rtol=TOLERANCE["rtol"])
    verdict = "match" if cmp.first is None else "mismatch"
    explanation = _explain(verdict, cmp, s.spec, s.method, row, tokens)
    lacks = _flashinfer_lacks(s)
    if lacks:
        verdict, explanation = "mismatch", f"{lacks}. vLLM's router (our reference) vs {row.router_class}: {explanation}"
    return VerifyResult(verdict=verdict, id_mismatches=cmp.id_mismatches, weight_mismatches=cmp.weight_mismatches,
                        max_weight_error=cmp.max_weight_error, first_difference=cmp.first, explanation=explanation,
                        notes=s.notes, **s.base)


def _unimplemented_pattern(spec: MoESpec, method: str) -> str:
    """A one-line finding for a method no reference router implements."""
    if method == "Custom":
        what = f" ({spec.custom_routing})" if spec.custom_routing else ""
        return (f"no FlashInfer routing method computes this model's routing: vLLM labels it Custom and "
                f"routes with a model-specific Python function{what}")
    if spec.zero_expert_num:
        pattern = "softmax + correction bias with zero/identity experts"
    elif spec.scoring_func == "softmax" and spec.has_correction_bias:
        pattern = "softmax + correction bias"
    elif spec.custom_routing:
        pattern = f"custom routing ({spec.custom_routing})"
    elif spec.has_correction_bias and not spec.renormalize:
        pattern = f"{spec.scoring_func} + correction bias without renormalisation"
    else:
        pattern = f"{spec.scoring_func} scoring (bias={spec.has_correction_bias}, renormalize={spec.renormalize})"
    return (f"no FlashInfer method implements {pattern}: vLLM resolves {method}, which no routing kernel "
            "computes (FlashInfer raises 'Unimplemented routing method')")


def _explain(verdict: str, cmp: _Comparison, spec: MoESpec, method: str, row: OracleRow, tokens: int) -> str:
    if verdict == "match":
        return (f"{method} selects the same experts as {row.router_class} for all {tokens} tokens; "
                f"weights agree within atol {TOLERANCE['atol']:g} / rtol {TOLERANCE['rtol']:g} "
                f"(max error {cmp.max_weight_error:.2g})")
    parts = []
    if cmp.id_mismatches:
        parts.append(f"{cmp.id_mismatches}/{tokens} tokens select different experts")
    if cmp.weight_mismatches:
        parts.append(f"{cmp.weight_mismatches}/{tokens} tokens weigh the same experts differently")
    why = ""
    if row.key == "deepseek_v2" and (spec.topk_method == "group_limited_greedy") and (spec.n_group or 1) > 1:
        why = (f"; DeepSeek-V2 group-limited softmax (group score = max, top {spec.topk_group} of "
               f"{spec.n_group} groups) is implemented by no FlashInfer method: {method} ignores the groups")
    return f"{method} differs from {row.router_class}: " + ", ".join(parts) + why


def verify_model(
    model: str,
    *,
    tokens: int = DEFAULT_TOKENS,
    seed: int = 0,
    method: str | None = None,
    revision: str | None = None,
    offline: bool | None = None,
    vllm_version: str | None = None,
    flashinfer_version: str | None = None,
    kernel: bool = False,
    logit_scale: float = 1.0,
    trtllm_headers: str | None = None,
    progress=None,
) -> VerifyResult:
    """Describe ``model`` (detect pipeline) and verify it (transformers, or the kernel)."""
    from .detect import describe

    desc = describe(model, revision=revision, offline=offline, vllm_version=vllm_version,
                    flashinfer_version=flashinfer_version, progress=progress)
    if progress:
        progress("comparing routers…")
    if kernel:
        return verify_kernel(desc, tokens=tokens, seed=seed, method=method, logit_scale=logit_scale,
                             flashinfer_version=flashinfer_version, headers_dir=trtllm_headers)
    return verify_description(desc, tokens=tokens, seed=seed, method=method)


# --------------------------------------------------------------------------------- kernel path
KERNEL_TOLERANCE = {"atol": 1e-2, "rtol": 1.6e-2, "dtype": "bfloat16"}  # the kernels write bf16 weights
GPU_EXTRA = "verify --kernel needs a CUDA GPU and FlashInfer: pip install 'moe-inspect[gpu]'"
_BF16_BIAS_CAUSE = ("the grouped DeepSeekV3 kernel rounds the correction bias to bf16 before adding it "
                    "(trtllm_fused_moe_routing_deepseek.cu:159-161, static_cast<OutputT> with OutputT = bf16); "
                    "reproduced by the kernel-exact reference")


def kernel_runners(method: str, spec: MoESpec, *, headers_dir: str | None = None) -> dict:
    """name -> (callable(logits_cuda, bias_cuda) -> (ids, weights) | None, reason when it cannot run)."""
    from .kernels import fused_topk_deepseek as ftd
    from .kernels import trtllm_routing as tr

    e, k, g, tg = spec.num_experts, spec.top_k, spec.n_group, spec.topk_group
    kw = dict(top_k=k, n_group=g, topk_group=tg, routed_scaling_factor=spec.routed_scaling_factor)
    out: dict = {}
    why = tr.supports(method, e, k, g, tg)
    if why is None:
        why = tr.unavailable_reason(headers_dir=headers_dir)
    out["trtllm-gen"] = (None, why) if why else (
        lambda x, b: _ids_w(tr.route(method, x, bias=b, norm_topk_prob=bool(spec.renormalize),
                                     headers_dir=headers_dir, **kw)), None)
    if method == "DeepSeekV3":
        arch = tr._arch()
        why = ftd.limits_problem(e, k, g, tg) or ftd.arch_problem(arch)
        out["fused_topk_deepseek"] = (None, why) if why else (lambda x, b: ftd.run(x, b, **kw), None)
    return out


def _ids_w(r):
    return r.topk_ids, r.topk_weights


def checkpoint_router(description: ModelDescription):
    """(router weight [E, H] fp32, correction bias [E] fp32 or None, where) of the first MoE layer
    of a local checkpoint, or None (no local files, no router tensor, or a quantized router)."""
    from pathlib import Path

    from .errors import CheckpointError

    ref, spec = description.model, description.moe
    if ref.source not in ("local", "cache") or not ref.path or not spec.moe_layers:
        return None
    try:
        from safetensors import safe_open

        from .layer.weights import checkpoint_tensor_names, find_layer_prefix

        names = checkpoint_tensor_names(Path(ref.path))
        pre = find_layer_prefix(names, spec.moe_layers[0])
    except (ImportError, CheckpointError):
        return None
    gate = next((n for n in (f"{pre}.gate.weight", f"{pre}.router.weight") if n in names), None)
    bias = next((n for n in (f"{pre}.gate.e_score_correction_bias", f"{pre}.e_score_correction_bias")
                 if n in names), None)
    if gate is None:
        return None

    def load(name):
        with safe_open(str(Path(ref.path) / names[name]), framework="pt") as f:
            return f.get_tensor(name)

    w = load(gate)
    if not w.is_floating_point() or w.dim() != 2 or w.shape[0] != spec.num_experts or w.element_size() < 2:
        return None
    return w.float(), (load(bias).float().reshape(-1) if bias else None), f"{gate}"


def _kernel_logits(s: _Setup, description: ModelDescription, *, tokens: int, seed: int, logit_scale: float):
    """(oracle or None, logits fp32 [T, E], bias or None, why the model router is missing, where the
    logits came from): the model's router when transformers has it (the checkpoint's router weights
    when a checkpoint is local), else seeded logits N(0, scale^2) and bias 0.1 N(0, 1)."""
    torch = require("torch", *_ORACLE)
    ckpt = checkpoint_router(description)
    what = (f"logits = hidden states N(0, 1) x the checkpoint's router {ckpt[2]} (and its correction bias): "
            "--logit-scale does not apply" if ckpt is not None else None)
    try:
        row = _oracle_row(s)
        hidden = DEFAULT_HIDDEN if ckpt is None else int(ckpt[0].shape[1])
        o = _build_oracle(s, row, tokens=tokens, seed=seed, hidden=hidden, logit_scale=logit_scale,
                          given=None if ckpt is None else ckpt[:2])
        logits = _oracle_logits(o)
        _unscale_oracle(s, o)
        return o, logits, (o.bias.float() if o.has_bias else None), None, what or (
            f"logits N(0, {logit_scale:g}^2) through the model router's seeded weights")
    except (_CannotVerify, EnvironmentError_) as e:
        gen = torch.Generator().manual_seed(seed)
        e_ = s.spec.num_experts
        if ckpt is not None:
            logits = torch.randn(tokens, ckpt[0].shape[1], generator=gen) @ ckpt[0].t()
            bias = ckpt[1] if s.spec.has_correction_bias else None
        else:
            logits = torch.randn(tokens, e_, generator=gen) * logit_scale
            bias = torch.randn(e_, generator=gen) * 0.1 if s.spec.has_correction_bias else None
        return None, logits, bias, f"model router not compared: {e}", what or (
            f"logits N(0, {logit_scale:g}^2) drawn directly (seeded)")


def _selection_keys(method: str, logits, bias):
    """The reference's fp32 selection keys, unmasked (for score gaps)."""
    from .reference.routers import kernel_sigmoid

    if method in ("MiniMax2", "DeepSeekV3"):
        return kernel_sigmoid(logits) + (0 if bias is None else bias.float().reshape(1, -1))
    if method in ("SigmoidRenorm", "Sigmoid"):
        return kernel_sigmoid(logits)
    return logits.float()


def _run_kernels(runners: dict, logits, bias) -> tuple[dict, dict]:
    torch = require("torch", *_ORACLE)
    outs, info = {}, {}
    for name, (fn, why) in runners.items():
        if fn is None:
            info[name] = {"ran": False, "reason": why}
            continue
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        ids, w = fn(logits.to(dev), None if bias is None else bias.to(dev))
        outs[name] = (ids.cpu(), w.float().cpu())
        info[name] = {"ran": True}
    return outs, info


def _kernel_table(s: _Setup, o, ref, exact, outs, logits, bias) -> tuple[list, dict, dict]:
    from .kernels.agreement import disagreements, layer_rel_l2, pair, set_differs

    t_ref, t_k = TOLERANCE, KERNEL_TOLERANCE
    rows = []
    if o is not None:
        rows.append(pair("reference", ref.topk_ids, ref.topk_weights, "model router", o.ids, o.weights, **_tol(t_ref)))
    grouped = s.method == "DeepSeekV3" and (s.spec.n_group or 1) > 1
    cause = _BF16_BIAS_CAUSE if grouped else "the kernel's arithmetic, reproduced by the kernel-exact reference"
    keys = _selection_keys(s.method, logits, bias)
    dis, cons = {}, {}
    for name, (ids, w) in outs.items():
        rows.append(pair(name, ids, w, "kernel-exact reference", exact.topk_ids, exact.topk_weights, **_tol(t_k)))
        rows.append(pair(name, ids, w, "reference", ref.topk_ids, ref.topk_weights, **_tol(t_k)))
        if o is not None:
            rows.append(pair(name, ids, w, "model router", o.ids, o.weights, **_tol(t_k)))
        dis[name] = disagreements(ids, ref.topk_ids, exact.topk_ids, keys, cause_when_exact=cause)
        rel = layer_rel_l2(ids, w, ref.topk_ids, ref.topk_weights, s.spec.num_experts, seed=0)
        n = int(set_differs(ids, ref.topk_ids).sum())
        cons[name] = {**rel, "tokens_affected": n, "fraction_affected": n / max(int(ids.shape[0]), 1)}
    return [r.to_dict() for r in rows], dis, cons


def _tol(t: dict) -> dict:
    return {"atol": t["atol"], "rtol": t["rtol"]}


def _kernel_explanation(method: str, table: list, dis: dict, tokens: int) -> tuple[str, str]:
    parts, verdict = [], "match"
    for name in dis:
        frac = {r["b"]: r for r in table if r["a"] == name}
        bits = [f"= {b} on {100 * r['fraction']:.1f} %" for b, r in frac.items()]
        if frac["reference"]["same_experts"] < tokens or frac["reference"]["weight_mismatches"]:
            verdict = "mismatch"
        causes = sorted({d["cause"] for d in dis[name]})
        parts.append(f"{name}: " + ", ".join(bits) + (f", because {'; '.join(causes)}" if causes else ""))
    if not parts:
        return "cannot_verify", f"no FlashInfer routing kernel for {method} ran here"
    return verdict, f"{method} on {tokens} tokens: " + " | ".join(parts)


def verify_kernel(
    description: ModelDescription,
    tokens: int = DEFAULT_TOKENS,
    seed: int = 0,
    *,
    method: str | None = None,
    logit_scale: float = 1.0,
    flashinfer_version: str | None = None,
    headers_dir: str | None = None,
    runners: dict | None = None,
) -> VerifyResult:
    """Three-way: the model's transformers router, our references (as specified, and kernel-exact)
    and every FlashInfer routing kernel implementing the method (trtllm-gen; fused_topk_deepseek for
    DeepSeekV3), on the same logits. ``runners`` replaces the kernels (tests)."""
    from .errors import BadInputError
    from .reference import METHODS

    require("torch", *_ORACLE)  # the oracle extra, said in one line before anything imports torch
    from .reference.routers import KERNELS, route

    if not logit_scale > 0:
        raise BadInputError(f"--logit-scale must be > 0, got {logit_scale}")
    s = _setup(description, tokens=tokens, seed=seed, method=method, hidden_size=DEFAULT_HIDDEN,
               flashinfer_version=flashinfer_version, oracle="flashinfer")
    info = METHODS.get(s.method)
    from .kernels import trtllm_routing as tr

    if s.method not in tr.METHOD_IDS:
        raise UnsupportedError(f"no FlashInfer routing kernel implements {s.method} ({description.model.id}): "
                               f"{_flashinfer_lacks(s) or 'not a RoutingMethodType'}; run verify without --kernel")
    injected = runners is not None
    runners = runners if injected else kernel_runners(s.method, s.spec, headers_dir=headers_dir)
    if all(fn is None for fn, _ in runners.values()):
        raise EnvironmentError_("verify --kernel: no FlashInfer routing kernel can run here: "
                                + "; ".join(f"{n}: {why}" for n, (_, why) in runners.items()), hint=GPU_EXTRA)
    o, logits, bias, why_no_model, logits_note = _kernel_logits(s, description, tokens=tokens, seed=seed,
                                                                logit_scale=logit_scale)
    if why_no_model:
        s.notes.append(why_no_model)
    kw = _route_kwargs(s, o, bias)
    ref = route(s.method, logits, output_dtype=None, flashinfer_version=s.fi_version or "0.7.2.post1", **kw)
    exact = route(s.method, logits, kernel=KERNELS[0], **kw)
    outs, kinfo = _run_kernels(runners, logits, kw["bias"])
    table, dis, cons = _kernel_table(s, o, ref, exact, outs, logits, kw["bias"])
    verdict, expl = _kernel_explanation(s.method, table, dis, tokens)
    if "trtllm-gen" in outs and not injected:
        kinfo["trtllm-gen"]["build"] = _build_info(headers_dir)
    s.base.update(kernel=", ".join(outs) or None, oracle_version=installed_flashinfer_version())
    from_ckpt = "checkpoint" in logits_note  # the logits came through the checkpoint's router (and bias)
    s.notes.append(logits_note + ("" if info is None or not info.uses_bias or from_ckpt
                                  else "; correction bias 0.1 N(0, 1)"))
    return VerifyResult(verdict=verdict, explanation=expl, tolerance=dict(KERNEL_TOLERANCE),
                        logit_scale=None if from_ckpt else logit_scale,
                        kernels=kinfo, agreement=table, disagreements=dis, consequence=cons, notes=s.notes,
                        id_mismatches=max((tokens - r["same_experts"] for r in table if r["b"] == "reference"
                                           and r["a"] != "reference"), default=0),
                        **s.base)


def _build_info(headers_dir):
    from .kernels import trtllm_routing as tr

    try:
        return tr.build_info(headers_dir)
    except Exception as e:
        return {"error": str(e)}

