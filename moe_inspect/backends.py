"""Which MoE expert backends vLLM v0.33 (and FlashInfer 0.7.2.post1's unified API) can run, and why not.

Everything here is a declarative table plus one evaluator:

* :data:`BACKENDS` — one row per vLLM expert class (FlashInfer-backed and the non-FlashInfer
  fallbacks), with its gates in vLLM's order (``FusedMoEExperts.is_supported_config``: device →
  activation → quant scheme → parallel config → hash routing → routing method → router-logit
  dtype → shape) and the real kernel limits of REFERENCE.md §5.
* FlashInfer 0.7.2's compiled routing tiers and launcher limits live in
  :mod:`moe_inspect.kernels.trtllm_moe_limits` (shared with run-layer and verify).
* :data:`AUTO_ORDER` — the oracle priority lists (``oracle/{fp8,nvfp4,mxfp4,mxfp8,unquantized,
  int_wna16}.py``) with their per-arch reorderings.
* :data:`UNIFIED_CONFIGS` — FlashInfer's own ``flashinfer.fused_moe.api`` backend configs and
  their ``supported(arch)``.

:func:`evaluate` returns, for one backend row and one architecture, the FIRST failing gate and a
plain-words reason. No torch/flashinfer import on this path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from .deploy.layout import Layout, derive_layout
from .kernels import unified_api as A

VLLM_VERSION = "0.33"
FLASHINFER_VERSION = "0.7.2.post1"  # the version vLLM v0.33 pins and this table describes

_V = "vLLM v0.33 "
_FI = "FlashInfer 0.7.2.post1 "

ALL_ARCHS = frozenset({90, 100, 103, 120, 121})
SM100_FAMILY = frozenset({100, 103})  # current_platform.is_device_capability_family(100)
SM12X = frozenset({120, 121})

# ------------------------------------------------------------------------------------------------
# quantization schemes (our names for vLLM's (weight QuantKey, activation QuantKey) pairs)
# ------------------------------------------------------------------------------------------------
# --quant spellings -> scheme
QUANT_ALIASES: dict[str, str] = {
    "fp8-block": "fp8_block", "fp8_block": "fp8_block", "fp8block": "fp8_block", "block-fp8": "fp8_block",
    "fp8": "fp8_per_tensor", "fp8-per-tensor": "fp8_per_tensor", "fp8_per_tensor": "fp8_per_tensor",
    "fp8-tensor": "fp8_per_tensor",
    "mxfp8": "mxfp8", "nvfp4": "nvfp4", "mxfp4": "mxfp4",
    "bf16": "bf16", "unquantized": "bf16", "none": "bf16", "fp16": "bf16",
    "int4": "int4", "mxint4": "int4", "w4a16": "int4", "int4-g32": "int4",
    "fp4-mixed": "fp4_mixed", "fp4_mixed": "fp4_mixed", "dsv4-fp4": "fp4_mixed", "mxfp4-dsv4": "fp4_mixed",
}

SCHEME_LABEL = {"bf16": "BF16", "fp8_block": "FP8 block", "fp8_per_tensor": "FP8 per-tensor", "mxfp8": "MXFP8",
                "nvfp4": "NVFP4", "mxfp4": "MXFP4", "int4": "INT4", "fp4_mixed": "MXFP4 (DeepSeek-V4)"}


def scheme_from_quant(method: str | None, *, expert_format: str | None = None,
                      block_size: list[int] | None = None) -> str:
    """QuantInfo (method / expert_format / block_size) -> scheme name; 'unknown:<x>' when unmapped.

    detect's ``fp4_mixed`` (DeepSeek-V4: FP8-block config, FP4 routed experts) maps to its own
    scheme before the expert format is looked at: vLLM runs those experts through the
    DeepSeek-V4 MXFP4 oracle, not the gpt-oss one.
    """
    if method and method.strip().lower().replace("-", "_") == "fp4_mixed":
        return "fp4_mixed"
    for cand in (expert_format, method):
        if not cand:
            continue
        m = cand.strip().lower().replace("-", "_")
        if m in ("unquantized", "bf16", "none", "fp16", "float16", "bfloat16"):
            return "bf16"
        if m in ("mxfp8", "fp8_mx"):
            return "mxfp8"
        if m.startswith("fp8"):
            if "tensor" in m or "channel" in m:
                return "fp8_per_tensor"
            if block_size and list(block_size) == [1, 32]:
                return "mxfp8"
            if "block" in m or block_size:
                return "fp8_block"
            return "fp8_per_tensor"
        if m in ("nvfp4", "modelopt_fp4", "fp4_nv"):
            return "nvfp4"
        if m in ("mxfp4", "fp4", "fp4_e2m1", "e2m1"):
            return "mxfp4"
        if m in ("int4", "w4a16", "mxint4", "int4_g32", "pack_quantized", "wna16"):
            return "int4"
        if cand is expert_format:  # an expert format we don't know: fall back to the method
            continue
        return f"unknown:{cand}"
    return "bf16"


# FlashInfer 0.7.2 compiled routing tiers and launcher limits: moe_inspect/kernels/trtllm_moe_limits.py
# (one home, shared with run-layer and verify)
# Methods FlashInfer implements at all (anything else: "Unimplemented routing method")
FLASHINFER_METHODS = frozenset({"Default", "Renormalize", "DeepSeekV3", "Llama4", "RenormalizeNaive", "TopK",
                                "SigmoidRenorm", "MiniMax2", "Sigmoid", "TopKSigmoid"})


# ------------------------------------------------------------------------------------------------
# the backend table
# ------------------------------------------------------------------------------------------------
ANY_ACT = None
# The gate vocabulary: the same word in the table cell (✗ <gate>), the reason line ("<gate>: …"), the
# JSON ("gate": "<gate>") and docs/check.md. Order = vLLM's FusedMoEExperts.is_supported_config order
# (modular_kernel.py:580-633), with "env" and "fi-version" where their checks sit, and "shape" (the
# per-rank shape gates of moe_inspect.deploy.shapes) last.
GATES = ("arch", "env", "activation", "quant", "parallel", "hash", "routing", "fi-version", "logits", "limits",
         "shape")
GATE_MEANING: dict[str, str] = {
    "arch": "the GPU architecture is not one the kernel is built for (_supports_current_device)",
    "env": "an opt-in environment switch is off (e.g. VLLM_USE_FLASHINFER_MOE_INT4=1, _supports_current_device)",
    "activation": "the expert activation is not supported (_supports_activation)",
    "quant": "the weight/activation quantization (QuantKey) is not supported (_supports_quant_scheme)",
    "parallel": "the parallel layout is not supported (_supports_parallel_config, activation format)",
    "hash": "hash-routed layers cannot use the fused in-kernel router (_supports_hash_routing)",
    "routing": "the routing method is not in the monolithic kernel's allow-list (_supports_routing_method)",
    "fi-version": "the chosen FlashInfer version has no such routing method (RoutingMethodType)",
    "logits": "the router-logit dtype is not accepted (_supports_router_logits_dtype)",
    "limits": "FlashInfer's compiled routing limits (experts / top-k / groups) or launcher asserts",
    "shape": "a per-rank weight shape under this layout (moe_inspect.deploy.shapes)",
}

# routing allow-lists of the monolithic classes (REFERENCE §5; vLLM v0.33 experts/*.py)
_FP8_BLOCK_METHODS = frozenset({"DeepSeekV3", "Renormalize", "RenormalizeNaive", "SigmoidRenorm", "Sigmoid", "MiniMax2"})
_FP8_TENSOR_METHODS = _FP8_BLOCK_METHODS | {"Llama4"}
_NVFP4_METHODS = frozenset({"DeepSeekV3", "Renormalize", "RenormalizeNaive", "Llama4", "SigmoidRenorm", "Sigmoid",
                            "MiniMax2"})
_BF16_METHODS = frozenset({"DeepSeekV3", "Llama4", "Renormalize", "RenormalizeNaive", "SigmoidRenorm", "MiniMax2",
                           "Sigmoid"})
_MXFP4_METHODS = frozenset({"DeepSeekV3", "Renormalize", "RenormalizeNaive"})
_MXINT4_METHODS = frozenset({"Renormalize", "RenormalizeNaive", "DeepSeekV3", "Llama4"})

PARALLEL_MODES = ("tp", "ep", "eplb")  # the deprecated --parallel values (mapped onto a Layout by the CLI)


class ParallelRule(NamedTuple):
    """One expert class's ``_supports_parallel_config`` (vLLM 0.33.0), as a predicate over the Layout."""

    test: Callable[[Layout], bool]
    accepts: str  # what it accepts, in vLLM's terms
    source: str


