"""Maintainer tool: build moe_inspect/data/catalog.json from the verified facts file.

    python scripts/build_catalog.py ../shared/facts/models.json

The catalog holds, per model, the routing-relevant config subset and the tensor names (with
dtype/shape where verified) of the first MoE layer: the router, its bias, and expert 0. Expert
tensor names follow the layout each entry's ``expert_tensor_pattern`` describes; they are
written out here per layout family so that the catalog is the same data a real header read
would give. Not run in CI: the output file is checked in.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

SNAPSHOT_DATE = "2026-11-28"  # when these facts were imported into the catalog
ROOT = Path(__file__).resolve().parents[1]

_ROUTER_RE = re.compile(r"^(\S+)\s*(?:\[([\d,\s]+)\])?")
_DTYPE_RE = re.compile(r"\b(BF16|bf16|F32|fp32|I64|F16|F8_E4M3)\b")
_DTYPES = {"bf16": "BF16", "f32": "F32", "fp32": "F32", "i64": "I64", "f16": "F16"}


def first_moe_layer(entry: dict) -> int:
    """The layer whose router the facts name; else the first MoE layer of the schedule.

    DeepSeek-V4's first layers are hash-routed; the facts name layer 3's biased router, and the
    catalog keeps layer 0's hash table beside it as a real checkpoint has both."""
    for line in entry["router_tensor_names"]:
        m = re.match(r"^\S*layers\.(\d+)\.", line)
        if m and "tid2eid" not in line:
            return int(m.group(1))
    c = entry["config_subset"].get("text_config", entry["config_subset"])
    if entry["model_type"] == "deepseek_v4":
        return int(c.get("num_hash_layers") or 0)
    return int(c.get("first_k_dense_replace") or 0)


def parse_router(line: str, layer: int) -> tuple[str, str, list[int]] | None:
    line = line.replace("{L}", str(layer)).replace("{0..2}", "0")
    m = _ROUTER_RE.match(line)
    if not m:
        return None
    name, shape = m.group(1), m.group(2)
    d = _DTYPE_RE.search(line[m.end():])
    dtype = d.group(1) if d else None
    shp = [int(s) for s in shape.split(",")] if shape else []
    dt = _DTYPES.get((dtype or "").lower(), (dtype or "").upper())
    if dt not in {"BF16", "F32", "I64", "F16", "F8_E4M3", "U8"}:
        dt = "?"
    return name, dt, shp


def expert_tensors(entry: dict, layer: int) -> dict[str, list]:
    cfg = entry["config_subset"]
    c = cfg.get("text_config", cfg)
    mt = entry["model_type"]
    H = c.get("hidden_size")
    E = c.get("n_routed_experts") or c.get("num_experts") or c.get("num_local_experts")
    I = c.get("moe_intermediate_size") or c.get("intermediate_size")
    q = cfg.get("quantization_config") or {}
    fp8_block = q.get("quant_method") == "fp8" and q.get("weight_block_size")
    out: dict[str, list] = {}

    def per_expert(prefix: str, names: tuple[str, str, str]) -> None:
        g, u, d = names
        wdt = "F8_E4M3" if fp8_block else "BF16"
        for n, shp in ((g, [I, H]), (u, [I, H]), (d, [H, I])):
            out[f"{prefix}.experts.0.{n}.weight"] = [wdt, shp]
            if fp8_block:
                out[f"{prefix}.experts.0.{n}.weight_scale_inv"] = [
                    "F32", [math.ceil(shp[0] / 128), math.ceil(shp[1] / 128)]]

    if mt in ("deepseek_v2", "deepseek_v3", "kimi_k2", "glm4_moe", "glm_moe_dsa", "qwen2_moe",
              "qwen3_moe", "qwen3_next"):
        per_expert(f"model.layers.{layer}.mlp", ("gate_proj", "up_proj", "down_proj"))
    elif mt in ("minimax_m2", "minimax_m1", "mixtral"):
        per_expert(f"model.layers.{layer}.block_sparse_moe", ("w1", "w3", "w2"))
    elif mt == "deepseek_v4":
        p = f"layers.{layer}.ffn.experts.0"
        out[f"{p}.w1.weight"] = ["I8", [I, H // 2]]
        out[f"{p}.w1.scale"] = ["F8_E8M0", [I, H // 32]]
        out[f"{p}.w3.weight"] = ["I8", [I, H // 2]]
        out[f"{p}.w3.scale"] = ["F8_E8M0", [I, H // 32]]
        out[f"{p}.w2.weight"] = ["I8", [H, I // 2]]
        out[f"{p}.w2.scale"] = ["F8_E8M0", [H, I // 32]]
    elif mt == "qwen3_5_moe":
        p = f"model.language_model.layers.{layer}.mlp.experts"
        out[f"{p}.gate_up_proj"] = ["BF16", [E, 2 * I, H]]
        out[f"{p}.down_proj"] = ["BF16", [E, H, I]]
    elif mt == "llama4":
        p = f"language_model.model.layers.{layer}.feed_forward.experts"
        out[f"{p}.gate_up_proj"] = ["BF16", [E, H, 2 * I]]
        out[f"{p}.down_proj"] = ["BF16", [E, I, H]]
    elif mt == "gpt_oss":
        p = f"model.layers.{layer}.mlp.experts"
        out[f"{p}.gate_up_proj_blocks"] = ["U8", [E, 2 * I, H // 32, 16]]
        out[f"{p}.gate_up_proj_scales"] = ["U8", [E, 2 * I, H // 32]]
        out[f"{p}.gate_up_proj_bias"] = ["BF16", [E, 2 * I]]
        out[f"{p}.down_proj_blocks"] = ["U8", [E, H, I // 32, 16]]
        out[f"{p}.down_proj_scales"] = ["U8", [E, H, I // 32]]
        out[f"{p}.down_proj_bias"] = ["BF16", [E, H]]
    else:
        raise SystemExit(f"no expert layout for {mt}")
    return out


def build(facts: list[dict]) -> dict:
    models = []
    for e in facts:
        layer = first_moe_layer(e)
        config = {"architectures": [e["architecture"]], "model_type": e["model_type"]}
        config.update(e["config_subset"])
        tensors: dict[str, list] = {}
        for line in e["router_tensor_names"]:
            if "tid2eid" in line and e["model_type"] == "deepseek_v4":
                # hash-routed layers 0..num_hash_layers-1 carry the table; keep it as evidence
                line = line.replace("{0..2}", "0")
            r = parse_router(line, layer)
            if r:
                tensors[r[0]] = [r[1], r[2]]
        if e["model_type"] == "deepseek_v4" and "layers.0.ffn.gate.weight" not in tensors:
            # hash-routed layer 0 keeps its gate.weight beside tid2eid (facts: "gate.weight still present")
            w = tensors.get(f"layers.{layer}.ffn.gate.weight")
            if w:
                tensors["layers.0.ffn.gate.weight"] = list(w)
        tensors.update(expert_tensors(e, layer))
        models.append({
            "id": e["repo_id"],
            "aliases": e.get("also_applies_to", []),
            "architecture": e["architecture"],
            "model_type": e["model_type"],
            "snapshot_date": SNAPSHOT_DATE,
            "first_moe_layer": layer,
            "config": config,
            "tensors": tensors,
            "notes": e.get("notes", ""),
        })
    return {"snapshot_date": SNAPSHOT_DATE, "source": "shared/facts/models.json (verified configs)",
            "models": models}


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/facts/models.json")
    data = build(json.loads(src.read_text()))
    dst = ROOT / "moe_inspect/data/catalog.json"
    dst.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {dst} ({len(data['models'])} models)")
