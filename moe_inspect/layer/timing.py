"""Timing one MoE call with CUDA graphs and a cold L2, and what the numbers mean against the GPU.

Timing reuses ``flashinfer.testing.bench_gpu_time`` (flashinfer-python 0.7.2.post1,
testing/utils.py) with ``use_cuda_graph=True``: the call is captured ``num_iters_within_graph``
times in one graph and each replay's time is divided by that count.

Cold L2: FlashInfer's own cold-L2 mode clones the INPUT tensors per rotation, which leaves the
expert weights (the bytes that matter) identical and warm whenever a token set hits the same
experts. We instead capture K *different* token sets (different hidden states, hence different
routing and different experts hit) round-robin into the graph, with K chosen so the weight bytes
touched between two visits of the same set exceed twice the L2 size. At 1024 tokens every expert
is hit and one call already streams the whole layer, far beyond any L2.

Roofline: bytes = the weights and scales of the experts actually hit + activations in and out +
routing ids/weights; FLOPs = 2 · (assignments) · (H·2I + I·H) with assignments = T · k. The
limit that binds is the one with the longer ideal time (bytes / peak bandwidth vs FLOPs / peak).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Sequence


@dataclass
class TimingStats:
    median_us: float
    p10_us: float
    p90_us: float
    min_us: float
    std_us: float
    samples: int
    token_sets: int  # K distinct token sets cycled through the graph
    calls_per_graph: int

    def to_dict(self) -> dict:
        return asdict(self)


def stats_from_ms(times_ms: Sequence[float], *, token_sets: int = 1, calls_per_graph: int = 1) -> TimingStats:
    us = sorted(t * 1000.0 for t in times_ms)
    if not us:
        raise ValueError("no timing samples")

    def pct(p: float) -> float:
        return us[min(len(us) - 1, max(0, int(round(p * (len(us) - 1)))))]

    return TimingStats(
        median_us=statistics.median(us), p10_us=pct(0.10), p90_us=pct(0.90), min_us=us[0],
        std_us=statistics.pstdev(us) if len(us) > 1 else 0.0, samples=len(us), token_sets=token_sets,
        calls_per_graph=calls_per_graph,
    )


def token_sets_for_cold_l2(bytes_per_call: float, l2_bytes: int, *, cap: int = 16) -> int:
    """How many distinct token sets to cycle so weight bytes between revisits exceed 2 × L2."""
    if bytes_per_call <= 0:
        return cap
    return max(2, min(cap, math.ceil(2 * l2_bytes / bytes_per_call) + 1))


def estimate_call_ms(calls: Sequence[Callable[[], object]], torch) -> float:
    """Mean eager time of one call (CUDA events around one pass over ``calls``, after a sync):
    sizes :func:`bench_cycled`'s iteration counts. Run every call once before (compiles, warms)."""
    torch.cuda.synchronize()
    ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ev0.record()
    for c in calls:
        c()
    ev1.record()
    torch.cuda.synchronize()
    return ev0.elapsed_time(ev1) / len(calls)


def bench_cycled(calls: Sequence[Callable[[], object]], *, repeat_time_ms: float = 100, dry_run_time_ms: float = 25,
                 min_calls_per_graph: int = 10, min_samples: int = 20, est_call_ms: float | None = None,
                 bench=None) -> TimingStats:
    """Time ``calls`` (one per token set) round-robin inside CUDA graphs with bench_gpu_time."""
    if bench is None:
        from flashinfer.testing import bench_gpu_time as bench
    k = len(calls)
    per_graph = k * max(1, math.ceil(min_calls_per_graph / k))
    counter = itertools.count()

    def one_call():
        calls[next(counter) % k]()

    repeat_iters = dry_iters = None
    if est_call_ms:  # at least ``min_samples`` graph replays even for slow calls
        graph_ms = est_call_ms * per_graph
        repeat_iters = max(min_samples, int(repeat_time_ms / graph_ms))
        dry_iters = max(2, int(dry_run_time_ms / graph_ms))
    times = bench(one_call, use_cuda_graph=True, num_iters_within_graph=per_graph, cold_l2_cache=False,
                  dry_run_time_ms=dry_run_time_ms, repeat_time_ms=repeat_time_ms, repeat_iters=repeat_iters,
                  dry_run_iters=dry_iters)
    return stats_from_ms(times, token_sets=k, calls_per_graph=per_graph)


# ----------------------------------------------------------------------------- roofline
def moe_flops(tokens: int, top_k: int, hidden: int, intermediate: int, *, gated: bool = True) -> float:
    n1 = (2 if gated else 1) * intermediate
    return 2.0 * tokens * top_k * (hidden * n1 + intermediate * hidden)


def moe_bytes(experts_hit: float, expert_bytes: int, tokens: int, hidden: int, top_k: int, *,
              act_bytes: float = 2.0, out_bytes: float = 2.0) -> float:
    return experts_hit * expert_bytes + tokens * hidden * (act_bytes + out_bytes) + tokens * top_k * 8


@dataclass
class Roofline:
    bytes: float
    flops: float
    achieved_tbs: float
    achieved_tflops: float
    peak_tbs: float | None
    peak_tflops: float | None
    mma_dtype: str
    pct_bandwidth: float | None
    pct_compute: float | None
    bound: str | None  # "memory" | "compute": the limit with the longer ideal time
    pct_of_bound: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def roofline(seconds: float, nbytes: float, flops: float, *, peak_tbs: float | None, peak_tflops: float | None,
             mma_dtype: str) -> Roofline:
    tbs = nbytes / seconds / 1e12
    tfl = flops / seconds / 1e12
    pb = 100.0 * tbs / peak_tbs if peak_tbs else None
    pc = 100.0 * tfl / peak_tflops if peak_tflops else None
    bound = None
    pob = None
    if peak_tbs and peak_tflops:
        t_mem = nbytes / (peak_tbs * 1e12)
        t_cmp = flops / (peak_tflops * 1e12)
        bound = "memory" if t_mem >= t_cmp else "compute"
        pob = pb if bound == "memory" else pc
    return Roofline(nbytes, flops, tbs, tfl, peak_tbs, peak_tflops, mma_dtype, pb, pc, bound, pob)


def mma_dtype_for(path) -> str:
    """The tensor-core format the GEMMs run in: weight-only paths dequantize to BF16 MMAs."""
    if not path.quantized_activations:
        return "bf16"
    return "fp4" if path.activation_format in ("NVFP4", "MXFP4") else "fp8"


def peak_tflops_for(gpu, mma: str) -> float | None:
    if gpu is None:
        return None
    return {"bf16": gpu.bf16_tflops, "fp8": gpu.fp8_tflops, "fp4": gpu.fp4_tflops}[mma]