def _no_a2a_or_agrs(p: Layout) -> bool:
    return not p.use_all2all_kernels or p.use_ag_rs_all2all_kernels


def _no_fi_nvl(p: Layout) -> bool:
    return not (p.use_fi_nvl_two_sided_kernels or p.use_fi_nvl_one_sided_kernels)


_EX = _V + "fused_moe/experts/"
PARALLEL_RULES: dict[str, ParallelRule] = {
    "any": ParallelRule(lambda p: True, "every parallel config", "returns True"),
    "trtllm_fp8_mono": ParallelRule(
        lambda p: _no_a2a_or_agrs(p) and not (p.eplb or p.sequence_parallel_moe),
        "no all2all or allgather_reducescatter; no EPLB; no sequence-parallel MoE", _EX + "trtllm_fp8_moe.py:189-196"),
    "trtllm_fp8_mod": ParallelRule(
        lambda p: (not p.use_all2all_kernels or p.use_ag_rs_all2all_kernels or p.use_deepep_v2_kernels
                   or p.use_fi_nvl_one_sided_kernels or p.use_fi_nvl_two_sided_kernels) and not p.eplb,
        "no all2all, or allgather_reducescatter / deepep_v2 / flashinfer_nvlink_*; no EPLB",
        _EX + "trtllm_fp8_moe.py:203-210"),
    "trtllm_nvfp4_mono": ParallelRule(lambda p: not p.use_all2all_kernels and not p.eplb, "no all2all; no EPLB",
                                      _EX + "trtllm_nvfp4_moe.py:486-491"),
    "trtllm_mxfp4_mono": ParallelRule(lambda p: not p.use_all2all_kernels and not p.eplb and p.dp <= 1,
                                      "no all2all; no EPLB; data-parallel size 1", _EX + "trtllm_mxfp4_moe.py:176-183"),
    "trtllm_mxint4_mono": ParallelRule(lambda p: _no_a2a_or_agrs(p) and not p.eplb,
                                       "no all2all or allgather_reducescatter; no EPLB",
                                       _EX + "trtllm_mxint4_moe.py:76-82"),
    "trtllm_bf16_mono": ParallelRule(lambda p: _no_a2a_or_agrs(p) and not p.eplb,
                                     "no all2all or allgather_reducescatter; no EPLB", _EX + "trtllm_bf16_moe.py:248-255"),
    "trtllm_bf16_mod": ParallelRule(
        lambda p: p.use_all2all_kernels and not p.use_ag_rs_all2all_kernels and not p.use_deepep_ht_kernels
        and not p.eplb, "all2all kernels other than allgather_reducescatter / deepep_high_throughput; no EPLB",
        _EX + "trtllm_bf16_moe.py:138-146"),
    "b12x": ParallelRule(lambda p: not p.use_ep, "no expert parallelism", _EX + "flashinfer_b12x_moe.py:199-202"),
    "no_fi_nvl": ParallelRule(_no_fi_nvl, "any all2all except flashinfer_nvlink_one_sided / _two_sided",
                              _EX + "triton_moe.py:187-191, deep_gemm_moe.py:203-208"),
    "marlin": ParallelRule(lambda p: not p.use_fi_nvl_two_sided_kernels,
                           "any all2all except flashinfer_nvlink_two_sided", _EX + "marlin_moe.py:629-633"),
    "vllm_cutlass": ParallelRule(lambda p: _no_fi_nvl(p) and not p.use_deepep_ht_kernels,
                                 "any all2all except flashinfer_nvlink_* / deepep_high_throughput",
                                 _EX + "cutlass_moe.py:417-425"),
}
# all2all backends whose dispatch hands experts the *batched* activation format
# (FusedMoEParallelConfig.use_batched_activation_format, fused_moe/config.py:1065-1067); every row
# below takes the standard format (is_supported_config, modular_kernel.py:627)
BATCHED_ALL2ALL = frozenset({"deepep_low_latency", "nixl_ep"})


class Backend(NamedTuple):
    key: str
    name: str
    vllm_class: str
    kind: str  # "monolithic" | "modular"
    family: str  # oracle family: flashinfer_trtllm, flashinfer_cutlass, flashinfer_cutedsl, flashinfer_b12x, ...
    flashinfer: bool
    moe_backend: str | None  # the --moe-backend value that forces this path (None: cannot be forced)
    archs: frozenset[int]
    quant: tuple[tuple[str, frozenset[int] | None], ...]  # (scheme, archs it needs beyond `archs`; None = all)
    source: str
    activations: frozenset[str] | None = ANY_ACT
    parallel: str = "any"  # key of PARALLEL_RULES
    hash_routing: bool = True
    routing_methods: frozenset[str] | None = None  # None = any (modular: routing done by vLLM in Python)
    routing_by_scheme: tuple[tuple[str, frozenset[str]], ...] = ()  # per-scheme allow-list override
    router_dtypes: frozenset[str] | None = None  # None = any
    # (router-logit dtype, the only methods that may use it): MXINT4 takes fp32 logits only for DeepSeekV3
    router_dtype_methods: tuple[tuple[str, frozenset[str]], ...] = ()
    # environment variable that must be "1" for _supports_current_device (None: no such switch)
    env_switch: str | None = None
    max_experts: int | None = None  # base is_supported_config limit (TRT-LLM routing: 2048)
    routing_tiers: bool = False  # FlashInfer compiled routing tiers apply (in-kernel routing)
    fp8_block_launcher: bool = False  # fp8-block apply-time asserts (E <= 512, k <= 32, grouped small-E k <= 8)
    launcher_topk_assert: bool = True  # with fp8_block_launcher: the top_k <= 32 assert (DeepSeek FP8 only, not MXFP8)
    llama4_input_weights: bool = False  # Llama4 needs apply_router_weight_on_input, others need it False
    no_class_note: str | None = None  # this (class, scheme) pair does not exist in vLLM v0.33
    package: str | None = None  # key of OPTIONAL_PACKAGES: an optional package _supports_current_device needs
    note: str = ""

    @property
    def schemes(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.quant)

    def allowed_methods(self, scheme: str) -> frozenset[str] | None:
        for s, m in self.routing_by_scheme:
            if s == scheme:
                return m
        return self.routing_methods


