"""Which RoutingMethodType vLLM computes for a model, and what that id means elsewhere.

``resolve(spec)`` follows REFERENCE.md §3 exactly:

1. pick the vLLM router class (§3.2, ``router/router_factory.py::create_fused_moe_router``,
   first match wins) — the router decides the inputs of step 2;
2. evaluate ``get_routing_method_type`` (§3.1) as a first-match table for the chosen vLLM
   version (``METHOD_TABLES``);
3. translate: the member's value in vLLM's enum, the value FlashInfer's enum of the chosen
   release gives the same NAME, and what vLLM's INTEGER means to that FlashInfer (drift);
4. SGLang 0.5.23's label: the method its model file binds to TopK and whether its
   ``_can_bypass_trtllm_routing`` lets the kernel route (``SGLANG_ROWS``, read from the wheel);
   warnings for routing patterns that no FlashInfer method implements (§2).

Plain data in, plain data out: no torch, no CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from .enums import (
    DEFAULT_FLASHINFER,
    DEFAULT_VLLM,
    VLLM_INTERNAL_MIN,
    VLLM_LAYOUTS,
    flashinfer_layout,
    normalize_flashinfer_version,
    normalize_vllm_version,
    vllm_layout,
    vllm_release,
)
from .reference import scale_applies
from .spec import MoESpec, RoutingResult

__all__ = ["MethodRow", "METHOD_TABLES", "SGLANG_LABELS", "SGLANG_ROWS", "SGLangRow", "TopKSetting",
           "get_routing_method_type", "resolve", "sglang_can_bypass_trtllm_routing",
           "sglang_routing"]

# --------------------------------------------------------------------------------------------
# get_routing_method_type(scoring_func, top_k, renormalize, num_expert_group, has_e_score_bias
#                         [, routed_scaling_factor])  — first matching row wins.
# --------------------------------------------------------------------------------------------
ANY = None


class MethodRow(NamedTuple):
    """One branch of vLLM's get_routing_method_type. ``None`` fields match anything.

    scoring: "sigmoid" | "softmax" | "sqrtsoftplus" | "not_sigmoid" (anything but sigmoid)
    groups: True = num_expert_group > 0, False = None/0
    top_k_one: True = top_k == 1, False = top_k != 1
    unit_scale: True = routed_scaling_factor in {None, 1.0}
    """

    scoring: str | None
    bias: bool | None
    renormalize: bool | None
    groups: bool | None
    result: str
    why: str
    top_k_one: bool | None = ANY
    unit_scale: bool | None = ANY

    def matches(self, scoring: str, bias: bool, renorm: bool, groups: bool, top_k: int,
                rsf: float | None) -> bool:
        if self.scoring == "not_sigmoid":
            if scoring == "sigmoid":
                return False
        elif self.scoring is not None and self.scoring != scoring:
            return False
        if self.bias is not None and self.bias != bias:
            return False
        if self.renormalize is not None and self.renormalize != renorm:
            return False
        if self.groups is not None and self.groups != groups:
            return False
        if self.top_k_one is not None and self.top_k_one != (top_k == 1):
            return False
        if self.unit_scale is not None and self.unit_scale != (rsf is None or rsf == 1.0):
            return False
        return True


_FALLBACK = MethodRow(ANY, ANY, ANY, ANY, "Unspecified", "unrecognised scoring function")

# vLLM v0.33.0 fused_moe/config.py:138-171 (re-read from the wheel; REFERENCE §3.1 table; top_k ignored;
# the function takes no routed_scaling_factor, so MiniMax2 is not gated on the scale).
_V033 = (
    MethodRow("sqrtsoftplus", ANY, True, ANY, "DeepseekV4", "sqrtsoftplus + renormalize"),
    MethodRow("sqrtsoftplus", ANY, False, ANY, "Unspecified", "sqrtsoftplus without renormalize"),
    MethodRow("sigmoid", True, False, ANY, "Unspecified",
              "sigmoid + correction bias without renormalize"),
    MethodRow("sigmoid", True, True, True, "DeepSeekV3",
              "sigmoid + correction bias + renormalize, expert groups > 0"),
    MethodRow("sigmoid", True, True, False, "MiniMax2",
              "sigmoid + correction bias + renormalize, no expert groups"),
    MethodRow("not_sigmoid", True, ANY, ANY, "Unspecified", "selection bias with non-sigmoid scores"),
    MethodRow("sigmoid", False, True, ANY, "SigmoidRenorm", "sigmoid, no bias, renormalize"),
    MethodRow("sigmoid", False, False, ANY, "Sigmoid", "sigmoid, no bias, no renormalize"),
    MethodRow("softmax", False, True, ANY, "RenormalizeNaive", "softmax + renormalize"),
    MethodRow("softmax", False, False, ANY, "Default", "softmax without renormalize"),
    _FALLBACK,
)

# PR #44347 (Jun 2026, commit 002d6073): as v0.33 but MiniMax2 only for a unit routed scale.
_V44347 = (
    *_V033[:4],
    MethodRow("sigmoid", True, True, False, "MiniMax2",
              "sigmoid + correction bias + renormalize, no expert groups, "
              "routed_scaling_factor in {None, 1.0}", unit_scale=True),
    MethodRow("sigmoid", True, True, False, "Unspecified",
              "sigmoid + correction bias + renormalize, no expert groups, "
              "routed_scaling_factor != 1.0 (MiniMax2 gated on unit scale)", unit_scale=False),
    *_V033[5:],
)

# PR #39141 (Apr 2026): MiniMax2/SigmoidRenorm added; bias paths ignore renormalize; sigmoid
# without bias is Llama4 for top_k == 1; softmax + renormalize still Renormalize.
_V39141 = (
    MethodRow("sqrtsoftplus", ANY, True, ANY, "DeepseekV4", "sqrtsoftplus + renormalize"),
    MethodRow("sqrtsoftplus", ANY, False, ANY, "Unspecified", "sqrtsoftplus without renormalize"),
    MethodRow("sigmoid", True, ANY, True, "DeepSeekV3", "sigmoid + correction bias, expert groups > 0"),
    MethodRow("sigmoid", True, ANY, False, "MiniMax2", "sigmoid + correction bias, no expert groups"),
    MethodRow("not_sigmoid", True, ANY, ANY, "Unspecified", "selection bias with non-sigmoid scores"),
    MethodRow("sigmoid", False, ANY, ANY, "Llama4", "sigmoid, no bias, top_k == 1", top_k_one=True),
    MethodRow("sigmoid", False, True, ANY, "SigmoidRenorm", "sigmoid, no bias, renormalize, top_k > 1"),
    MethodRow("sigmoid", False, False, ANY, "Unspecified",
              "sigmoid, no bias, no renormalize, top_k > 1"),
    MethodRow("softmax", False, True, ANY, "Renormalize", "softmax + renormalize"),
    MethodRow("softmax", False, False, ANY, "Default", "softmax without renormalize"),
    _FALLBACK,
)

# Before PR #39141 (e.g. commit 00c1c6a2): no MiniMax2/SigmoidRenorm/DeepseekV4.
_PRE_39141 = (
    MethodRow("sigmoid", True, ANY, True, "DeepSeekV3", "sigmoid + correction bias, expert groups > 0"),
    MethodRow(ANY, True, ANY, ANY, "Unspecified",
              "correction bias without (sigmoid and expert groups)"),
    MethodRow("sigmoid", False, ANY, ANY, "Llama4", "sigmoid, no bias, top_k == 1", top_k_one=True),
    MethodRow("sigmoid", False, ANY, ANY, "Unspecified", "sigmoid, no bias, top_k > 1"),
    MethodRow("softmax", False, True, ANY, "Renormalize", "softmax + renormalize"),
    MethodRow("softmax", False, False, ANY, "Default", "softmax without renormalize"),
    _FALLBACK,
)

# vLLM 0.20.0 and 0.20.2 wheels fused_moe/config.py:126-159 (identical text; 0.20.1 per the CLI
# helper's read, its wheel is not in /work/wheels): the pre-#39141 function with sqrtsoftplus
# tested first (:133-139); the enum gains DeepseekV4 = 8, Unspecified = 9 (:121-123).
_V020 = (
    # :133-137 if scoring_func == "sqrtsoftplus": if renormalize: return DeepseekV4
    MethodRow("sqrtsoftplus", ANY, True, ANY, "DeepseekV4", "sqrtsoftplus + renormalize"),
    # :138-139 else: return Unspecified
    MethodRow("sqrtsoftplus", ANY, False, ANY, "Unspecified", "sqrtsoftplus without renormalize"),
    # :141-159 the branches of 0.17.0-0.19.1 :124-149 unchanged: bias (:141-145), sigmoid
    # (:147-151), softmax Renormalize / Default (:153-157), else Unspecified (:159)
    *_PRE_39141,
)

# vLLM 0.22.0 and 0.22.1 wheels fused_moe/config.py:129-166 (identical text): the #39141 function
# (0.21.0 :129-166) except that softmax + renormalize returns RenormalizeNaive (:160-162).
_V022 = (
    *_V39141[:8],  # sqrtsoftplus :136-142, bias :144-150, sigmoid :152-158
    # :160-162 if scoring_func == "softmax": if renormalize: return RenormalizeNaive
    MethodRow("softmax", False, True, ANY, "RenormalizeNaive", "softmax + renormalize"),
    *_V39141[9:],  # :163-164 softmax without renormalize -> Default; :166 else Unspecified
)

METHOD_TABLES: dict[str, tuple[tuple[MethodRow, ...], str]] = {
    "pre-39141": (_PRE_39141, "vLLM pre-#39141 get_routing_method_type"),
    "0.20": (_V020, "vLLM 0.20.x get_routing_method_type"),
    "39141": (_V39141, "vLLM #39141 get_routing_method_type"),
    "0.22": (_V022, "vLLM 0.22.x get_routing_method_type"),
    "44347": (_V44347, "vLLM #44347 get_routing_method_type"),
    "0.33": (_V033, "vLLM v0.33 get_routing_method_type"),
}


def get_routing_method_type(
    scoring_func: str,
    top_k: int,
    renormalize: bool,
    num_expert_group: int | None,
    has_e_score_bias: bool,
    routed_scaling_factor: float | None = 1.0,
    vllm_version: str = DEFAULT_VLLM,
) -> tuple[str, MethodRow]:
    """vLLM's get_routing_method_type for ``vllm_version``: (member name, row that fired)."""
    table, _ = METHOD_TABLES[normalize_vllm_version(vllm_version)]
    groups = (num_expert_group or 0) > 0
    for row in table:
        if row.matches(scoring_func, bool(has_e_score_bias), bool(renormalize), groups, top_k,
                       routed_scaling_factor):
            return row.result, row
    return _FALLBACK.result, _FALLBACK  # unreachable: the fallback row matches everything


