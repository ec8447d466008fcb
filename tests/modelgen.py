"""Generate tiny-but-real model directories for tests (shared by the whole team).

``write_safetensors`` writes a REAL safetensors file: a valid JSON header with correct,
contiguous ``data_offsets`` and a zero-filled data section made with ``truncate`` (a sparse
file: a [256, 7168, 2048] BF16 expert tensor costs no disk or memory). ``safetensors.safe_open``
accepts the result (tested in tests/test_safetensors_io.py).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

# bits per element, safetensors 0.8 dtype strings (kept local: tests must not depend on the code under test)
_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}

TensorSpec = dict[str, tuple[str, list[int]]]


def nbytes(dtype: str, shape: list[int] | tuple[int, ...]) -> int:
    bits = (math.prod(shape) if shape else 1) * _BITS[dtype]
    if bits % 8:
        raise ValueError(f"{dtype}{list(shape)} is not a whole number of bytes")
    return bits // 8


def safetensors_header(tensors: TensorSpec, metadata: dict[str, str] | None = None) -> tuple[bytes, int]:
    """The header bytes (8-byte length + padded JSON) and the data-section size."""
    hdr: dict = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    off = 0
    for name, (dtype, shape) in tensors.items():
        n = nbytes(dtype, shape)
        hdr[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    js = json.dumps(hdr, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)  # safetensors pads the header to 8-byte alignment
    return struct.pack("<Q", len(js)) + js, off


def write_safetensors(
    path: str | Path,
    tensors: TensorSpec,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a valid safetensors file with zero (sparse) data. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head, data = safetensors_header(tensors, metadata)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + data)
    return path


def write_raw_safetensors(path: str | Path, header: bytes | str | dict, *, length: int | None = None,
                          data_size: int = 0) -> Path:
    """Write a (possibly hostile) file: 8-byte ``length`` (default: len of header) + header + zeros."""
    path = Path(path)
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header) if length is None else length))
        f.write(header)
        f.truncate(8 + len(header) + data_size)
    return path


def shard_name(i: int, n: int) -> str:
    """HF sharded file name, 1-based: model-00001-of-00003.safetensors."""
    return f"model-{i:05d}-of-{n:05d}.safetensors"


def split_shards(tensors: TensorSpec, shards: int) -> list[TensorSpec]:
    """Split tensors into ``shards`` contiguous groups (in insertion order), none empty if possible."""
    names = list(tensors)
    per = max(1, math.ceil(len(names) / shards))
    groups = [names[i * per:(i + 1) * per] for i in range(shards)]
    return [{k: tensors[k] for k in g} for g in groups]


def make_model_dir(
    path: str | Path,
    config: dict,
    tensors: TensorSpec,
    *,
    shards: int = 1,
    hf_quant_config: dict | None = None,
    shard_of: dict[str, int] | None = None,
) -> Path:
    """Write config.json, the safetensors file(s) and, when ``shards > 1``, the index.

    ``shards == 1`` writes ``model.safetensors``; otherwise ``model-0000i-of-0000N.safetensors``
    plus ``model.safetensors.index.json``. ``shard_of`` (tensor -> 0-based shard) overrides
    the default contiguous split.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    if hf_quant_config is not None:
        (path / "hf_quant_config.json").write_text(json.dumps(hf_quant_config, indent=2))
    if shards <= 1:
        if tensors:
            write_safetensors(path / "model.safetensors", tensors)
        return path
    if shard_of is not None:
        groups: list[TensorSpec] = [{} for _ in range(shards)]
        for k, v in tensors.items():
            groups[shard_of[k]][k] = v
    else:
        groups = split_shards(tensors, shards)
    weight_map: dict[str, str] = {}
    total = 0
    for i, g in enumerate(groups, start=1):
        fname = shard_name(i, shards)
        write_safetensors(path / fname, g)
        for k, (dt, sh) in g.items():
            weight_map[k] = fname
            total += nbytes(dt, sh)
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    return path


# ----------------------------------------------------------------------------------- examples
def moe_config(**over) -> dict:
    """A tiny DeepSeek-V3-style config (4 layers, first dense, 8 experts, top-2)."""
    cfg = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "hidden_size": 64,
        "intermediate_size": 128,
        "moe_intermediate_size": 32,
        "num_hidden_layers": 4,
        "first_k_dense_replace": 1,
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "n_shared_experts": 1,
        "n_group": 2,
        "topk_group": 1,
        "norm_topk_prob": True,
        "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid",
        "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16",
    }
    cfg.update(over)
    return cfg


def moe_tensors(layers: int = 4, experts: int = 8, hidden: int = 64, inter: int = 32,
                first_dense: int = 1, prefix: str = "model.layers") -> TensorSpec:
    """DeepSeek-V3-style tensor names/shapes for :func:`moe_config`."""
    t: TensorSpec = {"model.embed_tokens.weight": ("BF16", [256, hidden])}
    for L in range(layers):
        p = f"{prefix}.{L}"
        t[f"{p}.input_layernorm.weight"] = ("BF16", [hidden])
        t[f"{p}.self_attn.q_proj.weight"] = ("BF16", [hidden, hidden])
        if L < first_dense:
            for proj, shp in (("gate_proj", [128, hidden]), ("up_proj", [128, hidden]), ("down_proj", [hidden, 128])):
                t[f"{p}.mlp.{proj}.weight"] = ("BF16", shp)
            continue
        t[f"{p}.mlp.gate.weight"] = ("BF16", [experts, hidden])
        t[f"{p}.mlp.gate.e_score_correction_bias"] = ("F32", [experts])
        for e in range(experts):
            t[f"{p}.mlp.experts.{e}.gate_proj.weight"] = ("BF16", [inter, hidden])
            t[f"{p}.mlp.experts.{e}.up_proj.weight"] = ("BF16", [inter, hidden])
            t[f"{p}.mlp.experts.{e}.down_proj.weight"] = ("BF16", [hidden, inter])
        t[f"{p}.mlp.shared_experts.gate_proj.weight"] = ("BF16", [inter, hidden])
    t["model.norm.weight"] = ("BF16", [hidden])
    t["lm_head.weight"] = ("BF16", [256, hidden])
    return t
