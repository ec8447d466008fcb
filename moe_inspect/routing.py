"""Which RoutingMethodType vLLM computes for a model, and what that id means elsewhere.

``resolve(spec)`` follows REFERENCE.md §3 exactly:

1. pick the vLLM router class (§3.2, ``router/router_factory.py::create_fused_moe_router``,
   first match wins) — the router decides the inputs of step 2;
2. evaluate ``get_routing_method_type`` (§3.1) as a first-match table for the chosen vLLM
   version (``METHOD_TABLES``);
3. translate: the member's value in vLLM's enum, the value FlashInfer's enum of the chosen
   release gives the same NAME, and what vLLM's INTEGER means to that FlashInfer (drift);
4. SGLang 0.5.23's hard-coded label (§3.4), and warnings for routing patterns that no
   FlashInfer method implements (§2).

Plain data in, plain data out: no torch, no CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .enums import (
    DEFAULT_FLASHINFER,
    DEFAULT_VLLM,
    VLLM_INTERNAL_MIN,
    flashinfer_layout,
    normalize_flashinfer_version,
    normalize_vllm_version,
    vllm_layout,
)
from .reference import scale_applies
from .spec import MoESpec, RoutingResult

__all__ = ["MethodRow", "METHOD_TABLES", "SGLANG_LABELS", "get_routing_method_type", "resolve"]

# --------------------------------------------------------------------------------------------
# get_routing_method_type(scoring_func, top_k, renormalize, num_expert_group, has_e_score_bias
#                         [, routed_scaling_factor])  — first matching row wins.
# --------------------------------------------------------------------------------------------
ANY = None


@dataclass(frozen=True)
class MethodRow:
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

METHOD_TABLES: dict[str, tuple[tuple[MethodRow, ...], str]] = {
    "pre-39141": (_PRE_39141, "vLLM pre-#39141 get_routing_method_type"),
    "39141": (_V39141, "vLLM #39141 get_routing_method_type"),
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
# SGLang 0.5.23: routing_method_type hard-coded per model file (REFERENCE §3.4).
# model_type -> (label | None, model file). "cohere2" is resolved from scoring/renormalize.
# --------------------------------------------------------------------------------------------
SGLANG_LABELS: dict[str, tuple[str | None, str]] = {
    "deepseek_v2": ("DeepSeekV3", "deepseek_v2.py"),
    "deepseek_v3": ("DeepSeekV3", "deepseek_v2.py"),
    "deepseek_v32": ("DeepSeekV3", "deepseek_v2.py"),
    "kimi_k2": ("DeepSeekV3", "deepseek_v2.py"),
    "glm4_moe": ("DeepSeekV3", "glm4_moe.py"),
    "nemotron_h": ("DeepSeekV3", "nemotron_h.py"),
    "mimo_v2": ("DeepSeekV3", "mimo_v2.py"),
    "mimo_v2_flash": ("DeepSeekV3", "mimo_v2.py"),
    "qwen3_moe": ("Renormalize", "qwen3_moe.py"),
    "qwen2_moe": ("RenormalizeNaive", "qwen2_moe.py"),
    "llama4": ("Llama4", "llama4.py"),
    "llama4_text": ("Llama4", "llama4.py"),
    "cohere2_moe": ("cohere2", "cohere2_moe.py"),
    "minimax_m2": (None, "minimax_m2.py"),
    "gpt_oss": (None, "gpt_oss.py"),
    "mixtral": (None, "mixtral.py"),
    "qwen3_next": (None, "qwen3_next.py"),
    "deepseek_v4": (None, "deepseek_v4.py"),
}
# _can_bypass_trtllm_routing (srt/layers/moe/topk.py) never lets the kernel route these:
_SGLANG_NEVER_BYPASS = frozenset({"MiniMax2", "TopK", "Unspecified"})
_SGLANG_NONE = "none (SGLang routes in Python)"

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


def _sglang_label(spec: MoESpec) -> str:
    entry = SGLANG_LABELS.get(spec.model_type)
    if entry is None:
        return f"unknown (model_type {spec.model_type!r} not in the SGLang 0.5.23 table)"
    label, model_file = entry
    if label is None:
        return f"{_SGLANG_NONE}; {model_file} sets no routing_method_type"
    if label == "cohere2":
        if spec.scoring_func == "sigmoid" or spec.custom_routing == "cohere2_sigmoid":
            label = "SigmoidRenorm" if spec.renormalize else "Sigmoid"
        else:
            label = "RenormalizeNaive" if spec.renormalize else "Default"
    if label in _SGLANG_NEVER_BYPASS:
        return f"{label} (hard-coded in {model_file}); SGLang never lets the kernel route it"
    implied = _semantic_label(spec)
    if implied is not None and _same_semantics(label, implied):
        return f"{label} (hard-coded in {model_file}); kernel may route (matches the config)"
    return (f"{label} (hard-coded in {model_file}); does not match the config "
            f"({implied or 'no FlashInfer method'}) -> SGLang routes in Python")


def _semantic_label(spec: MoESpec) -> str | None:
    """The FlashInfer method that computes what the checkpoint's routing really does."""
    if spec.custom_routing == "llama4":
        return "Llama4"
    if spec.custom_routing and spec.custom_routing != "cohere2_sigmoid":
        return None
    if spec.zero_expert_num or spec.zero_expert_type or spec.num_hash_layers:
        return None
    s = spec.scoring_func
    if s == "sigmoid" or spec.custom_routing == "cohere2_sigmoid":
        if spec.has_correction_bias:
            return "DeepSeekV3" if spec.renormalize else None
        return "SigmoidRenorm" if spec.renormalize else "Sigmoid"
    if s == "softmax" and not spec.has_correction_bias:
        if spec.topk_method == "group_limited_greedy" or (spec.n_group or 0) > 1:
            return None
        return "RenormalizeNaive" if spec.renormalize else "Default"
    return None


