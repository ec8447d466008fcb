"""FlashInfer's trtllm-gen routing kernels (the routing stage of its TRT-LLM fused MoE), on this GPU.

The one home of this kernel's facts: which GPUs run it, how it is built on Hopper, which methods
and sizes it takes, and how it is called. Read from flashinfer-python 0.7.2.post1:

* ``flashinfer/fused_moe/trtllm_gen_routing.py:36``: ``trtllm_gen_routing`` is gated to
  SM 100/103/120/121 (:data:`NATIVE_ARCHS`): FlashInfer's own API runs it there.
* ``flashinfer/jit/fused_moe.py:448`` ``gen_trtllm_gen_routing_module``: the nine sources
  (:data:`SOURCES`) and the flags (:data:`DEFINES`), compiled by FlashInfer for SM10x/12x only.
  The sources guard their SM90+ features with ``__CUDA_ARCH__ >= 900``; on SM90 this module
  compiles the same sources for ``sm_90a`` (:func:`build_args`). **FlashInfer does not ship
  this path on SM90**; it is ours, and every result says so.
* The build needs the trtllm-gen BMM export headers
  (``flashinfer/trtllm/batched_gemm/trtllmGen_bmm_export/*.h``). Looked up in this order
  (:func:`find_headers`): a directory given on the command line (``--trtllm-headers``);
  FlashInfer's artifact cache (``FLASHINFER_CUBIN_DIR``, filled by FlashInfer on a connected
  machine); ``$MOE_INSPECT_TRTLLM_HEADERS``; ``$TRTLLM_GEN_EXPORT_HEADERS``; the
  ``flashinfer-cubin`` package. Each names an include root holding that path. Headers older than
  0.7.2's pin (``flashinfer-cubin`` 0.6.13) lack ``ActType::SiTuGlu``; then
  ``-DTLLM_RUBIN_FEATURES`` is set for the two sources that include ``KernelRunner.h`` (it skips
  two ``static_assert`` s on that enum; the routing code does not use it).
* A module built once can be reused: ``$MOE_INSPECT_TRTLLM_ROUTING_SO`` names a prebuilt ``.so``
  (scripts/gpu/issue10.sh copies it out of FlashInfer's JIT cache).
* ``csrc/trtllm_fused_moe_routing_binding.cu``: ``trtllm_gen_routing(routing_logits,
  routing_bias, topk_packed, topk_weights, ...)``; weights are always written in bf16; ids are
  reconstructed from the permutation as FlashInfer's wrapper does (:func:`_call_module`).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInputError, EnvironmentError_, UnsupportedError
from . import trtllm_moe_limits as L

NAME = "flashinfer trtllm-gen routing (trtllm_gen_routing)"
SOURCE = "flashinfer-python 0.7.2.post1 flashinfer/fused_moe/trtllm_gen_routing.py, jit/fused_moe.py:448"
NATIVE_ARCHS: tuple[int, ...] = (100, 103, 120, 121)  # trtllm_gen_routing.py:36
COMPILED_ARCHS: tuple[int, ...] = (90,)  # built here from FlashInfer's sources for sm_90a
NOT_SHIPPED = ("FlashInfer 0.7.2.post1 does not ship trtllm-gen routing on SM90 (it builds it for SM100/103/120/121 "
               "only); moe-inspect compiled FlashInfer's own sources for sm_90a")

ENV_HEADERS = "MOE_INSPECT_TRTLLM_HEADERS"
ENV_EXPORT_HEADERS = "TRTLLM_GEN_EXPORT_HEADERS"  # exported by .gpu/setup.sh
ENV_PREBUILT = "MOE_INSPECT_TRTLLM_ROUTING_SO"
HEADER_SUBDIR = "flashinfer/trtllm/batched_gemm/trtllmGen_bmm_export"
PROBE_HEADER = "BatchedGemmInterface.h"

# flashinfer/jit/fused_moe.py:486-503 (relative to FLASHINFER_CSRC_DIR)
SOURCES: tuple[str, ...] = (
    "trtllm_fused_moe_routing_binding.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_runner.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_deepseek.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_llama4.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_custom_block.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_custom_cluster.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_custom_cluster_large.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_custom_entry.cu",
    "fused_moe/trtllm_backend/trtllm_fused_moe_routing_common.cu",
)
KERNEL_RUNNER_SOURCES = SOURCES[:2]  # the two that include KernelRunner.h
# flashinfer/jit/fused_moe.py:474-479
DEFINES: tuple[str, ...] = ("-DTLLM_GEN_EXPORT_INTERFACE", "-DTLLM_ENABLE_CUDA", "-DENABLE_BF16", "-DENABLE_FP8",
                            "-DENABLE_FP4")

# flashinfer/tllm_enums.py:10-32 RoutingMethodType
METHOD_IDS: dict[str, int] = {
    "Default": 0, "Renormalize": 1, "DeepSeekV3": 2, "Llama4": 3, "RenormalizeNaive": 4, "TopK": 5,
    "SigmoidRenorm": 6, "MiniMax2": 7, "Sigmoid": 8, "TopKSigmoid": 9,
}

# compiled tiers per method: the one table in trtllm_moe_limits (shared with check and run-layer)
TIERS = L.TIERS

_DSV3 = "csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_deepseek.cu"
# grouped DeepSeekV3 (runner.cu:160-161, routing_deepseek.cu:510-546): (predicate, message)
_GROUPED_LIMITS = (
    (lambda e, k, g, tg: k <= L.GROUPED_MAX_TOP_K, "top_k ({k}) must be <= 22 (runner.cu:160)"),
    (lambda e, k, g, tg: tg <= L.GROUPED_MAX_TOPK_GROUP, "topk_group ({tg}) must be <= 4 (runner.cu:161)"),
    (lambda e, k, g, tg: e <= 512, f"num_experts ({{e}}) must be <= 512 ({_DSV3}:513)"),
    (lambda e, k, g, tg: g <= L.GROUPED_MAX_GROUPS, f"n_group ({{g}}) must be <= 8 ({_DSV3}:527)"),
    (lambda e, k, g, tg: e % g == 0, f"num_experts ({{e}}) must be a multiple of n_group ({{g}}) ({_DSV3}:530)"),
    (lambda e, k, g, tg: e // g <= L.GROUPED_MAX_EXPERTS_PER_GROUP,
     f"num_experts / n_group ({{epg}}) must be <= 32 ({_DSV3}:533)"),
    (lambda e, k, g, tg: tg <= g, f"topk_group ({{tg}}) must be <= n_group ({{g}}) ({_DSV3}:542)"),
    (lambda e, k, g, tg: e % 4 == 0, f"num_experts ({{e}}) must be a multiple of 4 ({_DSV3}:545)"),
    (lambda e, k, g, tg: e // g >= 2, "each group needs >= 2 experts (group score = top-2 sum)"),
    (lambda e, k, g, tg: k <= (e // g) * tg, "top_k ({k}) exceeds the experts of the kept groups"),
)

_BIND = "csrc/trtllm_fused_moe_routing_binding.cu"
# DeepSeekV3, grouped or not (the FFI entry point's own checks, routing_binding.cu:93-113)
_BINDING_LIMITS = (
    (lambda e, k, g, tg: e % g == 0, f"num_experts ({{e}}) must be divisible by n_group ({{g}}) ({_BIND}:96)"),
    (lambda e, k, g, tg: k <= (8 if e <= 384 else 22),
     f"top_k ({{k}}) must be <= 8 for num_experts <= 384, <= 22 above ({_BIND}:101-104)"),
    (lambda e, k, g, tg: 0 < tg <= 4, f"topk_group ({{tg}}) must be in 1..4 ({_BIND}:107)"),
    (lambda e, k, g, tg: tg <= g, f"topk_group ({{tg}}) must be <= n_group ({{g}}) ({_BIND}:109)"),
    (lambda e, k, g, tg: k < tg * e // g, f"top_k ({{k}}) must be < the experts of the kept groups ({_BIND}:110)"),
)


# ------------------------------------------------------------------------------------------ limits
def supports(method: str, num_experts: int, top_k: int, n_group: int | None = None,
             topk_group: int | None = None) -> str | None:
    """None when the trtllm-gen routing kernel implements ``method`` at these sizes, else why not."""
    e, k = int(num_experts), int(top_k)
    if method not in METHOD_IDS:
        return (f"{method} is not a FlashInfer RoutingMethodType (flashinfer/tllm_enums.py:10); no FlashInfer "
                "routing kernel implements it")
    if not 1 <= k <= e:
        return f"top_k ({k}) must be in 1..num_experts ({e})"
    g, tg = int(n_group or 0), int(topk_group or 0)
    if method == "DeepSeekV3":
        g, tg = max(g, 1), max(tg, 1)  # route() passes n_group = topk_group = 1 when ungrouped
        for ok, msg in _BINDING_LIMITS:
            if not ok(e, k, g, tg):
                return msg.format(e=e, k=k, g=g, tg=tg, epg=e // g)
    if method == "DeepSeekV3" and g > 1:
        for ok, msg in _GROUPED_LIMITS:
            if not ok(e, k, g, tg):
                return msg.format(e=e, k=k, g=g, tg=tg, epg=e // g)
        return None
    if method == "Llama4":
        if k != 1:
            return "Llama4 routing needs top_k == 1 (runner.cu:222)"
        return None if e <= 128 else (f"num_experts ({e}) must be <= 128 "
                                      "(csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_llama4.cu:536)")
    tiers, where = TIERS["DeepSeekV3-flat" if method == "DeepSeekV3" else method]
    if any(e <= te and k <= tk for te, tk in tiers):
        return None
    return f"no compiled tier covers num_experts={e}, top_k={k} for {method} ({where})"


# ------------------------------------------------------------------------------------------ headers
@dataclass(frozen=True)
class Headers:
    """An include root holding ``flashinfer/trtllm/batched_gemm/trtllmGen_bmm_export/``."""

    include_root: Path
    origin: str  # "--trtllm-headers" | "flashinfer artifact cache" | "$MOE_INSPECT_TRTLLM_HEADERS" | ...
    legacy: bool  # older than FlashInfer 0.7.2's pin: no ActType::SiTuGlu -> TLLM_RUBIN_FEATURES

    def to_dict(self) -> dict:
        return {"include_root": str(self.include_root), "origin": self.origin, "legacy": self.legacy}


def _has_headers(root: Path) -> bool:
    return (root / HEADER_SUBDIR / PROBE_HEADER).is_file()


def _legacy(root: Path) -> bool:
    enums = root / HEADER_SUBDIR / "GemmGatedActOptions.h"
    try:
        return re.search(r"\bSiTuGlu\b", enums.read_text(errors="replace")) is None
    except OSError:
        return True


def _artifact_cache_roots() -> list[Path]:
    """FlashInfer's cubin dir (the symlinked include root) and its raw artifact include dir."""
    try:
        from flashinfer.artifacts import ArtifactPath
        from flashinfer.jit import env as jit_env
    except Exception:
        return []
    cubin = Path(jit_env.FLASHINFER_CUBIN_DIR)
    return [cubin, cubin / ArtifactPath.TRTLLM_GEN_BMM / "include"]


