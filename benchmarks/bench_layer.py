"""One MoE layer, three timers, side by side (needs a CUDA GPU and FlashInfer).

    python benchmarks/bench_layer.py --model MiniMaxAI/MiniMax-M2.5 --quant bf16 --tokens 1,128,1024

For each token count the SAME FlashInfer call (same weights, same routed inputs) is timed by

1. our harness (``moe_inspect.layer.timing.bench_cycled``): CUDA graphs, K different token sets
   cycled inside the graph so the experts' weights are cold;
2. ``flashinfer.testing.bench_gpu_time`` used directly, as FlashInfer's benchmarks do: CUDA graphs
   with its own cold-L2 mode (rotating clones of the input tensors; the weights stay the same);
3. a plain torch implementation of the layer (per-expert BF16 matmuls in a Python loop), timed
   with CUDA events by ``bench_gpu_time`` (it syncs on the host, so it cannot be graph-captured).

and the table shows the three medians with the achieved TB/s (experts hit only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def torch_moe(x, ids, wts, w1, w2):
    """Plain torch MoE (BF16): canonical w1 [E, 2I, H] ([up, gate]), w2 [E, H, I]."""
    import torch
    import torch.nn.functional as F

    out = torch.zeros_like(x, dtype=torch.float32)
    i = w2.shape[-1]
    flat = ids.reshape(-1)
    order = torch.argsort(flat)
    counts = torch.bincount(flat, minlength=w1.shape[0]).tolist()
    tok = order // ids.shape[1]
    start = 0
    for e, c in enumerate(counts):
        if c == 0:
            continue
        sel = order[start:start + c]
        t = tok[start:start + c]
        start += c
        h = x[t] @ w1[e].t()
        y = (F.silu(h[:, i:]) * h[:, :i]) @ w2[e].t()
        out.index_add_(0, t, y.float() * wts.reshape(-1)[sel].unsqueeze(-1))
    return out.to(torch.bfloat16)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="MiniMaxAI/MiniMax-M2.5")
    ap.add_argument("--quant", default="bf16")
    ap.add_argument("--tokens", default="1,16,128,1024")
    ap.add_argument("--repeat-ms", type=float, default=100.0)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    a = ap.parse_args(argv)

    import json

    import torch
    from flashinfer.testing import bench_gpu_time

    from moe_inspect.layer import kernels as K
    from moe_inspect.layer import timing as T
    from moe_inspect.layer.runner import RunLayerOptions, _route, cuda_arch, local_gpu_spec, parse_tokens, plan, resolve_shapes
    from moe_inspect.layer.weights import random_layer

    opts = RunLayerOptions(model=a.model, quant=a.quant, act="bf16", offline=True)
    shapes, _, _ = resolve_shapes(opts)
    arch, name = cuda_arch()
    path, mode = plan(opts, shapes, arch)
    if mode != "PackedPrecomputed":
        path, mode = plan(RunLayerOptions(model=a.model, quant=a.quant, act="bf16", precomputed_routing=True), shapes, arch)
    fi = K.flashinfer_namespace()
    gpu = local_gpu_spec(name, arch)
    dev = torch.device("cuda", 0)
    w = random_layer(shapes, a.quant, device=dev)
    cfg = K.build_config(fi, path, shapes)
    pack = K.make_weight_pack(fi, path, K.prepare_weight_view(fi, path, w, device=dev, config=cfg))
    moe = fi.MoELayer(cfg, device=dev)
    w1, w2 = w.bf16_canonical()
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    g = torch.Generator(device=dev).manual_seed(1)
    rows = []
    print(f"{name} (SM{arch}), FlashInfer {fi.version}, {a.model} {a.quant} via {path.config_class}")
    print(f"{'tokens':>6} {'hit':>5} | {'harness µs':>11} {'TB/s':>6} | {'bench_gpu_time µs':>17} {'TB/s':>6} | "
          f"{'torch µs':>9} {'TB/s':>6}")
    for n in parse_tokens(a.tokens):
        def make():
            x = torch.randn((n, shapes.hidden_size), generator=g, device=dev).to(torch.bfloat16)
            logits = x.float() @ w.router_weight.float().t()
            ids, wts, _, _ = _route(shapes, logits, w.router_bias, arch=arch, torch=torch)
            return x, ids, wts

        x, ids, wts = make()
        hit = float(torch.unique(ids).numel())
        nbytes = T.moe_bytes(hit, w.expert_bytes(), n, shapes.hidden_size, shapes.top_k)
        k = T.token_sets_for_cold_l2(nbytes, l2)
        sets = [(x, ids, wts)] + [make() for _ in range(k - 1)]
        acts = [K.make_activation_pack(fi, path, cfg, s[0], mode=mode, topk_ids=s[1], topk_weights=s[2]) for s in sets]
        for act in acts:
            moe(act, pack)
        torch.cuda.synchronize()
        ours = T.bench_cycled([lambda act=act: moe(act, pack) for act in acts], repeat_time_ms=a.repeat_ms)

        def fi_call(hs, i, wt):
            moe(fi.MoEActivationPack(hs, None, i, wt, routing_input_mode=fi.RoutingInputMode.PackedPrecomputed), pack)

        theirs = T.stats_from_ms(bench_gpu_time(fi_call, use_cuda_graph=True, cold_l2_cache=True,
                                                input_args=(x, ids.to(torch.int32), wts.float()),
                                                repeat_time_ms=a.repeat_ms))
        plain = T.stats_from_ms(bench_gpu_time(lambda: torch_moe(x, ids, wts, w1, w2), use_cuda_graph=False,
                                               cold_l2_cache=True, repeat_time_ms=a.repeat_ms))
        plain_bytes = T.moe_bytes(hit, w1[0].numel() * 2 + w2[0].numel() * 2, n, shapes.hidden_size, shapes.top_k)
        row = {"tokens": n, "experts_hit": hit, "harness_us": ours.median_us, "bench_gpu_time_us": theirs.median_us,
               "torch_us": plain.median_us, "harness_tbs": nbytes / ours.median_us / 1e6,
               "bench_gpu_time_tbs": nbytes / theirs.median_us / 1e6, "torch_tbs": plain_bytes / plain.median_us / 1e6,
               "peak_tbs": gpu.bandwidth_tbs if gpu else None}
        rows.append(row)
        print(f"{n:>6} {hit:>5.0f} | {ours.median_us:>11.1f} {row['harness_tbs']:>6.2f} | {theirs.median_us:>17.1f} "
              f"{row['bench_gpu_time_tbs']:>6.2f} | {plain.median_us:>9.1f} {row['torch_tbs']:>6.2f}")
        del acts, sets
        torch.cuda.empty_cache()
    if a.json:
        Path(a.json).write_text(json.dumps({"gpu": name, "model": a.model, "quant": a.quant, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
