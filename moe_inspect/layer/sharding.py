"""How one MoE layer is split over N GPUs: which layout, which experts and slices each rank holds,
which tokens go where, and how many bytes cross the links.

The layout is vLLM 0.33.0's, derived by :func:`moe_inspect.deploy.layout.derive_layout` (the same
code ``check`` uses): ``--tp N`` shards every expert's intermediate dimension over N ranks
(``moe_tp``), ``--enable-expert-parallel`` splits the experts instead (``moe_ep = tp · dp``), and
tokens are moved between MoE ranks by an all-to-all only when EP comes with DP > 1
(``use_all2all_kernels``). Expert placement is vLLM's linear ``determine_expert_map``
(vllm 0.33.0 ``model_executor/layers/fused_moe/expert_map_manager.py:67-76``: ranks below
``E % ep`` hold one extra expert, contiguous ranges), via ``deploy.layout.local_experts``.

run-layer runs three of vLLM's schemes (:data:`SCHEMES`):

================  ====================================================================================
``tp``            ``--tp N``: tokens replicated on every rank, each rank holds I/N of every expert
                  (rows ``[up_r | gate_r]`` of w1, columns r of w2), partial outputs all-reduced
                  (vLLM: ``FusedMoE`` with ``reduce_results`` -> ``tensor_model_parallel_all_reduce``)
``ep``            ``--tp N --ep``: tokens replicated, each rank runs its own experts on the tokens
                  routed to them, partial outputs all-reduced (no all2all: vLLM's
                  ``use_all2all_kernels`` is False without DP)
``ep-a2a``        ``--dp N --ep``: each DP rank holds its own tokens; every token goes
                  once to each rank that owns one of its experts (all-to-all dispatch, with its top-k
                  ids and weights), the owners run their experts, the partial sums come back with a
                  second all-to-all and are added at the source
================  ====================================================================================

This module is torch-free at import; the token-plan helpers take torch tensors (CPU or CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInputError, UnsupportedError

SCHEMES = ("tp", "ep", "ep-a2a")

#: Environment every process of a multi-GPU run gets: NVLink multicast (NVLS) stays off in NCCL,
#: PyTorch symmetric memory and NVSHMEM (the GPU hosts here forbid it: docs/gpu.md).
NO_MULTICAST_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


@dataclass(frozen=True)
class ShardPlan:
    """One multi-GPU run of the layer: the vLLM layout and the scheme run-layer executes for it."""

    scheme: str  # one of SCHEMES
    world: int  # GPUs = processes
    moe_tp: int
    moe_ep: int
    dp: int  # ranks with distinct tokens (1: tokens replicated on every rank)
    layout: dict  # deploy.layout.Layout.to_dict()
    layout_text: str  # Layout.describe()

    @property
    def label(self) -> str:
        return {"tp": f"TP {self.moe_tp}", "ep": f"EP {self.moe_ep} (all-reduce)",
                "ep-a2a": f"EP {self.moe_ep} (all-to-all)"}[self.scheme]

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "label": self.label, "world": self.world, "moe_tp": self.moe_tp,
                "moe_ep": self.moe_ep, "dp": self.dp, "layout": self.layout, "layout_text": self.layout_text}


def plan_layout(tp: int | None = None, dp: int | None = None, ep: bool = False) -> ShardPlan | None:
    """The ShardPlan for run-layer's ``--tp/--dp/--ep`` (the flags ``check`` takes, as ``vllm serve``
    names them); None when the layout is one GPU.

    ``--tp N``: experts tensor-sharded; ``--tp N --ep``: experts split, tokens replicated (no all2all);
    ``--dp N --ep``: experts split, each rank its own tokens, all-to-all.
    """
    from ..deploy.layout import derive_layout

    for name, v in (("--tp", tp), ("--dp", dp)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise BadInputError(f"{name} {v!r}: must be a positive integer")
    lay = derive_layout(tp=tp or 1, dp=dp or 1, ep_enabled=bool(ep))
    if lay.refusals:
        raise BadInputError(f"vLLM refuses this layout: {lay.refusals[0]}")
    if lay.gpus == 1:
        return None
    if lay.tp > 1 and lay.dp > 1:
        raise UnsupportedError(f"--tp {lay.tp} with --dp {lay.dp}: run-layer does not model TP and DP together "
                               "(sequence-parallel MoE); use --tp N, --tp N --ep or --dp N --ep")
    if lay.dp > 1 and not lay.use_ep:
        raise UnsupportedError(f"--dp {lay.dp} without --ep (experts tensor-sharded over the DP ranks with all-gather "
                               "dispatch) is not modelled by run-layer; use --tp N or --dp N --ep")
    if lay.use_ep:
        scheme = "ep-a2a" if lay.use_all2all_kernels else "ep"
    else:
        scheme = "tp"
    return ShardPlan(scheme, lay.gpus, lay.moe_tp, lay.moe_ep, lay.dp, lay.to_dict(), lay.describe())


def companion(plan: ShardPlan) -> ShardPlan:
    """The other scheme on the same GPUs, for TP-vs-EP tables: TP N <-> EP N (all-to-all)."""
    n = plan.world
    return plan_layout(dp=n, ep=True) if plan.scheme == "tp" else plan_layout(tp=n)


# ----------------------------------------------------------------------------- experts
def expert_ranges(num_experts: int, ep: int) -> list[tuple[int, int]]:
    """(first expert, count) per EP rank, vLLM's linear placement (deploy.layout.local_experts)."""
    from ..deploy.layout import derive_layout, local_experts

    if ep < 1:
        raise BadInputError(f"expert-parallel size {ep}: must be >= 1")
    if ep > num_experts:
        raise UnsupportedError(f"EP {ep} over {num_experts} experts: some ranks would hold no expert")
    counts = local_experts(num_experts, derive_layout(tp=ep, ep_enabled=True)) if ep > 1 else [num_experts]
    out, start = [], 0
    for c in counts:
        out.append((start, c))
        start += c
    return out