def _raw_artifact_root(raw_include: Path) -> Path | None:
    """FlashInfer's artifact layout is <...>/include/trtllmGen_bmm_export/: link it under our cache."""
    src = raw_include / "trtllmGen_bmm_export"
    if not (src / PROBE_HEADER).is_file():
        return None
    root = cache_dir() / "trtllm-headers"
    link = root / HEADER_SUBDIR
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(src, target_is_directory=True)
    return root


def _cubin_package_root() -> Path | None:
    try:
        import flashinfer_cubin  # type: ignore
    except Exception:
        return None
    return Path(flashinfer_cubin.get_cubin_dir())


def header_candidates(user_dir: str | os.PathLike | None = None, env: dict | None = None) -> list[tuple[str, Path]]:
    """The places :func:`find_headers` looks, in order, as (origin, include root)."""
    env = os.environ if env is None else env
    out: list[tuple[str, Path]] = []
    if user_dir:
        out.append(("--trtllm-headers", Path(user_dir)))
    for root in _artifact_cache_roots():
        out.append(("flashinfer artifact cache", root))
    for var in (ENV_HEADERS, ENV_EXPORT_HEADERS):
        if env.get(var):
            out.append((f"${var}", Path(env[var])))
    pkg = _cubin_package_root()
    if pkg is not None:
        out.append(("flashinfer-cubin package", pkg))
    return out


