"""GPU targets for ``check``: names, architectures, datasheet peaks, and the local GPU.

A *target* is what a ``check`` column is evaluated for: a named GPU (``B200``) or a bare
architecture (``sm100``). Kernel support depends only on the architecture (CUDA compute
capability ``major*10 + minor``); the named rows also carry memory bandwidth and peak
tensor-core throughput, which the run-layer command uses to report % of the hardware limit.

Peaks: every TFLOP/s number here is DENSE (no 2:4 structured sparsity). Vendor datasheets
usually headline the sparse figure; where they do, the dense number is half of it, and the row's
``peaks_source`` says so. Numbers flagged ``approx=True`` are derived (e.g. from a whitepaper
table or a sparse headline) rather than read as a dense figure from a datasheet: treat them as
±10 %.

Local GPU detection never imports torch: it runs
``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` with a short timeout; no
binary, a timeout, or an error all mean "no local GPU".
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from typing import NamedTuple

from .errors import BadInputError


class GPU(NamedTuple):
    name: str  # canonical display name, e.g. "B200"
    arch: int  # compute capability major*10+minor, e.g. 100
    aliases: tuple[str, ...]
    memory_gb: float
    bandwidth_tbs: float  # HBM/GDDR/LPDDR bandwidth, TB/s
    bf16_tflops: float  # dense tensor-core peak
    fp8_tflops: float  # dense
    fp4_tflops: float | None  # dense; None = no FP4 tensor cores
    peaks_source: str
    approx: bool = False
    dense: bool = True  # every peak above is dense (no sparsity)

    @property
    def memory_gib(self) -> float:
        """GPU memory for the memory estimate: the datasheet capacity, read as GiB (HBM stacks come in
        binary sizes: H100's "80 GB" is 5 × 16 GiB); the driver reports 1–2 % less (firmware, ECC)."""
        return float(self.memory_gb)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "arch": self.arch, "sm": f"sm{self.arch}", "memory_gb": self.memory_gb,
            "bandwidth_tbs": self.bandwidth_tbs, "bf16_tflops": self.bf16_tflops, "fp8_tflops": self.fp8_tflops,
            "fp4_tflops": self.fp4_tflops, "dense": self.dense, "approx": self.approx, "peaks_source": self.peaks_source,
        }


# Vendor datasheet numbers, per GPU (an 8-GPU HGX/DGX or a 72-GPU NVL72 figure divided by the GPU
# count), dense = sparse headline / 2.
GPU_TABLE: tuple[GPU, ...] = (
    GPU("H100", 90, ("h100-sxm", "h100sxm", "h100-sxm5", "hopper"), 80, 3.35, 989.4, 1978.9, None,
        "NVIDIA H100 Tensor Core GPU datasheet (SXM5): BF16 1,979 / FP8 3,958 TFLOPS with sparsity"),
    GPU("H200", 90, ("h200-sxm", "h200sxm"), 141, 4.8, 989.4, 1978.9, None,
        "NVIDIA H200 Tensor Core GPU datasheet (SXM): BF16 1,979 / FP8 3,958 TFLOPS with sparsity"),
    GPU("B200", 100, ("hgx-b200", "dgx-b200", "blackwell"), 180, 8.0, 2250, 4500, 9000,
        "NVIDIA DGX/HGX B200 datasheet: 8 GPUs FP4 144 / FP8 72 / BF16 36 PFLOPS with sparsity, 64 TB/s HBM3e"),
    GPU("GB200", 100, ("gb200-nvl72", "gb200nvl72"), 186, 8.0, 2500, 5000, 10000,
        "NVIDIA GB200 NVL72 datasheet: per GB200 (2 GPUs) FP4 40 / FP8 20 / BF16 10 PFLOPS with sparsity, 16 TB/s"),
    GPU("B300", 103, ("hgx-b300", "dgx-b300", "blackwell-ultra"), 288, 8.0, 2250, 4500, 13500,
        "NVIDIA HGX B300 datasheet: 8 GPUs FP4 108 PFLOPS dense, FP8 72 / BF16 36 PFLOPS with sparsity, 64 TB/s", True),
    GPU("GB300", 103, ("gb300-nvl72", "gb300nvl72"), 288, 8.0, 2500, 5000, 15000,
        "NVIDIA GB300 NVL72 datasheet: 72 GPUs FP4 1,080 PFLOPS dense, FP8 720 / BF16 360 PFLOPS with sparsity", True),
    GPU("RTX PRO 6000", 120, ("rtx-pro-6000", "rtxpro6000", "rtx6000-pro", "rtx-pro-6000-blackwell", "pro6000"),
        96, 1.792, 503.8, 1007.6, 2015.2,
        "NVIDIA RTX PRO 6000 Blackwell datasheet (4 PFLOPS FP4 with sparsity) + RTX Blackwell whitepaper tables",
        True),
    GPU("RTX 5090", 120, ("rtx-5090", "rtx5090", "5090", "geforce-rtx-5090"), 32, 1.792, 209.5, 419, 838,
        "NVIDIA RTX Blackwell GPU architecture whitepaper (GeForce RTX 5090, FP32-accumulate tensor rates)", True),
    GPU("DGX Spark", 121, ("dgx-spark", "spark", "gb10"), 128, 0.273, 125, 250, 500,
        "NVIDIA DGX Spark datasheet: 1 PFLOP FP4 with sparsity, 128 GB LPDDR5x at 273 GB/s", True),
)

