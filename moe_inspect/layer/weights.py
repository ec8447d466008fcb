"""The weights of one MoE layer: seeded random at a model's shapes, or read from a checkpoint.

Canonical layout (FlashInfer 0.7.2.post1 ``MoEWeightPack`` docstring, fused_moe/api.py):
``w1 [E, 2I, H]`` with rows ``[up, gate]`` (act(x·w1[I:]ᵀ) · (x·w1[:I]ᵀ)), ``w2 [E, H, I]``.
Hugging Face checkpoints keep gate first (``gate_proj`` / ``w1``; ``up_proj`` / ``w3``; fused
``gate_up_proj`` [E, 2I, H] is gate-then-up), so loading swaps the halves.

Tensors of a quantized layer, all on one device, keyed as FlashInfer's ``prepare_weights``
helpers take them:

====================  =========================================================================
``bf16``              w1 bf16, w2 bf16
``fp8``               w1/w2 float8_e4m3fn, w1_scale/w2_scale float32 [E] (dequant multiplier)
``fp8-block``         w1/w2 float8_e4m3fn, w1_scale/w2_scale float32 [E, N/128, K/128] (scale_inv)
``nvfp4``             w1/w2 uint8 [E, N, K/2], w1_scale/w2_scale float8_e4m3fn [E, N, K/16],
                      w1_global float32 [E] or [E, 2] ([up, gate]), w2_global float32 [E]
``mxfp4``             w1/w2 uint8 [E, N, K/2], w1_scale/w2_scale uint8 (E8M0) [E, N, K/32]
``mxfp8``             w1/w2 float8_e4m3fn, w1_scale/w2_scale uint8 (E8M0) [E, N, K/32]
====================  =========================================================================
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import BadInputError, CheckpointError, UnsupportedError
from . import quantizers as Q


@dataclass(frozen=True)
class LayerShapes:
    """Everything about one MoE layer that is not a tensor."""

    num_experts: int
    top_k: int
    hidden_size: int
    intermediate_size: int
    routing_method: str  # FlashInfer RoutingMethodType member name, e.g. "MiniMax2"
    n_group: int | None = None
    topk_group: int | None = None
    routed_scaling_factor: float | None = None
    has_bias: bool = False
    norm_topk_prob: bool = True
    num_shared_experts: int = 0
    shared_intermediate_size: int | None = None
    activation: str = "silu"
    router_dtype: str = "float32"

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class LayerWeights:
    quant: str
    shapes: LayerShapes
    tensors: dict  # canonical expert tensors (see module docstring)
    router_weight: torch.Tensor  # [E, H]
    router_bias: torch.Tensor | None = None  # [E] float32
    shared_w1: torch.Tensor | None = None  # [2 Is, H] bf16, rows [up, gate]
    shared_w2: torch.Tensor | None = None  # [H, Is] bf16
    source: str = "random"
    notes: list[str] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.tensors["w1"].device

    def dequant_expert(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(w1 [2I, H], w2 [H, I]) of expert ``e`` in float32, exactly as stored."""
        t, q = self.tensors, self.quant
        if q == "bf16":
            return t["w1"][e].float(), t["w2"][e].float()
        if q == "fp8":
            return (Q.dequantize_fp8_per_tensor(t["w1"][e], t["w1_scale"][e]),
                    Q.dequantize_fp8_per_tensor(t["w2"][e], t["w2_scale"][e]))
        if q == "fp8-block":
            return Q.dequantize_fp8_block(t["w1"][e], t["w1_scale"][e]), Q.dequantize_fp8_block(t["w2"][e], t["w2_scale"][e])
        if q == "nvfp4":
            g1 = t["w1_global"][e]
            w1 = Q.dequantize_nvfp4(t["w1"][e], t["w1_scale"][e], 1.0)
            if g1.ndim == 1:  # [up, gate] globals
                i = w1.shape[0] // 2
                w1 = torch.cat((w1[:i] * g1[0], w1[i:] * g1[1]))
            else:
                w1 = w1 * g1
            return w1, Q.dequantize_nvfp4(t["w2"][e], t["w2_scale"][e], t["w2_global"][e])
        if q == "mxfp4":
            return Q.dequantize_mxfp4(t["w1"][e], t["w1_scale"][e]), Q.dequantize_mxfp4(t["w2"][e], t["w2_scale"][e])
        if q == "mxfp8":
            return Q.dequantize_mxfp8(t["w1"][e], t["w1_scale"][e]), Q.dequantize_mxfp8(t["w2"][e], t["w2_scale"][e])
        raise BadInputError(f"--quant {q}: unknown format")

    def bf16_canonical(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantized BF16 ``w1, w2`` (for backends that quantize BF16 weights themselves)."""
        if self.quant == "bf16":
            return self.tensors["w1"], self.tensors["w2"]
        e = self.shapes.num_experts
        w1 = torch.empty((e, 2 * self.shapes.intermediate_size, self.shapes.hidden_size), dtype=torch.bfloat16, device=self.device)
        w2 = torch.empty((e, self.shapes.hidden_size, self.shapes.intermediate_size), dtype=torch.bfloat16, device=self.device)
        for i in range(e):
            a, b = self.dequant_expert(i)
            w1[i].copy_(a)
            w2[i].copy_(b)
        return w1, w2

    def expert_bytes(self) -> int:
        """Bytes one expert's weights and scales occupy (what a kernel must read per hit expert)."""
        total = 0
        for k, v in self.tensors.items():
            if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == self.shapes.num_experts:
                total += v[0].numel() * v.element_size()
        return total

    def total_bytes(self) -> int:
        return self.expert_bytes() * self.shapes.num_experts


# ----------------------------------------------------------------------------- quantization
def quantize_expert(w1: torch.Tensor, w2: torch.Tensor, quant: str) -> dict:
    """Quantize one expert's canonical (w1 [2I, H], w2 [H, I]) to ``quant`` (no leading E dim).

    Keys: ``w1``/``w2`` (codes), ``w1_scale``/``w2_scale`` (block or tensor scales) and, for
    NVFP4, ``w1_global``/``w2_global`` (the ModelOpt global scale)."""
    if quant == "bf16":
        return {"w1": w1.to(torch.bfloat16), "w2": w2.to(torch.bfloat16)}
    quantizer = _QUANTIZERS.get(quant)
    if quantizer is None:
        raise BadInputError(f"--quant {quant}: unknown format (known: {', '.join(Q.FORMATS)})")
    out: dict = {}
    for name, w in (("w1", w1), ("w2", w2)):
        codes, scale, *rest = quantizer(w)
        out[name], out[f"{name}_scale"] = codes, scale
        if rest:  # NVFP4's global scale
            out[f"{name}_global"] = rest[0]
    return out


# --quant -> our quantizer: returns (codes, scale) or (codes, block scale, global scale)
_QUANTIZERS = {
    "fp8": Q.quantize_fp8_per_tensor,
    "fp8-block": Q.quantize_fp8_block,
    "nvfp4": Q.quantize_nvfp4,
    "mxfp4": Q.quantize_mxfp4,
    "mxfp8": Q.quantize_mxfp8,
}


def check_quant_shapes(shapes: LayerShapes, quant: str) -> None:
    """Shapes our quantizers (and the canonical w1 concatenation) can take."""
    h, i = shapes.hidden_size, shapes.intermediate_size
    need = {"nvfp4": Q.NVFP4_BLOCK, "mxfp4": Q.MX_BLOCK, "mxfp8": Q.MX_BLOCK, "fp8-block": Q.FP8_BLOCK}.get(quant)
    if need and (h % need or i % need):
        raise UnsupportedError(
            f"--quant {quant}: hidden {h} and intermediate {i} must both be multiples of {need} "
            f"({'block' if quant == 'fp8-block' else 'scale group'} size)")


class _Stacker:
    """Collects per-expert dicts into [E, ...] tensors allocated once on ``device``."""

    def __init__(self, num_experts: int, device):
        self.e, self.device, self.out = num_experts, device, {}

    def put(self, e: int, parts: dict) -> None:
        for k, v in parts.items():
            v = v.to(self.device)
            if k not in self.out:
                self.out[k] = torch.empty((self.e, *v.shape), dtype=v.dtype, device=self.device)
            self.out[k][e].copy_(v)


def random_layer(shapes: LayerShapes, quant: str, *, seed: int = 0, device="cpu",
                 progress: Callable[[str], None] | None = None) -> LayerWeights:
    """Seeded random weights at ``shapes``, quantized to ``quant`` expert by expert.

    Expert weights ~ N(0, 1/fan_in) (so a unit-variance input gives unit-variance GEMM outputs),
    router ~ N(0, 1/H), correction bias ~ N(0, 0.01²) when the model has one (small next to the
    spread of sigmoid scores, as in trained checkpoints, so every expert gets tokens).
    """
    check_quant_shapes(shapes, quant)
    g = torch.Generator(device=device).manual_seed(seed)
    e, h, i = shapes.num_experts, shapes.hidden_size, shapes.intermediate_size
    st = _Stacker(e, device)
    for x in range(e):
        if progress and (x % 16 == 0 or x == e - 1):
            progress(f"random weights: expert {x + 1}/{e} ({quant})")
        w1 = torch.randn((2 * i, h), generator=g, device=device, dtype=torch.float32).mul_(1 / math.sqrt(h))
        w2 = torch.randn((h, i), generator=g, device=device, dtype=torch.float32).mul_(1 / math.sqrt(i))
        st.put(x, quantize_expert(w1.to(torch.bfloat16).float(), w2.to(torch.bfloat16).float(), quant))
    rdt = torch.float32 if shapes.router_dtype == "float32" else torch.bfloat16
    router = (torch.randn((e, h), generator=g, device=device) / math.sqrt(h)).to(rdt)
    bias = (torch.randn((e,), generator=g, device=device) * 0.01) if shapes.has_bias else None
    sw1 = sw2 = None
    if shapes.num_shared_experts:
        si = (shapes.shared_intermediate_size or i) * shapes.num_shared_experts
        sw1 = (torch.randn((2 * si, h), generator=g, device=device) / math.sqrt(h)).to(torch.bfloat16)
        sw2 = (torch.randn((h, si), generator=g, device=device) / math.sqrt(si)).to(torch.bfloat16)
    return LayerWeights(quant, shapes, st.out, router, bias, sw1, sw2, source=f"random(seed={seed})")


# ----------------------------------------------------------------------------- checkpoints
_PROJ = {"gate_proj": "gate", "w1": "gate", "up_proj": "up", "w3": "up", "down_proj": "down", "w2": "down"}
_EXPERT_RE = re.compile(
    r"^(?P<pre>.+)\.experts\.(?P<e>\d+)\.(?P<proj>gate_proj|up_proj|down_proj|w1|w3|w2)\."
    r"(?P<suffix>weight|weight_scale_inv|weight_scale|weight_scale_2|input_scale)$")
_FUSED_RE = re.compile(r"^(?P<pre>.+)\.experts\.(?P<what>gate_up_proj|down_proj)(?P<rest>_blocks|_scales|_bias)?$")


def checkpoint_tensor_names(path: Path) -> dict[str, str]:
    """tensor name -> shard file name for a local checkpoint directory (headers only)."""
    from ..safetensors_io import read_local_header

    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            wm = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: unreadable weight_map ({type(e).__name__})") from None
        if not isinstance(wm, dict):
            raise CheckpointError(f"{index}: weight_map is not an object")
        return {str(k): str(v) for k, v in wm.items()}
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path}: no *.safetensors files and no model.safetensors.index.json")
    out: dict[str, str] = {}
    for f in files:
        tensors, _ = read_local_header(f)
        for n in tensors:
            out[n] = f.name
    return out


