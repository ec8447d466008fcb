"""Per-architecture table: how each MoE architecture's config.json maps onto :class:`MoESpec`.

One :class:`ArchRow` per row of REFERENCE.md §3.3 (vLLM v0.33 model files), plus a ``generic``
fallback for architectures we do not know. Every row is plain data: which config keys are read
for each field (alias lists, REFERENCE.md §4), which values the model file hard-codes, which
defaults apply when a key is absent, how the MoE layers are scheduled, and the upstream file it
was taken from. ``moe_inspect.normalize`` interprets the table; nothing here executes logic.

Key syntax inside a :class:`Rule`:

    "norm_topk_prob"                 the value of that key
    "ffn_config.moe_top_k"           a dotted path into nested dicts
    "topk_method=noaux_tc"           a boolean: True iff the key equals that string
                                     (False when the key is present with another value)

Rows are matched by ``model_type`` first (top level), then ``architectures[0]``, then the
``model_type`` of a nested ``text_config`` (see ``match_row``).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple

VLLM = "vLLM v0.33 model_executor/models/"
VLLM0330 = "vLLM v0.33.0 model_executor/models/"  # rows re-read from the v0.33.0 wheel (file:line)

# ---------------------------------------------------------------------------------------------
# Alias lists (REFERENCE.md §4). The generic row reads all of them; known rows read a subset.

EXPERTS_KEYS = (
    "n_routed_experts",
    "num_experts",
    "num_local_experts",
    "moe_num_experts",
    "ffn_config.moe_num_experts",
)
TOPK_KEYS = (
    "num_experts_per_tok",
    "experts_per_token",
    "moe_k",
    "moe_topk",
    "num_experts_per_token",
    "moe_top_k",
    "top_k_experts",
    "ffn_config.moe_top_k",
)
SCORING_KEYS = ("scoring_func", "score_function", "moe_router_activation_func", "moe_router_activation", "score_func")
BIAS_KEYS = (
    "topk_method=noaux_tc",
    "use_routing_bias",
    "moe_router_enable_expert_bias",
    "use_moe_router_bias",
    "use_expert_bias",
    "router_enable_expert_bias",
)
RENORM_KEYS = ("norm_topk_prob", "moe_renormalize", "norm_expert_weight", "route_norm")
SCALING_KEYS = ("routed_scaling_factor", "moe_router_scaling_factor", "router_scaling_factor", "route_scale")
NGROUP_KEYS = ("n_group", "num_expert_group")
TOPKGROUP_KEYS = ("topk_group",)
WIDTH_KEYS = ("moe_intermediate_size", "expert_ffn_hidden_size", "ffn_config.ffn_hidden_size", "intermediate_size")
HIDDEN_KEYS = ("hidden_size", "d_model", "n_embd")
LAYERS_KEYS = ("num_hidden_layers", "num_layers", "n_layers")
SHARED_COUNT_KEYS = ("n_shared_experts", "num_shared_experts", "moe_num_shared_experts", "num_shared_expert")
SHARED_WIDTH_KEYS = (
    "shared_expert_intermediate_size",
    "moe_shared_expert_intermediate_size",
    "share_expert_dim",
    "shared_intermediate_size",
)
MTP_KEYS = ("num_nextn_predict_layers", "mtp_num_hidden_layers")
ROUTER_DTYPE_KEYS = ("router_dtype", "moe_router_dtype")
# Sub-configs that may hold the language model's MoE keys (REFERENCE.md §4 "nesting").
NESTED_CONFIG_KEYS = ("text_config", "language_config", "llm_config")


class Grouped(Enum):
    """Whether the model file asks vLLM for grouped top-k."""

    NEVER = "never"
    ALWAYS = "always"
    IF_BOTH_SET = "if_both_set"  # iff n_group and topk_group are both non-null (Ling/Bailing)


class Schedule(Enum):
    """Which decoder layers are MoE layers: the reader in ``normalize.SCHEDULES``."""

    ALL = "all"  # every layer
    DEEPSEEK = "deepseek"  # first_k_dense_replace + moe_layer_freq (int or list)
    QWEN = "qwen"  # decoder_sparse_step + mlp_only_layers
    LLAMA4 = "llama4"  # moe_layers / interleave_moe_layer_step
    ERNIE = "ernie"  # moe_layer_start_index / end_index / interval
    JAMBA = "jamba"  # expert_layer_period + offset
    MLP_LAYER_TYPES = "mlp_layer_types"  # a per-layer list of dense/sparse
    NEMOTRON_H = "nemotron_h"  # hybrid_override_pattern "E" characters
    STEP3 = "step3"  # moe_layers_enum
    DENSE_PREFIX = "dense_prefix"  # num_dense_layers
    GENERIC = "generic"  # whichever of the above keys the config has


class Rule(NamedTuple):
    """How one MoESpec field is obtained.

    ``forced`` (not None) is a value hard-coded in the model file: config keys are ignored (a
    present key in ``keys`` is reported in the notes). Otherwise the first present, non-null key
    of ``keys`` wins; ``default`` applies when none is present (None = leave the field unset).
    """

    keys: tuple[str, ...] = ()
    default: Any = None
    forced: Any = None


class ArchRow(NamedTuple):
    family: str  # MoESpec.family
    model_types: tuple[str, ...]
    architectures: tuple[str, ...]
    source: str  # upstream file + version the row was taken from
    verified: bool = False  # the model file was read upstream for this table (see report/docs)

    experts: tuple[str, ...] = EXPERTS_KEYS
    top_k: tuple[str, ...] = TOPK_KEYS
    scoring: Rule = Rule(SCORING_KEYS, default="softmax")
    bias: Rule = Rule(BIAS_KEYS, default=False)
    renormalize: Rule = Rule(RENORM_KEYS, default=True)
    # scoring value -> renormalize forced False for other scorings (AFMoE: route_norm only for sigmoid)
    renormalize_only_for: str | None = None
    scaling: Rule = Rule(SCALING_KEYS)
    grouped: Grouped = Grouped.NEVER
    n_group: Rule = Rule(NGROUP_KEYS)
    topk_group: Rule = Rule(TOPKGROUP_KEYS)
    topk_method: tuple[str, ...] = ()
    custom_routing: Rule = Rule()
    # scoring value -> custom routing name (Cohere2: expert_selection_fn == "sigmoid")
    custom_routing_if: tuple[tuple[str, str], ...] = ()
    linear_router_bias: Rule = Rule(forced=False)
    router_dtype: Rule = Rule(ROUTER_DTYPE_KEYS)
    hidden: tuple[str, ...] = HIDDEN_KEYS
    expert_width: tuple[str, ...] = ("moe_intermediate_size",)
    shared_count: tuple[str, ...] = SHARED_COUNT_KEYS
    shared_width: tuple[str, ...] = SHARED_WIDTH_KEYS
    shared_count_forced: int | None = None  # Llama-4: always one shared expert
    activation: Rule = Rule(("hidden_act",), default="silu")
    layers: tuple[str, ...] = LAYERS_KEYS
    schedule: Schedule = Schedule.ALL
    mtp: tuple[str, ...] = MTP_KEYS
    # config key that must be truthy for an MTP key to count (MiniMax: use_mtp)
    mtp_enable_key: str | None = None
    # config key that, when present and False, means the model has no MoE (Gemma-4 dense)
    moe_enable_key: str | None = None
    # config key of the p of the p-norm the model normalizes its top-k weights with (DBRX); a note
    # says so when p != 1 (vLLM divides by the sum)
    pnorm_key: str | None = None
    # hash-routed layers (DeepSeek-V4) when num_hash_layers is absent: the count of this entry in
    # mlp_layer_types, else ``hash_layers_default`` (``hash_layers_source`` says whose default)
    hash_layer_type: str | None = None
    hash_layers_default: int | None = None
    hash_layers_source: str = ""
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Rows. Order matters only for readability; matching is by exact model_type / architecture.

_DEEPSEEK = ArchRow(
    family="deepseek_v3",
    model_types=("deepseek_v3", "deepseek_v32", "kimi_k2"),
    architectures=("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM", "MistralLarge3ForCausalLM"),
    source=VLLM0330 + "deepseek_v2.py:300-410 DeepseekV2MoE (scoring_func default softmax :387, bias iff "
                      "topk_method == noaux_tc :327, renormalize=config.norm_topk_prob :381, use_grouped_topk=True "
                      ":383, fp32 router only for moe_router_dtype == float32 :135-145)",
    verified=True,
    experts=("n_routed_experts",),
    top_k=("num_experts_per_tok",),
    scoring=Rule(("scoring_func",), default="softmax"),
    bias=Rule(("topk_method=noaux_tc",), default=False),
    # vLLM reads config.norm_topk_prob; absent from config.json, transformers 5.24's DeepseekV3Config
    # supplies True (DeepseekV2Config: False, set on the deepseek_v2 row below)
    renormalize=Rule(("norm_topk_prob",), default=True),
    scaling=Rule(("routed_scaling_factor",)),
    grouped=Grouped.ALWAYS,
    topk_method=("topk_method",),
    router_dtype=Rule(("moe_router_dtype",)),
    schedule=Schedule.DEEPSEEK,
)

ROWS: tuple[ArchRow, ...] = (
    _DEEPSEEK._replace(
        family="deepseek_v2",
        model_types=("deepseek_v2",),
        architectures=("DeepseekV2ForCausalLM",),
        renormalize=Rule(("norm_topk_prob",), default=False),
    ),
    _DEEPSEEK,
    ArchRow(
        family="deepseek_v4",
        model_types=("deepseek_v4",),
        architectures=("DeepseekV4ForCausalLM",),
        source="vLLM v0.33.0 models/deepseek_v4/nvidia/model.py:238-312,424-444 DeepseekV4MoE (scoring_func "
               "default sqrtsoftplus :252, bias iff topk_method == noaux_tc :301, renormalize=config.norm_topk_prob "
               ":432, hash_indices_table=tid2eid :439, router_logits_dtype=float32 :443)",
        verified=True,
        experts=("n_routed_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), default="sqrtsoftplus"),
        bias=Rule(("topk_method=noaux_tc",), default=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.NEVER,
        topk_method=("topk_method",),
        router_dtype=Rule(forced="float32"),  # vLLM v0.33 wheel: router_logits_dtype=float32
        schedule=Schedule.ALL,
        # vLLM 0.33.0 counts "hash_moe" entries of mlp_layer_types, a list transformers derives from
        # num_hash_layers (default 3 in DeepseekV4Config)
        hash_layer_type="hash_moe",
        hash_layers_default=3,
        hash_layers_source="transformers DeepseekV4Config default num_hash_layers=3",
        notes=("DeepSeek-V4: the first num_hash_layers layers route by tid2eid[token_id] (hash routing); "
               "fused-routing kernels reject them",),
    ),
    ArchRow(
        family="minimax_m2",
        model_types=("minimax_m2",),
        architectures=("MiniMaxM2ForCausalLM",),
        source=VLLM0330 + "minimax_m2.py:85-108 MiniMaxM2MoE (scoring_func=config.scoring_func, bias iff "
                          "use_routing_bias, renormalize=True, no routed_scaling_factor, fp32 router logits)",
        verified=True,
        experts=("num_local_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), default="sigmoid"),
        bias=Rule(("use_routing_bias",), default=False),
        renormalize=Rule(("norm_topk_prob",), forced=True),
        scaling=Rule(SCALING_KEYS, forced=1.0),  # the model file passes no routed_scaling_factor
        router_dtype=Rule(forced="float32"),
        expert_width=("intermediate_size",),
        shared_width=("shared_intermediate_size",),
        schedule=Schedule.ALL,
        mtp=("num_mtp_modules",),
        mtp_enable_key="use_mtp",
    ),
    ArchRow(
        family="minimax_m1",
        model_types=("minimax_m1", "minimax", "minimax_text_01"),
        architectures=("MiniMaxM1ForCausalLM", "MiniMaxText01ForCausalLM", "MiniMaxForCausalLM"),
        source="vLLM v0.22 model_executor/models/minimax_text_01.py (removed in v0.23)",
        experts=("num_local_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), forced=True),
        expert_width=("intermediate_size",),
        shared_width=("shared_intermediate_size",),
        schedule=Schedule.ALL,
        notes=("MiniMax-Text-01/M1 support was removed from vLLM in v0.23",),
    ),
    ArchRow(
        family="qwen2_moe",
        model_types=("qwen2_moe",),
        architectures=("Qwen2MoeForCausalLM",),
        source=VLLM0330 + "qwen2_moe.py:170-179 (softmax default, renormalize=config.norm_topk_prob)",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), default=False),
        shared_width=("shared_expert_intermediate_size",),
        schedule=Schedule.QWEN,
    ),
    ArchRow(
        family="qwen3_moe",
        model_types=("qwen3_moe", "qwen3_vl_moe", "qwen3_vl_moe_text"),
        architectures=("Qwen3MoeForCausalLM", "Qwen3VLMoeForConditionalGeneration"),
        source=VLLM0330 + "qwen3_moe.py:203-216 (softmax default, renormalize=config.norm_topk_prob); "
                          "qwen3_vl_moe.py:47-51 reuses Qwen3MoeSparseMoeBlock",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), default=False),
        shared_width=("shared_expert_intermediate_size",),
        schedule=Schedule.QWEN,
    ),
    ArchRow(
        family="qwen3_next",
        model_types=("qwen3_next",),
        architectures=("Qwen3NextForCausalLM",),
        source=VLLM0330 + "qwen3_next.py:223-240 (softmax default, renormalize=getattr(config, 'norm_topk_prob', True))",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        shared_width=("shared_expert_intermediate_size",),
        schedule=Schedule.QWEN,
        mtp=("mtp_num_hidden_layers", "num_nextn_predict_layers"),
    ),
    ArchRow(
        family="qwen3_5_moe",
        model_types=("qwen3_5_moe", "qwen3_5_moe_text"),
        architectures=("Qwen3_5MoeForConditionalGeneration", "Qwen3_5MoeForCausalLM"),
        source=VLLM0330 + "qwen3_5.py:85,173 (Qwen3NextSparseMoeBlock: qwen3_next.py:232 renormalize="
                          "getattr(config, 'norm_topk_prob', True))",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        shared_width=("shared_expert_intermediate_size",),
        schedule=Schedule.QWEN,
        mtp=("mtp_num_hidden_layers", "num_nextn_predict_layers"),
    ),
    ArchRow(
        family="mixtral",
        model_types=("mixtral", "granitemoe", "granitemoeshared", "granitemoehybrid"),
        architectures=(
            "MixtralForCausalLM",
            "GraniteMoeForCausalLM",
            "GraniteMoeSharedForCausalLM",
            "GraniteMoeHybridForCausalLM",
        ),
        source=VLLM0330 + "mixtral.py:118-130 / granitemoe.py:106-112 (renormalize=True, softmax default)",
        verified=True,
        experts=("num_local_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), forced=True),
        expert_width=("intermediate_size",),
        shared_width=("shared_intermediate_size",),
        schedule=Schedule.ALL,
    ),
    ArchRow(
        family="dbrx",
        model_types=("dbrx",),
        architectures=("DbrxForCausalLM",),
        source=VLLM + "dbrx.py",
        experts=("ffn_config.moe_num_experts",),
        top_k=("ffn_config.moe_top_k",),
        scoring=Rule(forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("ffn_config.moe_normalize_expert_weights",), forced=True),
        expert_width=("ffn_config.ffn_hidden_size",),
        activation=Rule(("ffn_config.ffn_act_fn.name",), default="silu"),
        hidden=("d_model", "hidden_size"),
        layers=("n_layers", "num_hidden_layers"),
        schedule=Schedule.ALL,
        pnorm_key="ffn_config.moe_normalize_expert_weights",
        notes=("DBRX normalizes the top-k weights with a p-norm (ffn_config.moe_normalize_expert_weights); "
               "vLLM renormalizes (p = 1)",),
    ),
    ArchRow(
        family="olmoe",
        model_types=("olmoe", "jamba"),
        architectures=("OlmoeForCausalLM", "JambaForCausalLM"),
        source=VLLM + "olmoe.py / jamba.py",
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), forced=False),
        expert_width=("intermediate_size",),
        schedule=Schedule.JAMBA,  # OLMoE has no expert_layer_period key -> every layer
    ),
    ArchRow(
        family="llama4",
        model_types=("llama4", "llama4_text"),
        architectures=("Llama4ForConditionalGeneration", "Llama4ForCausalLM"),
        source=VLLM0330 + "llama4.py:130-141 (custom_routing_function=Llama4MoE.custom_routing_function, "
                          "apply_router_weight_on_input=True, renormalize=False)",
        verified=True,
        experts=("num_local_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(forced="sigmoid"),
        bias=Rule(forced=False),
        renormalize=Rule(forced=False),
        custom_routing=Rule(forced="llama4"),
        expert_width=("intermediate_size",),
        shared_count=(),
        shared_width=(),
        shared_count_forced=1,
        schedule=Schedule.LLAMA4,
        notes=("Llama-4 routes top-1 then sigmoid and applies the weight to the expert INPUT "
               "(apply_router_weight_on_input)",),
    ),
    ArchRow(
        family="glm4_moe",
        model_types=("glm4_moe", "glm4_moe_lite"),
        architectures=("Glm4MoeForCausalLM", "Glm4MoeLiteForCausalLM"),
        source=VLLM0330 + "glm4_moe.py:129-202 Glm4MoE (scoring_func='sigmoid' :195, e_score_correction_bias "
                          "always :148, renormalize=config.norm_topk_prob :189, grouped n_group/topk_group :191-193, "
                          "fp32 router logits :202); glm4_moe_lite.py:92 subclasses it",
        verified=True,
        experts=("n_routed_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="sigmoid"),
        bias=Rule(("topk_method=noaux_tc",), forced=True),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.ALWAYS,
        router_dtype=Rule(forced="float32"),
        schedule=Schedule.DEEPSEEK,
        notes=("GLM-4.x: sigmoid scoring and the e_score_correction_bias are hard-coded in the model "
               "file; config.json has neither a scoring_func nor a topk_method key",),
    ),
    ArchRow(
        family="glm_moe_dsa",
        model_types=("glm_moe_dsa",),
        architectures=("GlmMoeDsaForCausalLM",),
        source="vLLM v0.33.0 models/deepseek_v32/nvidia/model.py:98 (GlmMoeDsaForCausalLM uses "
               "model_executor/models/deepseek_v2.py DeepseekV2MoE: scoring_func default softmax :387, bias iff "
               "topk_method == noaux_tc :327, fp32 router forced for glm_moe_dsa :139-142)",
        verified=True,
        experts=("n_routed_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), default="softmax"),
        bias=Rule(("topk_method=noaux_tc",), default=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.ALWAYS,
        topk_method=("topk_method",),
        router_dtype=Rule(forced="float32"),
        schedule=Schedule.MLP_LAYER_TYPES,
    ),
    ArchRow(
        family="gpt_oss",
        model_types=("gpt_oss",),
        architectures=("GptOssForCausalLM",),
        source=VLLM0330 + "gpt_oss.py:382-400 (GateLinear bias=True, renormalize=True, softmax default, "
                          "activation='swigluoai', apply_router_weight_on_input=False)",
        verified=True,
        experts=("num_local_experts",),
        top_k=("num_experts_per_tok", "experts_per_token"),
        scoring=Rule(forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(forced=True),
        linear_router_bias=Rule(forced=True),
        expert_width=("intermediate_size",),
        activation=Rule(forced="swigluoai"),
        schedule=Schedule.ALL,
        notes=("gpt-oss: mlp.router.bias is a linear-layer bias added to the logits (changes selection "
               "AND weights); it is not a selection-only correction bias",),
    ),
    ArchRow(
        family="ernie4_5_moe",
        model_types=("ernie4_5_moe",),
        architectures=("Ernie4_5_MoeForCausalLM",),
        source=VLLM + "ernie45_moe.py (renormalize=True, gate.e_score_correction_bias always)",
        verified=True,
        experts=("moe_num_experts",),
        top_k=("moe_k",),
        scoring=Rule(forced="softmax"),
        bias=Rule(forced=True),
        renormalize=Rule(forced=True),
        shared_count=("moe_num_shared_experts",),
        schedule=Schedule.ERNIE,
        notes=("ERNIE-4.5: softmax with a selection bias (moe_statics) -- no FlashInfer routing method "
               "implements it (vLLM: Unspecified)",),
    ),
    ArchRow(
        family="step3_text",
        model_types=("step3_text", "step3v", "step3_vl"),
        architectures=("Step3TextForCausalLM", "Step3VLForConditionalGeneration"),
        source=VLLM + "step3_text.py",
        experts=("moe_num_experts",),
        top_k=("moe_top_k",),
        scoring=Rule(forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_expert_weight",), default=True),
        shared_count=(),
        shared_width=("share_expert_dim",),
        schedule=Schedule.STEP3,
    ),
    ArchRow(
        family="step3p5",
        model_types=("step3p5",),
        architectures=("Step3p5ForCausalLM",),
        source=VLLM + "step3p5.py (FusedMoEBlock: fp32 gate, router_bias, moe_layers_enum)",
        verified=True,
        experts=("moe_num_experts",),
        top_k=("moe_top_k",),
        scoring=Rule(("moe_router_activation",), default="sigmoid"),
        bias=Rule(("use_moe_router_bias",), default=True),
        renormalize=Rule(("norm_expert_weight",), default=True),
        scaling=Rule(("moe_router_scaling_factor",)),
        router_dtype=Rule(forced="float32"),
        shared_count=(),
        shared_width=("share_expert_dim",),
        schedule=Schedule.STEP3,
    ),
    ArchRow(
        family="bailing_moe",
        model_types=("bailing_moe", "bailing_moe_v2"),
        architectures=("BailingMoeForCausalLM", "BailingMoeV2ForCausalLM"),
        source=VLLM + "bailing_moe.py (BailingMoE: score_function, gate.expert_bias, grouped iff n_group and topk_group)",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("score_function",), default="softmax"),
        bias=Rule(("moe_router_enable_expert_bias",), default=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.IF_BOTH_SET,
        router_dtype=Rule(("router_dtype",)),
        shared_count=("num_shared_experts",),
        shared_width=("moe_shared_expert_intermediate_size",),
        schedule=Schedule.DEEPSEEK,
        notes=("Ling/Bailing: vLLM multiplies by routed_scaling_factor after the experts, outside the "
               "router (FusedMoE gets no routed_scaling_factor)",),
    ),
    ArchRow(
        family="phimoe",
        model_types=("phimoe",),
        architectures=("PhiMoEForCausalLM",),
        source=VLLM + "phimoe.py (phimoe_routing_function, sparsemixer)",
        experts=("num_local_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(forced="custom"),
        bias=Rule(forced=False),
        renormalize=Rule(forced=False),
        custom_routing=Rule(forced="phimoe"),
        expert_width=("intermediate_size",),
        schedule=Schedule.ALL,
    ),
    ArchRow(
        family="gemma4",
        model_types=("gemma4", "gemma4_text"),
        architectures=("Gemma4ForConditionalGeneration", "Gemma4ForCausalLM"),
        source=VLLM + "gemma4.py (custom routing: softmax top-k, renormalize, per_expert_scale)",
        experts=("num_experts",),
        top_k=("top_k_experts", "num_experts_per_tok"),
        scoring=Rule(forced="custom"),
        bias=Rule(forced=False),
        renormalize=Rule(forced=True),
        custom_routing=Rule(forced="gemma4"),
        activation=Rule(("hidden_activation", "hidden_act"), default="gelu"),
        schedule=Schedule.ALL,
        moe_enable_key="enable_moe_block",
    ),
    ArchRow(
        family="longcat_flash",
        model_types=("longcat_flash",),
        architectures=("LongcatFlashForCausalLM",),
        source=VLLM + "longcat_flash.py (LongcatRouter: classifier [E+zero_expert_num, H] + e_score_correction_bias)",
        verified=True,
        experts=("n_routed_experts", "num_experts"),
        top_k=("moe_topk", "num_experts_per_tok"),
        scoring=Rule(forced="softmax"),
        bias=Rule(forced=True),
        renormalize=Rule(("norm_topk_prob",), forced=False),
        scaling=Rule(("routed_scaling_factor",)),
        router_dtype=Rule(("router_dtype",), default="float32"),
        expert_width=("expert_ffn_hidden_size", "moe_intermediate_size"),
        schedule=Schedule.ALL,
        notes=("LongCat-Flash: zero (identity) experts take part in the top-k; vLLM uses ZeroExpertRouter",),
    ),
    ArchRow(
        family="mimo_v2",
        model_types=("mimo_v2", "mimo_v2_flash"),
        architectures=("MiMoV2FlashForCausalLM", "MiMoV2ForCausalLM"),
        source=VLLM + "mimo_v2.py (MiMoV2MoE: sigmoid, bias always, grouped, moe_router_dtype default float32)",
        verified=True,
        experts=("n_routed_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="sigmoid"),
        bias=Rule(forced=True),
        renormalize=Rule(("norm_topk_prob",), default=True),
        grouped=Grouped.ALWAYS,
        router_dtype=Rule(("moe_router_dtype",), default="float32"),
        schedule=Schedule.DEEPSEEK,
    ),
    ArchRow(
        family="exaone_moe",
        model_types=("exaone_moe",),
        architectures=("ExaoneMoEForCausalLM", "ExaoneMoeForCausalLM"),
        source=VLLM + "exaone_moe.py (ExaoneMoe: sigmoid, bias always, grouped, mlp_layer_types)",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="sigmoid"),
        bias=Rule(forced=True),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.ALWAYS,
        shared_count=("num_shared_experts",),
        schedule=Schedule.MLP_LAYER_TYPES,
    ),
    ArchRow(
        family="nemotron_h",
        model_types=("nemotron_h",),
        architectures=("NemotronHForCausalLM",),
        source=VLLM + "nemotron_h.py (NemotronHMoE: sigmoid, bias always, grouped, fp32 gate, non-gated experts)",
        verified=True,
        experts=("n_routed_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="sigmoid"),
        bias=Rule(forced=True),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.ALWAYS,
        router_dtype=Rule(forced="float32"),
        shared_count=("n_shared_experts",),
        shared_width=("moe_shared_expert_intermediate_size",),
        activation=Rule(("mlp_hidden_act",), default="relu2"),
        schedule=Schedule.NEMOTRON_H,
        notes=("Nemotron-H experts are NOT gated (up_proj/down_proj only, relu2 activation)",),
    ),
    ArchRow(
        family="lfm2_moe",
        model_types=("lfm2_moe",),
        architectures=("Lfm2MoeForCausalLM",),
        source=VLLM + "lfm2_moe.py (Lfm2MoeSparseMoeBlock: sigmoid, grouped 1/1 hard-coded, bias iff use_expert_bias)",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="sigmoid"),
        bias=Rule(("use_expert_bias",), default=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.ALWAYS,
        n_group=Rule(NGROUP_KEYS, forced=1),
        topk_group=Rule(TOPKGROUP_KEYS, forced=1),
        schedule=Schedule.DENSE_PREFIX,
    ),
    ArchRow(
        family="openpangu",
        model_types=("openpangu", "pangu_ultra_moe", "openpangu_ultra_moe"),
        architectures=("OpenPanguMoEForCausalLM", "PanguUltraMoEForCausalLM"),
        source=VLLM + "openpangu.py (OpenPanguMoE: sigmoid, grouped 1/1 hard-coded, bias iff router_enable_expert_bias)",
        verified=True,
        experts=("n_routed_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("scoring_func",), forced="sigmoid"),
        bias=Rule(("router_enable_expert_bias",), default=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        scaling=Rule(("routed_scaling_factor",)),
        grouped=Grouped.ALWAYS,
        n_group=Rule(NGROUP_KEYS, forced=1),
        topk_group=Rule(TOPKGROUP_KEYS, forced=1),
        schedule=Schedule.DEEPSEEK,
    ),
    ArchRow(
        family="afmoe",
        model_types=("afmoe",),
        architectures=("AfmoeForCausalLM",),
        source=VLLM + "afmoe.py (AfmoeMoE: score_func, route_norm only for sigmoid, expert_bias, fp32 gate)",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("score_func",), default="sigmoid"),
        bias=Rule(forced=True),
        renormalize=Rule(("route_norm",), default=True),
        renormalize_only_for="sigmoid",
        scaling=Rule(("route_scale",)),
        grouped=Grouped.ALWAYS,
        router_dtype=Rule(forced="float32"),
        shared_count=("num_shared_experts",),
        schedule=Schedule.DENSE_PREFIX,
    ),
    ArchRow(
        family="cohere2_moe",
        model_types=("cohere2_moe",),
        architectures=("Cohere2MoeForCausalLM",),
        source=VLLM + "cohere2_moe.py (expert_selection_fn=='sigmoid' -> token_choice_with_bias custom routing)",
        verified=True,
        experts=("num_experts",),
        top_k=("num_experts_per_tok",),
        scoring=Rule(("expert_selection_fn",), default="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(("norm_topk_prob",), default=True),
        custom_routing_if=(("sigmoid", "cohere2_sigmoid"),),
        expert_width=("intermediate_size",),
        shared_count=("num_shared_experts",),
        shared_width=(),
        schedule=Schedule.MLP_LAYER_TYPES,
    ),
    ArchRow(
        family="hunyuan",
        model_types=("hunyuan", "hunyuan_v1_moe"),
        architectures=("HunYuanMoEV1ForCausalLM", "HunYuanForCausalLM"),
        source="vLLM v0.33 Transformers backend (REFERENCE.md §3.3); keys from HunYuan-A13B remote-code config",
        experts=("num_experts",),
        top_k=("moe_topk",),
        scoring=Rule(forced="softmax"),
        bias=Rule(forced=False),
        renormalize=Rule(forced=True),
        custom_routing=Rule(forced="transformers_backend"),
        expert_width=("moe_intermediate_size",),
        shared_count=("num_shared_expert",),
        shared_width=(),
        schedule=Schedule.ALL,
        notes=("HunYuan-A13B runs through vLLM's Transformers backend (routing method Custom)",),
    ),
)

GENERIC = ArchRow(
    family="generic",
    model_types=(),
    architectures=(),
    source="REFERENCE.md §4 alias lists (unknown architecture: every field is a guess)",
    scoring=Rule(SCORING_KEYS, default="softmax"),
    bias=Rule(BIAS_KEYS, default=False),
    renormalize=Rule(RENORM_KEYS, default=True),
    grouped=Grouped.IF_BOTH_SET,
    topk_method=("topk_method",),
    expert_width=WIDTH_KEYS,
    schedule=Schedule.GENERIC,
    mtp=MTP_KEYS + ("num_mtp_modules",),
    mtp_enable_key="use_mtp",
)

_BY_MODEL_TYPE: dict[str, ArchRow] = {}
_BY_ARCH: dict[str, ArchRow] = {}
for _row in ROWS:
    for _mt in _row.model_types:
        assert _mt not in _BY_MODEL_TYPE, _mt
        _BY_MODEL_TYPE[_mt] = _row
    for _a in _row.architectures:
        assert _a not in _BY_ARCH, _a
        _BY_ARCH[_a] = _row


def row_for_model_type(model_type: str | None) -> ArchRow | None:
    return _BY_MODEL_TYPE.get(model_type) if isinstance(model_type, str) else None


def row_for_architecture(architecture: str | None) -> ArchRow | None:
    return _BY_ARCH.get(architecture) if isinstance(architecture, str) else None


def match_row(
    model_type: str | None, architecture: str | None, nested_model_type: str | None = None
) -> tuple[ArchRow, str]:
    """The row for a config and how it matched: "model_type", "architecture",
    "nested_model_type" or "generic"."""
    for row, how in (
        (row_for_model_type(model_type), "model_type"),
        (row_for_architecture(architecture), "architecture"),
        (row_for_model_type(nested_model_type), "nested_model_type"),
    ):
        if row is not None:
            return row, how
    return GENERIC, "generic"


def all_rows() -> tuple[ArchRow, ...]:
    return ROWS + (GENERIC,)
