"""The float32 torch reference of one MoE layer, and how far a kernel output is from it.

Same routing (the ids and weights the kernel consumed), the same weights dequantized exactly to
float32, the gated activation in FlashInfer's canonical ``[up, gate]`` convention:

    h = x · w1ᵀ (+ b1)  ->  up = h[:, :I], gate = h[:, I:],  a = act(gate, up),  y = a · w2ᵀ (+ b2)
    out = Σ_k weight_k · y_{expert_k}   (+ the shared expert(s), unweighted)

with act = silu(gate) · up for SwiGLU, and for gpt-oss's "swigluoai" (``ACTIVATIONS``):
gate ≤ limit, −limit ≤ up ≤ limit, act = gate · σ(1.702 · gate) · (up + 1) — FlashInfer's
``SwiGLU(alpha=1.702, beta=1.0, limit)``. The down-projection bias is inside the routing weight,
as in transformers' GptOssExperts.

Experts are dequantized one at a time, only those a token picked, so a DeepSeek-V3-sized layer
never needs its full float32 copy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import UnsupportedError
from .weights import LayerShapes, LayerWeights


@dataclass(frozen=True)
class GatedActivation:
    """act(gate, up) = gate · σ(alpha · gate) · (up + beta), gate/up clamped to ``limit`` when ``clamped``."""

    name: str  # LayerShapes.activation / MoESpec.activation
    alpha: float
    beta: float
    clamped: bool  # needs the model's swiglu_limit
    source: str


#: Gated activations run-layer computes; each is one FlashInfer 0.7.2.post1 ``SwiGLU(alpha, beta, limit)``.
ACTIVATIONS: dict[str, GatedActivation] = {
    a.name: a
    for a in (
        GatedActivation("silu", 1.0, 0.0, False, "FlashInfer 0.7.2.post1 fused_moe/api.py SwiGLU() defaults "
                        "(tllm_enums DEFAULT_SWIGLU_ALPHA 1, BETA 0, LIMIT float32 max)"),
        GatedActivation("swigluoai", 1.702, 1.0, True, "transformers 5.24 GptOssExperts._apply_gate and "
                        "GptOssConfig.swiglu_alpha=1.702; FlashInfer SwiGLU docstring (linear branch clamped to "
                        "[-limit, limit], gate to (-inf, limit], gate·σ(alpha·gate)·(linear + beta))"),
    )
}


def gated_activation(shapes: LayerShapes) -> tuple[GatedActivation, float | None]:
    """(activation, clamp limit) of the layer; UnsupportedError for one run-layer does not compute."""
    a = ACTIVATIONS.get(shapes.activation)
    if a is None:
        raise UnsupportedError(f"activation {shapes.activation!r}: run-layer implements SwiGLU layers only "
                               f"({', '.join(ACTIVATIONS)})")
    if not a.clamped:
        return a, None
    if shapes.swiglu_limit is None or not shapes.swiglu_limit > 0:
        raise UnsupportedError(f"activation {a.name!r} without a positive swiglu_limit (config.json swiglu_limit): "
                               f"cannot build SwiGLU(alpha={a.alpha}, beta={a.beta}, limit=?)")
    return a, float(shapes.swiglu_limit)


def swiglu_up_gate(h: torch.Tensor) -> torch.Tensor:
    """FlashInfer SwiGLU on canonical GEMM1 output [T, 2I] = [up | gate]: silu(gate) · up."""
    i = h.shape[-1] // 2
    return F.silu(h[..., i:]) * h[..., :i]


def gated_up_gate(h: torch.Tensor, act: GatedActivation, limit: float | None) -> torch.Tensor:
    """``act`` on canonical GEMM1 output [T, 2I] = [up | gate] (float32)."""
    if act.name == "silu":
        return swiglu_up_gate(h)
    i = h.shape[-1] // 2
    up, gate = h[..., :i], h[..., i:]
    if limit is not None:
        gate = gate.clamp(max=limit)
        up = up.clamp(min=-limit, max=limit)
    return gate * torch.sigmoid(act.alpha * gate) * (up + act.beta)


def shared_expert_forward(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Shared expert(s) in float32: canonical w1 [2Is, H] ([up, gate]), w2 [H, Is]."""
    return swiglu_up_gate(x.float() @ w1.float().t()) @ w2.float().t()