_TRT_ACT_FP8 = frozenset({"silu", "swigluoai", "relu2"})
_TRT_ACT_NVFP4 = frozenset({"silu", "swigluoai", "relu2", "gelu"})
_TRT_ACT_BF16 = frozenset({"silu", "relu2"})
_TRT_ACT_MXFP4 = frozenset({"silu", "swigluoai"})
_LOGITS_BF16_FP32 = frozenset({"bfloat16", "float32"})
_TRTLLM = "flashinfer_trtllm"

BACKENDS: tuple[Backend, ...] = (
    # ---- FlashInfer TRT-LLM-gen: FP8 block / MXFP8 / per-tensor ----
    Backend("trtllm_fp8_block_mono", "TRT-LLM FP8 block monolithic", "TrtLlmFp8ExpertsMonolithic", "monolithic",
            _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("fp8_block", None),),
            _V + "fused_moe/experts/trtllm_fp8_moe.py", _TRT_ACT_FP8, "trtllm_fp8_mono", False, _FP8_BLOCK_METHODS,
            router_dtypes=_LOGITS_BF16_FP32, max_experts=2048, routing_tiers=True, fp8_block_launcher=True,
            llama4_input_weights=True),
    Backend("trtllm_fp8_block_mod", "TRT-LLM FP8 block modular", "TrtLlmFp8ExpertsModular", "modular",
            _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("fp8_block", None),),
            _V + "fused_moe/experts/trtllm_fp8_moe.py (trtllm_fp8_block_scale_routed_moe)", _TRT_ACT_FP8, "trtllm_fp8_mod",
            max_experts=2048),
    Backend("trtllm_mxfp8_mono", "TRT-LLM MXFP8 monolithic", "TrtLlmFp8ExpertsMonolithic", "monolithic",
            _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("mxfp8", None),),
            _V + "fused_moe/experts/trtllm_fp8_moe.py", _TRT_ACT_FP8, "trtllm_fp8_mono", False, _FP8_BLOCK_METHODS,
            router_dtypes=_LOGITS_BF16_FP32, max_experts=2048, routing_tiers=True, fp8_block_launcher=True,
            launcher_topk_assert=False, llama4_input_weights=True),
    Backend("trtllm_mxfp8_mod", "TRT-LLM MXFP8 modular", "TrtLlmFp8ExpertsModular", "modular",
            _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("mxfp8", None),),
            _V + "fused_moe/experts/trtllm_fp8_moe.py", _TRT_ACT_FP8, "trtllm_fp8_mod", max_experts=2048),
    Backend("trtllm_fp8_tensor_mono", "TRT-LLM FP8 per-tensor monolithic", "TrtLlmFp8ExpertsMonolithic",
            "monolithic", _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("fp8_per_tensor", None),),
            _V + "fused_moe/experts/trtllm_fp8_moe.py (trtllm_fp8_per_tensor_scale_moe)",
            frozenset({"silu", "relu2"}), "trtllm_fp8_mono", False, _FP8_TENSOR_METHODS, router_dtypes=_LOGITS_BF16_FP32,
            max_experts=2048, routing_tiers=True, llama4_input_weights=True),
    Backend("trtllm_fp8_tensor_mod", "TRT-LLM FP8 per-tensor modular", "—", "modular", _TRTLLM, True, None,
            SM100_FAMILY, (("fp8_per_tensor", frozenset()),), _V + "fused_moe/experts/trtllm_fp8_moe.py",
            no_class_note="vLLM v0.33 has no modular TRT-LLM kernel for FP8 per-tensor "
                          "(TrtLlmFp8ExpertsModular takes FP8 block and MXFP8 only)"),
    # ---- NVFP4 ----
    Backend("trtllm_nvfp4_mono", "TRT-LLM NVFP4 monolithic", "TrtLlmNvFp4ExpertsMonolithic", "monolithic",
            _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("nvfp4", None),),
            _V + "fused_moe/experts/trtllm_nvfp4_moe.py (trtllm_fp4_block_scale_moe)", _TRT_ACT_NVFP4, "trtllm_nvfp4_mono",
            False, _NVFP4_METHODS, router_dtypes=_LOGITS_BF16_FP32, routing_tiers=True, llama4_input_weights=True),
    Backend("trtllm_nvfp4_mod", "TRT-LLM NVFP4 modular", "TrtLlmNvFp4ExpertsModular", "modular", _TRTLLM, True,
            "flashinfer_trtllm", SM100_FAMILY, (("nvfp4", None),),
            _V + "fused_moe/experts/trtllm_nvfp4_moe.py (trtllm_fp4_block_scale_routed_moe)", _TRT_ACT_NVFP4),
    # ---- MXFP4 (gpt-oss; DeepSeek-V4 FP4 experts with MXFP8 activations) ----
    # _supports_activation: SWIGLUOAI or SILU (SITU too when FlashInfer has it); SILU takes the
    # swiglu_limit clamp as gemm1_clamp_limit. Quant: kMxfp4Static × {None, kMxfp8Dynamic}.
    Backend("trtllm_mxfp4_mono", "TRT-LLM MXFP4 monolithic", "TrtLlmMxfp4ExpertsMonolithic", "monolithic",
            _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("mxfp4", None), ("fp4_mixed", None)),
            _V + "fused_moe/experts/trtllm_mxfp4_moe.py", _TRT_ACT_MXFP4, "trtllm_mxfp4_mono", False, _MXFP4_METHODS,
            routing_tiers=True,
            note="router logits are cast to bf16 inside the wrapper (any dtype accepted); no "
                 "apply_router_weight_on_input check (trtllm_mxfp4_moe.py apply)"),
    Backend("trtllm_mxfp4_mod", "TRT-LLM MXFP4 modular", "TrtLlmMxfp4ExpertsModular", "modular", _TRTLLM, True,
            "flashinfer_trtllm", SM100_FAMILY, (("mxfp4", None), ("fp4_mixed", None)),
            _V + "fused_moe/experts/trtllm_mxfp4_moe.py (trtllm_fp4_block_scale_routed_moe)", _TRT_ACT_MXFP4,
            note="DeepSeek-V4: the FLASHINFER_TRTLLM_MXFP4_MXFP8 variant (dynamic MXFP8 activations)"),
    # ---- MXINT4 (WNA16) ----
    Backend("trtllm_mxint4_mono", "TRT-LLM MXINT4 monolithic", "TrtLlmMxint4ExpertsMonolithic", "monolithic",
            _TRTLLM, True, "flashinfer_trtllm", SM100_FAMILY, (("int4", None),),
            _V + "fused_moe/experts/trtllm_mxint4_moe.py, oracle/int_wna16.py", frozenset({"silu", "swigluoai"}),
            "trtllm_mxint4_mono", False, _MXINT4_METHODS, routing_tiers=True,
            router_dtype_methods=(("float32", frozenset({"DeepSeekV3"})),),
            env_switch="VLLM_USE_FLASHINFER_MOE_INT4",
            note="is_flashinfer_mxint4_moe_available() also needs VLLM_USE_FLASHINFER_MOE_INT4=1 (default 0; "
                 "quantization/utils/flashinfer_mxint4_moe.py); routed_scaling_factor is passed as None"),
    Backend("trtllm_mxint4_mod", "TRT-LLM MXINT4 modular", "—", "modular", _TRTLLM, True, None, SM100_FAMILY,
            (("int4", frozenset()),), _V + "fused_moe/oracle/int_wna16.py",
            no_class_note="vLLM v0.33 has no modular TRT-LLM MXINT4 kernel (int_wna16 oracle lists the monolithic "
                          "class only)"),
    # ---- BF16 ----
    Backend("trtllm_bf16_mono", "TRT-LLM BF16 monolithic", "TrtLlmBf16ExpertsMonolithic", "monolithic", _TRTLLM,
            True, "flashinfer_trtllm", SM100_FAMILY, (("bf16", None),),
            _V + "fused_moe/experts/trtllm_bf16_moe.py (trtllm_bf16_moe)", _TRT_ACT_BF16, "trtllm_bf16_mono", False,
            _BF16_METHODS, max_experts=2048, routing_tiers=True,
            note="no apply_router_weight_on_input check and no use_routing_scales_on_input argument "
                 "(trtllm_bf16_moe.py apply)"),
    Backend("trtllm_bf16_mod", "TRT-LLM BF16 modular", "TrtLlmBf16ExpertsModular", "modular", _TRTLLM, True,
            "flashinfer_trtllm", SM100_FAMILY, (("bf16", None),),
            _V + "fused_moe/experts/trtllm_bf16_moe.py (trtllm_bf16_routed_moe)", _TRT_ACT_BF16,
            "trtllm_bf16_mod", max_experts=2048,
            note="the modular BF16 class requires all2all (expert-parallel) kernels; plain TP uses the monolithic class"),
    # ---- FlashInfer CUTLASS / CuTe-DSL / B12x ----
    Backend("flashinfer_cutlass", "FlashInfer CUTLASS", "FlashInferExperts", "modular", "flashinfer_cutlass", True,
            "flashinfer_cutlass", ALL_ARCHS,
            (("bf16", ALL_ARCHS), ("fp8_per_tensor", ALL_ARCHS), ("fp8_block", frozenset({90})),
             ("mxfp4", ALL_ARCHS), ("fp4_mixed", ALL_ARCHS), ("nvfp4", frozenset({100, 103, 120, 121}))),
            _V + "fused_moe/experts/flashinfer_cutlass_moe.py (flashinfer_cutlass_fused_moe)",
            frozenset({"silu", "relu2", "swigluoai"}),
            note="MXFP4 weights: × BF16 activations on sm90 only, × dynamic MXFP8 on sm100 and newer "
                 "(_supports_quant_scheme); not in the DeepSeek-V4 auto list (force with --moe-backend)"),
    Backend("flashinfer_cutedsl", "FlashInfer CuTe-DSL NVFP4", "FlashInferCuteDSLExperts", "modular",
            "flashinfer_cutedsl", True, "flashinfer_cutedsl", SM100_FAMILY, (("nvfp4", None),),
            _V + "fused_moe/experts/flashinfer_cutedsl_moe.py, oracle/nvfp4.py", frozenset({"silu"})),
    Backend("flashinfer_b12x", "FlashInfer B12x", "FlashInferB12xExperts", "modular", "flashinfer_b12x", True,
            "flashinfer_b12x", SM12X, (("nvfp4", None),),
            _V + "fused_moe/experts/flashinfer_b12x_moe.py, oracle/nvfp4.py", parallel="b12x",
            note="NVFP4 only (kNvfp4Static × {kNvfp4Dynamic, None}); excluded from auto selection "
                 "(oracle/nvfp4.py): opt in with --moe-backend flashinfer_b12x. MXFP4's '--moe-backend b12x' "
                 "is a different class (fused_moe/b12x.py, the separate b12x package), not modelled"),
    # ---- non-FlashInfer fallbacks (by name and arch) ----
    Backend("deep_gemm", "DeepGEMM", "TritonOrDeepGemmExperts / DeepGemmExperts", "modular", "deep_gemm", False,
            "deep_gemm", frozenset({90, 100, 103}), (("fp8_block", None), ("mxfp8", SM100_FAMILY)),
            _V + "fused_moe/oracle/{fp8,mxfp8}.py, experts/triton_deep_gemm_moe.py, experts/deep_gemm_moe.py",
            frozenset({"silu"}), parallel="no_fi_nvl", package="deep_gemm",
            note="MXFP8 runs DeepGemmExperts directly (deep_gemm_moe.py _supports_quant_scheme: MXFP8 only on "
                 "the SM100 family)"),
    Backend("deep_gemm_mxfp4", "DeepGEMM MXFP4×FP8", "DeepGemmFP4Experts", "modular", "deep_gemm", False,
            "deep_gemm", frozenset({100, 103, 120, 121}), (("fp4_mixed", None),),
            _V + "fused_moe/experts/deep_gemm_moe.py (DeepGemmFP4Experts), oracle/mxfp4.py DEEPGEMM_MXFP4",
            frozenset({"silu", "swiglustep", "situ"}), parallel="no_fi_nvl", package="deep_gemm",
            note="m_grouped_fp8_fp4_gemm: kMxfp4Static × kFp8Dynamic128Sym; needs DeepGEMM (vendored in the "
                 "vLLM wheel) and VLLM_USE_DEEP_GEMM=1 (default)"),
    Backend("vllm_cutlass", "vLLM CUTLASS", "TritonOrCutlassExperts / CutlassExpertsFp4", "modular",
            "vllm_cutlass", False, "cutlass", ALL_ARCHS,
            (("fp8_per_tensor", ALL_ARCHS), ("fp8_block", frozenset({90, 100, 103})),
             ("nvfp4", frozenset({100, 103, 120, 121}))),
            _V + "fused_moe/oracle/fp8.py, oracle/nvfp4.py, experts/cutlass_moe.py", frozenset({"silu"}),
            parallel="vllm_cutlass",
            note="for FP8 only when the quantization method allows vLLM CUTLASS (off by default in auto mode)"),
    Backend("triton", "Triton", "TritonExperts / OAITritonExperts", "modular", "triton", False, "triton",
            ALL_ARCHS, (("bf16", None), ("fp8_block", None), ("fp8_per_tensor", None),
                        ("mxfp4", frozenset({90, 100, 103})), ("int4", None)),
            _V + "fused_moe/oracle/{unquantized,fp8,mxfp4,int_wna16}.py, experts/triton_moe.py", parallel="no_fi_nvl",
            note="MXFP4 uses triton_kernels (OAI) only for 9.0 <= capability < 11.0; INT4 is TritonWNA16Experts"),
    Backend("marlin", "Marlin", "MarlinExperts", "modular", "marlin", False, "marlin", ALL_ARCHS,
            (("fp8_block", None), ("fp8_per_tensor", None), ("mxfp8", None), ("nvfp4", None), ("mxfp4", None),
             ("int4", None), ("fp4_mixed", None)),
            _V + "fused_moe/oracle/{fp8,mxfp8,nvfp4,mxfp4,int_wna16}.py, experts/marlin_moe.py",
            frozenset({"silu", "swigluoai"}), note="weight-only: dequantizes to BF16 inside the GEMM", parallel="marlin"),
    Backend("humming", "Humming", "HummingGroupedExperts", "modular", "humming", False, "humming", ALL_ARCHS,
            (("fp8_block", None), ("fp8_per_tensor", None), ("mxfp8", None), ("nvfp4", None), ("mxfp4", None),
             ("int4", None), ("fp4_mixed", None)),
            _V + "fused_moe/oracle/{fp8,mxfp8,nvfp4,int_wna16,mxfp4}.py, experts/fused_humming_moe.py "
                 "(_supports_quant_scheme)", package="humming",
            note="needs the humming package (a vLLM v0.33 dependency); DeepSeek-V4's MXFP8 activations run as "
                 "block FP8 on sm90 (oracle/mxfp4.py _humming_input_schema)"),
    Backend("emulation", "Emulation (dequantize + Triton)", "Nvfp4/Int4 emulation experts", "modular",
            "emulation", False, "emulation", ALL_ARCHS, (("nvfp4", None), ("int4", None)),
            _V + "fused_moe/oracle/{nvfp4,int_wna16}.py", note="last resort: BF16 GEMMs on dequantized weights",
            parallel="no_fi_nvl"),
)