def expert_owner(num_experts: int, ep: int) -> list[int]:
    """EP rank that owns each global expert id."""
    own = []
    for r, (_, c) in enumerate(expert_ranges(num_experts, ep)):
        own.extend([r] * c)
    return own


# ----------------------------------------------------------------------------- TP slices
def tp_slice(intermediate: int, tp: int, rank: int) -> tuple[int, int]:
    """(start, size) of rank's intermediate columns; vLLM needs I % tp == 0 (it pads nothing here)."""
    if intermediate % tp:
        raise UnsupportedError(f"intermediate size {intermediate} is not divisible by TP {tp} "
                               "(vLLM shards the expert width evenly)")
    n = intermediate // tp
    return rank * n, n


def w1_rows(intermediate: int, tp: int, rank: int) -> list[tuple[int, int]]:
    """Row ranges of canonical w1 [2I, H] = [up; gate] that rank r holds: up_r then gate_r."""
    s, n = tp_slice(intermediate, tp, rank)
    return [(s, s + n), (intermediate + s, intermediate + s + n)]


def slice_expert_tensors(tensors: dict, intermediate: int, tp: int, rank: int) -> dict:
    """Rank's TP shard of the stacked expert tensors (any format), exact: codes and block scales are
    sliced at block boundaries, per-expert global scales kept.

    w1-like tensors ``[E, 2I/b, ...]`` (b = 1 for codes, the scale block for block scales) keep rows
    ``up_r`` and ``gate_r``; w2-like tensors ``[E, H, I/b]`` (b = 2 for packed FP4, the block for
    scales) keep columns r. A slice that does not fall on a block boundary is refused.
    """
    import torch

    s, n = tp_slice(intermediate, tp, rank)
    out = {}
    for key, t in tensors.items():
        if key.endswith("_bias"):
            raise UnsupportedError(f"{key}: expert GEMM biases are not sharded by run-layer (no FlashInfer runner "
                                   "takes them either)")
        if not isinstance(t, torch.Tensor) or t.ndim < 2 or (key.endswith("_global") or t.ndim == 1):
            out[key] = t  # per-expert scalars ([E], [E, 2] global scales, [E] fp8 scales)
            continue
        if key.startswith("w1"):
            rows = t.shape[1]
            b = (2 * intermediate) // rows if rows and (2 * intermediate) % rows == 0 else 0
            if not b or s % b or n % b:
                if t.ndim == 2:  # [E, 2] style scalars
                    out[key] = t
                    continue
                raise UnsupportedError(f"{key}: TP {tp} slice of {n} rows does not fall on its {b or '?'}-row blocks")
            out[key] = torch.cat((t[:, s // b:(s + n) // b], t[:, (intermediate + s) // b:(intermediate + s + n) // b]),
                                 dim=1).contiguous()
        elif key.startswith("w2"):
            cols = t.shape[-1]
            b = intermediate // cols if cols and intermediate % cols == 0 else 0
            if not b or s % b or n % b:
                raise UnsupportedError(f"{key}: TP {tp} slice of {n} columns does not fall on its {b or '?'}-column "
                                       "blocks")
            out[key] = t[..., s // b:(s + n) // b].contiguous()
        else:
            out[key] = t
    return out


def slice_experts(tensors: dict, num_experts: int, first: int, count: int) -> dict:
    """Rank's EP shard: experts [first, first + count) of every stacked tensor."""
    import torch

    out = {}
    for key, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.shape[0] == num_experts:
            out[key] = t[first:first + count].contiguous()
        else:
            out[key] = t
    return out


# ----------------------------------------------------------------------------- tokens
def token_split(tokens: int, dp: int) -> list[tuple[int, int]]:
    """(first token, count) per DP rank: contiguous, the first ``T % dp`` ranks one more (may be 0)."""
    base, rem = divmod(tokens, dp)
    out, start = [], 0
    for r in range(dp):
        c = base + (1 if r < rem else 0)
        out.append((start, c))
        start += c
    return out


@dataclass
class DispatchPlan:
    """What one source rank sends in the all-to-all dispatch.

    ``order`` lists local token indices grouped by destination rank (ascending within a group);
    ``counts[d]`` rows go to rank d. A token goes once to every rank that owns at least one of its
    top-k experts (DeepEP-style), carrying all k ids and weights; the owner keeps its own slots.
    """

    order: "object"  # LongTensor [sum(counts)]
    counts: list[int]


def dispatch_plan(topk_ids, owner, world: int) -> DispatchPlan:
    """Plan for local ``topk_ids`` [T, k] given ``owner`` (LongTensor [E]: EP rank of each expert).

    Runs on the ids' device; ``counts`` needs one device->host copy (the split sizes NCCL's
    all_to_all_single takes).
    """
    import torch

    t = topk_ids.shape[0]
    if t == 0:
        return DispatchPlan(torch.zeros(0, dtype=torch.long, device=topk_ids.device), [0] * world)
    dest = owner[topk_ids.long()]  # [T, k]
    hit = torch.zeros((world, t), dtype=torch.bool, device=topk_ids.device)
    hit.scatter_(0, dest.t().contiguous(), True)  # hit[d, tok] = token has an expert on d
    counts_t = hit.sum(dim=1)
    order = hit.nonzero(as_tuple=True)[1]  # row-major over (d, tok): grouped by d, ascending tok
    return DispatchPlan(order, [int(c) for c in counts_t.tolist()])


def local_pairs(recv_ids, first: int, count: int):
    """(row, slot, local expert id) of every (token, expert) pair a rank owns among received rows.

    ``recv_ids`` [R, k] global ids; experts [first, first + count) are local. Pairs come in
    row-major order, so the per-row sums can be formed with one index_add.
    """
    import torch

    ids = recv_ids.long()
    mine = (ids >= first) & (ids < first + count)
    row, slot = mine.nonzero(as_tuple=True)
    return row, slot, (ids[row, slot] - first)


# ----------------------------------------------------------------------------- bytes on the links
def allreduce_bytes(tokens: int, hidden: int, world: int, *, elem: int = 2) -> int:
    """Bytes one rank sends in a ring all-reduce of a [T, H] tensor: 2 (N-1)/N · T·H·elem (NCCL's busbw)."""
    if world <= 1:
        return 0
    return int(2 * (world - 1) * tokens * hidden * elem // world)


def a2a_dispatch_bytes(counts: list[int], rank: int, hidden: int, top_k: int, *, elem: int = 2) -> int:
    """Bytes ``rank`` sends to OTHER ranks in the dispatch: hidden row (bf16) + k ids (int32) + k weights (fp32)."""
    rows = sum(c for d, c in enumerate(counts) if d != rank)
    return rows * (hidden * elem + top_k * 8)


def a2a_combine_bytes(counts: list[int], rank: int, hidden: int, *, elem: int = 2) -> int:
    """Bytes ``rank`` returns to other ranks in the combine: one bf16 partial row per received remote row."""
    rows = sum(c for d, c in enumerate(counts) if d != rank)
    return rows * hidden * elem
