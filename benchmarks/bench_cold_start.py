"""Cold-process timing of `moe-inspect detect` / `check` (the < 0.5 s budget) and heavy-import audit.

    python benchmarks/bench_cold_start.py [--runs 15] [--command check] [--baseline DIR] [-- <extra args>]

Each run is a fresh interpreter (`python -m moe_inspect.cli.app …`), offline, answering from the
built-in catalog (or a local dir given with --model). Prints min/median/max wall time and the
modules that matter from `python -X importtime` (torch, transformers, flashinfer must be absent).

``--baseline DIR`` times the same command from another checkout (``git worktree add /tmp/base REV``),
runs alternating with this one, and prints the median of the per-pair ratios (this / baseline):
pairing keeps the ratio honest when the machine's speed drifts. Compile both trees' bytecode first
(``python -m compileall -q moe_inspect``) when PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "transformers", "flashinfer", "numpy")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd: list[str], env: dict, cwd: str = ROOT) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd)
    dt = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return dt


def heavy_imports(cmd: list[str], env: dict) -> tuple[list[str], list[tuple[int, str]]]:
    r = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True)
    found, top = set(), []
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        try:
            cumulative = int(parts[1])
        except ValueError:
            continue
        mod = parts[2].strip()
        if mod.split(".")[0] in HEAVY:
            found.add(mod.split(".")[0])
        if not parts[2].startswith(" "):  # top-level imports only
            top.append((cumulative, mod))
    return sorted(found), sorted(top, reverse=True)[:8]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--model", default="MiniMaxAI/MiniMax-M2.5")
    ap.add_argument("--command", default="detect", choices=["detect", "check"])
    ap.add_argument("--baseline", metavar="DIR", help="another checkout to compare with, run alternately")
    args, extra = ap.parse_known_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "moe_inspect.cli.app", args.command, args.model, "--json", *extra]
    if args.command == "check" and "--gpu" not in extra:
        cmd += ["--gpu", "B200"]
    run(cmd, env)  # warm the OS file cache (pyc files), not the interpreter
    if args.baseline:
        run(cmd, env, args.baseline)
        pairs = [(run(cmd, env), run(cmd, env, args.baseline)) for _ in range(args.runs)]
        times, base = [a for a, _ in pairs], [b for _, b in pairs]
        ratios = sorted(a / b for a, b in pairs)
        print(f"baseline {args.baseline}: median {statistics.median(base)*1e3:.0f} ms; this / baseline per pair: "
              f"median {statistics.median(ratios):.3f} (min {ratios[0]:.3f}, max {ratios[-1]:.3f})")
    else:
        times = [run(cmd, env) for _ in range(args.runs)]
    heavy, top = heavy_imports(cmd, env)
    print(f"{' '.join(cmd[2:])}")
    print(f"cold process wall time over {args.runs} runs: min {min(times)*1e3:.0f} ms, "
          f"median {statistics.median(times)*1e3:.0f} ms, max {max(times)*1e3:.0f} ms")
    print(f"heavy modules imported: {heavy or 'none'}")
    print("largest top-level imports (cumulative µs):")
    for us, mod in top:
        print(f"  {us:>8}  {mod}")


if __name__ == "__main__":
    main()
