"""Typed errors. Every failure a user can cause maps to one of these; the CLI turns them into a
single line on stderr and the exit code below. Exit codes are an API:

    0  fine
    1  findings (a check that fails, a mismatch)
    2  bad input or environment (unreadable model, no GPU, offline with nothing cached)
"""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


def debug_enabled() -> bool:
    """``MOE_INSPECT_DEBUG`` set to anything but "", 0, false, no: show tracebacks instead of one
    line. The one place this variable is read (the CLI's error handler and the core both ask here)."""
    return os.environ.get("MOE_INSPECT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


class MoeInspectError(Exception):
    """Base class: a one-line, user-facing message. ``exit_code`` is 2 unless a subclass says."""

    exit_code = EXIT_BAD_INPUT
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        d = {"error": self.kind, "message": self.message, "exit_code": self.exit_code}
        if self.hint:
            d["hint"] = self.hint
        return d


def close_hint(value: str, choices, *, otherwise: str | None = None) -> str | None:
    """The hint of a ``BadInputError`` for a mistyped name: ``"did you mean a, b?"`` from up to three
    ``choices`` close to ``value`` (difflib, cutoff 0.5), else ``otherwise``."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else otherwise


class BadInputError(MoeInspectError):
    """The user's arguments are wrong (unknown GPU, contradictory flags, bad values)."""

    kind = "bad_input"


class ConfigError(MoeInspectError):
    """config.json (or another metadata file) is unreadable, not JSON, wrong types..."""

    kind = "config_error"


class NotMoEError(MoeInspectError):
    """The model is readable but has no Mixture-of-Experts layers."""

    kind = "not_moe"


class CheckpointError(MoeInspectError):
    """A safetensors file or index is broken, hostile or missing."""

    kind = "checkpoint_error"


class ModelNotFoundError(MoeInspectError):
    """No source (local dir, cache, Hub, catalog) could provide the model."""

    kind = "model_not_found"


class HubError(MoeInspectError):
    """The Hub answered with an error (404, gated, 5xx, timeout...)."""

    kind = "hub_error"


class OfflineError(MoeInspectError):
    """Offline mode (HF_HUB_OFFLINE) and nothing cached / in the catalog."""

    kind = "offline"


class EnvironmentError_(MoeInspectError):
    """Missing GPU, missing optional dependency, unsupported arch for the requested path."""

    kind = "environment"


class UnsupportedError(MoeInspectError):
    """A requested path cannot run here (kernel limits, arch/format pairs)."""

    kind = "unsupported"
