"""Which GPUs each backend config of FlashInfer's unified MoE API runs on: ``Config.supported(arch)``.

The one home of these arch lists: ``check`` (moe_inspect/backends.py ``UNIFIED_CONFIGS``) and
``run-layer`` (moe_inspect/layer/kernels.py ``PATHS``) read them from here. Each row is the
``*_ARCHS`` tuple that the class's ``supported`` tests in flashinfer-python 0.7.2.post1
``flashinfer/fused_moe/api.py`` (tuple at the first line cited, ``supported`` at the second).
No torch or flashinfer import.
"""

from __future__ import annotations

_API = "flashinfer-python 0.7.2.post1 flashinfer/fused_moe/api.py"

TRTLLM_ROUTED = (100, 103, 107)  # api.py:506 _TRTLLM_ROUTED_ARCHS
TRTLLM_ROUTED_FP8 = (100, 103, 107)  # api.py:510 _TRTLLM_ROUTED_FP8_ARCHS
PRIMS_TS = (100, 103)  # api.py:513
CUTLASS_BF16 = (89, 90, 100, 103, 107, 110, 120, 121)  # api.py:517 (_CUTLASS_FP8_ARCHS = this, :546)
CUTLASS_W4A16 = (90,)  # api.py:520
CUTILE_BF16 = (89, 90, 120, 121)  # api.py:522
CUTILE_NVFP4 = (120, 121)  # api.py:523
CUTILE_MXFP4 = (120, 121)  # api.py:524
CUTILE_W4A16 = (89, 90, 120, 121)  # api.py:525
CUTILE_FP8 = (90, 120, 121)  # api.py:526
CUTILE_MXFP8 = (120, 121)  # api.py:527
CUTLASS_NVFP4 = (100, 103, 107, 110, 120, 121)  # api.py:543
CUTLASS_FP8_BLOCK = (90,)  # api.py:549
CUTLASS_MXFP8_MXFP4 = (100, 103, 107, 110, 120, 121)  # api.py:554
CUTLASS_MXFP8 = (100, 103, 107)  # api.py:558
CUTLASS_W4A8 = (90,)  # api.py:561
CUTLASS_HUMMING = (90,)  # api.py:562

#: config class -> (archs where supported(arch) is True, source)
CONFIG_ARCHS: dict[str, tuple[tuple[int, ...], str]] = {
    "TrtllmFp4Config": (TRTLLM_ROUTED, f"{_API}:506, :582"),
    "PrimsTsConfig": (PRIMS_TS, f"{_API}:513, :788"),
    "TrtllmFp8BlockConfig": (TRTLLM_ROUTED_FP8, f"{_API}:510, :873"),
    "TrtllmFp8PerTensorConfig": (TRTLLM_ROUTED_FP8, f"{_API}:510, :931"),
    "TrtllmBf16Config": (TRTLLM_ROUTED, f"{_API}:506, :981"),
    "TrtllmMxInt4Config": (TRTLLM_ROUTED, f"{_API}:506, :1025"),
    "CutlassBf16Config": (CUTLASS_BF16, f"{_API}:517, :1071"),
    "CuTileBf16Config": (CUTILE_BF16, f"{_API}:522, :1115"),
    "CuTileNvfp4Config": (CUTILE_NVFP4, f"{_API}:523, :1154"),
    "CuTileNvfp4Bf16Config": (CUTILE_W4A16, f"{_API}:525, :1209"),
    "CuTileMxfp4Config": (CUTILE_MXFP4, f"{_API}:524, :1224"),
    "CuTileMxfp4Bf16Config": (CUTILE_W4A16, f"{_API}:525, :1273"),
    "CuTileFp8PerTensorConfig": (CUTILE_FP8, f"{_API}:526, :1289"),
    "CuTileFp8PerTensorBf16Config": (CUTILE_BF16, f"{_API}:522, :1336"),
    "CuTileMxfp8Config": (CUTILE_MXFP8, f"{_API}:527, :1349"),
    "CuTileMxfp8Bf16Config": (CUTILE_BF16, f"{_API}:522, :1394"),
    "CuTileMxfp4Mxfp8Config": (CUTILE_MXFP8, f"{_API}:527, :1408"),
    "CutlassW4A16Config": (CUTLASS_W4A16, f"{_API}:520, :1426"),
    "CutlassNvfp4Config": (CUTLASS_NVFP4, f"{_API}:543, :1479"),
    "CutlassFp8PerTensorConfig": (CUTLASS_BF16, f"{_API}:546, :1533"),
    "CutlassFp8BlockConfig": (CUTLASS_FP8_BLOCK, f"{_API}:549, :1587"),
    "CutlassMxfp8Mxfp4Config": (CUTLASS_MXFP8_MXFP4, f"{_API}:554, :1654"),
    "CutlassMxfp8Config": (CUTLASS_MXFP8, f"{_API}:558, :1722"),
    "CutlassW4A8Config": (CUTLASS_W4A8, f"{_API}:561, :1786"),
    "CutlassHummingConfig": (CUTLASS_HUMMING, f"{_API}:562, :1828"),
}


def archs(config_class: str) -> frozenset[int]:
    """The archs where ``config_class.supported(arch)`` is True (KeyError for a class not listed)."""
    return frozenset(CONFIG_ARCHS[config_class][0])
