"""Torch reference implementations of every FlashInfer routing method (plus vLLM's DeepseekV4).

All functions are vectorised over tokens and run on CPU or GPU. Conventions, shared by every
method (they are what the FlashInfer routing kernels do):

* ``logits`` is ``[T, E]``; ``topk_ids`` is ``int32 [T, k]``; ``topk_weights`` is ``[T, k]``.
* Ids come out sorted by DESCENDING selection score; equal scores go to the LOWER expert
  index (the kernels pack ``65535 - idx`` under the score bits, RoutingKernelTopK.cuh). The one
  exception is a DeepseekV4 hash layer, whose ids keep the order of the hash table row.
* The correction bias (MiniMax2, DeepSeekV3, DeepseekV4) only picks experts; the weights use
  the unbiased scores. Methods that do not use a bias ignore it, as the kernels do.
* Renormalize, RenormalizeNaive (>= 0.6.8), TopK, TopKSigmoid and Llama4 rank the logits as
  given (bf16 logits are ranked as bf16); everything else is computed in fp32.
* Sigmoid is computed as the kernels do, ``0.5 * tanh(0.5 * x) + 0.5`` in fp32
  (``sigmoid_accurate`` in include/flashinfer/trtllm/fused_moe/RoutingKernel.cuh): it
  saturates to exactly 0.0 / 1.0 for |x| >~ 18, which matters for ties and for the
  0/0 case of DeepSeekV3's epsilon.
* Weights are finally rounded to ``output_dtype`` (bf16 by default, as the kernels write them;
  ``None`` keeps fp32).

Agreement with the GPU kernels is exact for ids (barring inputs where fp32 ulp differences of
exp/tanh decide a near tie) and to 1 bf16 ulp for weights (warp reductions sum in a different
order than torch).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import (
    DEFAULT_FLASHINFER_VERSION,
    METHODS,
    MethodInfo,
    RouterInputError,
    UnimplementedRoutingMethod,
    canonical_method,
    method_available,
    renormalize_naive_uses_renormalize_path,
    scale_applies,
    sum_epsilon,
)

__all__ = [
    "METHODS",
    "MethodInfo",
    "RouterOutput",
    "RouterInputError",
    "UnimplementedRoutingMethod",
    "route",
    "stable_topk",
    "kernel_sigmoid",
    "sqrt_softplus",
    "route_default",
    "route_renormalize",
    "route_renormalize_naive",
    "route_topk",
    "route_sigmoid_renorm",
    "route_sigmoid",
    "route_topk_sigmoid",
    "route_minimax2",
    "route_deepseek_v3",
    "route_llama4",
    "route_deepseek_v4",
    "KERNELS",
    "kernel_warp_sum",
    "route_trtllm_gen",
]

@dataclass(frozen=True)
class RouterOutput:
    topk_ids: torch.Tensor  # int32 [T, k], descending selection score (hash layers: table order)
    topk_weights: torch.Tensor  # [T, k] in output_dtype (fp32 when output_dtype is None)
    scores: torch.Tensor | None = None  # fp32 [T, E] selection keys (debug; -inf = masked)


# ----------------------------------------------------------------------------------- helpers
def stable_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k along the last dim; equal values go to the lower index (exact, deterministic).

    A stable descending sort keeps equal elements in index order, so the first k entries are
    exactly the kernels' choice. ``torch.topk`` does not promise any tie order. Like the kernels,
    which compare the raw (order-preserving) float bits, +0.0 ranks above -0.0.
    """
    neg_zero = (x == 0) & torch.signbit(x)
    if bool(neg_zero.any()):
        # lexicographic (value desc, -0.0 after +0.0, index asc) by two stable sorts
        pre = torch.argsort(neg_zero.to(torch.int8), dim=-1, stable=True)
        values, order = torch.sort(x.gather(-1, pre), dim=-1, descending=True, stable=True)
        idx = pre.gather(-1, order)
    else:
        values, idx = torch.sort(x, dim=-1, descending=True, stable=True)
    return values[..., :k], idx[..., :k]


def kernel_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """FlashInfer's ``sigmoid_accurate``: 0.5 * tanh(0.5 * x) + 0.5, in fp32."""
    x = x.float()
    return 0.5 * torch.tanh(0.5 * x) + 0.5