# --------------------------------------------------------------------------------------------
# Custom routing functions -> method (vLLM CustomRoutingRouter.routing_method_type)
# --------------------------------------------------------------------------------------------
_CUSTOM_METHODS: dict[str, tuple[str | None, str | None, str]] = {
    # custom_routing: (method if renormalize, method if not, description)
    "llama4": ("Llama4", "Llama4", "Llama-4's top-1-then-sigmoid function"),
    "cohere2_sigmoid": ("SigmoidRenorm", "Sigmoid", "Cohere2's sigmoid -> top-k function"),
}
_CUSTOM_DESCRIPTIONS = {
    "phimoe": "Phi-MoE sparsemixer",
    "sparsemixer": "Phi-MoE sparsemixer",
    "dbrx": "DBRX p-norm",
    "dbrx_pnorm": "DBRX p-norm",
    "gemma4": "Gemma-4 router",
}

# --------------------------------------------------------------------------------------------
# SGLang 0.5.23 (wheel sglang-0.5.23-cp311, python/sglang/srt/…; REFERENCE §3.4 corrected).
# There is no derivation function: each model file passes a routing_method_type (or none) to its
# experts and binds it to its TopK (``TopK.bind_runner_backend``, layers/moe/topk.py:769-785).
# With ``--moe-runner-backend flashinfer_trtllm`` SGLang lets the kernel route in-kernel
# (TopKOutputFormat.BYPASSED, topk.py:793-803) only when ``_can_bypass_trtllm_routing``
# (topk.py:613-650) accepts the method for the TopK the model built; otherwise it routes in
# Python and calls the routed kernel with TopK (moe_runner/flashinfer_trtllm.py:906-907).
# A model that binds no method (None) never bypasses, even where fp8 + flashinfer_trtllm sets
# the experts' method to DeepSeekV3 (quantization/fp8.py:3006-3016): TopK keeps None.
# --------------------------------------------------------------------------------------------
_SGL = "SGLang 0.5.23 srt/"