BACKEND_BY_KEY = {b.key: b for b in BACKENDS}


class OptionalPackage(NamedTuple):
    module: str  # what vLLM imports
    pip: str  # what to install
    how_vllm_gets_it: str
    source: str


# packages whose absence makes _supports_current_device False (vLLM then silently moves on)
OPTIONAL_PACKAGES: dict[str, OptionalPackage] = {
    "humming": OptionalPackage(
        "humming", "humming-kernels[cu13]==0.1.19",
        "a Linux dependency of the vLLM 0.33.0 wheel (Requires-Dist humming-kernels[cu13]==0.1.19)",
        _V + "fused_moe/experts/fused_humming_moe.py:403-409 has_humming(); utils/import_utils.py:652"),
    "deep_gemm": OptionalPackage(
        "deep_gemm", "deep_gemm (or the copy vendored as vllm.third_party.deep_gemm)",
        "vendored in the vLLM 0.33.0 wheel; off when VLLM_USE_DEEP_GEMM=0",
        _V + "utils/deep_gemm.py:113-118 is_deep_gemm_supported(); utils/import_utils.py:512-519"),
}


# vLLM oracle auto priority per scheme: (arch condition, ordered backend keys). The first row whose
# condition matches wins. Sources: vLLM v0.33 fused_moe/oracle/*.py (_get_priority_backends).
class AutoOrder(NamedTuple):
    scheme: str
    archs: frozenset[int] | None  # None = any arch
    ep: bool | None  # None = any layout; True/False = only when the experts are (not) split by EP (moe_ep > 1)
    order: tuple[str, ...]
    source: str
    activations: frozenset[str] | None = None  # None = any activation