def find_layer_prefix(names, layer: int) -> str:
    """The ``...experts`` parent prefix of MoE layer ``layer`` (e.g. ``model.layers.3.mlp``)."""
    pat = re.compile(rf"^(?:model\.)?(?:language_model\.)?(?:model\.)?layers\.{layer}\.")
    cands = set()
    for n in names:
        if pat.match(n) and ".experts." in n + ".":
            m = _EXPERT_RE.match(n) or _FUSED_RE.match(n)
            if m:
                cands.add(m.group("pre"))
    if not cands:
        raise CheckpointError(f"checkpoint has no expert tensors for layer {layer} (is it a MoE layer? try --layer)")
    return sorted(cands, key=len)[0]


class _Reader:
    """Reads single tensors from the shards with safetensors, opening each file once."""

    def __init__(self, root: Path, weight_map: dict[str, str], device):
        self.root, self.map, self.device, self.handles = root, weight_map, device, {}
        self.bytes_read = 0

    def has(self, name: str) -> bool:
        return name in self.map

    def get(self, name: str) -> torch.Tensor:
        if name not in self.map:
            raise CheckpointError(f"{self.root}: tensor {name!r} is missing from the checkpoint")
        f = self.map[name]
        if f not in self.handles:
            from safetensors import safe_open

            p = self.root / f
            if not p.is_file():
                raise CheckpointError(f"{p}: shard named by the index for {name!r} is missing")
            try:
                self.handles[f] = safe_open(str(p), framework="pt", device="cpu")
            except Exception as e:  # safetensors raises its own error types
                raise CheckpointError(f"{p}: cannot open ({type(e).__name__}: {e})") from None
        try:
            t = self.handles[f].get_tensor(name)
        except Exception as e:
            raise CheckpointError(f"{self.root / f}: cannot read {name!r} ({type(e).__name__}: {e})") from None
        self.bytes_read += t.numel() * t.element_size()
        return t.to(self.device)


