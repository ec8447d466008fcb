"""Optional dependencies, imported lazily: one place that says which extra to install.

The core install has no torch, transformers, flashinfer or matplotlib. A command that needs one
calls :func:`require` at the point it needs it; without the package the user gets ONE line and
exit 2 naming the extra, e.g.::

    error: run-layer needs torch, which is not installed: pip install 'moe-inspect[gpu]'
"""

from __future__ import annotations

import importlib
import os
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


def installed_version(dist: str, module: str) -> str | None:
    """The installed version of distribution ``dist`` (import name ``module``) without importing it;
    None when ``module`` is not importable or has no metadata.

    Fast path (a wheel install): the one ``<dist>-<version>.dist-info`` directory beside the package,
    its ``METADATA`` ``Version:`` line. Otherwise ``importlib.metadata.version`` (whose import alone
    costs ~15 ms of a ~0.25 s ``check``)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package missing, or a None entry in sys.modules
        return None
    if spec is None:
        return None
    if spec.origin and spec.submodule_search_locations is not None:  # a regular package: site/<module>/__init__.py
        v = _dist_info_version(os.path.dirname(os.path.dirname(spec.origin)), dist)
        if v:
            return v
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # PackageNotFoundError, or broken metadata: treat as absent
        return None


def installed_flashinfer_version() -> str | None:
    """The installed flashinfer-python's version (check's drift warning, verify's oracle version),
    without importing flashinfer."""
    return installed_version("flashinfer-python", "flashinfer")


def _dist_info_version(site: str, dist: str) -> str | None:
    prefix = dist.replace("-", "_").lower() + "-"
    try:
        found = [n for n in os.listdir(site) if n.lower().startswith(prefix) and n.endswith(".dist-info")]
    except OSError:
        return None
    if len(found) != 1:  # none, or stale copies: let importlib.metadata decide
        return None
    try:
        with open(os.path.join(site, found[0], "METADATA"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip() or None
                if not line.strip():  # end of the headers
                    break
    except OSError:
        return None
    return None
