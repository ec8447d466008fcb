"""Our torch quantizers (run-layer): exact round trips, rounding, packing order, scale conventions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moe_inspect.layer import quantizers as Q  # noqa: E402


def _rel(a, b) -> float:
    return float((a - b).norm() / b.norm())


def test_e2m1_grid_values_round_trip_exactly():
    vals = torch.tensor(Q.E2M1_VALUES + tuple(-v for v in Q.E2M1_VALUES[1:]))
    assert torch.equal(Q.e2m1_decode(Q.e2m1_encode(vals)), vals)


def test_e2m1_rounds_to_nearest_with_ties_to_the_even_code():
    x = torch.tensor([0.24, 0.25, 0.26, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, -0.75, -100.0])
    want = torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, -1.0, -6.0])
    assert torch.equal(Q.e2m1_decode(Q.e2m1_encode(x)), want)


def test_e2m1_matches_brute_force_nearest_even_on_a_dense_grid():
    """Every multiple of 1/64 in [-7, 7] (all ties included) against a plain search of the E2M1 table."""
    mags = list(Q.E2M1_VALUES)
    x = torch.arange(-7 * 64, 7 * 64 + 1) / 64.0
    want = []
    for v in x.tolist():
        d = [abs(abs(v) - m) for m in mags]
        best = min(d)
        code = min(i for i, di in enumerate(d) if di == best and (d.count(best) == 1 or i % 2 == 0))
        want.append(code | (8 if v < 0 and code else 0))
    assert Q.e2m1_encode(x).tolist() == want


def test_fp4_packing_puts_the_even_element_in_the_low_nibble():
    codes = torch.tensor([[1, 2, 3, 15]], dtype=torch.uint8)
    packed = Q.pack_fp4(codes)
    assert packed.tolist() == [[0x21, 0xF3]]
    assert torch.equal(Q.unpack_fp4(packed), codes)


def test_negative_zero_encodes_as_plain_zero():
    assert Q.e2m1_encode(torch.tensor([-0.1])).item() == 0


def test_nvfp4_follows_the_modelopt_convention():
    torch.manual_seed(0)
    w = torch.randn(32, 64)
    packed, bs, g = Q.quantize_nvfp4(w)
    assert packed.dtype == torch.uint8 and packed.shape == (32, 32)
    assert bs.dtype == torch.float8_e4m3fn and bs.shape == (32, 4)
    assert g.dtype == torch.float32 and g.ndim == 0
    assert torch.isclose(g, w.abs().max() / (6 * 448))  # weight_scale_2 = amax / (6 * 448)
    # dequant = e2m1 * block scale * global scale, and the error is the usual FP4 ~10%
    deq = Q.dequantize_nvfp4(packed, bs, g)
    manual = Q.e2m1_decode(Q.unpack_fp4(packed)) * bs.float().repeat_interleave(16, -1) * g
    assert torch.equal(deq, manual)
    assert _rel(deq, w) < 0.12


def test_nvfp4_requantizing_its_own_output_is_lossless():
    torch.manual_seed(1)
    w = torch.randn(4, 16, 128)
    p, s, g = Q.quantize_nvfp4(w)
    d = Q.dequantize_nvfp4(p, s, g)
    p2, s2, g2 = Q.quantize_nvfp4(d, global_scale=g)
    assert torch.equal(Q.dequantize_nvfp4(p2, s2, g2), d)


def test_nvfp4_all_zero_blocks_stay_zero():
    w = torch.zeros(2, 32)
    p, s, g = Q.quantize_nvfp4(w)
    assert torch.equal(Q.dequantize_nvfp4(p, s, g), w)


def test_mxfp4_scales_are_powers_of_two_and_nothing_clips():
    torch.manual_seed(2)
    w = torch.randn(8, 64) * 10
    p, s = Q.quantize_mxfp4(w)
    assert s.dtype == torch.uint8 and s.shape == (8, 2)
    scale = Q.e8m0_to_float(s)
    assert torch.equal(torch.log2(scale), torch.round(torch.log2(scale)))
    amax = w.reshape(8, 2, 32).abs().amax(-1)
    assert bool((amax / scale <= 6.0).all())  # rounded up: every element fits E2M1
    assert _rel(Q.dequantize_mxfp4(p, s), w) < 0.15


def test_mxfp8_round_trip_error_is_small():
    torch.manual_seed(3)
    w = torch.randn(16, 96)
    q, s = Q.quantize_mxfp8(w)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (16, 3)
    assert _rel(Q.dequantize_mxfp8(q, s), w) < 0.04


def test_fp8_block_scale_shape_and_deepseek_dequant():
    torch.manual_seed(4)
    w = torch.randn(256, 384)
    q, s = Q.quantize_fp8_block(w)
    assert q.dtype == torch.float8_e4m3fn and q.shape == w.shape
    assert s.dtype == torch.float32 and s.shape == (2, 3)  # [ceil(N/128), ceil(K/128)]
    assert torch.allclose(s[1, 2], w[128:, 256:].abs().max() / 448)
    assert _rel(Q.dequantize_fp8_block(q, s), w) < 0.04


def test_fp8_block_handles_partial_blocks():
    w = torch.randn(130, 200)
    q, s = Q.quantize_fp8_block(w)
    assert s.shape == (2, 2)
    assert _rel(Q.dequantize_fp8_block(q, s), w) < 0.04


def test_fp8_per_tensor_scale_is_amax_over_448():
    w = torch.randn(8, 8)
    q, s = Q.quantize_fp8_per_tensor(w)
    assert torch.isclose(s, w.abs().max() / 448)
    assert _rel(Q.dequantize_fp8_per_tensor(q, s), w) < 0.04


@pytest.mark.parametrize("fn,block", [(Q.quantize_nvfp4, 16), (Q.quantize_mxfp4, 32), (Q.quantize_mxfp8, 32)])
def test_k_not_a_multiple_of_the_block_is_refused(fn, block):
    with pytest.raises(ValueError, match=f"multiple of {block}"):
        fn(torch.randn(4, block + 2))


def test_every_quant_format_has_a_row():
    from moe_inspect.layer import QUANT_FORMATS

    assert set(Q.FORMATS) == set(QUANT_FORMATS)