def _stored_format(r: _Reader, base: str) -> str:
    """Format of one projection ``base`` (``...experts.0.gate_proj``) as stored."""
    w = r.get(base + ".weight") if r.has(base + ".weight") else None
    if w is None:
        raise CheckpointError(f"tensor {base + '.weight'!r} is missing from the checkpoint")
    if w.dtype == torch.uint8 and r.has(base + ".weight_scale") and r.has(base + ".weight_scale_2"):
        return "nvfp4"
    if w.dtype == torch.float8_e4m3fn and r.has(base + ".weight_scale_inv"):
        return "fp8-block"
    if w.dtype == torch.float8_e4m3fn and r.has(base + ".weight_scale"):
        return "fp8"
    if w.dtype in (torch.bfloat16, torch.float16, torch.float32):
        return "bf16"
    raise UnsupportedError(f"{base}.weight: stored dtype {w.dtype} without a known scale layout is not supported")


def _load_proj(r: _Reader, base: str, fmt: str) -> dict:
    """One projection as stored: {'w', 'scale', 'global'}."""
    if fmt == "nvfp4":
        return {"w": r.get(base + ".weight"), "scale": r.get(base + ".weight_scale"),
                "global": r.get(base + ".weight_scale_2").float().reshape(())}
    if fmt == "fp8-block":
        return {"w": r.get(base + ".weight"), "scale": r.get(base + ".weight_scale_inv").float()}
    if fmt == "fp8":
        return {"w": r.get(base + ".weight"), "scale": r.get(base + ".weight_scale").float().reshape(())}
    return {"w": r.get(base + ".weight")}