def sqrt_softplus(x: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V4 score: sqrt(softplus(x)) in fp32 (vLLM _topk_softplus_sqrt_torch)."""
    return torch.sqrt(F.softplus(x.float()))


def _finish(weights: torch.Tensor, output_dtype: torch.dtype | None) -> torch.Tensor:
    weights = weights.float()
    return weights if output_dtype is None else weights.to(output_dtype)


def _ids(idx: torch.Tensor) -> torch.Tensor:
    return idx.to(torch.int32)


def _check_logits(logits: torch.Tensor, top_k: int) -> tuple[int, int]:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise RouterInputError(f"logits must be a 2-D tensor [tokens, experts], got {shape}")
    if not logits.is_floating_point():
        raise RouterInputError(f"logits must be floating point, got {logits.dtype}")
    t, e = logits.shape
    try:
        k = operator.index(top_k)
    except TypeError:
        k = None
    if k is None or isinstance(top_k, bool) or not 1 <= k <= e:
        raise RouterInputError(f"top_k={top_k!r} must be an integer in 1..{e} (num experts)")
    return t, e


def _bias_row(bias: torch.Tensor | None, e: int, like: torch.Tensor) -> torch.Tensor:
    """Bias as fp32 [1, E] (zeros when absent: the kernels dereference it, vLLM passes zeros)."""
    if bias is None:
        return torch.zeros(1, e, dtype=torch.float32, device=like.device)
    if not isinstance(bias, torch.Tensor) or bias.numel() != e:
        got = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise RouterInputError(f"bias must have {e} elements (one per expert), got {got}")
    return bias.reshape(1, e).to(device=like.device, dtype=torch.float32)


def _scale(routed_scaling_factor: float | None) -> float:
    return 1.0 if routed_scaling_factor is None else float(routed_scaling_factor)


def _scaled_sum_normalize(
    raw: torch.Tensor, scale: float, eps: float
) -> torch.Tensor:
    """ScaledSumNormalizePostprocess: raw * scale / (sum + eps), in that order, fp32."""
    total = raw.sum(dim=-1, keepdim=True)
    return raw * scale / (total + eps)


# ----------------------------------------------------------------------------------- methods
def route_default(logits, *, top_k, output_dtype=torch.bfloat16, **_) -> RouterOutput:
    """Default: S = topk(softmax(z)) in fp32; w = softmax(z)_S (NOT renormalised)."""
    _check_logits(logits, top_k)
    probs = torch.softmax(logits.float(), dim=-1)
    vals, idx = stable_topk(probs, top_k)
    return RouterOutput(_ids(idx), _finish(vals, output_dtype), probs)


def route_renormalize(logits, *, top_k, output_dtype=torch.bfloat16, **_) -> RouterOutput:
    """Renormalize: S = topk(z) ranked in the input dtype; w = softmax over the k logits (fp32)."""
    _check_logits(logits, top_k)
    vals, idx = stable_topk(logits, top_k)
    w = torch.softmax(vals.float(), dim=-1)
    return RouterOutput(_ids(idx), _finish(w, output_dtype), logits.float())


def route_renormalize_naive(
    logits, *, top_k, output_dtype=torch.bfloat16,
    flashinfer_version=DEFAULT_FLASHINFER_VERSION, **_,
) -> RouterOutput:
    """RenormalizeNaive: since 0.6.8 the Renormalize kernel path; before, softmax->topk->sum."""
    if renormalize_naive_uses_renormalize_path(flashinfer_version):
        return route_renormalize(logits, top_k=top_k, output_dtype=output_dtype)
    _check_logits(logits, top_k)
    probs = torch.softmax(logits.float(), dim=-1)
    vals, idx = stable_topk(probs, top_k)
    w = vals / vals.sum(dim=-1, keepdim=True)
    return RouterOutput(_ids(idx), _finish(w, output_dtype), probs)


def route_topk(logits, *, top_k, output_dtype=torch.bfloat16, **_) -> RouterOutput:
    """TopK: S = topk(z) ranked in the input dtype; w = z_S (raw logits, may be negative)."""
    _check_logits(logits, top_k)
    vals, idx = stable_topk(logits, top_k)
    return RouterOutput(_ids(idx), _finish(vals, output_dtype), logits.float())


def route_sigmoid_renorm(
    logits, *, top_k, norm_topk_prob=True, output_dtype=torch.bfloat16, **_
) -> RouterOutput:
    """SigmoidRenorm: S = topk(sig(z)); w = sig / max(sum_S sig, 1e-20) if norm_topk_prob."""
    _check_logits(logits, top_k)
    sig = kernel_sigmoid(logits)
    vals, idx = stable_topk(sig, top_k)
    if norm_topk_prob:
        vals = vals / torch.clamp(vals.sum(dim=-1, keepdim=True), min=sum_epsilon("SigmoidRenorm"))
    return RouterOutput(_ids(idx), _finish(vals, output_dtype), sig)


def route_sigmoid(logits, *, top_k, output_dtype=torch.bfloat16, **_) -> RouterOutput:
    """Sigmoid: S = topk(sig(z)); w = sig(z)_S, no renormalisation."""
    return route_sigmoid_renorm(logits, top_k=top_k, norm_topk_prob=False,
                                output_dtype=output_dtype)


def route_topk_sigmoid(logits, *, top_k, output_dtype=torch.bfloat16, **_) -> RouterOutput:
    """TopKSigmoid: S = topk(z) ranked in the input dtype; w = sig(z)_S."""
    _check_logits(logits, top_k)
    vals, idx = stable_topk(logits, top_k)
    return RouterOutput(_ids(idx), _finish(kernel_sigmoid(vals), output_dtype), logits.float())


def _sigmoid_bias_route(logits, bias, top_k, scale, eps, output_dtype) -> RouterOutput:
    _, e = _check_logits(logits, top_k)
    sig = kernel_sigmoid(logits)
    u = sig + _bias_row(bias, e, logits)
    _, idx = stable_topk(u, top_k)
    w = _scaled_sum_normalize(torch.gather(sig, -1, idx), scale, eps)
    return RouterOutput(_ids(idx), _finish(w, output_dtype), u)


def route_minimax2(
    logits, *, top_k, bias=None, routed_scaling_factor=None,
    flashinfer_version=DEFAULT_FLASHINFER_VERSION, output_dtype=torch.bfloat16, **_,
) -> RouterOutput:
    """MiniMax2: S = topk(sig(z) + b); w = s' * sig / (sum_S sig + 1e-20).

    s' = 1.0 for FlashInfer 0.6.8-0.6.12 (the kernel hard-coded it), s from 0.6.13.
    """
    scale = _scale(routed_scaling_factor) if scale_applies("MiniMax2", flashinfer_version) else 1.0
    return _sigmoid_bias_route(logits, bias, top_k, scale,
                               sum_epsilon("MiniMax2", flashinfer_version), output_dtype)


def route_deepseek_v3(
    logits, *, top_k, bias=None, n_group=None, topk_group=None, routed_scaling_factor=None,
    flashinfer_version=DEFAULT_FLASHINFER_VERSION, output_dtype=torch.bfloat16, **_,
) -> RouterOutput:
    """DeepSeekV3 (noaux_tc): sigmoid + bias selection (grouped when n_group > 1), weights from
    the unbiased sigmoid, renormalised, times s.  eps = 0 before 0.6.15 (ungrouped) / 0.6.17
    (grouped), 1e-20 after; with eps = 0 an all-zero sigmoid row gives NaN, as on the GPU.
    """
    scale = _scale(routed_scaling_factor)
    if n_group is None or n_group <= 1:
        eps = sum_epsilon("DeepSeekV3", flashinfer_version, grouped=False)
        return _sigmoid_bias_route(logits, bias, top_k, scale, eps, output_dtype)

    t, e = _check_logits(logits, top_k)
    g = int(n_group)
    if e % g:
        raise RouterInputError(f"n_group={g} does not divide the number of experts {e}")
    per = e // g
    if per < 2:
        raise RouterInputError(f"n_group={g} leaves {per} expert per group; the group score "
                               "needs at least 2")
    if topk_group is None or not 1 <= int(topk_group) <= g:
        raise RouterInputError(f"topk_group={topk_group!r} must be in 1..n_group={g}")
    kg = int(topk_group)
    if top_k > kg * per:
        raise RouterInputError(f"top_k={top_k} exceeds the {kg * per} experts of the "
                               f"topk_group={kg} kept groups")

    sig = kernel_sigmoid(logits)
    u = sig + _bias_row(bias, e, logits)
    grouped = u.view(t, g, per)
    group_score = torch.topk(grouped, 2, dim=-1).values.sum(dim=-1)  # top-2 SUM per group
    _, keep_groups = stable_topk(group_score, kg)
    keep = torch.zeros(t, g, dtype=torch.bool, device=u.device)
    keep.scatter_(1, keep_groups, True)
    masked = u.masked_fill(~keep.repeat_interleave(per, dim=1), float("-inf"))
    _, idx = stable_topk(masked, top_k)
    eps = sum_epsilon("DeepSeekV3", flashinfer_version, grouped=True)
    w = _scaled_sum_normalize(torch.gather(sig, -1, idx), scale, eps)
    return RouterOutput(_ids(idx), _finish(w, output_dtype), masked)


def route_llama4(logits, *, top_k, output_dtype=torch.bfloat16, **_) -> RouterOutput:
    """Llama4: S = {argmax z} (k must be 1); w = sig(z_S), applied to the expert input."""
    if top_k != 1:
        raise RouterInputError(f"Llama4 routing needs top_k == 1, got top_k={top_k!r}")
    _check_logits(logits, top_k)
    vals, idx = stable_topk(logits, 1)
    return RouterOutput(_ids(idx), _finish(kernel_sigmoid(vals), output_dtype), logits.float())


def route_deepseek_v4(
    logits, *, top_k, bias=None, routed_scaling_factor=None, token_ids=None, hash_table=None,
    output_dtype=torch.bfloat16, **_,
) -> RouterOutput:
    """vLLM DeepseekV4: S = topk(sqrtsoftplus(z) + b); w = s * sp / max(sum_S sp, 1e-20).

    Hash layers (``hash_table`` [vocab, k] = the checkpoint's ``tid2eid``, plus ``token_ids``
    [T]): S = hash_table[token_ids] in table order, weights from the same unbiased scores at
    those ids, renormalised and scaled (vLLM _topk_softplus_sqrt_torch / dsv4HashTopkSoftplusSqrt).
    """
    t, e = _check_logits(logits, top_k)
    scale = _scale(routed_scaling_factor)
    sp = sqrt_softplus(logits)
    if (hash_table is None) != (token_ids is None):
        raise RouterInputError("DeepseekV4 hash routing needs both hash_table and token_ids")
    if hash_table is not None:
        if hash_table.dim() != 2 or hash_table.shape[1] != top_k:
            raise RouterInputError(f"hash_table must be [vocab, top_k={top_k}], got "
                                   f"{tuple(hash_table.shape)}")
        tok = torch.as_tensor(token_ids, device=hash_table.device).reshape(-1).long()
        if tok.numel() != t:
            raise RouterInputError(f"token_ids has {tok.numel()} entries for {t} tokens")
        if tok.numel() and (tok.min() < 0 or tok.max() >= hash_table.shape[0]):
            raise RouterInputError(f"token_ids out of range for a hash_table of "
                                   f"{hash_table.shape[0]} rows")
        idx = hash_table[tok].long().to(logits.device)
        if idx.numel() and (idx.min() < 0 or idx.max() >= e):
            raise RouterInputError(f"hash_table holds expert ids outside 0..{e - 1}")
        keys = sp
    else:
        keys = sp + _bias_row(bias, e, logits)
        _, idx = stable_topk(keys, top_k)
    raw = torch.gather(sp, -1, idx)
    w = raw / torch.clamp(raw.sum(dim=-1, keepdim=True), min=sum_epsilon("DeepseekV4")) * scale
    return RouterOutput(_ids(idx), _finish(w, output_dtype), keys)


# ----------------------------------------------------------------------------------- kernel-exact
#: kernel-exact references: route(..., kernel=...) reproduces that kernel's own arithmetic
KERNELS = ("trtllm-gen",)
_TRTLLM_GEN_METHODS = ("Default", "Renormalize", "RenormalizeNaive", "TopK", "SigmoidRenorm", "Sigmoid",
                       "TopKSigmoid", "MiniMax2", "DeepSeekV3", "Llama4")
_KERNEL_EPS = 1e-20  # runner.cu: mSumEpsilon = 1e-20f for DeepSeekV3 (both paths) and MiniMax2


def kernel_warp_sum(vals: torch.Tensor) -> torch.Tensor:
    """fp32 sum of [T, k<=32] values in the order of ``cg::reduce(warp, x, cg::plus<float>())``:
    a 32-lane xor butterfly (offsets 16, 8, 4, 2, 1) over the values padded with zeros. For k = 8:
    ((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7)). Returns [T, 1]."""
    t, k = vals.shape
    if k > 32:
        raise RouterInputError(f"a warp reduction sums at most 32 values, got {k}")
    lanes = torch.zeros(t, 32, dtype=torch.float32, device=vals.device)
    lanes[:, :k] = vals.float()
    lane = torch.arange(32, device=vals.device)
    for off in (16, 8, 4, 2, 1):
        lanes = lanes + lanes[:, lane ^ off]
    return lanes[:, :1]


def _kernel_scaled_norm(sig_sel: torch.Tensor, scale: float) -> torch.Tensor:
    """ScaledSumNormalize / routingMainKernel: (s * routeScale) / (warp_sum + 1e-20), fp32."""
    return (sig_sel * scale) / (kernel_warp_sum(sig_sel) + _KERNEL_EPS)


def route_trtllm_gen(
    method: str, logits, *, top_k, bias=None, n_group=None, topk_group=None, routed_scaling_factor=None,
    norm_topk_prob=True, output_dtype=torch.bfloat16, **_,
) -> RouterOutput:
    """What FlashInfer 0.7.2.post1's trtllm-gen routing kernel computes, bit for bit where the
    source fixes it (docs/routing-methods.md "Kernel-exact reference"):

    * grouped DeepSeekV3 (``routingMainKernel``, trtllm_fused_moe_routing_deepseek.cu:159-161)
      converts the bias to the kernel's output type, bf16, before adding it to the sigmoid:
      selection uses ``sigmoid(z) + bf16(b)``. The ungrouped path (n_group <= 1) and MiniMax2
      (routingCustom SigmoidBias, RoutingCustomPolicy.cuh:232/249) read the bias as float.
    * ties go to the lower expert index (RoutingKernelTopK.cuh:57, ``65535 - idx`` under the
      score bits), groups too; +0.0 ranks above -0.0;
    * renormalisation sums the k values in the warp's butterfly order (:func:`kernel_warp_sum`)
      and computes ``s * scale / (sum + 1e-20)`` (MiniMax2 / DeepSeekV3) or ``s / max(sum, 1e-20)``
      (SigmoidRenorm), softmax as ``exp(z - max) / sum``; weights are written in bf16.

    Not reproduced bit for bit: FlashInfer builds with ``-use_fast_math``, which turns ``tanhf``
    into the hardware ``tanh.approx.f32``, ``expf`` into ``ex2.approx`` and ``/`` into an
    approximate division. That moves a bf16 weight by one ulp on 0.1-0.5 % of tokens and, rarely,
    decides a near tie (measured on an H200: 2 tokens, gaps 5.1e-6 and 1.2e-7, in ~45k routings).
    """
    name = canonical_method(method)
    if name not in _TRTLLM_GEN_METHODS:
        raise UnimplementedRoutingMethod(f"the trtllm-gen routing kernel has no {name} method "
                                         "(flashinfer/tllm_enums.py RoutingMethodType)")
    _, e = _check_logits(logits, top_k)
    scale = _scale(routed_scaling_factor)
    grouped = name == "DeepSeekV3" and n_group is not None and n_group > 1
    if name in ("MiniMax2", "DeepSeekV3"):
        b = _bias_row(bias, e, logits)
        if grouped:
            b = b.to(torch.bfloat16).float()  # static_cast<OutputT>(loadScalar(bias)) with OutputT = bf16
            sel = route_deepseek_v3(logits, top_k=top_k, bias=b, n_group=n_group, topk_group=topk_group,
                                    output_dtype=None)
        else:
            sel = _sigmoid_bias_route(logits, b, top_k, 1.0, _KERNEL_EPS, None)
        sig_sel = torch.gather(kernel_sigmoid(logits), -1, sel.topk_ids.long())
        return RouterOutput(sel.topk_ids, _finish(_kernel_scaled_norm(sig_sel, scale), output_dtype), sel.scores)
    if name in ("SigmoidRenorm", "Sigmoid"):
        sig = kernel_sigmoid(logits)
        vals, idx = stable_topk(sig, top_k)
        if name == "SigmoidRenorm" and norm_topk_prob:
            vals = vals / torch.clamp(kernel_warp_sum(vals), min=_KERNEL_EPS)
        return RouterOutput(_ids(idx), _finish(vals, output_dtype), sig)
    if name in ("Renormalize", "RenormalizeNaive"):
        vals, idx = stable_topk(logits, top_k)
        ex = torch.exp(vals.float() - vals.float()[:, :1])
        return RouterOutput(_ids(idx), _finish(ex / kernel_warp_sum(ex), output_dtype), logits.float())
    return _ROUTERS[name](logits, top_k=top_k, output_dtype=output_dtype)


_ROUTERS: dict[str, Callable[..., RouterOutput]] = {
    "Default": route_default,
    "Renormalize": route_renormalize,
    "RenormalizeNaive": route_renormalize_naive,
    "TopK": route_topk,
    "SigmoidRenorm": route_sigmoid_renorm,
    "Sigmoid": route_sigmoid,
    "TopKSigmoid": route_topk_sigmoid,
    "MiniMax2": route_minimax2,
    "DeepSeekV3": route_deepseek_v3,
    "Llama4": route_llama4,
    "DeepseekV4": route_deepseek_v4,
}
assert set(_ROUTERS) == set(METHODS)


def route(
    method: str,
    logits: torch.Tensor,
    *,
    top_k: int,
    bias: torch.Tensor | None = None,
    n_group: int | None = None,
    topk_group: int | None = None,
    routed_scaling_factor: float | None = None,
    norm_topk_prob: bool = True,
    flashinfer_version: str = DEFAULT_FLASHINFER_VERSION,
    output_dtype: torch.dtype | None = torch.bfloat16,
    token_ids: torch.Tensor | None = None,
    hash_table: torch.Tensor | None = None,
    kernel: str | None = None,
) -> RouterOutput:
    """Route ``logits`` [T, E] with FlashInfer routing method ``method`` (case-insensitive name).

    ``kernel=None`` computes the method as specified (FlashInfer's Python references, fp32 bias);
    ``kernel="trtllm-gen"`` reproduces FlashInfer 0.7.2.post1's trtllm-gen routing kernel
    exactly (:func:`route_trtllm_gen`: bf16 bias in the grouped DeepSeekV3 path, its tie order
    and its sum order).

    Arguments a method does not read are ignored, as the kernels ignore them (``bias`` outside
    MiniMax2/DeepSeekV3/DeepseekV4, groups outside DeepSeekV3, ``norm_topk_prob`` outside
    SigmoidRenorm, the scale outside MiniMax2/DeepSeekV3/DeepseekV4).

    Raises UnimplementedRoutingMethod (a ValueError) for Unspecified, Custom, Simulated, unknown
    names, and methods that ``flashinfer_version``'s routing runner does not implement; and
    RouterInputError (a ValueError) for bad shapes / k / groups.
    """
    name = canonical_method(method)
    if kernel is not None:
        if kernel not in KERNELS:
            raise RouterInputError(f"kernel={kernel!r}: kernel-exact references exist for {', '.join(KERNELS)}")
        if str(flashinfer_version) != DEFAULT_FLASHINFER_VERSION:
            raise RouterInputError(f"kernel={kernel!r} reproduces FlashInfer {DEFAULT_FLASHINFER_VERSION}, "
                                   f"not {flashinfer_version}")
        return route_trtllm_gen(name, logits, top_k=top_k, bias=bias, n_group=n_group, topk_group=topk_group,
                                routed_scaling_factor=routed_scaling_factor, norm_topk_prob=norm_topk_prob,
                                output_dtype=output_dtype)
    if not method_available(name, flashinfer_version):
        raise UnimplementedRoutingMethod(
            f"Unimplemented routing method {name!r} in FlashInfer {flashinfer_version} "
            f"(first implemented in {METHODS[name].since})"
        )
    return _ROUTERS[name](
        logits,
        top_k=top_k,
        bias=bias,
        n_group=n_group,
        topk_group=topk_group,
        routed_scaling_factor=routed_scaling_factor,
        norm_topk_prob=norm_topk_prob,
        flashinfer_version=flashinfer_version,
        output_dtype=output_dtype,
        token_ids=token_ids,
        hash_table=hash_table,
    )