class TopKSetting(Enum):
    """How an SGLang model file sets one TopK field."""

    YES = "yes"  # always on
    NO = "no"  # always off
    CONFIG = "config"  # from the model's config (the spec); grouped: n_group or topk_group set
    NOAUX_TC = "noaux_tc"  # bias only: a correction bias iff topk_method == "noaux_tc"

    def resolve(self, from_config: bool, *, noaux_tc: bool | None = None) -> bool:
        if self is TopKSetting.NOAUX_TC:
            return bool(noaux_tc)
        return {TopKSetting.YES: True, TopKSetting.NO: False}.get(self, from_config)


class SGLangRow(NamedTuple):
    """How one SGLang 0.5.23 model file builds its TopK and which method it binds."""

    model_types: tuple[str, ...]
    file: str  # model file (short name shown in the label)
    method: str | None  # declared RoutingMethodType; None = none bound; "rule:<name>" = _sglang_rule
    grouped: TopKSetting  # CONFIG: n_group or topk_group set (bailing_moe.py:222-232)
    bias: TopKSetting  # YES: always a correction-bias parameter; CONFIG: the checkpoint's bias
    renorm: TopKSetting
    scoring: str | None  # the scoring the file passes to TopK; None = from the spec
    custom: bool  # TopK gets a custom_routing_function
    source: str
    note: str = ""