def _dequant_proj(p: dict, fmt: str) -> torch.Tensor:
    if fmt == "nvfp4":
        return Q.dequantize_nvfp4(p["w"], p["scale"], p["global"])
    if fmt == "fp8-block":
        return Q.dequantize_fp8_block(p["w"], p["scale"])
    if fmt == "fp8":
        return Q.dequantize_fp8_per_tensor(p["w"], p["scale"])
    return p["w"].float()


def _as_stored(gate: dict, up: dict, down: dict, fmt: str) -> dict:
    """Stored per-projection tensors -> one canonical expert dict, no requantization."""
    w1 = torch.cat((up["w"], gate["w"]), dim=0)
    out = {"w1": w1, "w2": down["w"]}
    if fmt in ("fp8-block",):
        out["w1_scale"] = torch.cat((up["scale"], gate["scale"]), dim=0)
        out["w2_scale"] = down["scale"]
    elif fmt == "fp8":
        if not torch.equal(up["scale"], gate["scale"]):
            # one scale per GEMM: requantize w1 at the larger scale, losslessly representable
            raise UnsupportedError("fp8 per-tensor checkpoint with different gate/up scales: use --quant fp8-block or bf16")
        out["w1_scale"], out["w2_scale"] = up["scale"], down["scale"]
    elif fmt == "nvfp4":
        out["w1_scale"] = torch.cat((up["scale"], gate["scale"]), dim=0)
        out["w1_global"] = torch.stack((up["global"], gate["global"]))
        out["w2_scale"], out["w2_global"] = down["scale"], down["global"]
    return out


