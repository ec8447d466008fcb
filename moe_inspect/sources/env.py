"""Where the Hugging Face cache and Hub are, as huggingface_hub would compute them *now*.

huggingface_hub reads HF_HOME / HF_HUB_CACHE / HF_ENDPOINT / HF_HUB_OFFLINE into its
``constants`` at import time; the environment is consulted first so a variable set after that
import (tests, embedding programs) still counts. huggingface_hub is imported only when needed.
"""

from __future__ import annotations

import os
from pathlib import Path


def env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (env now, or huggingface_hub's import-time constant)."""
    if env_true("HF_HUB_OFFLINE") or env_true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a declared dependency
        return False
    return bool(constants.is_offline_mode())


def _path_from_env(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))


def hf_home() -> Path:
    v = os.environ.get("HF_HOME")
    if v:
        return _path_from_env(v)
    from huggingface_hub import constants

    return Path(constants.HF_HOME)


def hub_cache_dir() -> Path:
    """The HF hub cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        v = os.environ.get(var)
        if v:
            return _path_from_env(v)
    if os.environ.get("HF_HOME"):
        return hf_home() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    v = os.environ.get("HF_ENDPOINT")
    if v:
        return v.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def path_exists(p: Path) -> bool:
    """``p.exists()`` that answers False for names the OS refuses (too long, NUL byte)."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or (os.sep == "\\" and "\\" in model)
