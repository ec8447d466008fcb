"""The honest peer: the same MoE layer through torch's own grouped GEMM, beside FlashInfer.

Same routed ids and weights, same weights (BF16; for weight-only formats the BF16 dequantization of
the stored codes, i.e. the peer reads 2–3.6× more weight bytes than the FlashInfer W4A16/W8A16
kernel), same activation:

    sort the T·k (token, slot) pairs by expert (stable)        -> perm, sorted ids
    offs[e] = #pairs with id <= e  (searchsorted, int32)       -> group ends, on the device
    h = _grouped_mm(x[perm // k], w1ᵀ, offs)                   [T·k, 2I] = [up | gate]
    y = _grouped_mm(act(gate, up), w2ᵀ, offs)                  [T·k, H]
    out[tok] += weight · y   (float32 index_add, then BF16)

``torch._grouped_mm`` (CUTLASS grouped GEMM in torch >= 2.8 on SM90+; a CPU implementation in
2.13) takes the group ENDS as int32 offsets on the device, so nothing here reads a value back to
the host: the whole call is CUDA-graph capturable and is timed by the same harness as FlashInfer
(``timing.bench_cycled``: K token sets cycled inside CUDA graphs). Its second operand is
``w.transpose(1, 2)`` of the canonical ``[E, N, K]`` weights: the K-contiguous ("column-major")
layout the CUDA kernel wants, with no copy.
"""

from __future__ import annotations

from typing import Callable

PEER_NAME = "torch._grouped_mm (BF16, CUDA graph)"


def group_ends(sorted_ids, num_experts: int, *, arange=None):
    """int32 [E] cumulative group ends of ``sorted_ids`` (ascending expert ids): offs[e] = #ids <= e.

    Empty experts repeat the previous end. Device-side (``searchsorted``), no host sync.
    """
    import torch

    if arange is None:
        arange = torch.arange(num_experts, device=sorted_ids.device, dtype=sorted_ids.dtype)
    return torch.searchsorted(sorted_ids, arange, right=True, out_int32=True)


def sort_pairs(topk_ids):
    """(sorted ids [T·k], perm [T·k], token of each sorted pair [T·k]) for ids [T, k]."""
    import torch

    k = topk_ids.shape[1]
    flat = topk_ids.reshape(-1).long()
    sorted_ids, perm = torch.sort(flat, stable=True)
    return sorted_ids, perm, torch.div(perm, k, rounding_mode="floor")


class GroupedMMPeer:
    """Callable ``peer(x [T, H] bf16, ids [T, k], wts [T, k]) -> [T, H] bf16`` over BF16 weights."""

    def __init__(self, w1, w2, *, activation: Callable | None = None):
        """``w1`` [E, 2I, H] rows [up, gate], ``w2`` [E, H, I], BF16 (canonical FlashInfer layout)."""
        import torch

        from .reference import swiglu_up_gate

        self.e = w1.shape[0]
        self.w1t = w1.to(torch.bfloat16).transpose(1, 2)  # [E, H, 2I], K-contiguous
        self.w2t = w2.to(torch.bfloat16).transpose(1, 2)  # [E, I, H]
        self.act = activation or swiglu_up_gate
        self.arange = torch.arange(self.e, device=w1.device, dtype=torch.long)

    @classmethod
    def from_weights(cls, weights) -> "GroupedMMPeer":
        from .reference import gated_activation, gated_up_gate

        act, limit = gated_activation(weights.shapes)
        w1, w2 = weights.bf16_canonical()
        return cls(w1, w2, activation=lambda h: gated_up_gate(h, act, limit))

    def __call__(self, x, topk_ids, topk_weights):
        import torch

        t, h = x.shape
        sorted_ids, perm, tok = sort_pairs(topk_ids)
        offs = group_ends(sorted_ids, self.e, arange=self.arange)
        xs = x.index_select(0, tok)
        hmid = torch._grouped_mm(xs, self.w1t, offs=offs)
        y = torch._grouped_mm(self.act(hmid).to(torch.bfloat16), self.w2t, offs=offs)
        wsorted = topk_weights.reshape(-1).float().index_select(0, perm)
        out = torch.zeros((t, h), dtype=torch.float32, device=x.device)
        out.index_add_(0, tok, y.float() * wsorted.unsqueeze(1))
        return out.to(torch.bfloat16)


def peer_weights_note(quant: str) -> str:
    if quant == "bf16":
        return "BF16 weights, as FlashInfer"
    return f"BF16 weights (the exact BF16 dequantization of the {quant} codes; FlashInfer reads the {quant} codes)"


def time_peer(peer: GroupedMMPeer, sets, *, repeat_ms: float, reference=None, tol=None, fi_median_us=None,
              quant: str = "bf16", bench=None, add=None) -> dict:
    """Time ``peer`` over the token sets ``[(x, ids, wts), ...]`` with the FlashInfer harness.

    ``reference`` (float32 [T, H] of set 0) adds the peer's own accuracy (``add``, e.g. the shared
    expert's output, is added to the peer's routed output first); ``fi_median_us`` the
    FlashInfer/peer ratio (> 1: FlashInfer is slower).
    """
    import torch

    from . import timing as T

    calls = [lambda s=s: peer(*s) for s in sets]
    out0 = calls[0]()
    for c in calls[1:]:
        c()
    est = T.estimate_call_ms(calls, torch)
    st = T.bench_cycled(calls, repeat_time_ms=repeat_ms, est_call_ms=est, bench=bench)
    d = {"name": PEER_NAME, "weights": peer_weights_note(quant), "median_us": st.median_us, "p10_us": st.p10_us,
         "p90_us": st.p90_us, "token_sets": st.token_sets,
         "flashinfer_over_peer": (fi_median_us / st.median_us) if fi_median_us else None}
    if reference is not None and tol is not None:
        from .reference import compare

        got = out0.float() if add is None else out0.float() + add
        if got.shape == reference.shape:
            acc = compare(got, reference, tol)
            d["rel_l2"], d["passed"] = acc.rel_l2, acc.passed
    return d


def peer_unavailable(weights, torch) -> str | None:
    """Why the peer cannot run this layer here, or None."""
    if not hasattr(torch, "_grouped_mm"):
        return f"torch {torch.__version__} has no torch._grouped_mm (torch >= 2.8)"
    if weights.tensors.get("w1_bias") is not None:
        return "expert GEMM biases are not added by the grouped-GEMM peer"
    dev = weights.device
    if dev.type == "cuda" and torch.cuda.get_device_capability(dev)[0] < 9:
        return "torch._grouped_mm needs SM90 or newer on CUDA"
    return None


def peer_row(weights, sets, *, repeat_ms: float, fi_median_us: float | None, quant: str, bench=None) -> dict:
    """The peer's timing for one token count: ``sets`` = [(x, ids, wts), ...], the SAME token sets
    (and routed ids/weights) FlashInfer was timed on. The BF16 peer weights are made once per layer."""
    import torch

    why = peer_unavailable(weights, torch)
    if why:
        return {"name": PEER_NAME, "error": why}
    peer = getattr(weights, "_grouped_mm_peer", None)
    if peer is None:
        peer = GroupedMMPeer.from_weights(weights)
        weights._grouped_mm_peer = peer  # one BF16 copy per layer, reused by every token count
    try:
        return time_peer(peer, sets, repeat_ms=repeat_ms, fi_median_us=fi_median_us, quant=quant, bench=bench)
    except (RuntimeError, ValueError, NotImplementedError) as e:  # a torch build whose kernel refuses the shapes
        return {"name": PEER_NAME, "error": " ".join(f"{type(e).__name__}: {e}".split())[:200]}
