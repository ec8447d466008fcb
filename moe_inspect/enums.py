"""RoutingMethodType enum tables: FlashInfer by release, vLLM by PR/release, SGLang 0.5.23.

The integer a framework sends for a routing method depends on WHICH enum it was compiled
against, and the enums drifted (REFERENCE.md §1). These tables are declarative: each layout
names its upstream source, and a version string picks a layout.

Verified against flashinfer-ai/flashinfer git tags (``flashinfer/tllm_enums.py`` at v0.6.7,
v0.6.8rc1, v0.6.8 … v0.6.17, v0.6.18rc1-rc7, and main as of 2026-08-22); the vLLM layouts
against ``vllm/model_executor/layers/fused_moe/config.py`` revisions (see ``VLLM_LAYOUTS``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, NamedTuple

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
    "vllm_table_key",
    "vllm_release",
    "VLLM_RELEASES",
    "VllmRelease",
    "sglang_enum",
    "normalize_vllm_version",
    "normalize_flashinfer_version",
]


class EnumLayout(NamedTuple):
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
# vLLM (vllm/model_executor/layers/fused_moe/config.py). A key names one (RoutingMethodType,
# get_routing_method_type) pair; the PR keys are the changes that moved it, and VLLM_RELEASES
# says which releases carry which key, each read from the release's own wheel.
# --------------------------------------------------------------------------------------------
VLLM_INTERNAL_MIN = 100  # ids >= this are vLLM-internal and must never reach FlashInfer

_CFG = "vllm/model_executor/layers/fused_moe/config.py"

_VLLM_PRE_39141 = _layout(
    "vllm-pre-39141",
    f"vLLM 0.17.0-0.19.1 wheels {_CFG}:102-123 (before PR #39141)",
    **_BASE, Custom=6, Simulated=7, Unspecified=8,
)
_VLLM_020 = _layout(
    "vllm-0.20",
    f"vLLM 0.20.0-0.20.2 wheels {_CFG}:102-125 (DeepseekV4 added as 8, Unspecified moved to 9)",
    **_BASE, Custom=6, Simulated=7, DeepseekV4=8, Unspecified=9,
)
_VLLM_39141 = _layout(
    "vllm-39141",
    f"vLLM 0.21.0 wheel {_CFG}:102-128 (PR #39141, merged 2026-04-27; same enum in 0.22.x)",
    **_BASE, SigmoidRenorm=6, MiniMax2=7, Unspecified=8, DeepseekV4=100, Custom=101, Simulated=102,
)
_VLLM_44347 = _layout(
    "vllm-44347",
    f"vLLM 0.23.0 wheel {_CFG}:102-131 (PR #44347, merged 2026-06-03; same enum through 0.33.0)",
    **_BASE, SigmoidRenorm=6, MiniMax2=7, Sigmoid=8, Unspecified=9,
    DeepseekV4=100, Custom=101, Simulated=102,
)
# Re-read from the v0.33.0 wheel: the same values as #44347, with its own source line.
_VLLM_033 = _layout(
    "vllm-0.33.0",
    f"vLLM v0.33.0 wheel {_CFG}:105-136 (RoutingMethodType)",
    **dict(_VLLM_44347.members),
)

VLLM_LAYOUTS: Mapping[str, EnumLayout] = MappingProxyType(
    {
        "pre-39141": _VLLM_PRE_39141,
        "0.20": _VLLM_020,  # 0.20.x: its own enum and derivation
        "39141": _VLLM_39141,
        "0.22": _VLLM_39141,  # 0.22.x: the #39141 enum, softmax+renormalize -> RenormalizeNaive
        "44347": _VLLM_44347,
        "0.33": _VLLM_033,  # v0.33.0 == #44347 values
    }
)
DEFAULT_VLLM = "0.33"


class VllmRelease:
    """One vLLM release and the key of its RoutingMethodType + get_routing_method_type; ``source``
    says where in that release's wheel both were read. (A plain class: cheap at import.)"""

    __slots__ = ("version", "key", "source")

    def __init__(self, version: str, key: str, source: str) -> None:
        self.version, self.key, self.source = version, key, source

    def __repr__(self) -> str:
        return f"VllmRelease({self.version!r}, {self.key!r})"


def _releases(key: str, versions: str, enum_lines: str, fn_lines: str) -> tuple[VllmRelease, ...]:
    src = f"vllm-{{v}} wheel {_CFG}:{enum_lines} (RoutingMethodType), :{fn_lines} (get_routing_method_type)"
    return tuple(VllmRelease(v, key, src.format(v=v)) for v in versions.split())