ARCHS: tuple[int, ...] = (90, 100, 103, 120, 121)


class Target(NamedTuple):
    """One column of a check: a named GPU or a bare architecture."""

    label: str  # "B200" or "sm100"
    arch: int
    gpu: GPU | None = None
    local: bool = False  # detected on this machine

    def to_dict(self) -> dict:
        return {"gpu": self.label, "arch": f"sm{self.arch}", "arch_int": self.arch, "local": self.local,
                "specs": self.gpu.to_dict() if self.gpu else None}


def _key(s: str) -> str:
    return re.sub(r"[\s_\-]+", "", s.strip().lower())


def _index() -> dict[str, GPU]:
    idx: dict[str, GPU] = {}
    for g in GPU_TABLE:
        idx[_key(g.name)] = g
        for a in g.aliases:
            idx[_key(a)] = g
    return idx


_ARCH_RE = re.compile(r"^(?:sm|compute|cc)?_?(\d{2,3})[af]?$")
_CC_RE = re.compile(r"^(\d{1,2})\.(\d)$")


def parse_arch(text: str) -> int | None:
    """'sm90' | 'sm_100' | '100' | '10.0' | 'sm100a' -> int, or None when it is not an arch spelling."""
    k = _key(text)
    m = _CC_RE.match(text.strip())
    if m:
        return int(m.group(1)) * 10 + int(m.group(2))
    m = _ARCH_RE.match(k)
    if m:
        return int(m.group(1))
    return None


def gpu_by_name(name: str) -> GPU | None:
    return _index().get(_key(name))


def all_targets() -> list[Target]:
    return [Target(g.name, g.arch, g) for g in GPU_TABLE]


def parse_target(text: str) -> list[Target]:
    """One ``--gpu`` value -> targets. 'all' expands to every named GPU; 'local' to the visible one."""
    t = text.strip()
    if not t:
        raise BadInputError("--gpu: empty GPU name")
    k = _key(t)
    if k == "all":
        return all_targets()
    if k == "local":
        loc = detect_local_gpu()
        if loc is None:
            raise BadInputError("--gpu local: no NVIDIA GPU visible (nvidia-smi absent or failed)")
        return [loc]
    g = gpu_by_name(t)
    if g is not None:
        return [Target(g.name, g.arch, g)]
    arch = parse_arch(t)
    if arch is not None:
        if arch not in ARCHS:
            raise BadInputError(
                f"--gpu {t}: architecture sm{arch} is not in the table (known: {', '.join(f'sm{a}' for a in ARCHS)})")
        return [Target(f"sm{arch}", arch, None)]
    names = [g.name for g in GPU_TABLE] + [f"sm{a}" for a in ARCHS]
    cands = {_key(n): n for n in names}
    cands.update({_key(a): g.name for g in GPU_TABLE for a in g.aliases})
    close = difflib.get_close_matches(k, list(cands), n=3, cutoff=0.5)
    sugg = sorted({cands[c] for c in close})
    hint = f"did you mean {', '.join(sugg)}?" if sugg else f"known: {', '.join(names)}"
    raise BadInputError(f"--gpu {t}: unknown GPU or architecture", hint=hint)


def parse_targets(values: list[str] | tuple[str, ...] | None) -> list[Target]:
    """Every ``--gpu`` value (repeatable, comma-separated) -> de-duplicated targets, in order."""
    out: list[Target] = []
    seen: set[str] = set()
    for v in values or ():
        for part in v.split(","):
            if not part.strip():
                continue
            for tgt in parse_target(part):
                if tgt.label not in seen:
                    seen.add(tgt.label)
                    out.append(tgt)
    return out


def _match_local(name: str, arch: int | None) -> GPU | None:
    n = name.lower()
    rules = (("gb300", "GB300"), ("b300", "B300"), ("gb200", "GB200"), ("b200", "B200"), ("h200", "H200"),
             ("h100", "H100"), ("rtx pro 6000", "RTX PRO 6000"), ("5090", "RTX 5090"), ("gb10", "DGX Spark"),
             ("spark", "DGX Spark"))
    for needle, gname in rules:
        if needle in n:
            g = gpu_by_name(gname)
            if g and (arch is None or g.arch == arch):
                return g
    return None


def parse_nvidia_smi(text: str) -> Target | None:
    """First line of ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` -> Target."""
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rsplit(",", 1)]
        name = parts[0]
        arch = parse_arch(parts[1]) if len(parts) == 2 else None
        g = _match_local(name, arch)
        if g is not None:
            return Target(g.name, g.arch, g, local=True)
        if arch is None:
            return None
        return Target(f"sm{arch}", arch, None, local=True)
    return None


def detect_local_gpu(timeout: float = 2.0) -> Target | None:
    """The first visible NVIDIA GPU, via nvidia-smi (never torch). None when there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return parse_nvidia_smi(proc.stdout)
