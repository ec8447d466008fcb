"""RoutingMethodType enum tables: FlashInfer by release, vLLM by PR/release, SGLang 0.5.23.

The integer a framework sends for a routing method depends on WHICH enum it was compiled
against, and the enums drifted (REFERENCE.md §1). These tables are declarative: each layout
names its upstream source, and a version string picks a layout.

Verified against flashinfer-ai/flashinfer git tags (``flashinfer/tllm_enums.py`` at v0.6.7,
v0.6.8rc1, v0.6.8 … v0.6.17, v0.6.18rc1-rc7, and main as of 2026-08-22); the vLLM layouts
against ``vllm/model_executor/layers/fused_moe/config.py`` revisions (see ``VLLM_LAYOUTS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from packaging.version import InvalidVersion, Version

from .errors import BadInputError

__all__ = [
    "EnumLayout",
    "FLASHINFER_LAYOUTS",
    "FLASHINFER_VERSIONS",
    "VLLM_LAYOUTS",
    "VLLM_VERSIONS",
    "VLLM_INTERNAL_MIN",
    "SGLANG_LAYOUT",
    "SGLANG_VERSION",
    "DEFAULT_VLLM",
    "DEFAULT_FLASHINFER",
    "flashinfer_layout",
    "flashinfer_enum",
    "flashinfer_name_for",
    "vllm_layout",
    "vllm_enum",
    "vllm_name_for",
    "sglang_enum",
    "normalize_vllm_version",
    "normalize_flashinfer_version",
]


@dataclass(frozen=True)
class EnumLayout:
    """One revision of a RoutingMethodType enum."""

    key: str  # short id of the layout, e.g. "fi-0.6.11" or "vllm-44347"
    members: Mapping[str, int]  # member name -> integer value
    source: str  # upstream file + version the values were read from

    def name_for(self, value: int) -> str | None:
        for name, v in self.members.items():
            if v == value:
                return name
        return None


def _layout(key: str, source: str, **members: int) -> EnumLayout:
    return EnumLayout(key=key, members=MappingProxyType(dict(members)), source=source)


_BASE = dict(Default=0, Renormalize=1, DeepSeekV3=2, Llama4=3, RenormalizeNaive=4, TopK=5)

# --------------------------------------------------------------------------------------------
# FlashInfer. (first release carrying the layout, layout). A version uses the last layout whose
# first release is <= it.
# --------------------------------------------------------------------------------------------
FLASHINFER_LAYOUTS: tuple[tuple[Version, EnumLayout], ...] = (
    (
        Version("0.6.7"),
        _layout("fi-0.6.7", "FlashInfer v0.6.7 flashinfer/tllm_enums.py", **_BASE, Unspecified=6),
    ),
    (
        Version("0.6.8rc1"),
        _layout(
            "fi-0.6.8",
            "FlashInfer v0.6.8 flashinfer/tllm_enums.py (PR #2803 adds SigmoidRenorm, MiniMax2)",
            **_BASE, SigmoidRenorm=6, MiniMax2=7, Unspecified=8,
        ),
    ),
    (
        Version("0.6.11rc1"),
        _layout(
            "fi-0.6.11",
            "FlashInfer v0.6.11 flashinfer/tllm_enums.py (PR #2869 adds Sigmoid)",
            **_BASE, SigmoidRenorm=6, MiniMax2=7, Sigmoid=8, Unspecified=9,
        ),
    ),
    (
        Version("0.6.18rc4"),
        _layout(
            "fi-0.6.18rc4",
            "FlashInfer v0.6.18rc4 flashinfer/tllm_enums.py (PR #4404 adds TopKSigmoid)",
            **_BASE, SigmoidRenorm=6, MiniMax2=7, Sigmoid=8, TopKSigmoid=9, Unspecified=10,
        ),
    ),
)

# Release versions a user may name (post/rc suffixes of these are accepted too).
FLASHINFER_VERSIONS: tuple[str, ...] = (
    "0.6.7", "0.6.8", "0.6.9", "0.6.10", "0.6.11", "0.6.12", "0.6.13", "0.6.14", "0.6.15",
    "0.6.16", "0.6.17", "0.6.18", "0.7.0", "0.7.1", "0.7.2", "0.7.2.post1",
)
_FI_RELEASES = frozenset(Version(v).release for v in FLASHINFER_VERSIONS)
DEFAULT_FLASHINFER = "0.7.2.post1"

# --------------------------------------------------------------------------------------------
# vLLM (vllm/model_executor/layers/fused_moe/config.py), keyed by the PR that changed it.
# --------------------------------------------------------------------------------------------
VLLM_INTERNAL_MIN = 100  # ids >= this are vLLM-internal and must never reach FlashInfer

_VLLM_PRE_39141 = _layout(
    "vllm-pre-39141",
    "vLLM fused_moe/config.py before PR #39141 (e.g. commit 00c1c6a2)",
    **_BASE, Custom=6, Simulated=7, Unspecified=8,
)
_VLLM_39141 = _layout(
    "vllm-39141",
    "vLLM fused_moe/config.py after PR #39141 (Apr 2026)",
    **_BASE, SigmoidRenorm=6, MiniMax2=7, Unspecified=8, DeepseekV4=100, Custom=101, Simulated=102,
)
_VLLM_44347 = _layout(
    "vllm-44347",
    "vLLM fused_moe/config.py after PR #44347 (Jun 2026; commit 002d6073), same in v0.33.0",
    **_BASE, SigmoidRenorm=6, MiniMax2=7, Sigmoid=8, Unspecified=9,
    DeepseekV4=100, Custom=101, Simulated=102,
)

# Re-read from the v0.33.0 wheel: the same values as #44347, with its own source line.
_VLLM_033 = _layout(
    "vllm-0.33.0",
    "vLLM v0.33.0 wheel vllm/model_executor/layers/fused_moe/config.py:105-136 (RoutingMethodType)",
    **dict(_VLLM_44347.members),
)

VLLM_LAYOUTS: Mapping[str, EnumLayout] = MappingProxyType(
    {
        "pre-39141": _VLLM_PRE_39141,
        "39141": _VLLM_39141,
        "44347": _VLLM_44347,
        "0.33": _VLLM_033,  # v0.33.0 == #44347 values
    }
)
VLLM_VERSIONS: tuple[str, ...] = tuple(VLLM_LAYOUTS)
DEFAULT_VLLM = "0.33"
_VLLM_ALIASES = {"v0.33": "0.33", "0.33.0": "0.33", "v0.33.0": "0.33", "pr39141": "39141",
                 "#39141": "39141", "pr44347": "44347", "#44347": "44347", "pre39141": "pre-39141"}

# --------------------------------------------------------------------------------------------
# SGLang 0.5.23 python/sglang/srt/layers/moe/utils.py:981-1001 (read from the wheel
# sglang-0.5.23-cp311): 0-8 as FlashInfer 0.6.11, Unspecified 9; no TopKSigmoid, no 100+ ids.
# --------------------------------------------------------------------------------------------
SGLANG_VERSION = "0.5.23"
SGLANG_LAYOUT = _layout(
    "sglang-0.5.23",
    "SGLang 0.5.23 python/sglang/srt/layers/moe/utils.py:981-1001 (class RoutingMethodType)",
    **_BASE, SigmoidRenorm=6, MiniMax2=7, Sigmoid=8, Unspecified=9,
)


# --------------------------------------------------------------------------------------------
def normalize_flashinfer_version(version: str) -> Version:
    """Parse a FlashInfer version string; BadInputError unless it is an accepted release."""
    accepted = ", ".join(FLASHINFER_VERSIONS)
    if not isinstance(version, str):
        raise BadInputError(f"FlashInfer version {version!r} is not a string; accepted: {accepted}")
    try:
        v = Version(version.strip())
    except InvalidVersion:
        raise BadInputError(
            f"FlashInfer version {version!r} is not a version; accepted: {accepted}"
        ) from None
    if v.release not in _FI_RELEASES or v.local is not None:
        raise BadInputError(f"unknown FlashInfer version {version!r}; accepted: {accepted}")
    return v


def flashinfer_layout(version: str = DEFAULT_FLASHINFER) -> EnumLayout:
    v = normalize_flashinfer_version(version)
    chosen = FLASHINFER_LAYOUTS[0][1]
    for first, layout in FLASHINFER_LAYOUTS:
        if v >= first:
            chosen = layout
    return chosen


def flashinfer_enum(version: str = DEFAULT_FLASHINFER) -> dict[str, int]:
    """FlashInfer's RoutingMethodType of ``version`` as {name: value}."""
    return dict(flashinfer_layout(version).members)