# prioritize_humming() (quantization/utils/humming/priority.py) moves HUMMING directly ahead of MARLIN
# on sm90 only; the sm90 rows below apply _prioritize_humming() to the default lists.
_FP8_BLOCK_DEFAULT = ("trtllm_fp8_block_mono", "trtllm_fp8_block_mod", "flashinfer_cutlass", "deep_gemm", "triton",
                      "marlin", "humming")
_HOPPER = frozenset({90})


def _prioritize_humming(order: tuple[str, ...]) -> tuple[str, ...]:
    """vLLM 0.33.0 prioritize_humming(): HUMMING moved directly ahead of MARLIN (applied on sm90 only)."""
    if "humming" not in order or "marlin" not in order:
        return order
    rest = [b for b in order if b != "humming"]
    i = rest.index("marlin")
    return (*rest[:i], "humming", *rest[i:])


_FP8_TENSOR_DEFAULT = ("trtllm_fp8_tensor_mono", "flashinfer_cutlass", "triton", "marlin", "humming")
_MXFP8_DEFAULT = ("trtllm_mxfp8_mono", "trtllm_mxfp8_mod", "deep_gemm", "marlin", "humming")
_NVFP4_DEFAULT = ("trtllm_nvfp4_mono", "trtllm_nvfp4_mod", "flashinfer_cutedsl", "flashinfer_cutlass", "vllm_cutlass",
                  "marlin", "humming", "emulation")
_MXFP4_DEFAULT = ("trtllm_mxfp4_mono", "trtllm_mxfp4_mod", "triton", "flashinfer_cutlass", "marlin", "humming")
_FP4_MIXED_DEFAULT = ("trtllm_mxfp4_mono", "trtllm_mxfp4_mod", "deep_gemm_mxfp4", "marlin", "humming")
_INT4_DEFAULT = ("trtllm_mxint4_mono", "marlin", "triton", "humming", "emulation")

AUTO_ORDER: tuple[AutoOrder, ...] = (
    AutoOrder("fp8_block", _HOPPER, False,
              ("triton", "trtllm_fp8_block_mono", "trtllm_fp8_block_mod", "flashinfer_cutlass", "deep_gemm", "humming",
               "marlin"),
              _V + "oracle/fp8.py:122-132: on Hopper block FP8 prefers Triton for TP (ep_size == 1; Humming ahead "
                   "of Marlin on sm90)"),
    AutoOrder("fp8_block", _HOPPER, True,
              ("flashinfer_cutlass", "trtllm_fp8_block_mono", "trtllm_fp8_block_mod", "deep_gemm", "triton", "humming",
               "marlin"),
              _V + "oracle/fp8.py:122-130: on Hopper block FP8 prefers FlashInfer CUTLASS when ep_size > 1 (Humming "
                   "ahead of Marlin)"),
    AutoOrder("fp8_block", None, None, _FP8_BLOCK_DEFAULT,
              _V + "oracle/fp8.py: AITER, FLASHINFER_TRTLLM, FLASHINFER_CUTLASS, DEEPGEMM, (VLLM_CUTLASS), TRITON, "
                   "MARLIN, HUMMING"),
    AutoOrder("fp8_per_tensor", _HOPPER, None,
              _prioritize_humming(_FP8_TENSOR_DEFAULT),
              _V + "oracle/fp8.py (no modular TRT-LLM class for per-tensor; Humming ahead of Marlin on sm90)"),
    AutoOrder("fp8_per_tensor", None, None,
              _FP8_TENSOR_DEFAULT,
              _V + "oracle/fp8.py (no modular TRT-LLM class for per-tensor)"),
    AutoOrder("mxfp8", _HOPPER, None,
              _prioritize_humming(_MXFP8_DEFAULT),
              _V + "oracle/mxfp8.py: FLASHINFER_TRTLLM, DEEPGEMM, HUMMING, MARLIN (Humming ahead of Marlin on sm90); "
                   "TRITON_MXFP8 is ROCm-only, EMULATION not modelled"),
    AutoOrder("mxfp8", None, None,
              _MXFP8_DEFAULT,
              _V + "oracle/mxfp8.py _SUPPORTED_BACKENDS: FLASHINFER_TRTLLM, DEEPGEMM, MARLIN, (XPU, AITER_MXFP8), "
                   "HUMMING, (TRITON_MXFP8: ROCm only), EMULATION (not modelled)"),
    AutoOrder("nvfp4", _HOPPER, None,
              _prioritize_humming(_NVFP4_DEFAULT),
              _V + "oracle/nvfp4.py: as elsewhere, with prioritize_humming() moving HUMMING ahead of MARLIN on sm90"),
    AutoOrder("nvfp4", None, None,
              _NVFP4_DEFAULT,
              _V + "oracle/nvfp4.py: FLASHINFER_TRTLLM, FLASHINFER_CUTEDSL(_BATCHED), FLASHINFER_CUTLASS, "
                   "VLLM_CUTLASS, MARLIN, HUMMING, EMULATION (B12X opt-in only)"),
    AutoOrder("mxfp4", _HOPPER, None,
              _prioritize_humming(_MXFP4_DEFAULT),
              _V + "oracle/mxfp4.py _get_priority_backends_for_gpt_oss: FLASHINFER_TRTLLM_MXFP4_BF16/_MXFP8, TRITON, "
                   "FLASHINFER_CUTLASS_MXFP4_BF16/_MXFP8, HUMMING, MARLIN (Humming ahead of Marlin on sm90)"),
    AutoOrder("mxfp4", SM12X, None,
              ("trtllm_mxfp4_mono", "trtllm_mxfp4_mod", "flashinfer_cutlass", "marlin", "triton", "humming"),
              _V + "oracle/mxfp4.py _get_priority_backends_for_gpt_oss: on the SM120 family TRITON moves behind "
                   "(BATCHED_)MARLIN"),
    AutoOrder("mxfp4", None, None,
              _MXFP4_DEFAULT,
              _V + "oracle/mxfp4.py _get_priority_backends_for_gpt_oss: FLASHINFER_TRTLLM_MXFP4_BF16/_MXFP8, TRITON, "
                   "FLASHINFER_CUTLASS_MXFP4_BF16/_MXFP8, (CUTLASS_MXFP4_MXFP4), MARLIN, BATCHED_MARLIN, HUMMING"),
    # DeepSeek-V4 FP4 experts: select_deepseek_v4_mxfp4_moe_backend -> _get_priority_backends():
    # FLASHINFER_TRTLLM_MXFP4_MXFP8 (monolithic, then modular), DEEPGEMM_MXFP4, MARLIN, BATCHED_MARLIN,
    # HUMMING, with prioritize_humming() moving HUMMING ahead of MARLIN on sm90 only.
    AutoOrder("fp4_mixed", _HOPPER, None,
              _prioritize_humming(_FP4_MIXED_DEFAULT),
              _V + "oracle/mxfp4.py select_deepseek_v4_mxfp4_moe_backend: FLASHINFER_TRTLLM_MXFP4_MXFP8, "
                   "DEEPGEMM_MXFP4, HUMMING, MARLIN (Humming ahead of Marlin on sm90)"),
    AutoOrder("fp4_mixed", None, None,
              _FP4_MIXED_DEFAULT,
              _V + "oracle/mxfp4.py select_deepseek_v4_mxfp4_moe_backend: FLASHINFER_TRTLLM_MXFP4_MXFP8, "
                   "DEEPGEMM_MXFP4, MARLIN, BATCHED_MARLIN, HUMMING"),
    AutoOrder("int4", _HOPPER, None, _prioritize_humming(_INT4_DEFAULT),
              _V + "oracle/int_wna16.py: FLASHINFER_TRTLLM, HUMMING, MARLIN, BATCHED_MARLIN, TRITON, EMULATION "
                   "(Humming ahead of Marlin on sm90)"),
    AutoOrder("int4", None, None, _INT4_DEFAULT,
              _V + "oracle/int_wna16.py: (RDNA3), FLASHINFER_TRTLLM, MARLIN, BATCHED_MARLIN, TRITON, HUMMING, "
                   "EMULATION"),
)