def find_headers(user_dir: str | os.PathLike | None = None, env: dict | None = None) -> Headers | None:
    """The first include root that holds the export headers; BadInputError if ``user_dir`` lacks them."""
    for origin, root in header_candidates(user_dir, env):
        if origin == "flashinfer artifact cache" and root.name == "include":
            linked = _raw_artifact_root(root)
            if linked is not None:
                return Headers(linked, origin, _legacy(linked))
            continue
        if _has_headers(root):
            return Headers(root, origin, _legacy(root))
        if origin == "--trtllm-headers":
            raise BadInputError(f"--trtllm-headers {root}: no {HEADER_SUBDIR}/{PROBE_HEADER} under it")
    return None


def cache_dir() -> Path:
    base = os.environ.get("MOE_INSPECT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "moe-inspect")
    return Path(base)


# ------------------------------------------------------------------------------------------ build
def module_name(arch: int, headers: Headers) -> str:
    return f"moe_inspect_trtllm_routing_sm{arch}a" + ("_legacy_headers" if headers.legacy else "")


def build_args(arch: int, headers: Headers, csrc_dir: Path) -> dict[str, Any]:
    """The arguments of ``flashinfer.jit.core.gen_jit_spec`` that build the routing module for
    ``sm_{arch}a`` (no compilation here: CPU-testable)."""
    csrc = Path(csrc_dir)
    sources = [csrc / s for s in SOURCES]
    flags = [*DEFINES, f"-gencode=arch=compute_{arch}a,code=sm_{arch}a"]
    by_source = None
    if headers.legacy:
        # gen_jit_spec: per-source flags replace the shared ones and drop the default -use_fast_math
        by_source = {csrc / s: [*flags, "-DTLLM_RUBIN_FEATURES", "-use_fast_math"] for s in KERNEL_RUNNER_SOURCES}
    return {
        "name": module_name(arch, headers),
        "sources": sources,
        "extra_cuda_cflags": flags,
        "extra_include_paths": [csrc, csrc / "nv_internal", csrc / "nv_internal/include", headers.include_root],
        "extra_cuda_cflags_by_source": by_source,
    }


@dataclass
class _Loaded:
    fn: Any  # callable(routing_logits, routing_bias, ...) of the binding, or FlashInfer's API
    info: dict


def _native_module(arch: int) -> _Loaded:
    from flashinfer.fused_moe.trtllm_gen_routing import get_trtllm_gen_routing_module

    mod = get_trtllm_gen_routing_module()
    return _Loaded(mod.trtllm_gen_routing, {
        "arch": arch, "how": "FlashInfer's own module (flashinfer.fused_moe.trtllm_gen_routing)",
        "compiled_for": None, "headers": None, "library": None, "shipped_by_flashinfer": True})


def _compiled_module(arch: int, headers_dir: str | None) -> _Loaded:
    import tvm_ffi

    prebuilt = os.environ.get(ENV_PREBUILT)
    if prebuilt:
        if not Path(prebuilt).is_file():
            raise EnvironmentError_(f"${ENV_PREBUILT}={prebuilt}: no such file")
        mod = tvm_ffi.load_module(prebuilt)
        return _Loaded(mod.trtllm_gen_routing, {
            "arch": arch, "how": f"prebuilt module from ${ENV_PREBUILT}", "compiled_for": f"sm_{arch}a",
            "headers": None, "library": prebuilt, "shipped_by_flashinfer": False, "note": NOT_SHIPPED})
    headers = find_headers(headers_dir)
    if headers is None:
        raise EnvironmentError_(_no_headers_reason())
    from flashinfer.jit import env as jit_env
    from flashinfer.jit.core import gen_jit_spec

    spec = gen_jit_spec(**build_args(arch, headers, Path(jit_env.FLASHINFER_CSRC_DIR)))
    try:
        mod = spec.build_and_load()
    except Exception as e:
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
        raise EnvironmentError_(f"building trtllm-gen routing for sm_{arch}a failed (headers: {headers.origin} "
                                f"{headers.include_root}; log in {spec.build_dir}): {last}") from None
    return _Loaded(mod.trtllm_gen_routing, {
        "arch": arch, "how": "compiled from the installed FlashInfer's sources", "compiled_for": f"sm_{arch}a",
        "headers": headers.to_dict(), "library": str(spec.jit_library_path), "shipped_by_flashinfer": False,
        "note": NOT_SHIPPED})


def _no_headers_reason() -> str:
    return ("trtllm-gen routing on SM90 needs the trtllm-gen BMM export headers "
            f"({HEADER_SUBDIR}/); none found in FlashInfer's artifact cache: name a directory with "
            f"--trtllm-headers DIR or ${ENV_HEADERS}, or pip install flashinfer-cubin")


def _arch() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def unavailable_reason(arch: int | None = None, headers_dir: str | None = None) -> str | None:
    """None when the trtllm-gen routing kernel can run here, else a one-line reason."""
    arch = _arch() if arch is None else arch
    if arch is None:
        return "no CUDA GPU visible (trtllm-gen routing runs on SM90 compiled here, or SM100/103/120/121)"
    try:
        import flashinfer  # noqa: F401
    except Exception as e:
        return f"cannot import flashinfer ({type(e).__name__}): pip install 'moe-inspect[gpu]'"
    if arch in NATIVE_ARCHS:
        return None
    if arch not in COMPILED_ARCHS:
        return (f"trtllm-gen routing runs on SM {', '.join(map(str, NATIVE_ARCHS))} (FlashInfer) and SM90 "
                f"(compiled here); this GPU is SM{arch}")
    if os.environ.get(ENV_PREBUILT):
        return None if Path(os.environ[ENV_PREBUILT]).is_file() else f"${ENV_PREBUILT}: no such file"
    try:
        found = find_headers(headers_dir)
    except BadInputError as e:
        return str(e)
    return None if found is not None else _no_headers_reason()


@functools.lru_cache(maxsize=4)
def _load(arch: int, headers_dir: str | None) -> _Loaded:
    if arch in NATIVE_ARCHS:
        return _native_module(arch)
    return _compiled_module(arch, headers_dir)


def build_info(headers_dir: str | None = None) -> dict:
    """What was compiled / loaded, for which arch, from where (builds or loads the module)."""
    arch = _arch()
    reason = unavailable_reason(arch, headers_dir)
    if reason:
        raise EnvironmentError_(reason)
    return dict(_load(arch, headers_dir).info)


# ------------------------------------------------------------------------------------------ call
def _call_module(fn, logits, bias, method_id: int, top_k: int, n_group: int, topk_group: int, scale: float,
                 norm_topk_prob: bool, tile: int = 8):
    """Allocate FlashInfer's buffers, run the binding, rebuild ids as FlashInfer's wrapper does
    (flashinfer/fused_moe/trtllm_gen_routing.py:246-330)."""
    import torch
    from flashinfer.fused_moe.trtllm_gen_routing import _max_num_ctas_in_batch_dim

    dev = logits.device
    t, e = logits.shape
    max_ctas = _max_num_ctas_in_batch_dim(t, top_k, e, tile)

    def i32(*shape):
        return torch.empty(shape, dtype=torch.int32, device=dev)

    packed, weights = i32(t, top_k), torch.empty((t, top_k), dtype=torch.bfloat16, device=dev)
    e2p, p2t, cta_batch, cta_limit = i32(t, top_k), i32(max_ctas * tile), i32(max_ctas), i32(max_ctas)
    fn(logits, bias, packed, weights, i32(max(2 * e, 512)), i32(1), e2p, p2t, cta_batch, cta_limit, i32(1),
       top_k, 0, n_group, topk_group, 0, e, float(scale), tile, method_id, bool(norm_topk_prob), False)
    torch.cuda.synchronize()
    e2p = e2p.long()
    ids = torch.where(e2p >= 0, cta_batch.long()[e2p.clamp(min=0) // tile], torch.full_like(e2p, -1))
    return ids.to(torch.int32), weights


def route(method: str, logits, *, top_k: int, bias=None, n_group: int | None = None, topk_group: int | None = None,
          routed_scaling_factor: float | None = None, norm_topk_prob: bool = True, headers_dir: str | None = None):
    """Route CUDA ``logits`` [T, E] (fp32 or bf16) with the trtllm-gen kernel for ``method``.

    Returns :class:`moe_inspect.reference.routers.RouterOutput` (ids int32 in the kernel's slot
    order, weights bf16 as the kernel writes them). ``bias`` is passed in its own dtype (fp32 or
    bf16), as vLLM passes it. Raises UnsupportedError / EnvironmentError_ (one line).
    """
    import torch

    from ..reference.routers import RouterOutput

    t, e = logits.shape
    why = supports(method, e, top_k, n_group, topk_group)
    if why:
        raise UnsupportedError(f"trtllm-gen routing cannot route {method}: {why}")
    arch = _arch()
    reason = unavailable_reason(arch, headers_dir)
    if reason:
        raise EnvironmentError_(reason)
    if logits.dtype not in (torch.float32, torch.bfloat16):
        logits = logits.float()
    if bias is not None:
        bias = bias.reshape(e).to(logits.device)
        if bias.dtype not in (torch.float32, torch.bfloat16):
            bias = bias.float()
        bias = bias.contiguous()
    scale = 1.0 if routed_scaling_factor is None else float(routed_scaling_factor)
    loaded = _load(arch, headers_dir)
    g, tg = (max(int(n_group or 1), 1), max(int(topk_group or 1), 1)) if method == "DeepSeekV3" else (0, 0)
    ids, w = _call_module(loaded.fn, logits.contiguous(), bias, METHOD_IDS[method], int(top_k), g, tg, scale,
                          norm_topk_prob)
    return RouterOutput(ids, w, None)