@torch.no_grad()
def reference_moe(x: torch.Tensor, topk_ids: torch.Tensor, topk_weights: torch.Tensor,
                  weights: LayerWeights, *, include_shared: bool = True) -> torch.Tensor:
    """float32 [T, H] output of the layer for routed tokens ``x`` [T, H]."""
    act, limit = gated_activation(weights.shapes)
    xf = x.float()
    out = torch.zeros_like(xf)
    ids = topk_ids.long()
    wts = topk_weights.float()
    for e in torch.unique(ids).tolist():
        tok, slot = (ids == e).nonzero(as_tuple=True)
        w1, w2 = weights.dequant_expert(int(e))
        b1, b2 = weights.expert_bias(int(e))
        h = xf[tok] @ w1.t()
        y = gated_up_gate(h + b1 if b1 is not None else h, act, limit) @ w2.t()
        if b2 is not None:
            y = y + b2
        out.index_add_(0, tok, y * wts[tok, slot].unsqueeze(-1))
    if include_shared and weights.shared_w1 is not None:
        out += shared_expert_forward(xf, weights.shared_w1, weights.shared_w2)
    return out


@dataclass(frozen=True)
class Tolerance:
    """When a kernel output counts as correct for one format."""

    atol: float  # FlashInfer check_accuracy: |a - b| <= atol + rtol·|b| element-wise
    rtol: float
    percent: float  # fraction of elements that must be within atol/rtol
    max_rel_l2: float  # our verdict: relative L2 error bound
    min_cosine: float
    source: str


_FI_TOL = "flashinfer tests/moe check_accuracy (atol=0.1, rtol=0.85, percent=0.925)"
#: Per-format thresholds. Weight-only paths compare against the SAME dequantized weights, so the
#: error left is BF16 activation/intermediate rounding (~0.4% rel-L2 measured on H200, see
#: REFERENCE.md §6); paths that quantize activations (FP8 W8A8, FP4 A4) add that rounding.
TOLERANCES: dict[tuple[str, bool], Tolerance] = {
    ("bf16", False): Tolerance(0.1, 0.85, 0.925, 0.02, 0.9995, _FI_TOL),
    ("fp8", False): Tolerance(0.1, 0.85, 0.925, 0.02, 0.9995, _FI_TOL),
    ("fp8-block", False): Tolerance(0.1, 0.85, 0.925, 0.02, 0.9995, _FI_TOL),
    ("nvfp4", False): Tolerance(0.1, 0.85, 0.925, 0.02, 0.9995, _FI_TOL),
    ("mxfp4", False): Tolerance(0.1, 0.85, 0.925, 0.02, 0.9995, _FI_TOL),
    ("mxfp8", False): Tolerance(0.1, 0.85, 0.925, 0.02, 0.9995, _FI_TOL),
    ("fp8", True): Tolerance(0.1, 0.85, 0.925, 0.08, 0.996, _FI_TOL),
    ("fp8-block", True): Tolerance(0.1, 0.85, 0.925, 0.08, 0.996, _FI_TOL),
    ("mxfp8", True): Tolerance(0.1, 0.85, 0.925, 0.08, 0.996, _FI_TOL),
    ("nvfp4", True): Tolerance(0.1, 0.85, 0.925, 0.20, 0.98, _FI_TOL),
    ("mxfp4", True): Tolerance(0.1, 0.85, 0.925, 0.25, 0.97, _FI_TOL),
}


def tolerance_for(quant: str, quantized_activations: bool) -> Tolerance:
    return TOLERANCES[(quant, quantized_activations)]


@dataclass
class Accuracy:
    max_abs_err: float
    rel_l2: float
    cosine: float
    within_tol: float  # fraction of elements within FlashInfer's atol/rtol
    ref_rms: float
    passed: bool
    threshold: dict

    def to_dict(self) -> dict:
        return asdict(self)


def compare(actual: torch.Tensor, ref: torch.Tensor, tol: Tolerance) -> Accuracy:
    a, r = actual.float(), ref.float()
    if a.shape != r.shape:
        raise ValueError(f"output shape {tuple(a.shape)} != reference {tuple(r.shape)}")
    finite = bool(torch.isfinite(a).all())
    d = a - r
    rn = float(r.norm())
    rel = float(d.norm()) / rn if rn > 0 else float(d.norm())
    cos = float(F.cosine_similarity(a.flatten(), r.flatten(), dim=0)) if rn > 0 else 1.0
    within = float((d.abs() <= tol.atol + tol.rtol * r.abs()).float().mean())
    ok = finite and rel <= tol.max_rel_l2 and cos >= tol.min_cosine and within >= tol.percent
    return Accuracy(
        max_abs_err=float(d.abs().max()) if finite else float("inf"),
        rel_l2=rel if finite else float("inf"),
        cosine=cos if finite else 0.0,
        within_tol=within,
        ref_rms=float(r.pow(2).mean().sqrt()),
        passed=ok,
        threshold={"max_rel_l2": tol.max_rel_l2, "min_cosine": tol.min_cosine, "atol": tol.atol,
                   "rtol": tol.rtol, "min_within_tol": tol.percent, "source": tol.source},
    )