def _same_semantics(a: str, b: str) -> bool:
    equiv = {"Renormalize": "RenormalizeNaive", "MiniMax2": "DeepSeekV3"}
    return equiv.get(a, a) == equiv.get(b, b)


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


def resolve(
    spec: MoESpec,
    vllm_version: str = DEFAULT_VLLM,
    flashinfer_version: str = DEFAULT_FLASHINFER,
) -> RoutingResult:
    """The routing method vLLM ``vllm_version`` computes for ``spec`` and its ids (REFERENCE §3)."""
    vv = normalize_vllm_version(vllm_version)
    normalize_flashinfer_version(flashinfer_version)  # validates; BadInputError names the accepted ones
    vl = vllm_layout(vv)
    fl = flashinfer_layout(flashinfer_version)
    _, table_name = METHOD_TABLES[vv]
    renorm = bool(spec.renormalize)

    router = _select_router(spec, vv, renorm)
    inputs = dict(router.inputs)
    if router.method == "__custom__":
        method, why = _custom_method(spec, renorm, dict(vl.members))
        rule = f"{router.why} -> {method} ({why}; vLLM {vv} CustomRoutingRouter)"
        inputs = {}  # get_routing_method_type is not consulted
    elif router.method is not None:
        method = router.method
        rule = f"{router.why} -> {method} (vLLM {vv} {router.name})"
        inputs = {}
    else:
        method, row = get_routing_method_type(
            inputs["scoring_func"], inputs["top_k"], inputs["renormalize"],
            inputs["num_expert_group"], inputs["has_e_score_bias"],
            inputs["routed_scaling_factor"], vv)
        rule = f"{row.why} -> {method} ({table_name}; {router.name}: {router.why})"

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
            f"enum drift: vLLM {vv} sends {method} as {vllm_value}, but FlashInfer "
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
        vllm_version=vv,
        flashinfer_version=flashinfer_version,
        sglang_label=_sglang_label(spec),
        fused_routing_possible=fused,
        inputs=inputs,
        warnings=warnings,
        notes=notes,
    )
