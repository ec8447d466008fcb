"""One MoE layer: FlashInfer against torch's grouped GEMM, timed by the same harness (CUDA GPU + FlashInfer).

    python benchmarks/bench_layer.py --model MiniMaxAI/MiniMax-M2.5 --quant bf16 --tokens 1,16,128,1024

For each token count, the SAME token sets (same hidden states, same routed ids and weights) go to

1. FlashInfer's unified MoE API (the run-layer path: cuTile on SM90, TRT-LLM on SM100), timed by
   our harness (``moe_inspect.layer.timing.bench_cycled``: CUDA graphs, K different token sets
   cycled inside the graph so the experts' weights are cold);
2. the same FlashInfer call timed by ``flashinfer.testing.bench_gpu_time`` directly, with its own
   cold-L2 mode (rotating clones of the inputs; the weights stay the same) — a check on the harness;
3. the peer: ``torch._grouped_mm`` (CUTLASS grouped GEMM, BF16 weights — for weight-only formats
   the exact BF16 dequantization of the codes), device-side group offsets, CUDA-graph captured and
   timed by the same harness (``moe_inspect.layer.peer``).

Correctness: FlashInfer and the peer against the float32 reference of the layer (rel-L2); the plain
per-expert Python loop (host-synchronizing, so never graph-captured) is kept only as a third
correctness baseline (``--loop``), not timed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def torch_moe_loop(x, ids, wts, w1, w2):
    """Plain torch MoE (BF16, one matmul pair per expert in a Python loop): the correctness baseline.

    Canonical ``w1 [E, 2I, H]`` ([up, gate]), ``w2 [E, H, I]``."""
    import torch
    import torch.nn.functional as F

    out = torch.zeros_like(x, dtype=torch.float32)
    i = w2.shape[-1]
    flat = ids.reshape(-1).long()
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
        out.index_add_(0, t, y.float() * wts.reshape(-1)[sel].float().unsqueeze(-1))
    return out.to(torch.bfloat16)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="MiniMaxAI/MiniMax-M2.5")
    ap.add_argument("--quant", default="bf16")
    ap.add_argument("--tokens", default="1,16,128,1024")
    ap.add_argument("--repeat-ms", type=float, default=100.0)
    ap.add_argument("--loop", action="store_true", help="also check the plain per-expert Python loop (not timed)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    a = ap.parse_args(argv)

    import json
    from dataclasses import replace

    import torch
    from flashinfer.testing import bench_gpu_time

    from moe_inspect.layer import kernels as K
    from moe_inspect.layer import timing as T
    from moe_inspect.layer.distributed import route_tokens
    from moe_inspect.layer.peer import GroupedMMPeer, peer_weights_note
    from moe_inspect.layer.reference import compare, reference_moe, tolerance_for
    from moe_inspect.layer.runner import RunLayerOptions, cuda_arch, local_gpu_spec, parse_tokens, plan, resolve_shapes
    from moe_inspect.layer.weights import random_layer

    opts = RunLayerOptions(model=a.model, quant=a.quant, act="bf16", offline=True, precomputed_routing=True)
    shapes, _, _ = resolve_shapes(opts)
    shapes = replace(shapes, num_shared_experts=0)  # routed experts only: the same work on both sides
    arch, name = cuda_arch()
    path, mode = plan(opts, shapes, arch)
    fi = K.flashinfer_namespace()
    gpu = local_gpu_spec(name, arch)
    dev = torch.device("cuda", 0)
    w = random_layer(shapes, a.quant, device=dev)
    cfg = K.build_config(fi, path, shapes)
    pack = K.make_weight_pack(fi, path, K.prepare_weight_view(fi, path, w, device=dev, config=cfg))
    moe = fi.MoELayer(cfg, device=dev)
    peer = GroupedMMPeer.from_weights(w)
    tol = tolerance_for(a.quant, path.quantized_activations)
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    g = torch.Generator(device=dev).manual_seed(1)
    bias = w.router_bias.float() if w.router_bias is not None else None
    rows = []
    print(f"{name} (SM{arch}), FlashInfer {fi.version}, torch {torch.__version__}, {a.model} {a.quant} via "
          f"{path.config_class}; peer: torch._grouped_mm, {peer_weights_note(a.quant)}")
    print(f"{'tokens':>6} {'hit':>5} | {'harness µs':>10} {'bench_gpu_time µs':>17} {'TB/s':>6} | {'peer µs':>9} "
          f"{'FI/peer':>7} | {'FI relL2':>9} {'peer relL2':>10}" + (f" {'loop relL2':>10}" if a.loop else ""))
    for n in parse_tokens(a.tokens):
        def make():
            x = torch.randn((n, shapes.hidden_size), generator=g, device=dev).to(torch.bfloat16)
            ids, wts = route_tokens(shapes, w.router_logits(x), bias, arch=arch)
            return x, ids, wts

        x, ids, wts = make()
        hit = float(torch.unique(ids).numel())
        nbytes = T.moe_bytes(hit, w.expert_bytes(), n, shapes.hidden_size, shapes.top_k)
        k = T.token_sets_for_cold_l2(nbytes, l2)
        sets = [(x, ids, wts)] + [make() for _ in range(k - 1)]
        acts = [K.make_activation_pack(fi, path, cfg, s[0], mode=mode, topk_ids=s[1], topk_weights=s[2]) for s in sets]
        ref = reference_moe(x, ids, wts, w)
        fi_out = moe(acts[0], pack)
        peer_out = peer(x, ids, wts)
        acc_fi, acc_peer = compare(fi_out, ref, tol), compare(peer_out, ref, tol)
        loop_rel = None
        if a.loop:
            w1, w2 = w.bf16_canonical()
            loop_rel = compare(torch_moe_loop(x, ids, wts, w1, w2), ref, tol).rel_l2
        for act in acts:
            moe(act, pack)
        torch.cuda.synchronize()
        ours = T.bench_cycled([lambda act=act: moe(act, pack) for act in acts], repeat_time_ms=a.repeat_ms)

        def fi_call(hs, i, wt):
            moe(fi.MoEActivationPack(hs, None, i, wt, routing_input_mode=fi.RoutingInputMode.PackedPrecomputed), pack)

        theirs = T.stats_from_ms(bench_gpu_time(fi_call, use_cuda_graph=True, cold_l2_cache=True,
                                                input_args=(x, ids.to(torch.int32), wts.float()),
                                                repeat_time_ms=a.repeat_ms))
        for s in sets:
            peer(*s)
        torch.cuda.synchronize()
        pst = T.bench_cycled([lambda s=s: peer(*s) for s in sets], repeat_time_ms=a.repeat_ms)
        row = {"tokens": n, "experts_hit": hit, "token_sets": k, "harness_us": ours.median_us,
               "bench_gpu_time_us": theirs.median_us, "peer_us": pst.median_us,
               "flashinfer_over_peer": ours.median_us / pst.median_us, "harness_tbs": nbytes / ours.median_us / 1e6,
               "fi_rel_l2": acc_fi.rel_l2, "peer_rel_l2": acc_peer.rel_l2, "loop_rel_l2": loop_rel,
               "peak_tbs": gpu.bandwidth_tbs if gpu else None}
        rows.append(row)
        print(f"{n:>6} {hit:>5.0f} | {ours.median_us:>10.1f} {theirs.median_us:>17.1f} {row['harness_tbs']:>6.2f} | "
              f"{pst.median_us:>9.1f} {row['flashinfer_over_peer']:>7.2f} | {acc_fi.rel_l2:>9.2e} {acc_peer.rel_l2:>10.2e}"
              + (f" {loop_rel:>10.2e}" if a.loop else ""))
        del acts, sets, ref, fi_out, peer_out
        torch.cuda.empty_cache()
    if a.json:
        Path(a.json).write_text(json.dumps({"gpu": name, "model": a.model, "quant": a.quant, "peer": peer_weights_note(
            a.quant), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