_UNQUANTIZED_DEFAULT = ("trtllm_bf16_mono", "trtllm_bf16_mod", "flashinfer_cutlass", "triton")
_UNQUANTIZED_SOURCE = _V + "oracle/unquantized.py:68-97"


def _unquantized_order(arch: int, layout: Layout, activation: str) -> AutoOrder:
    """vLLM 0.33.0's unquantized priority on CUDA (oracle/unquantized.py:68-97), its moves applied in its order:
    FLASHINFER_TRTLLM, FLASHINFER_CUTLASS, TRITON; on sm90 both FlashInfer entries move to the back; with
    dp_size > 1 FLASHINFER_CUTLASS moves to the back; with SWIGLUOAI both FlashInfer entries move to the back."""
    order = list(_UNQUANTIZED_DEFAULT)
    why: list[str] = []

    def back(*keys: str) -> None:
        for k in keys:
            order.append(order.pop(order.index(k)))

    flashinfer = ("trtllm_bf16_mono", "trtllm_bf16_mod", "flashinfer_cutlass")
    if arch in _HOPPER:
        back(*flashinfer)
        why.append("on Hopper FlashInfer moves behind Triton")
    if layout.dp > 1:
        back("flashinfer_cutlass")
        why.append("dp > 1 moves FlashInfer CUTLASS to the back")
    if activation == "swigluoai":
        back(*flashinfer)
        why.append("SWIGLUOAI moves FlashInfer behind Triton")
    text = "; ".join(why) if why else "FLASHINFER_TRTLLM, FLASHINFER_CUTLASS, TRITON"
    return AutoOrder("bf16", None, None, tuple(order), f"{_UNQUANTIZED_SOURCE}: {text}")


def auto_order(scheme: str, arch: int, layout: Layout | None = None, activation: str = "silu") -> AutoOrder | None:
    """The oracle's priority list for this scheme on ``arch`` under ``layout`` (None = one GPU)."""
    layout = layout or derive_layout()
    if scheme == "bf16":
        return _unquantized_order(arch, layout, activation)
    for row in AUTO_ORDER:
        if row.scheme != scheme:
            continue
        if row.archs is not None and arch not in row.archs:
            continue
        if row.ep is not None and row.ep != (layout.moe_ep > 1):
            continue
        if row.activations is not None and activation not in row.activations:
            continue
        return row
    return None


# ------------------------------------------------------------------------------------------------
# FlashInfer's own unified API (flashinfer.fused_moe.api.ALL_BACKEND_CONFIGS)
# ------------------------------------------------------------------------------------------------
class UnifiedConfig(NamedTuple):
    name: str  # class name in flashinfer.fused_moe.api
    runner: str  # "trtllm" | "cutlass" | "cutile" | "cute_dsl"
    schemes: tuple[str, ...]
    archs: frozenset[int]  # supported(arch) is True for these
    routing_from_logits: bool  # RoutingInputMode.FromLogits possible (TRTLLM runners only)
    source: str = _FI + "flashinfer/fused_moe/api.py (supported(arch)); REFERENCE §6"