SGLANG_ROWS: tuple[SGLangRow, ...] = (
    SGLangRow(
        model_types=("deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "kimi_k25", "glm_moe_dsa"),
        file="deepseek_v2.py",
        method="DeepSeekV3",
        grouped=TopKSetting.YES,
        bias=TopKSetting.NOAUX_TC,
        renorm=TopKSetting.CONFIG,
        scoring=None,
        custom=False,
        source=_SGL + "models/deepseek_v2.py:762-764 (getattr(config, 'routing_method_type', "
            "DeepSeekV3)), MoEGate bias iff topk_method == noaux_tc :519, TopK grouped "
            ":786-808, bind :828-832; GLM-5 = glm4_moe.py:1284 GlmMoeDsaForCausalLM("
            "DeepseekV2ForCausalLM); Kimi-K2.5 = kimi_k25.py:693 DeepseekV3ForCausalLM",
    ),
    SGLangRow(
        model_types=("deepseek_v4", "deepseek_v41"),
        file="deepseek_v2.py",
        method="DeepSeekV3",
        grouped=TopKSetting.NO,
        bias=TopKSetting.YES,
        renorm=TopKSetting.CONFIG,
        scoring=None,
        custom=False,
        source=_SGL + "models/deepseek_v4.py:3155-3163 DeepseekV2MoE(is_deepseek_v4=True) -> "
            "deepseek_v2.py:762-764 DeepSeekV3; DSV4 override use_grouped_topk=False, "
            "sqrtsoftplus :809-827; hash layers HashTopK :770-782",
        note="hash-routed layers use HashTopK, which never bypasses",
    ),
    SGLangRow(
        model_types=("glm4_moe",),
        file="glm4_moe.py",
        method="DeepSeekV3",
        grouped=TopKSetting.YES,
        bias=TopKSetting.YES,
        renorm=TopKSetting.CONFIG,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/glm4_moe.py:445 DeepSeekV3, Glm4MoeGate bias always :393, TopK "
            "grouped :449-462 (no scoring_func: softmax default, unused by DeepSeekV3), "
            "bind :463-466",
    ),
    SGLangRow(
        model_types=("glm4_moe_lite",),
        file="glm4_moe_lite.py",
        method=None,
        grouped=TopKSetting.YES,
        bias=TopKSetting.YES,
        renorm=TopKSetting.CONFIG,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/glm4_moe_lite.py:209-220 experts without routing_method_type, "
            "TopK :223-238, bind without method :239",
    ),
    SGLangRow(
        model_types=("nemotron_h",),
        file="nemotron_h.py",
        method="DeepSeekV3",
        grouped=TopKSetting.YES,
        bias=TopKSetting.YES,
        renorm=TopKSetting.CONFIG,
        scoring="sigmoid",
        custom=False,
        source=_SGL + "models/nemotron_h.py:288 DeepSeekV3, bias always :272, TopK grouped "
            "sigmoid :291-301, bind :303-306",
    ),
    SGLangRow(
        model_types=("mimo_v2", "mimo_v2_flash"),
        file="mimo_v2.py",
        method="rule:mimo_v2",
        grouped=TopKSetting.YES,
        bias=TopKSetting.NOAUX_TC,
        renorm=TopKSetting.CONFIG,
        scoring=None,
        custom=False,
        source=_SGL + "models/mimo_v2.py:446-450 DeepSeekV3 iff bias and norm_topk_prob else "
            "None, bias iff topk_method == noaux_tc :385-398, TopK grouped :465-480, "
            "bind :482-485",
    ),
    SGLangRow(
        model_types=("minimax_m2",),
        file="minimax_m2.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.CONFIG,
        renorm=TopKSetting.YES,
        scoring=None,
        custom=False,
        source=_SGL + "models/minimax_m2.py:537-553 (no routing_method_type), bind without "
            "method :554",
    ),
    SGLangRow(
        model_types=("qwen2_moe", "qwen3_next", "qwen3_5_moe", "qwen3_5_moe_text"),
        file="qwen2_moe.py",
        method="RenormalizeNaive",
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.CONFIG,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/qwen2_moe.py:336 RenormalizeNaive, TopK :307-311, bind :343-346; "
            "Qwen3-Next qwen3_next.py:549,706 and Qwen3.5 qwen3_5.py:1148,1382 use "
            "Qwen2MoeSparseMoeBlock (norm_topk_prob default True, configs/qwen3_next.py)",
    ),
    SGLangRow(
        model_types=("qwen3_moe", "qwen3_vl_moe", "qwen3_vl_moe_text"),
        file="qwen3_moe.py",
        method="Renormalize",
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.CONFIG,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/qwen3_moe.py:273 Renormalize, renormalize = norm_topk_prob "
            "(default True, GGUF False) :253-263, bind :275-278; qwen3_vl_moe.py:34 reuses it",
    ),
    SGLangRow(
        model_types=("llama4", "llama4_text"),
        file="llama4.py",
        method="Llama4",
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.NO,
        scoring="sigmoid",
        custom=True,
        source=_SGL + "models/llama4.py:128 Llama4, TopK renormalize=False + custom_routing_"
            "function :113-118, bind :131-134",
    ),
    SGLangRow(
        model_types=("cohere2_moe",),
        file="cohere2_moe.py",
        method="rule:cohere2",
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.CONFIG,
        scoring=None,
        custom=False,
        source=_SGL + "models/cohere2_moe.py:250-266 (sigmoid: SigmoidRenorm / Sigmoid with "
            "custom cohere2_sigmoid_topk when not renormalized; softmax: RenormalizeNaive / "
            "Default), TopK :277-283, bind :298-301",
    ),
    SGLangRow(
        model_types=("bailing_moe", "bailing_moe_v2"),
        file="bailing_moe.py",
        method="rule:bailing",
        grouped=TopKSetting.CONFIG,
        bias=TopKSetting.CONFIG,
        renorm=TopKSetting.CONFIG,
        scoring=None,
        custom=False,
        source=_SGL + "models/bailing_moe.py:305-310 (norm_topk_prob: DeepSeekV3 if grouped + "
            "bias, RenormalizeNaive if ungrouped without bias, else None), grouped "
            ":222-232, TopK :291-302, bind :326-329",
    ),
    SGLangRow(
        model_types=("step3p5",),
        file="step3p5.py",
        method="Renormalize",
        grouped=TopKSetting.NO,
        bias=TopKSetting.CONFIG,
        renorm=TopKSetting.YES,
        scoring="sigmoid",
        custom=False,
        source=_SGL + "models/step3p5.py:161 Renormalize, but TopK is sigmoid + router bias "
            ":142-150, bind :164-167",
    ),
    SGLangRow(
        model_types=("exaone_moe",),
        file="exaone_moe.py",
        method="RenormalizeNaive",
        grouped=TopKSetting.YES,
        bias=TopKSetting.YES,
        renorm=TopKSetting.CONFIG,
        scoring="sigmoid",
        custom=False,
        source=_SGL + "models/exaone_moe.py:169 RenormalizeNaive, but TopK is grouped sigmoid + "
            "bias :172-183, bind :184-187",
    ),
    SGLangRow(
        model_types=("gpt_oss",),
        file="gpt_oss.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.YES,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/gpt_oss.py:222-226 (no routing_method_type), bind without method "
            ":255; the flashinfer_mxfp4 backend bypasses TopK anyway (topk.py:796-797) and "
            "routes in-kernel with method 1 = Renormalize (moe_runner/flashinfer_trtllm.py:1331)",
        note="with --moe-runner-backend flashinfer_mxfp4 the kernel routes anyway "
            "(hard-coded Renormalize)",
    ),
    SGLangRow(
        model_types=("mixtral",),
        file="mixtral.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.YES,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/mixtral.py:94-98, bind without method :110",
    ),
    SGLangRow(
        model_types=("granitemoe", "granitemoeshared", "granitemoehybrid"),
        file="granitemoe.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.YES,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/granitemoe.py:136-140, bind without method :153; "
            "granitemoehybrid.py:41 reuses GraniteMoeMoE",
    ),
    SGLangRow(
        model_types=("dbrx",),
        file="dbrx.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.YES,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/dbrx.py:117-122 (STANDARD output, never bound)",
    ),
    SGLangRow(
        model_types=("olmoe",),
        file="olmoe.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.NO,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/olmoe.py:82-86, bind without method :97",
    ),
    SGLangRow(
        model_types=("ernie4_5_moe",),
        file="ernie4.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.CONFIG,
        renorm=TopKSetting.YES,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/ernie4.py:96-101, bind without method :113",
    ),
    SGLangRow(
        model_types=("step3_text", "step3v", "step3_vl"),
        file="step3_vl.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.CONFIG,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/step3_vl.py:132-135, bind without method :148",
    ),
    SGLangRow(
        model_types=("longcat_flash",),
        file="longcat_flash.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.YES,
        renorm=TopKSetting.NO,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/longcat_flash.py:291-295, bind without method :309",
    ),
    SGLangRow(
        model_types=("lfm2_moe",),
        file="lfm2_moe.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.CONFIG,
        renorm=TopKSetting.CONFIG,
        scoring="sigmoid",
        custom=False,
        source=_SGL + "models/lfm2_moe.py:142-147, bind without method :165",
    ),
    SGLangRow(
        model_types=("phimoe",),
        file="phimoe.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.NO,
        scoring="softmax",
        custom=True,
        source=_SGL + "models/phimoe.py:201-205, bind without method :218",
    ),
    SGLangRow(
        model_types=("hunyuan", "hunyuan_v1_moe"),
        file="hunyuan.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.CONFIG,
        scoring="softmax",
        custom=False,
        source=_SGL + "models/hunyuan.py:150-153, bind without method :164",
    ),
    SGLangRow(
        model_types=("gemma4", "gemma4_text"),
        file="gemma4_causal.py",
        method=None,
        grouped=TopKSetting.NO,
        bias=TopKSetting.NO,
        renorm=TopKSetting.CONFIG,
        scoring="softmax",
        custom=True,
        source=_SGL + "models/gemma4_causal.py:279-282, bind without method :298",
    ),
    SGLangRow(
        model_types=("afmoe",),
        file="afmoe.py",
        method=None,
        grouped=TopKSetting.CONFIG,
        bias=TopKSetting.CONFIG,
        renorm=TopKSetting.CONFIG,
        scoring=None,
        custom=False,
        source=_SGL + "models/afmoe.py:225-245 (never bound)",
    ),
    SGLangRow(
        model_types=("kimi_linear",),
        file="kimi_linear.py",
        method=None,
        grouped=TopKSetting.YES,
        bias=TopKSetting.YES,
        renorm=TopKSetting.CONFIG,
        scoring=None,
        custom=False,
        source=_SGL + "models/kimi_linear.py:129-136, bind without method :144",
    ),
)
SGLANG_LABELS: dict[str, SGLangRow] = {mt: row for row in SGLANG_ROWS for mt in row.model_types}
# model types with no native model file in SGLang 0.5.23 (srt/models/ has none)
SGLANG_NO_MODEL_FILE = frozenset({"minimax_m1", "minimax", "minimax_text_01", "jamba",
                                  "openpangu", "pangu_ultra_moe", "openpangu_ultra_moe"})

_INTERNAL_MEANING = {
    "DeepseekV4": "sqrtsoftplus routing",
    "Custom": "a model-specific Python routing function",
    "Simulated": "the routing simulator",
}


@dataclass
class _Router:
    name: str
    method: str | None  # fixed by the router itself, else computed from inputs
    inputs: dict[str, Any]
    why: str


def _select_router(spec: MoESpec, vv: str, renorm: bool) -> _Router:
    """REFERENCE §3.2 (router_factory.create_fused_moe_router), first match wins."""
    scoring = spec.scoring_func
    bias = spec.has_correction_bias
    rsf = spec.routed_scaling_factor
    base = {"scoring_func": scoring, "top_k": spec.top_k, "renormalize": renorm,
            "routed_scaling_factor": rsf}

    # 1. ZeroExpertRouter: vLLM 0.33.0 router/router_factory.py:127 tests zero_expert_type only
    if spec.zero_expert_type is not None:
        return _Router("ZeroExpertRouter", "Unspecified",
                       {**base, "num_expert_group": None, "has_e_score_bias": bias},
                       f"zero experts (zero_expert_type={spec.zero_expert_type!r}, "
                       f"zero_expert_num={spec.zero_expert_num}) -> ZeroExpertRouter")
    # 2. CPURouter (CPU platforms) and ROCm-only routers are out of scope: we describe CUDA.
    # 3. GroupedTopKRouter, unless degenerate groups + scale handled + same method without groups
    if spec.use_grouped_topk:
        g, tg = spec.n_group, spec.topk_group
        grouped_inputs = {**base, "num_expert_group": g, "has_e_score_bias": bias}
        with_groups, _ = get_routing_method_type(scoring, spec.top_k, renorm, g, bias, rsf, vv)
        without, _ = get_routing_method_type(scoring, spec.top_k, renorm, None, bias, rsf, vv)
        degenerate = (g or 0) <= 1 and (tg or 0) <= 1
        scale_ok = rsf == 1.0 or bias
        same = with_groups == without
        if not (degenerate and scale_ok and same):
            reasons = []
            if not degenerate:
                reasons.append(f"n_group={g}, topk_group={tg}")
            else:
                if not scale_ok:
                    reasons.append(f"routed_scaling_factor={rsf} with no bias")
                if not same:
                    reasons.append(f"method without groups would differ ({without})")
            return _Router("GroupedTopKRouter", None, grouped_inputs,
                           "grouped top-k kept (" + "; ".join(reasons) + ")")
        fell_through = (f"grouped top-k degenerate (n_group={g}, topk_group={tg}) -> "
                        "falls through to the ungrouped routers; ")
    else:
        fell_through = ""
    # 4. CustomRoutingRouter
    if spec.custom_routing:
        return _Router("CustomRoutingRouter", "__custom__",
                       {**base, "num_expert_group": None, "has_e_score_bias": bias},
                       fell_through + f"custom routing function {spec.custom_routing!r}")
    # 5. FusedTopKBiasRouter (bias or DeepSeek-V4 hash table)
    if bias or spec.num_hash_layers > 0:
        what = "correction bias" if bias else "hash table"
        return _Router("FusedTopKBiasRouter", None,
                       {**base, "num_expert_group": None, "has_e_score_bias": True},
                       fell_through + f"{what} -> groups=None, bias=True")
    # 6. (ROCm shared-expert router, out of scope.) 7. FusedTopKRouter
    return _Router("FusedTopKRouter", None,
                   {**base, "num_expert_group": None, "has_e_score_bias": False},
                   fell_through + "no bias -> groups=None, bias=False")


def _custom_method(spec: MoESpec, renorm: bool, vllm_members: dict[str, int]) -> tuple[str, str]:
    entry = _CUSTOM_METHODS.get(spec.custom_routing or "")
    if entry is None:
        return "Custom", f"{spec.custom_routing!r} is not a function FlashInfer implements"
    on, off, desc = entry
    method = on if renorm else off
    if method not in vllm_members:
        return "Custom", f"{desc}; this vLLM enum has no {method}"
    return method, desc


def sglang_can_bypass_trtllm_routing(
    method: str | None, *, top_k: int, use_grouped_topk: bool, has_correction_bias: bool,
    renormalize: bool, scoring_func: str, custom_routing: bool,
    sqrtsoftplus_log1p: bool = False, num_shared_topk_slots: int = 0,
) -> tuple[bool, str]:
    """SGLang 0.5.23 ``_can_bypass_trtllm_routing`` (srt/layers/moe/topk.py:613-650), branch by
    branch: (may the FlashInfer TRT-LLM kernel route in-kernel, why). The inputs are the fields
    of the TopKConfig the model file built, not the checkpoint's config."""
    if method is None or method == "Unspecified":
        return False, f"no routing method bound to TopK ({method})"
    if sqrtsoftplus_log1p:
        return False, "sqrtsoftplus_log1p routing (DeepSeek-V4.1)"
    if num_shared_topk_slots:
        return False, f"{num_shared_topk_slots} fused shared-expert top-k slots"
    plain = not use_grouped_topk and not has_correction_bias
    if method == "Llama4":
        ok = plain and top_k == 1 and not renormalize and custom_routing
        return ok, ("Llama4 with top_k 1, no renormalize, custom routing function" if ok else
                    f"Llama4 needs ungrouped, unbiased top_k 1 without renormalize and with the "
                    f"Llama-4 function (top_k={top_k}, renormalize={renormalize})")
    if custom_routing:
        return False, "custom routing function"
    if method == "DeepSeekV3":
        ok = use_grouped_topk and has_correction_bias and renormalize
        # topk.py:633: "The biased grouped router uses sigmoid regardless of scoring_func."
        return ok, ("DeepSeekV3 with grouped top-k, correction bias and renormalize" if ok else
                    "DeepSeekV3 needs grouped top-k + correction bias + renormalize (TopK: "
                    f"grouped={use_grouped_topk}, bias={has_correction_bias}, "
                    f"renormalize={renormalize})")
    if not plain:
        return False, (f"{method} needs ungrouped top-k without a bias (TopK: grouped="
                       f"{use_grouped_topk}, bias={has_correction_bias})")
    want = {"Renormalize": ("softmax", True), "RenormalizeNaive": ("softmax", True),
            "Default": ("softmax", False), "SigmoidRenorm": ("sigmoid", True),
            "Sigmoid": ("sigmoid", False)}.get(method)
    if want is None:
        return False, f"{method} is never bypassed"
    ok = (scoring_func, bool(renormalize)) == want
    return ok, (f"{method} matches {scoring_func} scoring, renormalize={renormalize}" if ok else
                f"{method} needs {want[0]} scoring with renormalize={want[1]} (TopK: "
                f"{scoring_func}, renormalize={renormalize})")


def _sglang_rule(name: str, spec: MoESpec, cfg: dict[str, Any]) -> tuple[str | None, bool]:
    """Methods chosen from the config: (method, TopK gets a custom routing function)."""
    renorm = cfg["renormalize"]
    if name == "cohere2":  # cohere2_moe.py:250-266
        if cfg["scoring_func"] == "sigmoid":
            return ("SigmoidRenorm", False) if renorm else ("Sigmoid", True)
        return ("RenormalizeNaive" if renorm else "Default"), False
    if name == "mimo_v2":  # mimo_v2.py:446-450
        return ("DeepSeekV3" if cfg["has_correction_bias"] and renorm else None), cfg["custom"]
    if name == "bailing":  # bailing_moe.py:305-310
        if renorm and cfg["use_grouped_topk"] and cfg["has_correction_bias"]:
            return "DeepSeekV3", False
        if renorm and not cfg["use_grouped_topk"] and not cfg["has_correction_bias"]:
            return "RenormalizeNaive", False
        return None, False
    raise KeyError(name)


def sglang_routing(spec: MoESpec) -> dict[str, Any] | None:
    """What SGLang 0.5.23 does with ``spec``: the model file, the method it binds to TopK, the
    TopKConfig fields it builds and whether ``--moe-runner-backend flashinfer_trtllm`` lets the
    kernel route in-kernel. None when SGLANG_ROWS has no row for the model type."""
    row = SGLANG_LABELS.get(spec.model_type)
    if row is None:
        return None
    grouped = row.grouped.resolve((spec.n_group or 0) > 0 or (spec.topk_group or 0) > 0)
    bias = row.bias.resolve(spec.has_correction_bias, noaux_tc=(
        spec.topk_method == "noaux_tc" if spec.topk_method is not None else spec.has_correction_bias))
    renorm = row.renorm.resolve(spec.renormalize)
    if row.scoring is None:
        scoring = ("sigmoid" if spec.custom_routing == "cohere2_sigmoid" else spec.scoring_func)
    else:
        scoring = row.scoring
    cfg: dict[str, Any] = {"top_k": spec.top_k, "use_grouped_topk": grouped,
                           "has_correction_bias": bias, "renormalize": bool(renorm),
                           "scoring_func": scoring, "custom": row.custom}
    method = row.method
    if method is not None and method.startswith("rule:"):
        method, cfg["custom"] = _sglang_rule(method[5:], spec, cfg)
    bypass, why = sglang_can_bypass_trtllm_routing(
        method, top_k=spec.top_k, use_grouped_topk=grouped, has_correction_bias=bias,
        renormalize=bool(renorm), scoring_func=scoring, custom_routing=cfg["custom"],
        sqrtsoftplus_log1p=spec.model_type == "deepseek_v41")
    return {"file": row.file, "method": method, "bypass": bypass, "why": why,
            "topk_config": cfg, "note": row.note, "source": row.source}


def _sglang_label(spec: MoESpec) -> str:
    if spec.model_type in SGLANG_NO_MODEL_FILE:
        return f"no SGLang 0.5.23 model file for model_type {spec.model_type!r}"
    d = sglang_routing(spec)
    if d is None:
        return f"unknown (model_type {spec.model_type!r} not in the SGLang 0.5.23 table)"
    note = f"; {d['note']}" if d["note"] else ""
    if d["method"] is None:
        return (f"none (SGLang routes in Python); {d['file']} binds no routing_method_type "
                f"to TopK{note}")
    head = f"{d['method']} (declared in {d['file']})"
    if d["bypass"]:
        return f"{head}; kernel may route with flashinfer_trtllm ({d['why']}){note}"
    return f"{head}; SGLang routes in Python: {d['why']}{note}"


def _pattern_warnings(spec: MoESpec, method: str) -> tuple[list[str], list[str], bool]:
    """(warnings, notes, implementable) for patterns no FlashInfer method implements (§2)."""
    warnings: list[str] = []
    notes: list[str] = []
    ok = True
    s = spec.scoring_func
    if s == "softmax" and (spec.topk_method == "group_limited_greedy" or (spec.n_group or 0) > 1):
        why = ("topk_method group_limited_greedy" if spec.topk_method == "group_limited_greedy"
               else f"softmax with n_group={spec.n_group}")
        warnings.append(
            f"group-limited softmax routing ({why}) is implemented by no FlashInfer method; "
            f"vLLM labels it {method}, which ignores the expert groups")
        ok = False
    if spec.has_correction_bias and s not in ("sigmoid", "sqrtsoftplus"):
        warnings.append(
            f"{s} + selection bias (as in ERNIE-4.5, LongCat) is implemented by no FlashInfer "
            "method; vLLM resolves it to Unspecified")
        ok = False
    if spec.zero_expert_num or spec.zero_expert_type:
        warnings.append(
            f"zero/identity experts (zero_expert_num={spec.zero_expert_num}, "
            f"zero_expert_type={spec.zero_expert_type!r}) are implemented by no FlashInfer method")
        ok = False
    if spec.custom_routing and spec.custom_routing not in _CUSTOM_METHODS:
        desc = _CUSTOM_DESCRIPTIONS.get(spec.custom_routing, f"custom routing {spec.custom_routing!r}")
        warnings.append(f"{desc} is implemented by no FlashInfer method; vLLM routes it in Python "
                        "(Custom)")
        ok = False
    if spec.num_hash_layers > 0:
        warnings.append(
            f"{spec.num_hash_layers} hash-routed layer(s) (DeepSeek-V4 tid2eid: experts = "
            "table[token_id]): hash-routed layers reject fused-routing kernels")
        ok = False
    if s not in ("softmax", "sigmoid", "sqrtsoftplus") and not spec.custom_routing:
        warnings.append(f"scoring_func {s!r} is not one vLLM's routers accept "
                        "(softmax, sigmoid, sqrtsoftplus)")
        ok = False
    if spec.linear_router_bias:
        notes.append("the router bias (gpt-oss mlp.router.bias) is part of the logits, not a "
                     "selection-only correction bias")
    return warnings, notes, ok


def _method_and_rule(spec: MoESpec, vv: str, label: str, vl):
    """(router, method, rule, the get_routing_method_type inputs or {}) for ``spec`` under vLLM ``vv``."""
    _, table_name = METHOD_TABLES[vv]
    renorm = bool(spec.renormalize)
    router = _select_router(spec, vv, renorm)
    inputs = dict(router.inputs)
    if router.method == "__custom__":
        method, why = _custom_method(spec, renorm, dict(vl.members))
        return router, method, f"{router.why} -> {method} ({why}; vLLM {label} CustomRoutingRouter)", {}
    if router.method is not None:  # get_routing_method_type is not consulted
        return router, router.method, f"{router.why} -> {router.method} (vLLM {label} {router.name})", {}
    method, row = get_routing_method_type(
        inputs["scoring_func"], inputs["top_k"], inputs["renormalize"],
        inputs["num_expert_group"], inputs["has_e_score_bias"],
        inputs["routed_scaling_factor"], vv)
    return router, method, f"{row.why} -> {method} ({table_name}; {router.name}: {router.why})", inputs


def resolve(
    spec: MoESpec,
    vllm_version: str = DEFAULT_VLLM,
    flashinfer_version: str = DEFAULT_FLASHINFER,
) -> RoutingResult:
    """The routing method vLLM ``vllm_version`` computes for ``spec`` and its ids (REFERENCE §3)."""
    vv = normalize_vllm_version(vllm_version)
    # The release the user typed ("0.19.1") names the result; a table key ("pre-39141") names itself.
    typed = vllm_version.strip()
    label = vv if typed in VLLM_LAYOUTS or vllm_release(typed) is None else typed.lstrip("vV")
    normalize_flashinfer_version(flashinfer_version)  # validates; BadInputError names the accepted ones
    vl = vllm_layout(vv)
    fl = flashinfer_layout(flashinfer_version)
    router, method, rule, inputs = _method_and_rule(spec, vv, label, vl)

    vllm_value = vl.members.get(method)
    fi_members = dict(fl.members)
    flashinfer_value = fi_members.get(method)
    internal = vllm_value is not None and vllm_value >= VLLM_INTERNAL_MIN
    flashinfer_name = None if (vllm_value is None or internal) else fl.name_for(vllm_value)

    warnings, notes, implementable = _pattern_warnings(spec, method)
    if spec.use_grouped_topk and (spec.n_group is None or spec.topk_group is None):
        warnings.append("grouped top-k requested without n_group/topk_group: vLLM's "
                        "create_fused_moe_router raises ValueError for this layer")
    if internal:
        warnings.insert(0,
            f"{method} ({vllm_value}) is a vLLM-internal routing type "
            f"({_INTERNAL_MEANING.get(method, 'internal')}); it must never reach a FlashInfer kernel")
    elif vllm_value is not None and flashinfer_name != method:
        meaning = (f"reads {vllm_value} as {flashinfer_name}" if flashinfer_name
                   else f"has no member {vllm_value}")
        warnings.append(
            f"enum drift: vLLM {label} sends {method} as {vllm_value}, but FlashInfer "
            f"{flashinfer_version} {meaning}"
            + (f" ({method} is {flashinfer_value} there)" if flashinfer_value is not None else ""))
    if not internal and method not in fi_members:
        warnings.append(f"FlashInfer {flashinfer_version} has no {method} routing method")
    if (method == "MiniMax2" and spec.routed_scaling_factor not in (None, 1.0)
            and not scale_applies("MiniMax2", flashinfer_version)):
        warnings.append(
            f"FlashInfer {flashinfer_version} MiniMax2 ignores routed_scaling_factor "
            f"({spec.routed_scaling_factor}); it is honoured from 0.6.13 (PR #3499)")

    fused = (implementable and not internal and method in fi_members
             and method not in ("Unspecified", "Custom", "Simulated"))
    if method == "Unspecified":
        rule += "; no FlashInfer kernel implements Unspecified"

    return RoutingResult(
        method=method,
        vllm_value=vllm_value,
        flashinfer_value=flashinfer_value,
        flashinfer_name=flashinfer_name,
        rule=rule,
        router=router.name,
        vllm_version=label,
        flashinfer_version=flashinfer_version,
        sglang_label=_sglang_label(spec),
        fused_routing_possible=fused,
        inputs=inputs,
        warnings=warnings,
        notes=notes,
    )
