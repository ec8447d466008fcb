"""What a failed Hub attempt means for the source chain, and what to tell the user (light: no
network code, so the offline paths need not import it)."""

from __future__ import annotations

from enum import Enum

from ..errors import MoeInspectError

DEADLINE_ENV = "MOE_INSPECT_HUB_DEADLINE"
#: What to do when the Hub cannot be used (said on every give-up).
ADVICE = "--offline or HF_HUB_OFFLINE=1 skips the Hub, HF_ENDPOINT=<url> picks a mirror"
DEADLINE_ADVICE = f"{ADVICE}, {DEADLINE_ENV}=<seconds> waits longer"


class FailureKind(Enum):
    """What a failed Hub attempt means for the rest of the source chain."""

    NOT_FOUND = "not_found"  # no such repo / revision: the error stands
    GATED = "gated"  # needs a token or a licence: the error stands
    UNREACHABLE = "unreachable"  # network, timeouts, 5xx: the catalog may answer
    OFFLINE = "offline"  # huggingface_hub refused (HF_HUB_OFFLINE): the catalog may answer
    MISSING_CONFIG = "missing_config"  # the repo exists but has no config.json: the error stands


class HubFailure(Exception):
    """A Hub attempt failed; ``error`` is the user-facing error, ``kind`` its category."""

    def __init__(self, error: MoeInspectError, kind: FailureKind, advice: str = ADVICE):
        super().__init__(error.message)
        self.error = error
        self.kind = kind
        self.advice = advice  # what to do when the catalog answers instead (unreachable Hubs)