_TRTLLM_ROUTED = frozenset({100, 103})
# supported(arch) of FlashInfer's configs: one home, moe_inspect/kernels/unified_api.py (run-layer reads it too)
UNIFIED_CONFIGS: tuple[UnifiedConfig, ...] = (
    UnifiedConfig("TrtllmFp4Config", "trtllm", ("nvfp4", "mxfp4"), A.archs("TrtllmFp4Config"), True),
    UnifiedConfig("TrtllmFp8BlockConfig", "trtllm", ("fp8_block", "mxfp8"), A.archs("TrtllmFp8BlockConfig"), True),
    UnifiedConfig("TrtllmFp8PerTensorConfig", "trtllm", ("fp8_per_tensor",), A.archs("TrtllmFp8PerTensorConfig"), True),
    UnifiedConfig("TrtllmBf16Config", "trtllm", ("bf16",), A.archs("TrtllmBf16Config"), True),
    UnifiedConfig("TrtllmMxInt4Config", "trtllm", ("int4",), A.archs("TrtllmMxInt4Config"), True),
    UnifiedConfig("CutlassBf16Config", "cutlass", ("bf16",), A.archs("CutlassBf16Config"), False),
    UnifiedConfig("CutlassFp8PerTensorConfig", "cutlass", ("fp8_per_tensor",), A.archs("CutlassFp8PerTensorConfig"),
                  False),
    UnifiedConfig("CutlassFp8BlockConfig", "cutlass", ("fp8_block",), A.archs("CutlassFp8BlockConfig"), False),
    UnifiedConfig("CutlassW4A16Config", "cutlass", ("mxfp4",), A.archs("CutlassW4A16Config"), False),
    UnifiedConfig("CutlassW4A8Config", "cutlass", ("int4",), A.archs("CutlassW4A8Config"), False),
    UnifiedConfig("CutlassHummingConfig", "cutlass", ("mxfp4",), A.archs("CutlassHummingConfig"), False),
    UnifiedConfig("CuTileBf16Config", "cutile", ("bf16",), A.archs("CuTileBf16Config"), False),
    UnifiedConfig("CuTileFp8PerTensorBf16Config", "cutile", ("fp8_per_tensor",), A.archs("CuTileFp8PerTensorBf16Config"),
                  False),
    UnifiedConfig("CuTileMxfp4Bf16Config", "cutile", ("mxfp4",), A.archs("CuTileMxfp4Bf16Config"), False),
    UnifiedConfig("CuTileMxfp8Bf16Config", "cutile", ("mxfp8",), A.archs("CuTileMxfp8Bf16Config"), False),
    UnifiedConfig("CuTileNvfp4Bf16Config", "cutile", ("nvfp4",), A.archs("CuTileNvfp4Bf16Config"), False),
    UnifiedConfig("CuteDslConfig", "cute_dsl", ("nvfp4",), _TRTLLM_ROUTED, False),
    # the rest of FlashInfer 0.7.2.post1's ALL_BACKEND_CONFIGS, read from flashinfer/fused_moe/api.py
    # (the *_ARCHS tuples behind each supported(arch)); found missing by `check --cross-check` on an
    # H200. Combinations outside our --quant vocabulary are named "weights×activations".
    UnifiedConfig("CuTileFp8PerTensorConfig", "cutile", ("fp8_per_tensor",), A.archs("CuTileFp8PerTensorConfig"), False),
    UnifiedConfig("CuTileNvfp4Config", "cutile", ("nvfp4",), A.archs("CuTileNvfp4Config"), False),
    UnifiedConfig("CuTileMxfp4Config", "cutile", ("mxfp4×mxfp4",), A.archs("CuTileMxfp4Config"), False),
    UnifiedConfig("CuTileMxfp4Mxfp8Config", "cutile", ("mxfp4×mxfp8",), A.archs("CuTileMxfp4Mxfp8Config"), False),
    UnifiedConfig("CuTileMxfp8Config", "cutile", ("mxfp8",), A.archs("CuTileMxfp8Config"), False),
    UnifiedConfig("CutlassNvfp4Config", "cutlass", ("nvfp4",), A.archs("CutlassNvfp4Config"), False),
    UnifiedConfig("CutlassMxfp8Mxfp4Config", "cutlass", ("mxfp4×mxfp8",), A.archs("CutlassMxfp8Mxfp4Config"),
                  False),
    UnifiedConfig("CutlassMxfp8Config", "cutlass", ("mxfp8",), A.archs("CutlassMxfp8Config"), False),
    UnifiedConfig("CakeWarpDecodeConfig", "cake", ("nvfp4",), frozenset({100, 103}), False),  # 1–32 tokens
    UnifiedConfig("PrimsTsConfig", "prims_ts", ("nvfp4",), A.archs("PrimsTsConfig"), False),
    UnifiedConfig("SM12xFp8Config", "sm12x_cute_dsl", ("fp8_block",), frozenset({120, 121}), False),
    UnifiedConfig("SM12xMxfp8Mxfp4Config", "sm12x_cute_dsl", ("mxfp4×mxfp8",), frozenset({120, 121}), False),
    UnifiedConfig("SM12xNvfp4Bf16Config", "sm12x_cute_dsl", ("nvfp4×bf16",), frozenset({120, 121}), False),
    UnifiedConfig("SM12xNvfp4Config", "sm12x_cute_dsl", ("nvfp4",), frozenset({120, 121}), False),
    UnifiedConfig("B12xNvfp4Config", "b12x", ("nvfp4",), frozenset({120, 121}), False),
    UnifiedConfig("B12xW4A16Config", "b12x", ("fp4×bf16",), frozenset({120, 121}), False),
    UnifiedConfig("CudnnFrostBf16Config", "cudnn_frost", ("bf16",), frozenset({107, 120}), False),
    UnifiedConfig("CudnnFrostMxfp8Config", "cudnn_frost", ("mxfp8",), frozenset({107}), False),
    UnifiedConfig("CudnnFrostNvfp4Config", "cudnn_frost", ("nvfp4",), frozenset({107}), False),
    UnifiedConfig("CudnnFrostMxfp8Mxfp4Config", "cudnn_frost", ("mxfp4×mxfp8",), frozenset({107}), False),
)


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------
@dataclass
class RoutingContext:
    """What the gates need to know about one model (built from a ModelDescription)."""

    method: str
    num_experts: int
    top_k: int
    scheme: str
    activation: str = "silu"
    n_group: int | None = None
    topk_group: int | None = None
    num_hash_layers: int = 0
    router_dtype: str = "bfloat16"
    apply_router_weight_on_input: bool = False  # Llama-4
    pattern: str = ""  # "softmax + correction bias" — for reasons
    layout: Layout = field(default_factory=derive_layout)
    swiglu_limit: float | None = None  # SwiGLU clamp (DeepSeek-V4: 10.0); vLLM v0.33 passes it as gemm1_clamp_limit
    env_switches: frozenset[str] = frozenset()  # opt-in env vars assumed set to 1 (VLLM_USE_FLASHINFER_MOE_INT4)
    flashinfer_version: str = FLASHINFER_VERSION
    flashinfer_methods: frozenset[str] | None = None  # RoutingMethodType members of that version (None = this table's)


@dataclass
class Verdict:
    backend: Backend
    arch: int
    supported: bool
    gate: str | None  # first failing gate, None when supported
    reason: str | None
    limits: dict[str, Any] = field(default_factory=dict)

    def short(self) -> str:
        return "ok" if self.supported else f"{self.gate}: {self.reason}"


def _arch_list(archs) -> str:
    return ", ".join(f"sm{a}" for a in sorted(archs))


