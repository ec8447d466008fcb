"""Our own torch quantizers for every ``--quant`` format, and their exact dequantizers.

All quantizers work on the LAST dimension (the GEMM reduction dim K) of a ``[..., N, K]`` tensor,
on CPU or GPU, and return plain tensors in the dtypes FlashInfer's weight-preparation helpers
take. Each format's convention, and where it was read:

* E2M1 (FP4) magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 (code bit 3 = sign); two codes per byte, the
  EVEN element in the low nibble (FlashInfer 0.7.2.post1 fused_moe/prepare.py packs
  ``nibbles[0::2] | nibbles[1::2] << 4``; ModelOpt and OCP MX use the same order). We round to
  nearest with ties to the even code, as the hardware ``cvt.rn`` does.
* NVFP4, ModelOpt convention (REFERENCE.md §4): 16-element blocks along K, an E4M3 block scale,
  and an FP32 ``weight_scale_2`` (global scale, MULTIPLIED on dequant): w = e2m1 · s_block · s2
  with s2 = amax / (6 · 448) over the tensor (here: per expert).
* MXFP4 / MXFP8 (OCP MX v1.0): 32-element blocks, an E8M0 power-of-two scale stored as a biased
  byte (127 = 2^0, 255 = NaN). We round the scale UP (2^ceil(log2(amax / max_elem))) so no
  element clips; FlashInfer 0.7.2.post1's Hopper MXFP4 preparation does the same.
* FP8 block (DeepSeek): E4M3 values with an FP32 ``weight_scale_inv`` per 128×128 block,
  w = q · scale_inv (REFERENCE.md §4).
* FP8 per-tensor: E4M3 values with one FP32 dequantization scale (here per expert).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_MAX = 6.0
E4M3_MAX = 448.0
E8M0_BIAS = 127
NVFP4_BLOCK = 16
MX_BLOCK = 32
FP8_BLOCK = 128

@dataclass(frozen=True)
class FormatInfo:
    """One ``--quant`` format: element bits, block size along K, scale kind, and source."""

    name: str
    bits: int  # bits per weight element
    block: int | None  # elements per scale along K (None = per-tensor / unquantized)
    scale_bits: int  # bits per block scale (0 = none)
    weight_only_on_sm90: bool  # cuTile SM90 runs it with BF16 activations
    source: str


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in (
        FormatInfo("bf16", 16, None, 0, True, "unquantized"),
        FormatInfo("fp8", 8, None, 0, True, "FP8 E4M3, one FP32 scale per expert GEMM"),
        FormatInfo("fp8-block", 8, FP8_BLOCK, 32, False, "DeepSeek FP8: E4M3 + FP32 scale_inv per 128x128 block"),
        FormatInfo("nvfp4", 4, NVFP4_BLOCK, 8, True, "ModelOpt NVFP4: E2M1 + E4M3 per 16 + FP32 global"),
        FormatInfo("mxfp4", 4, MX_BLOCK, 8, True, "OCP MXFP4: E2M1 + E8M0 per 32"),
        FormatInfo("mxfp8", 8, MX_BLOCK, 8, True, "OCP MXFP8: E4M3 + E8M0 per 32"),
    )
}


def _check_k(x: torch.Tensor, block: int, what: str) -> None:
    if x.ndim < 1 or x.shape[-1] % block != 0:
        raise ValueError(f"{what}: last dimension {tuple(x.shape)[-1:]} is not a multiple of {block}")


# ------------------------------------------------------------------------------------- E2M1
def e2m1_encode(x: torch.Tensor) -> torch.Tensor:
    """Round float values (already divided by their scale) to E2M1 codes (uint8 0..15).

    Round to nearest, ties to the even code, by range: below 2 the grid step is 0.5 (code = 2a),
    in [2, 4) it is 1 (code = a + 2), above 4 it is {4, 6} (a tie at 5 goes to 4). ``torch.round``
    rounds halves to even, which is the even CODE in each range. NaN -> code 7 (6.0), as before."""
    a = x.abs().float().clamp_(max=E2M1_MAX)
    code = torch.where(a < 2, torch.round(a * 2), torch.where(a < 4, torch.round(a) + 2, (~(a <= 5)).float() + 6))
    code = code.to(torch.uint8)
    sign = ((x < 0) & (code > 0)).to(torch.uint8) << 3
    return code | sign


def e2m1_decode(codes: torch.Tensor) -> torch.Tensor:
    """E2M1 codes (uint8 0..15) -> float32 values."""
    table = torch.tensor(E2M1_VALUES + tuple(-v for v in E2M1_VALUES), dtype=torch.float32, device=codes.device)
    return table[codes.long() & 0xF]


def pack_fp4(codes: torch.Tensor) -> torch.Tensor:
    """[..., K] codes -> [..., K/2] bytes, element 2i in the low nibble, 2i+1 in the high nibble."""
    _check_k(codes, 2, "pack_fp4")
    c = codes.to(torch.uint8)
    return c[..., 0::2] | (c[..., 1::2] << 4)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """[..., K/2] bytes -> [..., K] codes."""
    p = packed.to(torch.uint8)
    out = torch.stack((p & 0xF, p >> 4), dim=-1)
    return out.reshape(*p.shape[:-1], p.shape[-1] * 2)


# ------------------------------------------------------------------------------------- E8M0
def e8m0_from_exponent(exp: torch.Tensor) -> torch.Tensor:
    return (exp.clamp(-E8M0_BIAS, E8M0_BIAS) + E8M0_BIAS).to(torch.uint8)


def e8m0_to_float(byte: torch.Tensor) -> torch.Tensor:
    b = byte.view(torch.uint8) if byte.dtype != torch.uint8 else byte
    return torch.exp2(b.float() - E8M0_BIAS)


def _pow2_scale_up(amax: torch.Tensor, elem_max: float) -> torch.Tensor:
    """Power-of-two exponent so that amax / 2^e <= elem_max (all-zero blocks: the smallest)."""
    nonzero = amax > 0
    safe = torch.where(nonzero, amax / elem_max, torch.ones_like(amax))
    exp = torch.ceil(torch.log2(safe)).to(torch.int32)
    return torch.where(nonzero, exp, torch.full_like(exp, -E8M0_BIAS)).clamp(-E8M0_BIAS, E8M0_BIAS)


# ------------------------------------------------------------------------------------- NVFP4
def nvfp4_global_scale(w: torch.Tensor) -> torch.Tensor:
    """ModelOpt ``weight_scale_2`` = amax / (6 · 448) (FP32 scalar; 1.0 for an all-zero tensor)."""
    amax = w.abs().max().float()
    return torch.where(amax > 0, amax / (E2M1_MAX * E4M3_MAX), torch.ones_like(amax))


def quantize_nvfp4(w: torch.Tensor, global_scale: torch.Tensor | float | None = None):
    """[..., N, K] -> (packed uint8 [..., N, K/2], block scales float8_e4m3fn [..., N, K/16],
    global scale float32 scalar). Dequantize: e2m1 · block · global (ModelOpt)."""
    _check_k(w, NVFP4_BLOCK, "quantize_nvfp4")
    g = nvfp4_global_scale(w) if global_scale is None else torch.as_tensor(global_scale, dtype=torch.float32)
    g = g.to(w.device)
    blocks = w.float().reshape(*w.shape[:-1], w.shape[-1] // NVFP4_BLOCK, NVFP4_BLOCK)
    bmax = blocks.abs().amax(dim=-1)
    bscale = (bmax / E2M1_MAX / g).clamp(max=E4M3_MAX).to(torch.float8_e4m3fn)
    eff = bscale.float() * g
    safe = torch.where(eff > 0, eff, torch.ones_like(eff))
    codes = e2m1_encode(torch.where(eff.unsqueeze(-1) > 0, blocks / safe.unsqueeze(-1), torch.zeros_like(blocks)))
    return pack_fp4(codes.reshape(w.shape)), bscale, g.reshape(())


def dequantize_nvfp4(packed: torch.Tensor, block_scale: torch.Tensor, global_scale) -> torch.Tensor:
    vals = e2m1_decode(unpack_fp4(packed))
    k = vals.shape[-1]
    bs = block_scale.float().repeat_interleave(NVFP4_BLOCK, dim=-1)[..., :k]
    return vals * bs * torch.as_tensor(global_scale, dtype=torch.float32, device=vals.device)


# ------------------------------------------------------------------------------------- MXFP4
def quantize_mxfp4(w: torch.Tensor):
    """[..., N, K] -> (packed uint8 [..., N, K/2], E8M0 scale bytes uint8 [..., N, K/32])."""
    _check_k(w, MX_BLOCK, "quantize_mxfp4")
    blocks = w.float().reshape(*w.shape[:-1], w.shape[-1] // MX_BLOCK, MX_BLOCK)
    exp = _pow2_scale_up(blocks.abs().amax(dim=-1), E2M1_MAX)
    codes = e2m1_encode(blocks / torch.exp2(exp.float()).unsqueeze(-1))
    return pack_fp4(codes.reshape(w.shape)), e8m0_from_exponent(exp)


def dequantize_mxfp4(packed: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    vals = e2m1_decode(unpack_fp4(packed))
    return vals * e8m0_to_float(scale).repeat_interleave(MX_BLOCK, dim=-1)[..., : vals.shape[-1]]


# ------------------------------------------------------------------------------------- MXFP8
def quantize_mxfp8(w: torch.Tensor):
    """[..., N, K] -> (float8_e4m3fn [..., N, K], E8M0 scale bytes uint8 [..., N, K/32])."""
    _check_k(w, MX_BLOCK, "quantize_mxfp8")
    blocks = w.float().reshape(*w.shape[:-1], w.shape[-1] // MX_BLOCK, MX_BLOCK)
    exp = _pow2_scale_up(blocks.abs().amax(dim=-1), E4M3_MAX)
    q = (blocks / torch.exp2(exp.float()).unsqueeze(-1)).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q.reshape(w.shape), e8m0_from_exponent(exp)


def dequantize_mxfp8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * e8m0_to_float(scale).repeat_interleave(MX_BLOCK, dim=-1)[..., : q.shape[-1]]


# ------------------------------------------------------------------------------------- FP8
def quantize_fp8_per_tensor(w: torch.Tensor):
    """-> (float8_e4m3fn like w, FP32 dequantization scale scalar = amax / 448)."""
    amax = w.abs().max().float()
    s = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    q = (w.float() / s).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, s.reshape(())


def dequantize_fp8_per_tensor(q: torch.Tensor, scale) -> torch.Tensor:
    return q.float() * torch.as_tensor(scale, dtype=torch.float32, device=q.device)


def quantize_fp8_block(w: torch.Tensor, block: int = FP8_BLOCK):
    """[..., N, K] -> (float8_e4m3fn [..., N, K], FP32 scale_inv [..., ceil(N/b), ceil(K/b)])."""
    n, k = w.shape[-2:]
    nb, kb = -(-n // block), -(-k // block)
    pad = w.float().new_zeros(*w.shape[:-2], nb * block, kb * block)
    pad[..., :n, :k] = w.float()
    tiles = pad.reshape(*w.shape[:-2], nb, block, kb, block)
    amax = tiles.abs().amax(dim=(-3, -1))
    s = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    q = (tiles / s[..., :, None, :, None]).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    q = q.reshape(*w.shape[:-2], nb * block, kb * block)[..., :n, :k].contiguous()
    return q, s


def dequantize_fp8_block(q: torch.Tensor, scale_inv: torch.Tensor, block: int = FP8_BLOCK) -> torch.Tensor:
    n, k = q.shape[-2:]
    s = scale_inv.float().repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)[..., :n, :k]
    return q.float() * s
