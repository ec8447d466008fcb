"""The model description every command works from.

``detect`` builds a :class:`ModelDescription` from a model source; ``check``, ``verify`` and
``run-layer`` consume it. Everything here is plain data (no torch, no CLI) and serialises to the
``--json`` contract through ``to_dict``.

Provenance: every field of :class:`MoESpec` that was read, defaulted or guessed records where it
came from in ``MoESpec.provenance[field]`` as a short string, one of

    "config:<dotted key>"            e.g. "config:text_config.num_experts"
    "tensor:<tensor name>"           e.g. "tensor:model.layers.3.mlp.gate.e_score_correction_bias"
    "arch:<table row>"               a forced/default value from the architecture table
    "default:<why>"                  a generic default (unknown architecture)
    "guessed:<why>"                  inferred for an unknown architecture from generic keys
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class MoESpec:
    """Normalized MoE routing + shape description of one model (its MoE layers)."""

    model_type: str
    architecture: str | None
    family: str  # key of the architecture-table row that matched, e.g. "deepseek_v3", "generic"

    num_experts: int
    top_k: int  # common value over MoE layers
    scoring_func: str  # "softmax" | "sigmoid" | "sqrtsoftplus" | "custom"
    has_correction_bias: bool  # selection-only bias (e_score_correction_bias & co)
    renormalize: bool
    routed_scaling_factor: float | None = None
    n_group: int | None = None
    topk_group: int | None = None
    use_grouped_topk: bool = False  # the model asks vLLM for grouped top-k (GroupedTopKRouter)
    topk_method: str | None = None  # "noaux_tc" | "greedy" | "group_limited_greedy" | None

    # special routing patterns
    custom_routing: str | None = None  # "llama4" | "cohere2_sigmoid" | "phimoe" | "gemma4" | ...
    zero_expert_num: int = 0  # LongCat zero/identity experts
    zero_expert_type: str | None = None
    num_hash_layers: int = 0  # DeepSeek-V4 hash-routed layers
    linear_router_bias: bool = False  # gpt-oss: router bias is part of the logits
    router_dtype: str | None = None  # dtype the router logits are computed in, e.g. "float32"

    # shapes
    hidden_size: int | None = None
    moe_intermediate_size: int | None = None  # per-expert width (common value)
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int | None = None
    activation: str = "silu"  # "silu" (SwiGLU) | "swigluoai" (gpt-oss) | "gelu" ...
    swiglu_limit: float | None = None

    # layers
    num_hidden_layers: int | None = None
    moe_layers: list[int] = field(default_factory=list)  # indices of MoE decoder layers
    mtp_layers: list[int] = field(default_factory=list)  # indices of MTP layers with a MoE
    per_layer: dict[str, dict[int, Any]] = field(default_factory=dict)  # e.g. {"top_k": {0: 8, ...}}

    provenance: dict[str, str] = field(default_factory=dict)
    guessed: list[str] = field(default_factory=list)  # fields guessed for unknown architectures
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        # JSON keys must be strings
        d["per_layer"] = {k: {str(i): v for i, v in m.items()} for k, m in self.per_layer.items()}
        return d


@dataclass
class TensorInfo:
    name: str
    dtype: str  # safetensors dtype string: "BF16", "F32", "F8_E4M3", "U8", ...
    shape: list[int]
    file: str | None = None


@dataclass
class TensorEvidence:
    """What the safetensors headers say about the first MoE layer."""

    layer: int | None = None
    router_weight: TensorInfo | None = None
    router_bias: TensorInfo | None = None  # a selection-only correction bias
    linear_bias: TensorInfo | None = None  # a real linear router bias (gpt-oss)
    hash_table: TensorInfo | None = None  # DeepSeek-V4 tid2eid
    experts: list[TensorInfo] = field(default_factory=list)  # tensors of expert 0 (or fused 3-D)
    expert_layout: str | None = None  # "per_expert_gate_up_down" | "per_expert_w1w3w2" | "fused_gate_up" | ...
    files_read: list[str] = field(default_factory=list)
    bytes_read: int = 0
    total_tensors: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class QuantInfo:
    method: str  # "unquantized" | "fp8_block" | "fp8_per_tensor" | "nvfp4" | "mxfp4" | "int4" | "fp4_mixed" ...
    producer: str | None = None  # "deepseek" | "modelopt" | "compressed-tensors" | "openai" ...
    weight_dtype: str | None = None  # "fp8_e4m3" | "nvfp4" | "mxfp4" | "int4" | "bf16" ...
    activation_scheme: str | None = None  # "dynamic" | "static" | None
    block_size: list[int] | None = None
    group_size: int | None = None
    scale_fmt: str | None = None  # "ue8m0" ...
    vllm_weight_key: str | None = None  # vLLM QuantKey name for weights, e.g. "kFp8Static128BlockSym"
    vllm_activation_key: str | None = None  # e.g. "kFp8Dynamic128Sym"; None = unquantized activations
    expert_format: str | None = None  # quant format of the routed experts when it differs (DeepSeek-V4)
    # modules vLLM leaves unquantized (quantization_config ignore / ignored_layers / exclude_modules)
    ignored_modules: list[str] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RoutingResult:
    """Which RoutingMethodType vLLM would compute for this model, and the ids in each enum."""

    method: str  # member name in the chosen vLLM enum, e.g. "MiniMax2", "Unspecified", "DeepseekV4"
    vllm_value: int | None
    flashinfer_value: int | None  # None when FlashInfer has no such member (vLLM-internal)
    flashinfer_name: str | None  # what that integer means in FlashInfer's enum (drift!)
    rule: str  # the rule that fired, human readable, citing REFERENCE/vLLM
    router: str  # vLLM router class that handles the layer, e.g. "GroupedTopKRouter"
    vllm_version: str  # the vLLM release typed ("0.19.1"), else the table key ("0.33", "pre-39141")
    flashinfer_version: str
    sglang_label: str | None = None
    fused_routing_possible: bool = True  # some FlashInfer kernel implements this method
    inputs: dict[str, Any] = field(default_factory=dict)  # the get_routing_method_type() inputs
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts worth knowing that are not problems

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelRef:
    id: str
    source: str  # "local" | "cache" | "hub" | "catalog"
    model_type: str | None = None
    architecture: str | None = None
    revision: str | None = None
    path: str | None = None  # local directory / snapshot directory
    snapshot_date: str | None = None  # catalog entries
    sources_tried: list[str] = field(default_factory=list)  # e.g. ["local: no such directory", ...]
    bytes_read: int = 0  # bytes fetched from the Hub for this description (headers, config, index)


@dataclass
class ModelShape:
    """The non-MoE shapes memory estimates and per-layer shape gates need, from config.json.

    Every field set records its source in ``provenance`` (``config:<key>``, or ``derived:<how>``);
    None = the config does not say."""

    vocab_size: int | None = None
    dense_intermediate_size: int | None = None  # width of the dense (non-MoE) MLP layers
    attention: str | None = None  # "mla" (kv_lora_rank set) | "gqa" | "mha"
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    q_lora_rank: int | None = None  # MLA (DeepSeek-V2/V3 family)
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    provenance: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelDescription:
    model: ModelRef
    moe: MoESpec
    routing: RoutingResult
    quantization: QuantInfo
    tensors: TensorEvidence | None = None
    warnings: list[str] = field(default_factory=list)
    shape: ModelShape | None = None  # attention / vocab / dense widths (added for memory math)

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": asdict(self.model),
            "moe": self.moe.to_dict(),
            "routing": self.routing.to_dict(),
            "quantization": self.quantization.to_dict(),
            "tensors": self.tensors.to_dict() if self.tensors else None,
            "shape": self.shape.to_dict() if self.shape else None,
            "warnings": list(self.warnings),
        }


@dataclass
class ModelFiles:
    """What a model source delivers: parsed metadata and the tensor headers that were read.

    ``tensors`` maps tensor name -> TensorInfo for every tensor whose header was read (for a
    sharded Hub repo only the shards holding the first MoE layer). ``weight_map`` is the index's
    tensor -> shard file map when an index exists (names of all tensors, even unread ones).
    """

    ref: ModelRef
    config: dict
    hf_quant_config: dict | None = None
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    weight_map: dict[str, str] | None = None
    warnings: list[str] = field(default_factory=list)
