"""Reference routers: what each FlashInfer routing method (and vLLM's DeepseekV4) computes.

This package root is import-light (no torch): it holds the declarative method table
:data:`METHODS` and the FlashInfer-version rules (which methods exist, where the routed scaling
factor and the renormalisation epsilon apply). The torch implementations live in
:mod:`moe_inspect.reference.routers` (imported only by ``verify`` / ``run-layer``)::

    from moe_inspect.reference.routers import route
    out = route("DeepSeekV3", logits, top_k=8, bias=b, n_group=8, topk_group=4,
                routed_scaling_factor=2.5)
    out.topk_ids, out.topk_weights

Every rule below was read from upstream sources; ``MethodInfo.source`` names them.
docs/routing-methods.md explains each method with worked examples.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, NamedTuple

from packaging.version import InvalidVersion, Version

from ..errors import BadInputError, UnsupportedError

__all__ = [
    "MethodInfo",
    "METHODS",
    "DEFAULT_FLASHINFER_VERSION",
    "RouterInputError",
    "UnimplementedRoutingMethod",
    "canonical_method",
    "parse_flashinfer_version",
    "method_available",
    "scale_applies",
    "sum_epsilon",
    "renormalize_naive_uses_renormalize_path",
]

DEFAULT_FLASHINFER_VERSION = "0.7.2.post1"

_FI = "flashinfer-ai/flashinfer"
_RUNNER = f"{_FI} csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_runner.cu"
_POLICY = f"{_FI} include/flashinfer/trtllm/fused_moe/RoutingCustomPolicy.cuh"
_PYREF = f"{_FI} tests/moe/trtllm_gen_fused_moe_utils.py"


class RouterInputError(BadInputError, ValueError):
    """Bad arguments to a reference router (shapes, k, groups, version string)."""


class UnimplementedRoutingMethod(UnsupportedError, ValueError):
    """The method is not implemented (Unspecified, Custom, unknown, or absent in that version)."""


class MethodInfo(NamedTuple):
    """One routing method: what it selects, how it weighs, and where that was read."""

    name: str
    selection: str  # formula for the selected set S (text)
    weights: str  # formula for the weights of S (text)
    uses_bias: bool  # a per-expert correction bias takes part in SELECTION (never in weights)
    renormalizes: bool  # weights over S sum to 1 (x scale) -- SigmoidRenorm: when norm_topk_prob
    weights_nonnegative: bool
    uses_groups: bool
    scale_applied: bool  # routed_scaling_factor multiplies the weights (at the default version)
    ranks_input_dtype: bool  # selection ranks the raw logits in their own dtype (no fp32 math)
    since: str | None  # first FlashInfer release whose routing runner implements it; None = old
    vllm_internal: bool  # never reaches FlashInfer (vLLM-internal enum id >= 100)
    source: str
    notes: str = ""

    @property
    def formula(self) -> str:
        return f"S = {self.selection}; w = {self.weights}"


def _m(**kw) -> tuple[str, MethodInfo]:
    info = MethodInfo(**kw)
    return info.name, info


METHODS: Mapping[str, MethodInfo] = MappingProxyType(
    dict(
        (
            _m(
                name="Default",
                selection="topk(softmax(z))",
                weights="softmax(z)_i over ALL experts (not renormalised, sum < 1)",
                uses_bias=False, renormalizes=False, weights_nonnegative=True,
                uses_groups=False, scale_applied=False, ranks_input_dtype=False,
                since="0.6.8rc1", vllm_internal=False,
                source=f"{_RUNNER} (Softmax preprocess, no postprocess); {_PYREF} "
                "routing_reference_default; before 0.6.8 the runner had no Default branch",
            ),
            _m(
                name="Renormalize",
                selection="topk(z) ranked in the logits' own dtype",
                weights="softmax over the k selected logits (fp32)",
                uses_bias=False, renormalizes=True, weights_nonnegative=True,
                uses_groups=False, scale_applied=False, ranks_input_dtype=True,
                since=None, vllm_internal=False,
                source=f"{_RUNNER} (no preprocess, Softmax postprocess); {_PYREF} "
                "routing_reference_renormalize",
            ),
            _m(
                name="RenormalizeNaive",
                selection="topk(z) ranked in the logits' own dtype (since 0.6.8); "
                "before 0.6.8 topk(softmax(z)) in fp32",
                weights="softmax over the k selected logits (since 0.6.8); before: "
                "softmax(z)_i / sum_S softmax(z)",
                uses_bias=False, renormalizes=True, weights_nonnegative=True,
                uses_groups=False, scale_applied=False, ranks_input_dtype=True,
                since=None, vllm_internal=False,
                source=f"{_RUNNER} (maps RenormalizeNaive to the Renormalize policy since "
                "0.6.8); v0.6.7 csrc/trtllm_fused_moe_runner.cu (mDoSoftmaxBeforeTopK)",
                notes="mathematically equal to Renormalize; differs only where softmax "
                "underflows or rounds two probabilities to the same fp32 value",
            ),
            _m(
                name="TopK",
                selection="topk(z) ranked in the logits' own dtype",
                weights="z_i, the raw logits (may be negative)",
                uses_bias=False, renormalizes=False, weights_nonnegative=False,
                uses_groups=False, scale_applied=False, ranks_input_dtype=True,
                since=None, vllm_internal=False,
                source=f"{_RUNNER} (no preprocess, no postprocess); {_PYREF} "
                "routing_reference_topk",
            ),
            _m(
                name="SigmoidRenorm",
                selection="topk(sigmoid(z))",
                weights="sigmoid(z_i) / max(sum_S sigmoid, 1e-20) if norm_topk_prob "
                "(default) else sigmoid(z_i)",
                uses_bias=False, renormalizes=True, weights_nonnegative=True,
                uses_groups=False, scale_applied=False, ranks_input_dtype=False,
                since="0.6.8rc1", vllm_internal=False,
                source=f"{_RUNNER} (Sigmoid preprocess, SumNormalize postprocess); {_POLICY} "
                f"SumNormalizePostprocess (fmaxf(sum, 1e-20f)); {_PYREF} "
                "routing_reference_sigmoid_renorm",
                notes="the only method that reads norm_topk_prob",
            ),
            _m(
                name="Sigmoid",
                selection="topk(sigmoid(z))",
                weights="sigmoid(z_i), no renormalisation",
                uses_bias=False, renormalizes=False, weights_nonnegative=True,
                uses_groups=False, scale_applied=False, ranks_input_dtype=False,
                since="0.6.11rc1", vllm_internal=False,
                source=f"{_RUNNER} (Sigmoid preprocess, SumNormalize with normTopkProb=false)",
            ),
            _m(
                name="TopKSigmoid",
                selection="topk(z) ranked in the logits' own dtype",
                weights="sigmoid(z_i)",
                uses_bias=False, renormalizes=False, weights_nonnegative=True,
                uses_groups=False, scale_applied=False, ranks_input_dtype=True,
                since="0.6.18rc4", vllm_internal=False,
                source=f"{_RUNNER} (no preprocess, Sigmoid postprocess); {_PYREF} "
                "routing_reference_topk_sigmoid",
                notes="differs from Sigmoid only where sigmoid saturates to exactly 1.0 or 0.0",
            ),
            _m(
                name="MiniMax2",
                selection="topk(sigmoid(z) + b), bias for selection only",
                weights="s' * sigmoid(z_i) / (sum_S sigmoid(z_j) + 1e-20); s' = 1.0 in "
                "0.6.8-0.6.12, s' = s from 0.6.13",
                uses_bias=True, renormalizes=True, weights_nonnegative=True,
                uses_groups=False, scale_applied=True, ranks_input_dtype=False,
                since="0.6.8rc1", vllm_internal=False,
                source=f"{_RUNNER} (SigmoidBias preprocess, ScaledSumNormalize postprocess, "
                "mSumEpsilon=1e-20; mRouteScale=1.0f until v0.6.12, routedScalingFactor from "
                f"v0.6.13, PR #3499); {_PYREF} routing_reference_minimax2",
            ),
            _m(
                name="DeepSeekV3",
                selection="u = sigmoid(z) + b; n_group <= 1: topk(u); n_group = G > 1: groups of "
                "E/G consecutive experts scored by the sum of their two largest u, keep the top "
                "topk_group groups, topk(u) over their experts (others masked to -inf)",
                weights="s * sigmoid(z_i) / (sum_S sigmoid(z_j) + eps), unbiased sigmoid; eps "
                "= 0 until 0.6.14 (ungrouped) / 0.6.16 (grouped), 1e-20 from 0.6.15 / 0.6.17",
                uses_bias=True, renormalizes=True, weights_nonnegative=True,
                uses_groups=True, scale_applied=True, ranks_input_dtype=False,
                since=None, vllm_internal=False,
                source=f"{_RUNNER} (n_group<=1: routingCustom SigmoidBias+ScaledSumNormalize, "
                "mSumEpsilon=1e-20 from v0.6.15, PR #3803; grouped: routingDeepSeek, "
                "mSumEpsilon=1e-20 from v0.6.17, PR #3946); "
                f"{_FI} csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_deepseek.cu; "
                f"{_PYREF} noaux_tc_ref",
            ),
            _m(
                name="Llama4",
                selection="{argmax z} ranked in the logits' own dtype; top_k must be 1",
                weights="sigmoid(z_S), applied to the expert INPUT (use_routing_scales_on_input)",
                uses_bias=False, renormalizes=False, weights_nonnegative=True,
                uses_groups=False, scale_applied=False, ranks_input_dtype=True,
                since=None, vllm_internal=False,
                source=f"{_RUNNER} (FLASHINFER_CHECK topK == 1); {_FI} "
                "csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_llama4.cu",
            ),
            _m(
                name="DeepseekV4",
                selection="topk(sqrt(softplus(z)) + b), bias for selection only; hash layers: "
                "S = hash_table[token_id] (table order)",
                weights="s * sqrtsoftplus(z_i) / max(sum_S sqrtsoftplus(z_j), 1e-20), always "
                "renormalised (hash layers too)",
                uses_bias=True, renormalizes=True, weights_nonnegative=True,
                uses_groups=False, scale_applied=True, ranks_input_dtype=False,
                since=None, vllm_internal=True,
                source="vllm-project/vllm vllm/model_executor/layers/fused_moe/router/"
                "fused_topk_bias_router.py (_topk_softplus_sqrt_torch); csrc/moe/"
                "topk_softplus_sqrt_kernels.cu (dsv4HashTopkSoftplusSqrt); router/dsv4_topk.py",
                notes="vLLM-internal id 100; never passed to a FlashInfer kernel; vLLM writes "
                "fp32 weights (pass output_dtype=None to compare)",
            ),
        )
    )
)

# Versions at which FlashInfer's routing arithmetic changed (release candidates included: each
# change is present from the first rc of the release that ships it).
_MINIMAX2_SCALE_SINCE = Version("0.6.13rc1")  # PR #3499
_DSV3_FLAT_EPS_SINCE = Version("0.6.15rc1")  # PR #3803
_DSV3_GROUPED_EPS_SINCE = Version("0.6.17rc1")  # PR #3946
_NAIVE_AS_RENORM_SINCE = Version("0.6.8rc1")  # routingCustom policies
SUM_EPSILON = 1e-20

_ALIASES = {name.lower(): name for name in METHODS}


def canonical_method(method: str) -> str:
    """The METHODS key for ``method`` (case-insensitive); UnimplementedRoutingMethod otherwise."""
    key = _ALIASES.get(str(method).strip().lower()) if isinstance(method, str) else None
    if key is None:
        raise UnimplementedRoutingMethod(
            f"Unimplemented routing method {method!r} (known: {', '.join(METHODS)})"
        )
    return key


def parse_flashinfer_version(version: str) -> Version:
    """Parse a FlashInfer version string such as "0.7.2.post1" or "0.6.18rc4"."""
    try:
        return Version(str(version).strip())
    except InvalidVersion:
        raise RouterInputError(f"flashinfer_version {version!r} is not a version") from None


def method_available(method: str, flashinfer_version: str = DEFAULT_FLASHINFER_VERSION) -> bool:
    """Whether FlashInfer ``flashinfer_version``'s routing runner implements ``method``.

    vLLM-internal methods (DeepseekV4) are always "available" to the reference: they do not
    depend on FlashInfer.
    """
    info = METHODS[canonical_method(method)]
    if info.vllm_internal or info.since is None:
        return True
    return parse_flashinfer_version(flashinfer_version) >= Version(info.since)


def scale_applies(method: str, flashinfer_version: str = DEFAULT_FLASHINFER_VERSION) -> bool:
    """Whether the routing kernel multiplies the weights by routed_scaling_factor."""
    name = canonical_method(method)
    if name == "MiniMax2":
        return parse_flashinfer_version(flashinfer_version) >= _MINIMAX2_SCALE_SINCE
    return METHODS[name].scale_applied


def sum_epsilon(
    method: str, flashinfer_version: str = DEFAULT_FLASHINFER_VERSION, *, grouped: bool = False
) -> float:
    """The epsilon in the renormalisation denominator.

    MiniMax2 / DeepSeekV3: ``sum + eps``. SigmoidRenorm and DeepseekV4 use ``max(sum, eps)``
    instead (returned here as the same 1e-20). Methods without a sum-renormalisation: 0.0.
    """
    name = canonical_method(method)
    v = parse_flashinfer_version(flashinfer_version)
    if name == "DeepSeekV3":
        since = _DSV3_GROUPED_EPS_SINCE if grouped else _DSV3_FLAT_EPS_SINCE
        return SUM_EPSILON if v >= since else 0.0
    if name in ("MiniMax2", "SigmoidRenorm", "DeepseekV4"):
        return SUM_EPSILON
    return 0.0


def renormalize_naive_uses_renormalize_path(
    flashinfer_version: str = DEFAULT_FLASHINFER_VERSION,
) -> bool:
    """Since 0.6.8 the kernel runs RenormalizeNaive as Renormalize (topk on logits, softmax)."""
    return parse_flashinfer_version(flashinfer_version) >= _NAIVE_AS_RENORM_SINCE
