"""The metadata files every source reads, and the validation they share."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..spec import ModelFiles, ModelRef
from .strict_json import read_json_file

CONFIG_FILE = "config.json"
QUANT_CONFIG_FILE = "hf_quant_config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def read_config(path: Path) -> dict:
    return read_json_file(path, err=ConfigError, what="config")


def read_quant_config(path: Path) -> dict:
    return read_json_file(path, err=ConfigError, what="quantization config")


def valid_shard_name(name: str) -> bool:
    """A plain file name inside the model directory: no separators, ``..``, drives or NUL."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and not os.path.isabs(name)
        and not re.match(r"^[A-Za-z]:", name)
    )


def read_index(path: Path) -> dict[str, str]:
    """The ``weight_map`` of a safetensors index, validated (plain file names only)."""
    obj = read_json_file(path, err=CheckpointError, what="safetensors index")
    wm = obj.get("weight_map")
    if not isinstance(wm, dict):
        raise CheckpointError(f"{path}: has no weight_map object")
    for k, v in wm.items():
        if not isinstance(v, str):
            raise CheckpointError(f"{path}: weight_map[{k!r}] is not a file name")
        if not valid_shard_name(v):
            raise CheckpointError(
                f"{path}: weight_map[{k!r}] = {v!r} is not a plain file name inside the model directory"
            )
    return dict(wm)


def model_type_arch(config: dict) -> tuple[str | None, str | None]:
    mt = config.get("model_type")
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    return (mt if isinstance(mt, str) else None), arch


def model_files(config: dict, *, model_id: str, source: str, path: str, revision: str | None = None,
                hf_quant_config: dict | None = None, weight_map: dict[str, str] | None = None) -> ModelFiles:
    """A :class:`ModelFiles` whose ref carries the config's model_type/architecture."""
    mt, arch = model_type_arch(config)
    ref = ModelRef(id=model_id, source=source, model_type=mt, architecture=arch, revision=revision, path=path)
    return ModelFiles(ref=ref, config=config, hf_quant_config=hf_quant_config, weight_map=weight_map)
