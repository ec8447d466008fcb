"""``--autotune`` results kept in FlashInfer's cache, so the next run is tuned without the minutes.

FlashInfer's autotuner (flashinfer-python 0.7.2.post1 ``autotuner/autotuner.py:835`` ``autotune``)
takes ``cache=PATH``: on entry it loads the tactics stored there, on exit (tune mode only) it
merges what it profiled into the file (``save_configs``, :3471; a file from another environment
is left alone). run-layer keeps ONE file per FlashInfer version and GPU architecture inside
FlashInfer's own cache directory (``flashinfer.jit.env.FLASHINFER_CACHE_DIR``, default
``~/.cache/flashinfer``):

* ``--autotune``: ``autotune(True, cache=file)`` — profiles what the file does not cover, saves;
* no ``--autotune`` and the file exists: ``autotune(False, cache=file)`` — earlier winners are
  used, nothing is profiled (shapes the file does not cover run FlashInfer's default tactic);
* otherwise: FlashInfer's default (untuned) tactics.

:func:`tuning_status` says which of the three applied, for the result's notes.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

ENV_DIR = "MOE_INSPECT_AUTOTUNE_DIR"  # override of the directory (tests, read-only homes)


def cache_dir() -> Path:
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    try:
        from flashinfer.jit.env import FLASHINFER_CACHE_DIR

        base = Path(FLASHINFER_CACHE_DIR)
    except Exception:  # noqa: BLE001 - flashinfer missing or broken: its documented default
        base = Path(os.environ.get("FLASHINFER_WORKSPACE_BASE", str(Path.home()))) / ".cache" / "flashinfer"
    return base / "moe_inspect_autotune"


def cache_file(flashinfer_version: str, arch: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(flashinfer_version))
    return cache_dir() / f"flashinfer-{safe}-sm{arch}.json"


def cached_entries(path: Path) -> int:
    """Tactic entries in a FlashInfer autotune JSON file (0 when absent or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    if not isinstance(data, dict):
        return 0
    return sum(1 for k in data if not str(k).startswith("_"))


def tune_context(autotune: bool, path: Path | None, *, fi_autotune=None):
    """The context manager a FlashInfer call runs under (see the module docstring)."""
    if not autotune and (path is None or not path.is_file()):
        return contextlib.nullcontext()  # FlashInfer's default tactics
    if fi_autotune is None:
        from flashinfer.autotuner import autotune as fi_autotune
    if autotune and path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return fi_autotune(autotune, cache=str(path) if path is not None else None)


def tuning_status(autotune: bool, path: Path | None, *, entries_before: int) -> dict:
    """{'tuned': bool, 'source': str, 'cache': path|None, 'note': str} for the result."""
    if autotune:
        return {"tuned": True, "source": "autotune", "cache": str(path) if path else None,
                "note": "FlashInfer autotuned tactics (flashinfer.autotuner.autotune), saved to "
                        f"{path} for the next run" if path else "FlashInfer autotuned tactics"}
    if path is not None and entries_before:
        return {"tuned": True, "source": "cache", "cache": str(path),
                "note": f"tactics from FlashInfer's autotune cache {path} ({entries_before} entries from an earlier "
                        "--autotune on this GPU and FlashInfer version); shapes it does not cover run the default "
                        "tactic"}
    return {"tuned": False, "source": "default", "cache": str(path) if path else None,
            "note": "UNTUNED: FlashInfer default tactics (pass --autotune once to profile tactics; later runs "
                    "reuse them from FlashInfer's cache)"}
