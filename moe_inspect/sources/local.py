"""Source a: a local model directory (config, quant config, index, every shard's header)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..safetensors_io import read_local_header_ex
from ..spec import ModelFiles
from .env import path_exists
from .files import CONFIG_FILE, INDEX_FILE, QUANT_CONFIG_FILE, model_files, read_config, read_index, read_quant_config
from .layers import find_first_moe_layer
from .lookup import Progress


def load_local_dir(directory: Path, *, model_id: str | None = None, read_tensors: bool = True,
                   progress: Progress = None) -> ModelFiles:
    """Config + every safetensors header of a local model directory."""
    d = directory
    if not (d / CONFIG_FILE).exists():
        raise ConfigError(f"{d}: has no {CONFIG_FILE}")
    config = read_config(d / CONFIG_FILE)
    qcfg = read_quant_config(d / QUANT_CONFIG_FILE) if (d / QUANT_CONFIG_FILE).exists() else None
    weight_map = read_index(d / INDEX_FILE) if (d / INDEX_FILE).exists() else None
    files = model_files(config, model_id=model_id or str(d), source="local", path=str(d.resolve()),
                        hf_quant_config=qcfg, weight_map=weight_map)
    if read_tensors:
        _read_headers(d, files, progress)
    return files


def _read_headers(d: Path, files: ModelFiles, progress: Progress) -> None:
    weight_map = files.weight_map
    if weight_map is not None:
        shard_names = sorted(set(weight_map.values()))
    else:
        shard_names = sorted(p.name for p in d.glob("*.safetensors"))
        if not shard_names:
            files.warnings.append(f"{d}: no *.safetensors files; tensor evidence unavailable")
    missing: list[str] = []
    for name in shard_names:
        p = d / name
        if not path_exists(p):
            missing.append(name)
            continue
        if progress:
            progress(f"reading header of {name}")
        files.tensors.update(read_local_header_ex(p, file_name=name).tensors)
    if missing:
        files.warnings.extend(_missing_shard_warnings(d, missing, weight_map or {}))


def _missing_shard_warnings(d: Path, missing: list[str], weight_map: dict[str, str]) -> list[str]:
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    out = [f"{d / INDEX_FILE}: {len(missing)} listed shard(s) missing: {shown}"]
    plan = find_first_moe_layer(weight_map, weight_map, max_files=10**6)
    lost = [f for f in plan.files if f in missing] if plan is not None else []
    if lost:
        out.append(f"{d}: the shard(s) holding the first MoE layer ({plan.module}) are missing: "
                   f"{', '.join(lost)}; tensor evidence is incomplete")
    return out