def flashinfer_name_for(value: int, version: str = DEFAULT_FLASHINFER) -> str | None:
    """What the integer ``value`` means in FlashInfer ``version`` (None: no such member)."""
    return flashinfer_layout(version).name_for(value)


def normalize_vllm_version(version: str) -> str:
    accepted = ", ".join(VLLM_VERSIONS)
    if not isinstance(version, str):
        raise BadInputError(f"vLLM version {version!r} is not a string; accepted: {accepted}")
    key = version.strip()
    key = _VLLM_ALIASES.get(key.lower(), key)
    if key not in VLLM_LAYOUTS:
        raise BadInputError(f"unknown vLLM version {version!r}; accepted: {accepted}")
    return key


def vllm_layout(version: str = DEFAULT_VLLM) -> EnumLayout:
    return VLLM_LAYOUTS[normalize_vllm_version(version)]


def vllm_enum(version: str = DEFAULT_VLLM) -> dict[str, int]:
    """vLLM's RoutingMethodType for a version key ("pre-39141", "39141", "44347", "0.33")."""
    return dict(vllm_layout(version).members)


def vllm_name_for(value: int, version: str = DEFAULT_VLLM) -> str | None:
    return vllm_layout(version).name_for(value)


def sglang_enum() -> dict[str, int]:
    """SGLang 0.5.23's RoutingMethodType."""
    return dict(SGLANG_LAYOUT.members)
