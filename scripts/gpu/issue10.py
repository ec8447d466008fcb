"""Issue 10 on the GPU machine: build FlashInfer's trtllm-gen routing for this GPU, measure its
agreement with our references, capture small kernel vectors for the CPU tests.

    python scripts/gpu/issue10.py build   OUT     # build/load, copy the .so to OUT, build_info.json
    python scripts/gpu/issue10.py capture OUT     # agreement.json + kernel_vectors.pt
    python scripts/gpu/issue10.py verify  OUT     # `verify --kernel` for every catalog model (JSON)

Run through scripts/gpu/issue10.sh (after `source .gpu/setup.sh`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

TOKENS = (1, 64, 1024, 4096)
SCALES = (1.0, 3.0)  # N(0,1) logits and a stated "realistic" 3x spread
SEED = 0
MAX_ROWS = 48  # divergent rows saved per configuration


def _shapes():
    """One routing shape per catalog model whose method a FlashInfer routing kernel implements."""
    from moe_inspect.detect import describe
    from moe_inspect.catalog import entries
    from moe_inspect.kernels import trtllm_routing as tr

    out = []
    for entry in entries():
        d = describe(entry.id, offline=True)
        s, m = d.moe, d.routing.method
        if m not in tr.METHOD_IDS:
            continue
        out.append(dict(model=entry.id, method=m, e=s.num_experts, k=s.top_k, g=s.n_group or 0, tg=s.topk_group or 0,
                        scale=s.routed_scaling_factor, bias=bool(s.has_correction_bias),
                        norm=bool(s.renormalize) if s.renormalize is not None else True))
    for m in ("Renormalize", "SigmoidRenorm", "Sigmoid", "TopK", "TopKSigmoid"):  # no catalog model uses them
        out.append(dict(model=f"synthetic E=128 k=8 {m}", method=m, e=128, k=8, g=0, tg=0, scale=None, bias=False,
                        norm=True))
    return out


def cmd_build(out: Path) -> None:
    from moe_inspect.kernels import trtllm_routing as tr

    t0 = time.time()
    info = tr.build_info()
    info["build_or_load_s"] = round(time.time() - t0, 1)
    if info.get("library"):
        shutil.copy(info["library"], out / "trtllm_routing_sm90a.so")
    (out / "build_info.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))


def _weights_equal(ids_a, w_a, ids_b, w_b):
    """Among tokens with equal sets: fraction whose bf16 weights are bit-equal, max |diff| (fp32)."""
    import torch

    ia, pa = torch.sort(ids_a.long().cpu(), -1)
    ib, pb = torch.sort(ids_b.long().cpu(), -1)
    same = (ia == ib).all(-1)
    wa = torch.gather(w_a.float().cpu(), 1, pa)
    wb = torch.gather(w_b.float().cpu(), 1, pb)
    eq = (wa == wb).all(-1) & same
    diff = (wa - wb).abs().max(-1).values[same]
    return int(eq.sum()), int(same.sum()), float(diff.max()) if diff.numel() else 0.0


def _one(shape, t, scale, gen, vectors):
    import torch

    from moe_inspect.kernels import fused_topk_deepseek as ftd
    from moe_inspect.kernels import trtllm_routing as tr
    from moe_inspect.kernels.agreement import set_differs
    from moe_inspect.reference.routers import route

    e, k = shape["e"], shape["k"]
    logits = torch.randn(t, e, generator=gen) * scale
    bias = (torch.randn(e, generator=gen) * 0.1) if shape["bias"] else None
    kw = dict(top_k=k, bias=bias, n_group=shape["g"] or None, topk_group=shape["tg"] or None,
              routed_scaling_factor=shape["scale"], norm_topk_prob=shape["norm"])
    kern = tr.route(shape["method"], logits.cuda(), **{**kw, "bias": None if bias is None else bias.cuda()})
    ref = route(shape["method"], logits, output_dtype=None, **kw)
    exact = route(shape["method"], logits, kernel="trtllm-gen", **kw)
    d_ref, d_exact = set_differs(kern.topk_ids, ref.topk_ids), set_differs(kern.topk_ids, exact.topk_ids)
    weq, wsame, wmax = _weights_equal(kern.topk_ids, kern.topk_weights, exact.topk_ids, exact.topk_weights)
    row = dict(model=shape["model"], method=shape["method"], T=t, logit_scale=scale,
               kernel_vs_reference=int(d_ref.sum()), kernel_vs_exact=int(d_exact.sum()),
               kernel_vs_reference_tokens=[int(i) for i in torch.nonzero(d_ref).flatten()[:64]],
               kernel_vs_exact_tokens=[int(i) for i in torch.nonzero(d_exact).flatten()[:64]],
               weights_bitequal_exact=weq, weights_compared=wsame, weights_max_abs_diff_exact=wmax,
               ids_order_equal_exact=int((kern.topk_ids.cpu() == exact.topk_ids).all(-1).sum()))
    if shape["method"] == "DeepSeekV3" and ftd.supported(90, e, k, shape["g"], shape["tg"]):
        fids, fw = ftd.run(logits.cuda(), bias.cuda() if bias is not None else None, n_group=shape["g"],
                           topk_group=shape["tg"], top_k=k, routed_scaling_factor=shape["scale"])
        row["fused_vs_reference"] = int(set_differs(fids, ref.topk_ids).sum())
        row["fused_vs_trtllm"] = int(set_differs(fids, kern.topk_ids).sum())
    keep = torch.nonzero(d_ref | d_exact).flatten()[:MAX_ROWS].tolist()
    if t >= 64:
        keep = sorted(set(keep) | {0, 1})
    if keep:
        idx = torch.tensor(keep)
        x = logits[idx]
        vectors.append(dict(model=shape["model"], method=shape["method"], T=t, logit_scale=scale,
                            kwargs={**{a: b for a, b in kw.items() if a != "bias"}}, bias=bias, tokens=keep,
                            logits=x, kernel_ids=kern.topk_ids.cpu()[idx], kernel_weights=kern.topk_weights.cpu()[idx],
                            cuda_sigmoid=(0.5 * torch.tanh(0.5 * x.cuda()) + 0.5).cpu()))
    return row


def cmd_capture(out: Path) -> None:
    import torch

    rows, vectors, seen = [], [], set()
    for shape in _shapes():
        key = (shape["method"], shape["e"], shape["k"], shape["g"], shape["tg"], shape["scale"], shape["bias"])
        if key in seen:
            continue
        seen.add(key)
        gen = torch.Generator().manual_seed(SEED)
        for t in TOKENS:
            for scale in SCALES:
                try:
                    rows.append(_one(shape, t, scale, gen, vectors))
                except Exception as e:  # record and go on: one shape must not hide the others
                    rows.append(dict(model=shape["model"], method=shape["method"], T=t, logit_scale=scale,
                                     error=f"{type(e).__name__}: {e}"[:300]))
                print(json.dumps(rows[-1])[:300], flush=True)
    (out / "agreement.json").write_text(json.dumps(rows, indent=1))
    torch.save(vectors, out / "kernel_vectors.pt")


def cmd_verify(out: Path) -> None:
    """`verify --kernel` (in one process) for every catalog model whose method a FlashInfer kernel
    implements, T = 1 / 64 / 1024, logits N(0,1) and 3 N(0,1); models with the same routing shape as
    one already run are listed as such."""
    from moe_inspect.catalog import entries
    from moe_inspect.errors import MoeInspectError
    from moe_inspect.verify import verify_model

    results, seen = {}, {}
    for entry in entries():
        for scale in SCALES:
            for t in (1, 64, 1024):
                key = f"{entry.id} T={t} scale={scale:g}"
                try:
                    r = verify_model(entry.id, offline=True, kernel=True, tokens=t, logit_scale=scale)
                    results[key] = r.to_dict()
                except MoeInspectError as e:
                    results[key] = {"exit_code": e.exit_code, "error": str(e)}
                print(key, results[key].get("verdict", results[key].get("error", ""))[:200], flush=True)
    (out / "verify_kernel.json").write_text(json.dumps(results, indent=1, default=str))
    for m in ("deepseek-ai/DeepSeek-V3", "MiniMaxAI/MiniMax-M2.5", "moonshotai/Kimi-K2-Instruct"):
        p = subprocess.run([sys.executable, "-c", "from moe_inspect.cli.app import main; main()", "verify", m,
                            "--offline", "--kernel", "--tokens", "1024"], capture_output=True, text=True, timeout=200,
                           env={**__import__("os").environ, "COLUMNS": "120"})
        (out / f"verify_kernel_{m.replace('/', '_')}.txt").write_text(p.stdout + p.stderr + f"\nexit {p.returncode}\n")


def cmd_probe(out: Path) -> None:
    """The one MiniMax2 token the kernel-exact reference does not reproduce (T=1024, N(0,1), token
    377, gap 5e-6): the same row routed alone (T=1), inside its T=1024 batch, and repeated to T=4096
    (another kernel path), with the bias in fp32 and bf16."""
    import torch

    from moe_inspect.kernels import trtllm_routing as tr

    data = torch.load("tests/data/trtllm_gen_routing_h200.pt", weights_only=False)
    v = next(x for x in data["vectors"] if x["method"] == "MiniMax2" and x["T"] == 1024)
    row = v["logits"][v["tokens"].index(377)]
    gen = torch.Generator().manual_seed(SEED)
    res = {}
    for t in (1, 8, 64, 256, 1024, 2048, 4096):
        x = torch.randn(t, 256, generator=gen)
        x[t // 2] = row
        for bdt in (torch.float32, torch.bfloat16):
            r = tr.route("MiniMax2", x.cuda(), bias=v["bias"].to(bdt).cuda(), top_k=8, routed_scaling_factor=1.0)
            res[f"T={t} bias={bdt}"] = sorted(r.topk_ids[t // 2].tolist())
    (out / "probe.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


if __name__ == "__main__":
    sub, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    {"build": cmd_build, "capture": cmd_capture, "verify": cmd_verify, "probe": cmd_probe}[sub](out)
