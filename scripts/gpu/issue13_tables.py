"""Markdown tables from the JSON that scripts/gpu/issue13.sh writes (issue 13 closing note).

    python scripts/gpu/issue13_tables.py /work/notes/issue13-gpu
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODELS = (("minimax", "MiniMax-M2.5"), ("dsv3", "DeepSeek-V3"))


def load(p: Path):
    s = p.read_text()
    return json.loads(s[s.index("{"):])  # a library may print a log line before the JSON


def main(d: Path) -> int:
    print("### Per phase, 2 × H200 (µs, median over iterations, max over ranks)\n")
    print("| model | quant | T | scheme | route | dispatch | experts | combine | total | moved MB | link GB/s | rel L2 | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for tag, name in MODELS:
        for q in ("bf16", "nvfp4"):
            f = d / f"mg-{tag}-{q}.json"
            if not f.exists():
                continue
            r = load(f)
            for row in r["rows"]:
                tot = {}
                for s in row["schemes"]:
                    ph, a = s["phases_us"], s["accuracy"]
                    moved = (s["bytes"]["dispatch"] + s["bytes"]["combine"]) / 1e6
                    links = "/".join(f"{v:.1f}" for v in s["link_gbs"].values() if v) or "–"
                    print(f"| {name} | {q} | {row['tokens']} | {s['label']} | {ph['route']:.0f} | {ph['dispatch']:.0f} | "
                          f"{ph['experts']:.0f} | {ph['combine']:.0f} | {ph['total']:.0f} | {moved:.2f} | {links} | "
                          f"{a['rel_l2']:.2e} | {'pass' if a['passed'] else 'FAIL'} |")
                    tot[s["scheme"]] = ph
                summary.append((name, q, row["tokens"], tot))
    print("\n### TP 2 vs EP 2 (all-to-all), same global tokens\n")
    print("| model | quant | T | TP total | EP total | EP/TP | TP experts | EP experts | EP dispatch+combine |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, q, t, tot in summary:
        tp, ep = tot.get("tp"), tot.get("ep-a2a")
        if tp and ep:
            print(f"| {name} | {q} | {t} | {tp['total']:.0f} | {ep['total']:.0f} | {ep['total'] / tp['total']:.2f} | "
                  f"{tp['experts']:.0f} | {ep['experts']:.0f} | {ep['dispatch'] + ep['combine']:.0f} |")
    print("\n### One H200: FlashInfer vs the grouped-GEMM peer (µs, CUDA graphs, same token sets)\n")
    print("| model | quant | T | FlashInfer | p10–p90 | peer | FI/peer | FI rel L2 | ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tag, name in MODELS:
        for q in ("bf16", "nvfp4"):
            f = d / f"single-{tag}-{q}.json"
            if not f.exists():
                continue
            r = load(f)
            for row in r["rows"]:
                tm, p, a = row["timing"], row.get("peer") or {}, row["accuracy"]
                print(f"| {name} | {q} | {row['tokens']} | {tm['median_us']:.1f} | {tm['p10_us']:.1f}–{tm['p90_us']:.1f} | "
                      f"{p.get('median_us', float('nan')):.1f} | {p.get('flashinfer_over_peer') or float('nan'):.2f} | "
                      f"{a['rel_l2']:.2e} | {'pass' if a['passed'] else 'FAIL'} |")
    f = d / "link.json"
    if f.exists():
        ln = json.loads(f.read_text())
        print(f"\n### Links\n\npeer copy 0→1 {ln['copy_0_to_1_gbs']:.0f} GB/s, 1→0 {ln['copy_1_to_0_gbs']:.0f} GB/s\n")
        print("| MiB | all-reduce µs | busbw GB/s | all-to-all µs | algbw GB/s |")
        print("|---|---|---|---|---|")
        for r in ln["nccl"]["rows"]:
            print(f"| {r['mib']} | {r['allreduce_us']:.1f} | {r['allreduce_busbw_gbs']:.0f} | {r['all_to_all_us']:.1f} | "
                  f"{r['all_to_all_algbw_gbs']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