def _gate_arch(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if arch not in b.archs:
        return f"needs {_arch_list(b.archs)}; sm{arch} is not supported"
    return None


def _gate_env(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if b.env_switch and b.env_switch not in ctx.env_switches and os.environ.get(b.env_switch) != "1":
        return f"needs {b.env_switch}=1 (off by default in vLLM {VLLM_VERSION})"
    return None


def _gate_activation(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if b.activations is not None and ctx.activation not in b.activations:
        return f"activation {ctx.activation} is not supported (takes {', '.join(sorted(b.activations))})"
    return None


def _gate_quant(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if b.no_class_note:
        return b.no_class_note
    for s, archs in b.quant:
        if s == ctx.scheme:
            if archs is not None and arch not in archs:
                return f"{SCHEME_LABEL.get(s, s)} needs {_arch_list(archs)} in this backend; sm{arch} is not one"
            return None
    if ctx.scheme.startswith("unknown:"):
        return f"quantization {ctx.scheme[8:]!r} is not a scheme this table knows"
    took = ", ".join(SCHEME_LABEL.get(s, s) for s in b.schemes) or "nothing"
    return f"quantization {SCHEME_LABEL.get(ctx.scheme, ctx.scheme)} is not supported (takes {took})"


def _gate_parallel(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    lay = ctx.layout
    rule = PARALLEL_RULES[b.parallel]
    if not rule.test(lay):
        return (f"{b.vllm_class} does not support this layout ({lay.describe()}): it takes {rule.accepts} "
                f"({rule.source})")
    if lay.use_all2all_kernels and lay.all2all_backend in BATCHED_ALL2ALL:
        return (f"all2all {lay.all2all_backend} hands the experts the batched activation format; {b.vllm_class} "
                "takes the standard format (vLLM's batched classes are not in this table) "
                f"({_V}fused_moe/config.py:1065-1067, modular_kernel.py:627)")
    return None


def _gate_fi_version(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if not (b.routing_tiers and ctx.flashinfer_methods is not None):
        return None
    if ctx.method in FLASHINFER_METHODS and ctx.method not in ctx.flashinfer_methods:
        return (f"FlashInfer {ctx.flashinfer_version} has no {ctx.method} routing (not in its RoutingMethodType; "
                f"vLLM v{VLLM_VERSION} pins FlashInfer {FLASHINFER_VERSION})")
    return None


def _gate_hash(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if ctx.num_hash_layers and not b.hash_routing:
        reason = (f"{ctx.num_hash_layers} hash-routed layer(s) (experts = tid2eid[token]) cannot be routed "
                  "by the fused in-kernel router")
        allowed = b.allowed_methods(ctx.scheme)
        if allowed is not None and ctx.method not in allowed:  # vLLM checks per layer: the rest fail next
            reason += f"; the other layers fail the routing-method gate ({ctx.method} is not in its allow-list)"
        return reason
    return None


def _gate_routing(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    allowed = b.allowed_methods(ctx.scheme)
    if allowed is None or ctx.method in allowed:
        return None
    pat = f" ({ctx.pattern})" if ctx.pattern else ""
    if ctx.method not in FLASHINFER_METHODS:
        return f"routing method {ctx.method} is not implemented by the fused router{pat}"
    return (f"routing method {ctx.method} is not in {b.vllm_class}'s allow-list "
            f"({', '.join(sorted(allowed))}){pat}")


def _gate_logits(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if b.router_dtypes is not None and ctx.router_dtype not in b.router_dtypes:
        return f"router logits in {ctx.router_dtype} are not accepted (takes {', '.join(sorted(b.router_dtypes))})"
    for dtype, methods in b.router_dtype_methods:
        if ctx.router_dtype == dtype and ctx.method not in methods:
            return (f"router logits in {dtype} are accepted only with {', '.join(sorted(methods))} routing "
                    f"(method {ctx.method})")
    return None


def kernel_limit_problems(ctx: RoutingContext, *, fp8_block_launcher: bool = False,
                          launcher_topk_assert: bool = True) -> list[str]:
    """FlashInfer 0.7.2 in-kernel routing problems (moe_inspect.kernels.trtllm_moe_limits) plus vLLM's
    FP8-block monolithic asserts (empty list = fits)."""
    from .kernels import trtllm_moe_limits as L

    E, k = ctx.num_experts, ctx.top_k
    out = L.fused_moe_problems(ctx.method, E, k, ctx.n_group, ctx.topk_group, fp8_block_launcher=fp8_block_launcher)
    if fp8_block_launcher:  # vLLM v0.33 fused_moe/experts/trtllm_fp8_moe.py:467 (E) and :481 (top_k, DeepSeek FP8)
        if E > 512:
            out.append(f"FP8-block monolithic asserts E <= 512 (E={E})")
        if k > 32 and launcher_topk_assert:
            out.append(f"FP8-block monolithic asserts top_k <= 32 (k={k})")
    return out


def _gate_limits(b: Backend, ctx: RoutingContext, arch: int) -> str | None:
    if b.max_experts is not None and ctx.num_experts > b.max_experts:
        return f"FlashInfer TRT-LLM routing supports at most {b.max_experts} experts (E={ctx.num_experts})"
    if b.routing_tiers:
        probs = kernel_limit_problems(ctx, fp8_block_launcher=b.fp8_block_launcher,
                                      launcher_topk_assert=b.launcher_topk_assert)
        if probs:
            return probs[0]
    if b.llama4_input_weights:
        if ctx.method == "Llama4" and not ctx.apply_router_weight_on_input:
            return "Llama4 routing needs router weights applied on the expert input (apply_router_weight_on_input)"
        if ctx.method != "Llama4" and ctx.apply_router_weight_on_input:
            return f"routing weights on the expert input are only supported with Llama4 routing (method {ctx.method})"
    return None


_GATE_FUNCS = (
    ("arch", _gate_arch),
    ("env", _gate_env),
    ("activation", _gate_activation),
    ("quant", _gate_quant),
    ("parallel", _gate_parallel),
    ("hash", _gate_hash),
    ("routing", _gate_routing),
    ("fi-version", _gate_fi_version),
    ("logits", _gate_logits),
    ("limits", _gate_limits),
)
assert tuple(n for n, _ in _GATE_FUNCS) == GATES[:-1]  # "shape" is applied by check() from deploy.shapes
_ROUTING_GATES = frozenset({"hash", "routing", "fi-version", "logits"})


def evaluate(b: Backend, ctx: RoutingContext, arch: int) -> Verdict:
    """The first failing gate of ``b`` for ``ctx`` on ``arch``, in vLLM's order."""
    for name, fn in _GATE_FUNCS:
        if name in _ROUTING_GATES and b.kind != "monolithic":
            continue  # modular kernels take precomputed top-k: routing gates do not apply
        reason = fn(b, ctx, arch)
        if reason:
            return Verdict(b, arch, False, name, reason)
    return Verdict(b, arch, True, None, None)


# schemes whose expert weights a unified-API config taking the listed weight formats can hold
# (DeepSeek-V4's FP4 experts are MXFP4 weights; the activation format is the config's choice)
_UNIFIED_WEIGHT_MATCH: dict[str, tuple[str, ...]] = {"fp4_mixed": ("mxfp4", "mxfp4×mxfp8", "mxfp4×mxfp4")}


def unified_takes(cfg: UnifiedConfig, scheme: str) -> bool:
    """Whether FlashInfer unified-API config ``cfg`` takes expert weights of ``scheme``."""
    return scheme in cfg.schemes or any(s in cfg.schemes for s in _UNIFIED_WEIGHT_MATCH.get(scheme, ()))


def evaluate_unified(cfg: UnifiedConfig, scheme: str, arch: int) -> tuple[bool, str | None]:
    if arch not in cfg.archs:
        return False, f"{cfg.name}.supported({arch}) is False (True for {', '.join(str(a) for a in sorted(cfg.archs))})"
    if not unified_takes(cfg, scheme):
        return False, f"{cfg.name} takes {', '.join(SCHEME_LABEL.get(s, s) for s in cfg.schemes)}"
    return True, None


def match_backend_filter(text: str) -> list[Backend]:
    """``--backend`` value -> rows: a key, a family or --moe-backend value, or a name substring."""
    t = text.strip().lower().replace("-", "_")
    if t in BACKEND_BY_KEY:
        return [BACKEND_BY_KEY[t]]
    fam = [b for b in BACKENDS if b.family == t or (b.moe_backend or "") == t]
    if fam:
        return fam
    words = text.strip().lower().replace("_", " ").replace("-", " ").split()
    return [b for b in BACKENDS if all(w in b.name.lower().replace("-", " ") for w in words)] if words else []