def load_checkpoint_layer(path: str | os.PathLike, shapes: LayerShapes, quant: str, *, layer: int,
                          device="cpu", progress: Callable[[str], None] | None = None) -> LayerWeights:
    """Read ONLY the tensors of MoE layer ``layer`` from a local checkpoint directory.

    Checkpoints already in ``quant`` (FP8-block, NVFP4 ModelOpt, FP8 per-tensor with equal gate/up
    scales) are used as stored, with their scales; anything else is dequantized to float32 and
    quantized with our quantizers (the result says so in ``notes``).
    """
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: --weights checkpoint needs a local checkpoint directory")
    check_quant_shapes(shapes, quant)
    names = checkpoint_tensor_names(root)
    pre = find_layer_prefix(names, layer)
    r = _Reader(root, names, device)
    notes: list[str] = []
    e_count, h, i = shapes.num_experts, shapes.hidden_size, shapes.intermediate_size
    st = _Stacker(e_count, device)

    fused = f"{pre}.experts.gate_up_proj"
    if r.has(fused + "_blocks"):
        raise UnsupportedError(f"{fused}_blocks: gpt-oss MXFP4 (interleaved gate/up) checkpoints are not supported by run-layer")
    if r.has(fused):
        gu, dn = r.get(fused), r.get(f"{pre}.experts.down_proj")
        if gu.ndim != 3 or dn.ndim != 3 or gu.shape[0] != e_count:
            raise CheckpointError(f"{fused}: shape {list(gu.shape)} is not [E={e_count}, 2I, H] or [E, H, 2I]")
        if tuple(gu.shape[1:]) == (h, 2 * i):  # Llama-4 stores x @ W, i.e. [E, H, 2I] and [E, I, H]
            gu, dn = gu.transpose(1, 2), dn.transpose(1, 2)
        if tuple(gu.shape[1:]) != (2 * i, h) or tuple(dn.shape[1:]) != (h, i):
            raise CheckpointError(f"{fused}: shapes {list(gu.shape)}/{list(dn.shape)} do not match H={h}, I={i}")
        for x in range(e_count):
            gate, up = gu[x, :i].float(), gu[x, i:].float()
            st.put(x, quantize_expert(torch.cat((up, gate)), dn[x].float(), quant))
        notes.append(f"fused gate_up_proj (gate first) swapped to [up, gate]; quantized to {quant} by moe-inspect")
        stored = "bf16"
    else:
        style = "w1w3w2" if r.has(f"{pre}.experts.0.w1.weight") else "gate_up_down"
        pn = {"gate": "w1", "up": "w3", "down": "w2"} if style == "w1w3w2" else {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
        stored = _stored_format(r, f"{pre}.experts.0.{pn['gate']}")
        as_stored = stored == quant
        for x in range(e_count):
            if progress and (x % 16 == 0 or x == e_count - 1):
                progress(f"reading layer {layer}: expert {x + 1}/{e_count}")
            parts = {k: _load_proj(r, f"{pre}.experts.{x}.{v}", stored) for k, v in pn.items()}
            g, u, d = parts["gate"], parts["up"], parts["down"]
            if g["w"].shape[0] != i or d["w"].shape[0] != h:
                raise CheckpointError(
                    f"{pre}.experts.{x}.{pn['gate']}.weight: {list(g['w'].shape)} does not match I={i}, H={h}")
            if as_stored:
                st.put(x, _as_stored(g, u, d, stored))
            else:
                w1 = torch.cat((_dequant_proj(u, stored), _dequant_proj(g, stored)))
                st.put(x, quantize_expert(w1, _dequant_proj(d, stored), quant))
        notes.append(f"experts stored as {stored} ({style}); "
                     + ("used as stored with their scales" if as_stored else f"dequantized and quantized to {quant} by moe-inspect"))
        if quant == "nvfp4" and as_stored:
            st.out["w2_global"] = st.out["w2_global"].reshape(e_count)

    moe = pre
    router_name = next((n for n in (f"{moe}.gate.weight", f"{moe}.router.weight") if r.has(n)), None)
    if router_name is None:
        raise CheckpointError(f"{root}: router tensor {moe}.gate.weight is missing from the checkpoint")
    router = r.get(router_name)
    bias = None
    if shapes.has_bias:
        bname = next((n for n in (f"{moe}.gate.e_score_correction_bias", f"{moe}.e_score_correction_bias",
                                  f"{moe}.gate.expert_bias") if r.has(n)), None)
        if bname is None:
            raise CheckpointError(f"{root}: correction bias {moe}.gate.e_score_correction_bias is missing from the checkpoint")
        bias = r.get(bname).float().reshape(-1)
    sw1 = sw2 = None
    if shapes.num_shared_experts:
        sp = next((p for p in (f"{moe}.shared_experts", f"{moe}.shared_expert") if r.has(p + ".gate_proj.weight")), None)
        if sp is None:
            raise CheckpointError(f"{root}: shared expert {moe}.shared_experts.gate_proj.weight is missing from the checkpoint")
        sf = _stored_format(r, sp + ".gate_proj")
        g, u, d = (_dequant_proj(_load_proj(r, f"{sp}.{p}", sf), sf) for p in ("gate_proj", "up_proj", "down_proj"))
        sw1, sw2 = torch.cat((u, g)).to(torch.bfloat16), d.to(torch.bfloat16)
    notes.append(f"read {r.bytes_read / 1e9:.2f} GB of layer {layer} tensors ({pre})")
    return LayerWeights(quant, shapes, st.out, router, bias, sw1, sw2, source=f"checkpoint:{root} layer {layer}", notes=notes)
