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

Any format may add the expert GEMM biases ``w1_bias`` [E, 2I] (rows ``[up, gate]``, like w1) and
``w2_bias`` [E, H] (gpt-oss ``gate_up_proj_bias`` / ``down_proj_bias``), kept in their stored dtype.

Stored checkpoint formats read by :func:`load_checkpoint_layer` (see ``STORED_FORMATS``): BF16/FP16/
FP32, FP8 per-tensor, DeepSeek FP8-block, ModelOpt NVFP4, compressed-tensors NVFP4 (global scale
converted to ModelOpt's), and gpt-oss MXFP4 (fused, gate/up interleaved, with biases).
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
    activation: str = "silu"  # "silu" (SwiGLU) | "swigluoai" (gpt-oss: clamped, alpha 1.702, up + 1)
    router_dtype: str = "float32"
    swiglu_limit: float | None = None  # swigluoai clamp limit (config.json swiglu_limit)
    expert_bias: bool = False  # the expert GEMMs add biases (gpt-oss gate_up_proj_bias / down_proj_bias)
    linear_router_bias: bool = False  # a router bias added to the logits before top-k (gpt-oss router.bias)

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
    router_logit_bias: torch.Tensor | None = None  # [E] float32, added to the router logits (gpt-oss)

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

    def expert_bias(self, e: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(b1 [2I] rows [up, gate], b2 [H]) of expert ``e`` in float32, or None where the layer has none."""
        b1, b2 = self.tensors.get("w1_bias"), self.tensors.get("w2_bias")
        return (b1[e].float() if b1 is not None else None), (b2[e].float() if b2 is not None else None)

    def router_logits(self, x: torch.Tensor) -> torch.Tensor:
        """float32 router logits of ``x`` [T, H] (plus the linear router bias where the model has one)."""
        logits = x.float() @ self.router_weight.float().t()
        return logits + self.router_logit_bias.float() if self.router_logit_bias is not None else logits

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
    # drawn last, so layers without them keep the same random stream as before
    if shapes.expert_bias:  # small next to the unit-variance GEMM outputs
        st.out["w1_bias"] = (torch.randn((e, 2 * i), generator=g, device=device) * 0.1).to(torch.bfloat16)
        st.out["w2_bias"] = (torch.randn((e, h), generator=g, device=device) * 0.1).to(torch.bfloat16)
    logit_bias = (torch.randn((e,), generator=g, device=device) * 0.1) if shapes.linear_router_bias else None
    return LayerWeights(quant, shapes, st.out, router, bias, sw1, sw2, source=f"random(seed={seed})",
                        router_logit_bias=logit_bias)


# ----------------------------------------------------------------------------- checkpoints
_PROJ = {"gate_proj": "gate", "w1": "gate", "up_proj": "up", "w3": "up", "down_proj": "down", "w2": "down"}
_EXPERT_RE = re.compile(
    r"^(?P<pre>.+)\.experts\.(?P<e>\d+)\.(?P<proj>gate_proj|up_proj|down_proj|w1|w3|w2)\."
    r"(?P<suffix>weight|weight_packed|weight_scale_inv|weight_scale|weight_scale_2|weight_global_scale|input_scale"
    r"|input_global_scale)$")
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


    def dtype(self, name: str):
        """dtype of ``name`` from the shard header (no data read)."""
        from ..safetensors_io import read_local_header

        f = self.map.get(name)
        if f is None:
            raise CheckpointError(f"{self.root}: tensor {name!r} is missing from the checkpoint")
        tensors, _ = read_local_header(self.root / f)
        return _ST_DTYPES.get(getattr(tensors.get(name), "dtype", None))


# safetensors header dtype -> torch dtype (only those a stored expert weight may have)
_ST_DTYPES = {"U8": torch.uint8, "I8": torch.int8, "F8_E4M3": torch.float8_e4m3fn, "BF16": torch.bfloat16,
              "F16": torch.float16, "F32": torch.float32}


@dataclass(frozen=True)
class StoredFormat:
    """One way a checkpoint stores an expert projection, read into our (ModelOpt-style) convention."""

    name: str
    quant: str  # the --quant format it is once read
    weight: str  # suffix of the codes / values tensor
    dtypes: tuple  # torch dtypes that weight may have
    scale: str | None = None  # suffix of the block / tensor scale
    global_scale: str | None = None  # suffix of the NVFP4 global scale
    reciprocal_global: bool = False  # stored global = 1 / ModelOpt weight_scale_2
    source: str = ""


#: Per-expert projection formats, tried in order (the first whose tensors and dtype match wins).
STORED_FORMATS: tuple[StoredFormat, ...] = (
    StoredFormat("nvfp4 (ModelOpt)", "nvfp4", "weight", (torch.uint8,), "weight_scale", "weight_scale_2",
                 source="REFERENCE.md §4: w = e2m1 · weight_scale(E4M3) · weight_scale_2"),
    StoredFormat("nvfp4 (compressed-tensors)", "nvfp4", "weight_packed", (torch.uint8,), "weight_scale",
                 "weight_global_scale", reciprocal_global=True,
                 source="compressed-tensors nvfp4-pack-quantized (NVFP4PackedCompressor: even element in the low "
                        "nibble; w = e2m1 · weight_scale / weight_global_scale); vLLM v0.33 compressed_tensors_moe "
                        "passes 1 / weight_global_scale where ModelOpt passes weight_scale_2"),
    StoredFormat("fp8-block", "fp8-block", "weight", (torch.float8_e4m3fn,), "weight_scale_inv",
                 source="DeepSeek FP8 (REFERENCE.md §4): w = q · weight_scale_inv per 128x128 block"),
    StoredFormat("fp8", "fp8", "weight", (torch.float8_e4m3fn,), "weight_scale",
                 source="FP8 per-tensor: w = q · weight_scale"),
    StoredFormat("bf16", "bf16", "weight", (torch.bfloat16, torch.float16, torch.float32), source="unquantized"),
)

#: gpt-oss fused MXFP4 experts: ``{gate_up_proj,down_proj}_{blocks,scales,bias}`` under ``...experts``.
#: blocks U8 [E, N, K/32, 16] (byte j of a block = elements 2j (low nibble) and 2j+1 (high nibble)),
#: scales U8 E8M0 [E, N, K/32] (2^(s-127)), gate_up rows INTERLEAVED: even rows gate, odd rows up.
# (transformers 5.24 integrations/mxfp4.py _convert_moe_packed_tensors: low nibble first, ldexp(scale - 127);
# models/gpt_oss/modeling_gpt_oss.py GptOssExperts._apply_gate: gate = gate_up[..., ::2], up = gate_up[..., 1::2])


def _stored_format(r: _Reader, base: str) -> StoredFormat:
    """How projection ``base`` (``...experts.0.gate_proj``) is stored."""
    present = [f for f in STORED_FORMATS if r.has(f"{base}.{f.weight}")]
    if not present:
        raise CheckpointError(f"tensor {base + '.weight'!r} is missing from the checkpoint")
    for f in present:
        needs = [x for x in (f.scale, f.global_scale) if x]
        if all(r.has(f"{base}.{x}") for x in needs) and r.dtype(f"{base}.{f.weight}") in f.dtypes:
            return f
    f = present[0]
    raise UnsupportedError(f"{base}.{f.weight}: stored dtype {r.dtype(f'{base}.{f.weight}')} without a known "
                           "scale layout is not supported")


def _load_proj(r: _Reader, base: str, fmt: StoredFormat) -> dict:
    """One projection as stored, scales in our convention: {'w', 'scale', 'global'}."""
    out = {"w": r.get(f"{base}.{fmt.weight}")}
    if fmt.scale:
        sc = r.get(f"{base}.{fmt.scale}")
        out["scale"] = sc if fmt.quant == "nvfp4" else sc.float()
        if fmt.quant == "fp8":
            out["scale"] = out["scale"].reshape(())
    if fmt.global_scale:
        g = r.get(f"{base}.{fmt.global_scale}").float().reshape(())
        out["global"] = torch.reciprocal(g) if fmt.reciprocal_global else g
    return out


def _dequant_proj(p: dict, quant: str) -> torch.Tensor:
    if quant == "nvfp4":
        return Q.dequantize_nvfp4(p["w"], p["scale"], p["global"])
    if quant == "fp8-block":
        return Q.dequantize_fp8_block(p["w"], p["scale"])
    if quant == "fp8":
        return Q.dequantize_fp8_per_tensor(p["w"], p["scale"])
    return p["w"].float()


def _as_stored(gate: dict, up: dict, down: dict, quant: str) -> dict:
    """Stored per-projection tensors -> one canonical expert dict, no requantization."""
    w1 = torch.cat((up["w"], gate["w"]), dim=0)
    out = {"w1": w1, "w2": down["w"]}
    if quant in ("fp8-block",):
        out["w1_scale"] = torch.cat((up["scale"], gate["scale"]), dim=0)
        out["w2_scale"] = down["scale"]
    elif quant == "fp8":
        if not torch.equal(up["scale"], gate["scale"]):
            # one scale per GEMM: requantize w1 at the larger scale, losslessly representable
            raise UnsupportedError("fp8 per-tensor checkpoint with different gate/up scales: use --quant fp8-block or bf16")
        out["w1_scale"], out["w2_scale"] = up["scale"], down["scale"]
    elif quant == "nvfp4":
        out["w1_scale"] = torch.cat((up["scale"], gate["scale"]), dim=0)
        out["w1_global"] = torch.stack((up["global"], gate["global"]))
        out["w2_scale"], out["w2_global"] = down["scale"], down["global"]
    return out


def interleaved_to_up_gate(t: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """gpt-oss gate/up INTERLEAVED along ``dim`` (even = gate, odd = up) -> FlashInfer's [up, gate] halves."""
    idx = [slice(None)] * t.ndim
    idx[dim] = slice(1, None, 2)
    up = t[tuple(idx)]
    idx[dim] = slice(0, None, 2)
    return torch.cat((up, t[tuple(idx)]), dim=dim)


def _expect(r: _Reader, name: str, shape: tuple, dtypes=None) -> torch.Tensor:
    t = r.get(name)
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{name}: shape {list(t.shape)} is not {list(shape)}")
    if dtypes is not None and t.dtype not in dtypes:
        raise CheckpointError(f"{name}: dtype {t.dtype} is not one of {', '.join(str(d) for d in dtypes)}")
    return t


def _fused_biases(r: _Reader, experts: str, e: int, h: int, i: int, *, interleaved: bool) -> dict:
    """``w1_bias`` [E, 2I] rows [up, gate] and ``w2_bias`` [E, H], where the checkpoint has them."""
    out = {}
    if r.has(f"{experts}.gate_up_proj_bias"):
        b1 = _expect(r, f"{experts}.gate_up_proj_bias", (e, 2 * i))
        out["w1_bias"] = interleaved_to_up_gate(b1) if interleaved else torch.cat((b1[:, i:], b1[:, :i]), dim=1)
    if r.has(f"{experts}.down_proj_bias"):
        out["w2_bias"] = _expect(r, f"{experts}.down_proj_bias", (e, h))
    if len(out) == 1:
        raise CheckpointError(f"{experts}: has only one of gate_up_proj_bias / down_proj_bias")
    return {k: v.contiguous() for k, v in out.items()}


def _load_gpt_oss_mxfp4(r: _Reader, experts: str, shapes: LayerShapes, quant: str, st: _Stacker, notes: list) -> None:
    e, h, i = shapes.num_experts, shapes.hidden_size, shapes.intermediate_size
    if h % Q.MX_BLOCK or i % Q.MX_BLOCK:
        raise CheckpointError(f"{experts}.gate_up_proj_blocks: H={h} and I={i} must be multiples of {Q.MX_BLOCK}")
    u8 = (torch.uint8,)
    gb = _expect(r, f"{experts}.gate_up_proj_blocks", (e, 2 * i, h // 32, 16), u8)
    gs = _expect(r, f"{experts}.gate_up_proj_scales", (e, 2 * i, h // 32), u8)
    db = _expect(r, f"{experts}.down_proj_blocks", (e, h, i // 32, 16), u8)
    ds = _expect(r, f"{experts}.down_proj_scales", (e, h, i // 32), u8)
    # the 16 bytes of a 32-element block are consecutive along K: [E, N, K/32, 16] is [E, N, K/2] packed
    w1 = interleaved_to_up_gate(gb.reshape(e, 2 * i, h // 2))
    s1 = interleaved_to_up_gate(gs)
    w2, s2 = db.reshape(e, h, i // 2), ds
    if quant == "mxfp4":
        st.out.update({"w1": w1.contiguous(), "w1_scale": s1.contiguous(), "w2": w2.contiguous(),
                       "w2_scale": s2.contiguous()})
        how = "used as stored with their E8M0 scales"
    else:
        for x in range(e):
            st.put(x, quantize_expert(Q.dequantize_mxfp4(w1[x], s1[x]), Q.dequantize_mxfp4(w2[x], s2[x]), quant))
        how = f"dequantized and quantized to {quant} by moe-inspect"
    st.out.update(_fused_biases(r, experts, e, h, i, interleaved=True))
    notes.append(f"experts stored as gpt-oss MXFP4 (gate/up interleaved, reordered to [up, gate]); {how}")


def checkpoint_expert_bias(path: str | os.PathLike, layer: int) -> bool:
    """Whether MoE layer ``layer`` of a local checkpoint has expert GEMM biases (headers only)."""
    names = checkpoint_tensor_names(Path(path))
    pre = find_layer_prefix(names, layer)
    return any(f"{pre}.experts.{k}" in names for k in ("gate_up_proj_bias", "down_proj_bias"))


def load_checkpoint_layer(path: str | os.PathLike, shapes: LayerShapes, quant: str, *, layer: int,
                          device="cpu", progress: Callable[[str], None] | None = None) -> LayerWeights:
    """Read ONLY the tensors of MoE layer ``layer`` from a local checkpoint directory.

    Checkpoints already in ``quant`` (FP8-block, NVFP4 ModelOpt or compressed-tensors, gpt-oss MXFP4,
    FP8 per-tensor with equal gate/up scales) are used as stored, with their scales; anything else
    is dequantized to float32 and quantized with our quantizers (the result says so in ``notes``).
    Expert biases (gpt-oss) are kept as stored, reordered like w1.
    """
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: --weights checkpoint needs a local checkpoint directory")
    check_quant_shapes(shapes, quant)
    names = checkpoint_tensor_names(root)
    pre = find_layer_prefix(names, layer)
    r = _Reader(root, names, device)
    notes: list[str] = []
    st = _Stacker(shapes.num_experts, device)
    experts = f"{pre}.experts"
    if r.has(f"{experts}.gate_up_proj_blocks"):
        if progress:
            progress(f"reading layer {layer}: gpt-oss MXFP4 experts")
        _load_gpt_oss_mxfp4(r, experts, shapes, quant, st, notes)
    elif r.has(f"{experts}.gate_up_proj"):
        _load_fused_experts(r, experts, shapes, quant, st, notes)
    else:
        _load_expert_projections(r, experts, shapes, quant, st, notes, layer=layer, progress=progress)
    if "w1_bias" in st.out:
        notes.append("expert GEMM biases read (gate_up_proj_bias reordered to [up, gate], down_proj_bias)")
    router, bias, logit_bias = _load_router(r, root, pre, shapes)
    sw1, sw2 = _load_shared_expert(r, root, pre, shapes)
    notes.append(f"read {r.bytes_read / 1e9:.2f} GB of layer {layer} tensors ({pre})")
    return LayerWeights(quant, shapes, st.out, router, bias, sw1, sw2, source=f"checkpoint:{root} layer {layer}",
                        notes=notes, router_logit_bias=logit_bias)


def _load_fused_experts(r: _Reader, experts: str, shapes: LayerShapes, quant: str, st: _Stacker, notes: list) -> None:
    """``experts.gate_up_proj`` [E, 2I, H] (or Llama-4's [E, H, 2I]) + ``experts.down_proj``, BF16-like."""
    e_count, h, i = shapes.num_experts, shapes.hidden_size, shapes.intermediate_size
    fused = f"{experts}.gate_up_proj"
    gu, dn = r.get(fused), r.get(f"{experts}.down_proj")
    if gu.ndim != 3 or dn.ndim != 3 or gu.shape[0] != e_count:
        raise CheckpointError(f"{fused}: shape {list(gu.shape)} is not [E={e_count}, 2I, H] or [E, H, 2I]")
    if tuple(gu.shape[1:]) == (h, 2 * i):  # Llama-4 / gpt-oss store x @ W, i.e. [E, H, 2I] and [E, I, H]
        gu, dn = gu.transpose(1, 2), dn.transpose(1, 2)
    if tuple(gu.shape[1:]) != (2 * i, h) or tuple(dn.shape[1:]) != (h, i):
        raise CheckpointError(f"{fused}: shapes {list(gu.shape)}/{list(dn.shape)} do not match H={h}, I={i}")
    # gpt-oss (BF16 re-saves such as lmsys/gpt-oss-20b-bf16) interleaves gate/up; the others stack halves
    interleaved = r.has(fused + "_bias") or shapes.activation == "swigluoai"
    for x in range(e_count):
        w1 = interleaved_to_up_gate(gu[x], dim=0) if interleaved else torch.cat((gu[x, i:], gu[x, :i]))
        st.put(x, quantize_expert(w1.float(), dn[x].float(), quant))
    st.out.update(_fused_biases(r, experts, e_count, h, i, interleaved=interleaved))
    order = "gate/up interleaved (gpt-oss)" if interleaved else "gate first"
    notes.append(f"fused gate_up_proj ({order}) reordered to [up, gate]; quantized to {quant} by moe-inspect")


def _load_expert_projections(r: _Reader, experts: str, shapes: LayerShapes, quant: str, st: _Stacker, notes: list,
                             *, layer: int, progress: Callable[[str], None] | None) -> None:
    """Per-expert ``experts.{e}.{gate,up,down}_proj`` (or ``w1/w3/w2``) in any STORED_FORMATS row."""
    e_count, h, i = shapes.num_experts, shapes.hidden_size, shapes.intermediate_size
    style = "w1w3w2" if any(r.has(f"{experts}.0.w1.{f.weight}") for f in STORED_FORMATS) else "gate_up_down"
    pn = {"gate": "w1", "up": "w3", "down": "w2"} if style == "w1w3w2" else \
        {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
    fmt = _stored_format(r, f"{experts}.0.{pn['gate']}")
    stored = fmt.quant
    as_stored = stored == quant
    for x in range(e_count):
        if progress and (x % 16 == 0 or x == e_count - 1):
            progress(f"reading layer {layer}: expert {x + 1}/{e_count}")
        parts = {k: _load_proj(r, f"{experts}.{x}.{v}", fmt) for k, v in pn.items()}
        g, u, d = parts["gate"], parts["up"], parts["down"]
        if g["w"].shape[0] != i or d["w"].shape[0] != h:
            raise CheckpointError(
                f"{experts}.{x}.{pn['gate']}.{fmt.weight}: {list(g['w'].shape)} does not match I={i}, H={h}")
        if as_stored:
            st.put(x, _as_stored(g, u, d, stored))
        else:
            w1 = torch.cat((_dequant_proj(u, stored), _dequant_proj(g, stored)))
            st.put(x, quantize_expert(w1, _dequant_proj(d, stored), quant))
    notes.append(f"experts stored as {fmt.name} ({style}); "
                 + ("used as stored with their scales" if as_stored else f"dequantized and quantized to {quant} by moe-inspect"))
    if quant == "nvfp4" and as_stored:
        st.out["w2_global"] = st.out["w2_global"].reshape(e_count)


def _load_router(r: _Reader, root: Path, moe: str, shapes: LayerShapes):
    """(router weight [E, H], correction bias [E] fp32 or None, linear router bias [E] fp32 or None)."""
    router_name = next((n for n in (f"{moe}.gate.weight", f"{moe}.router.weight") if r.has(n)), None)
    if router_name is None:
        raise CheckpointError(f"{root}: router tensor {moe}.gate.weight is missing from the checkpoint")
    bias = None
    if shapes.has_bias:
        bname = next((n for n in (f"{moe}.gate.e_score_correction_bias", f"{moe}.e_score_correction_bias",
                                  f"{moe}.gate.expert_bias") if r.has(n)), None)
        if bname is None:
            raise CheckpointError(f"{root}: correction bias {moe}.gate.e_score_correction_bias is missing from the checkpoint")
        bias = r.get(bname).float().reshape(-1)
    logit_bias = None
    if shapes.linear_router_bias:
        lname = router_name[: -len("weight")] + "bias"
        if not r.has(lname):
            raise CheckpointError(f"{root}: router bias {lname} is missing from the checkpoint")
        logit_bias = r.get(lname).float().reshape(-1)
    return r.get(router_name), bias, logit_bias


def _load_shared_expert(r: _Reader, root: Path, moe: str, shapes: LayerShapes):
    """(w1 [2Is, H] rows [up, gate], w2 [H, Is]) in BF16, or (None, None) without shared experts."""
    if not shapes.num_shared_experts:
        return None, None
    sp = next((p for p in (f"{moe}.shared_experts", f"{moe}.shared_expert")
               if any(r.has(f"{p}.gate_proj.{f.weight}") for f in STORED_FORMATS)), None)
    if sp is None:
        raise CheckpointError(f"{root}: shared expert {moe}.shared_experts.gate_proj.weight is missing from the checkpoint")
    sf = _stored_format(r, sp + ".gate_proj")
    g, u, d = (_dequant_proj(_load_proj(r, f"{sp}.{p}", sf), sf.quant) for p in ("gate_proj", "up_proj", "down_proj"))
    return torch.cat((u, g)).to(torch.bfloat16), d.to(torch.bfloat16)
