"""Optional dependencies, imported lazily: one place that says which extra to install.

The core install has no torch, transformers, flashinfer or matplotlib. A command that needs one
calls :func:`require` at the point it needs it; without the package the user gets ONE line and
exit 2 naming the extra, e.g.::

    error: run-layer needs torch, which is not installed: pip install 'moe-inspect[gpu]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import EnvironmentError_

#: Import name -> distribution name, where they differ (for the message only).
_DIST = {"flashinfer": "flashinfer-python"}


def _missing(module: str, extra: str, purpose: str, missing: str | None = None) -> EnvironmentError_:
    top = module.split(".")[0]
    what = _DIST.get(top, top)
    if missing and missing.split(".")[0] != top:  # the module is there but one of ITS dependencies is not
        what = f"{missing.split('.')[0]} (needed by {what})"
    return EnvironmentError_(f"{purpose} needs {what}, which is not installed: pip install 'moe-inspect[{extra}]'")


def require_installed(module: str, extra: str, purpose: str) -> None:
    """Like :func:`require` without importing (``importlib.util.find_spec``): for a check made early,
    before a slow import (flashinfer takes seconds) is worth paying."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a None entry in sys.modules
        found = False
    if not found:
        raise _missing(module, extra, purpose)


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``, or EnvironmentError_ (exit 2) naming ``extra``.

    ``purpose`` is what needs it, as the user typed it (``"run-layer"``, ``"--plot"``,
    ``"verify --kernel"``). Only a missing module (ImportError) is mapped; a module that is present
    but fails in another way propagates, since reinstalling the extra would not fix it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise _missing(module, extra, purpose, getattr(e, "name", None)) from None
