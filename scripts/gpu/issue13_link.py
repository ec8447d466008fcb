"""Link bandwidth between the GPUs of this host (issue 13): peer copies and NCCL collectives.

    python3 scripts/gpu/issue13_link.py > link.json

Peer copy: cudaMemcpyPeer through ``tensor.copy_`` between cuda:0 and cuda:1 (256 MiB, both
directions, CUDA events). NCCL (one process per GPU, NVLink multicast off, spawned by
moe_inspect's launcher): all-reduce bus bandwidth (2(N-1)/N · bytes / time, NCCL's busbw) and
all_to_all_single algorithm bandwidth ((N-1)/N · bytes / time) for 1, 16 and 256 MiB in BF16.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _time(fn, iters=20):
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / iters / 1e3  # seconds


def nccl_bw(rank, world, payload, say):
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dev = torch.device("cuda", rank)
    dist.init_process_group("nccl", rank=rank, world_size=world, device_id=dev)
    out = []
    try:
        for mb in (1, 16, 256):
            n = mb * 2**20 // 2
            x = torch.ones(n, dtype=torch.bfloat16, device=dev)
            y = torch.empty_like(x)
            dist.barrier()
            t_ar = _time(lambda: dist.all_reduce(x))
            dist.barrier()
            t_a2a = _time(lambda: dist.all_to_all_single(y, x))
            nbytes = n * 2
            out.append({"mib": mb, "allreduce_us": t_ar * 1e6,
                        "allreduce_busbw_gbs": 2 * (world - 1) / world * nbytes / t_ar / 1e9,
                        "all_to_all_us": t_a2a * 1e6,
                        "all_to_all_algbw_gbs": (world - 1) / world * nbytes / t_a2a / 1e9})
    finally:
        dist.destroy_process_group()
    return out if rank == 0 else None


def main() -> int:
    import torch

    from moe_inspect.layer.distributed import launch

    n = torch.cuda.device_count()
    res = {"gpus": [torch.cuda.get_device_name(i) for i in range(n)], "torch": torch.__version__,
           "nccl": str(torch.cuda.nccl.version())}
    if n >= 2:
        res["peer_access"] = torch.cuda.can_device_access_peer(0, 1)
        a = torch.empty(128 * 2**20, dtype=torch.bfloat16, device="cuda:0")
        b = torch.empty_like(a, device="cuda:1")
        nbytes = a.numel() * 2
        res["copy_0_to_1_gbs"] = nbytes / _time(lambda: b.copy_(a, non_blocking=True)) / 1e9
        res["copy_1_to_0_gbs"] = nbytes / _time(lambda: a.copy_(b, non_blocking=True)) / 1e9
        del a, b
        torch.cuda.empty_cache()
        res["nccl"] = {"world": n, "rows": launch(n, nccl_bw, None)[0]}
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