# Every release from the first with get_routing_method_type(scoring, top_k, renormalize, groups,
# bias) to the newest, each read from its own wheel (pip download --no-deps vllm==X); line numbers
# of the first release of each group (later ones of the group: same text, lines may shift by 1-3).
VLLM_RELEASES: tuple[VllmRelease, ...] = (
    *_releases("pre-39141", "0.17.0 0.17.1 0.18.0 0.18.1 0.19.0 0.19.1", "102-123", "124-149"),
    *_releases("0.20", "0.20.0 0.20.1 0.20.2", "102-125", "126-159"),
    *_releases("39141", "0.21.0", "102-128", "129-166"),
    *_releases("0.22", "0.22.0 0.22.1", "102-128", "129-166"),
    *_releases("44347", "0.23.0 0.24.0 0.25.0 0.25.1 0.26.0 0.27.0 0.27.1 0.28.0 0.29.0 0.30.0",
               "102-131", "132-171"),
    *_releases("0.33", "0.31.0 0.32.0 0.33.0", "104-133", "134-170"),
)
_RELEASE_KEY = {Version(r.version): r for r in VLLM_RELEASES}
FIRST_VLLM_RELEASE, LAST_VLLM_RELEASE = VLLM_RELEASES[0].version, VLLM_RELEASES[-1].version

# Releases read but refused, with the reason (one line each).
_VLLM_NOT_MODELLED: tuple[tuple[Version, Version, str], ...] = (
    (Version("0"), Version("0.11.0"),
     "has no RoutingMethodType in fused_moe/config.py (read: 0.10.2, 0.11.0)"),
    (Version("0.11.1"), Version("0.15.1"),
     "has no get_routing_method_type in fused_moe/config.py (ids come from per-router code we do not model)"),
    (Version("0.16.0"), Version("0.16.0"),
     "has a 3-argument get_routing_method_type (fused_moe/config.py:127-141: sigmoid -> DeepSeekV3) we do not model"),
)

# The PR keys (and spellings of them) that name a table directly.
_VLLM_ALIASES = {"v0.33": "0.33", "pr39141": "39141", "#39141": "39141", "pr44347": "44347",
                 "#44347": "44347", "pre39141": "pre-39141"}
VLLM_VERSIONS: tuple[str, ...] = tuple(VLLM_LAYOUTS)

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


def _accepted_vllm() -> str:
    return (f"accepted: vLLM releases {FIRST_VLLM_RELEASE} to {LAST_VLLM_RELEASE}, "
            f"or the keys {', '.join(VLLM_VERSIONS)}")


def vllm_table_key(version_text: str) -> str:
    """The table key (a ``VLLM_LAYOUTS``/routing ``METHOD_TABLES`` key) for what a user typed:
    a release (``0.19.1``, ``v0.33.0``, ``0.22`` when all its patch releases agree) or a key
    (``pre-39141``, ``39141``, ``44347``, ``0.33``). BadInputError (one line, listing what is
    accepted) for anything else, including releases read but not modelled (<= 0.16.0)."""
    if not isinstance(version_text, str):
        raise BadInputError(f"vLLM version {version_text!r} is not a string; {_accepted_vllm()}")
    text = version_text.strip()
    key = _VLLM_ALIASES.get(text.lower(), text)
    if key in VLLM_LAYOUTS:
        return key
    try:
        v = Version(text)
    except InvalidVersion:
        raise BadInputError(f"unknown vLLM version {version_text!r}; {_accepted_vllm()}") from None
    rel = _RELEASE_KEY.get(v)
    if rel is None and len(v.release) == 2 and not (v.pre or v.post or v.dev or v.local):
        # "0.19" means the 0.19.x releases when they all carry the same table
        same = [r for ver, r in _RELEASE_KEY.items() if ver.release[:2] == v.release]
        if len({r.key for r in same}) == 1:
            rel = same[0]
    if rel is None:
        for lo, hi, why in _VLLM_NOT_MODELLED:
            if lo <= v <= hi:
                raise BadInputError(f"vLLM {version_text} {why}; {_accepted_vllm()}")
        raise BadInputError(f"vLLM version {version_text!r} is not a release whose code was read; "
                            f"{_accepted_vllm()}")
    return rel.key


def normalize_vllm_version(version: str) -> str:
    """Same as :func:`vllm_table_key` (kept: routing.py and detect.py call it)."""
    return vllm_table_key(version)


def vllm_release(version_text: str) -> VllmRelease | None:
    """The release read for ``version_text`` (None for a PR key or an X.Y shorthand)."""
    try:
        return _RELEASE_KEY.get(Version(version_text.strip().lstrip("vV")))
    except InvalidVersion:
        return None


def vllm_layout(version: str = DEFAULT_VLLM) -> EnumLayout:
    return VLLM_LAYOUTS[normalize_vllm_version(version)]


def vllm_enum(version: str = DEFAULT_VLLM) -> dict[str, int]:
    """vLLM's RoutingMethodType for a release ("0.19.1") or a key ("pre-39141", "39141", "44347", "0.33")."""
    return dict(vllm_layout(version).members)


def sglang_enum() -> dict[str, int]:
    """SGLang 0.5.23's RoutingMethodType."""
    return dict(SGLANG_LAYOUT.members)
