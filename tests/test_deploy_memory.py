"""Memory per GPU (moe_inspect.deploy.memory): weights per rank, fit, KV-cache room.

Expected numbers are hand computations from the published config.json values (the arithmetic is
in the comments), checked against the facts we know: DeepSeek-V3 is 671B parameters (main model)
+ 11.5B MTP + copies of the 0.9B embedding and head, ≈ 642 GiB on disk in FP8 (issue 9);
gpt-oss-120b's MXFP4 checkpoint is ≈ 61 GiB.
"""

from __future__ import annotations

import copy
import json

import pytest

from moe_inspect.deploy import memory as M
from moe_inspect.deploy import shapes as S
from moe_inspect.deploy.layout import derive_layout
from moe_inspect.detect import describe_files
from moe_inspect.spec import ModelFiles, ModelRef

from .test_deploy_shapes import DSV3, GPT_OSS_120B, MINIMAX_M25, QWEN3_235B, QWEN3_NEXT

GIB = 1024 ** 3


def desc(cfg: dict, path: str | None = None):
    return describe_files(ModelFiles(ref=ModelRef(id="test/model", source="local", path=path),
                                     config=copy.deepcopy(cfg)))


def estimate(cfg: dict, scheme: str, gpu_gib: float, *, padding=(), util=0.9, max_model_len=None,
             kv_cache_dtype=None, **layout):
    return M.memory_estimate(desc(cfg), derive_layout(**layout), scheme=scheme, gpu_memory_gib=gpu_gib,
                             gpu_memory_utilization=util, max_model_len=max_model_len,
                             kv_cache_dtype=kv_cache_dtype, padding=padding, config=copy.deepcopy(cfg))


# ------------------------------------------------------------------------------------------------
# DeepSeek-V3 FP8: one case that fits (8 x H200 141 GB) and one that does not (8 x H100 80 GB)
# ------------------------------------------------------------------------------------------------
# routed experts: 58 MoE layers x 256 experts x 3 x 7168 x 2048 = 653,908,770,816 params; FP8 + one fp32
# scale per 128x128 block = 1.000244 B/param -> 654.07e9 B; TP 8 -> 76.14 GiB per GPU
ROUTED_TP8_GIB = 76.14


def test_deepseek_v3_fp8_fits_8x_h200():
    m = estimate(DSV3, "fp8_block", 141, tp=8)
    assert m.breakdown_gib["routed experts"] == pytest.approx(ROUTED_TP8_GIB, abs=0.01)
    # + attention (TP part 11.4e9·… /8), replicated q_a/kv_a (0.92e9 B), embedding+lm_head (2 x 129280 x 7168 x 2 B
    # / 8 = 0.43 GiB), dense, shared, routers: 79.3 GiB in all
    assert m.breakdown_gib["embedding + lm_head"] == pytest.approx(0.43, abs=0.01)
    assert m.breakdown_gib["attention (replicated)"] == pytest.approx(0.86, abs=0.01)  # 61 x (7168x1536+1536
    #   + 7168x576 + 512) B at 1 B/param = 0.92e9 B, on every rank
    assert m.weights_per_gpu_gib == pytest.approx(79.3, abs=0.1)
    assert m.usable_gib == pytest.approx(126.9, abs=0.01)  # 141 x 0.9
    assert m.fits is True
    assert m.kv_cache_gib == pytest.approx(126.9 - 79.3, abs=0.1)
    # MLA: (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 B x 61 layers = 70,272 B per token, not split by TP
    assert m.kv_bytes_per_token == 70272
    assert 725_000 < m.kv_tokens < 730_000  # 47.6 GiB / 70,272 B ≈ 727,500 tokens
    assert m.max_model_len == 163840 and m.kv_fits_max_model_len is True and m.load_error is None


def test_deepseek_v3_fp8_does_not_fit_8x_h100():
    m = estimate(DSV3, "fp8_block", 80, tp=8)
    assert m.weights_per_gpu_gib == pytest.approx(79.3, abs=0.1)
    assert m.usable_gib == 72.0 and m.fits is False
    assert m.kv_cache_gib is None and m.kv_tokens is None


def test_deepseek_v3_fits_16x_h100():
    m = estimate(DSV3, "fp8_block", 80, tp=16)
    assert m.breakdown_gib["routed experts"] == pytest.approx(ROUTED_TP8_GIB / 2, abs=0.01)
    assert m.fits is True


def test_deepseek_v3_checkpoint_size_matches_the_disk():
    # main model + the MTP layer (its MoE layer, attention, eh_proj and its own embedding/head copies)
    m = estimate(DSV3, "fp8_block", 141, tp=8)
    assert m.checkpoint_gib == pytest.approx(642, rel=0.01)


def test_dp_replicates_attention_ep_splits_experts():
    # TP 1 x DP 8 with EP: 32 experts per rank (same expert bytes as TP 8), attention and embeddings whole
    m = estimate(DSV3, "fp8_block", 141, tp=1, dp=8, ep_enabled=True)
    assert m.breakdown_gib["routed experts"] == pytest.approx(ROUTED_TP8_GIB, abs=0.01)
    assert m.breakdown_gib["embedding + lm_head"] == pytest.approx(3.45, abs=0.01)  # 2 x 129280 x 7168 x 2 B
    assert m.weights_per_gpu_gib > estimate(DSV3, "fp8_block", 141, tp=8).weights_per_gpu_gib + 10


def test_uneven_expert_split_uses_the_largest_rank():
    # 256 experts over EP 6: ranks hold 43,43,43,43,42,42 (expert_map_manager.py:65-69) -> 43/256 of the experts
    m = estimate(DSV3, "fp8_block", 141, tp=1, dp=6, ep_enabled=True)
    per_expert_gib = ROUTED_TP8_GIB * 8 / 256
    assert m.breakdown_gib["routed experts"] == pytest.approx(43 * per_expert_gib, abs=0.02)


def test_max_model_len_that_does_not_fit_is_vllms_startup_error():
    # util 0.63: 141 x 0.63 = 88.83 GiB usable - 79.3 = 9.5 GiB / 70,272 B ≈ 145,800 tokens < 163,840
    m = estimate(DSV3, "fp8_block", 141, util=0.63, tp=8)
    assert m.fits is True and m.kv_fits_max_model_len is False
    assert m.load_error.startswith("To serve at least one request with the model's max seq len (163840)")
    assert estimate(DSV3, "fp8_block", 141, util=0.63, max_model_len=32768, tp=8).kv_fits_max_model_len is True


def test_fp8_kv_cache_halves_the_bytes_per_token():
    assert estimate(DSV3, "fp8_block", 141, kv_cache_dtype="fp8", tp=8).kv_bytes_per_token == 70272 // 2
    assert estimate(DSV3, "fp8_block", 141, kv_cache_dtype="fp8_ds_mla", tp=8).kv_bytes_per_token == 656 * 61


# ------------------------------------------------------------------------------------------------
# GQA models and padding
# ------------------------------------------------------------------------------------------------
def test_gqa_kv_heads_replicated_when_tp_exceeds_them():
    # Qwen3-235B: 4 KV heads x 128 x 2 (K and V) x 2 B x 94 layers; TP 8 > 4 -> one KV head per rank
    assert estimate(QWEN3_235B, "fp8_block", 141, tp=8).kv_bytes_per_token == 2 * 1 * 128 * 2 * 94
    assert estimate(QWEN3_235B, "fp8_block", 141, tp=2).kv_bytes_per_token == 2 * 2 * 128 * 2 * 94


def test_gpt_oss_120b_on_one_h100_and_padding():
    # experts: 36 x 128 x (3 x 2880 x 2880 + biases 2 x 2880 + 2880) = 114.70e9 params x 0.53125 B (MXFP4
    # e2m1 + e8m0 per 32) = 60.93e9 B = 56.75 GiB
    m = estimate(GPT_OSS_120B, "mxfp4", 80, tp=1)
    assert m.breakdown_gib["routed experts"] == pytest.approx(56.75, abs=0.02)
    assert m.checkpoint_gib == pytest.approx(60.8, abs=0.3)
    assert m.fits is True
    # sliding-window layers counted as full: 8 KV heads x 64 x 2 x 2 B x 36 layers
    assert m.kv_bytes_per_token == 8 * 64 * 2 * 2 * 36
    assert "sliding-window" in m.basis
    # the TRT-LLM MXFP4 padding at TP 8 (+13.8 %, shapes.py) grows the experts
    r = S.shape_report(desc(GPT_OSS_120B), derive_layout(tp=8), scheme="mxfp4", arch=100, config=GPT_OSS_120B)
    pad = r.backend_adjustments["trtllm_mxfp4_mono"]
    plain = estimate(GPT_OSS_120B, "mxfp4", 180, tp=8)
    padded = estimate(GPT_OSS_120B, "mxfp4", 180, tp=8, padding=pad)
    assert padded.breakdown_gib["routed experts"] == pytest.approx(plain.breakdown_gib["routed experts"] * 1.138,
                                                                   abs=0.02)


def test_minimax_m25_fp8_tp4():
    # 62 x 256 x 3 x 3072 x 1536 = 224,680,476,672 params x 1.000244 B = 224.735e9 B / 4 = 52.33 GiB per GPU
    m = estimate(MINIMAX_M25, "fp8_block", 141, tp=4)
    assert m.breakdown_gib["routed experts"] == pytest.approx(52.33, abs=0.01)
    assert m.fits is True


# ------------------------------------------------------------------------------------------------
# unknowns are said, not guessed; the safetensors index is used when present
# ------------------------------------------------------------------------------------------------
def test_missing_vocab_and_attention_make_weights_unknown():
    cfg = {k: v for k, v in DSV3.items() if k not in ("vocab_size", "num_attention_heads")}
    m = estimate(cfg, "fp8_block", 141, tp=8)
    assert m.weights_per_gpu_gib is None and m.fits is None and m.kv_tokens is None
    assert any("vocab_size" in u for u in m.unknowns)
    assert any("attention" in u for u in m.unknowns)
    # ... but the routed experts alone (76.14 GiB) exceed 8 x H100's 72 GiB: "does not fit" is certain
    assert m.weights_lower_bound_gib == pytest.approx(76.5, abs=0.3)
    h100 = estimate(cfg, "fp8_block", 80, tp=8)
    assert h100.fits is None and h100.weights_per_gpu_gib is None and h100.known_parts_exceed_usable is True
    assert m.known_parts_exceed_usable is None  # 141 GB: the known 76.5 GiB do not settle it


def test_hybrid_attention_is_unknown_without_an_index():
    m = estimate(QWEN3_NEXT, "fp8_block", 141, tp=4)
    assert m.weights_per_gpu_gib is None
    assert any("hybrid" in u for u in m.unknowns)


def test_index_total_size_is_used(tmp_path):
    # a checkpoint 10 % larger than the config says: numbers scaled to the index, and the note says so
    computed = estimate(DSV3, "fp8_block", 141, tp=8)
    total = int(computed.checkpoint_gib * GIB * 1.10)
    (tmp_path / "config.json").write_text(json.dumps(DSV3))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": {}}))
    m = M.memory_estimate(desc(DSV3, path=str(tmp_path)), derive_layout(tp=8), scheme="fp8_block",
                          gpu_memory_gib=141)
    assert m.checkpoint_gib == pytest.approx(total / GIB, abs=0.1)
    assert "safetensors index" in m.basis and "scaled to the index" in m.basis
    assert m.weights_per_gpu_gib == pytest.approx(computed.weights_per_gpu_gib * 1.10, rel=0.002)


def test_index_total_size_fills_in_missing_attention(tmp_path):
    cfg = {k: v for k, v in QWEN3_NEXT.items()}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 82 * 10 ** 9}, "weight_map": {}}))
    m = M.memory_estimate(desc(cfg, path=str(tmp_path)), derive_layout(tp=4), scheme="fp8_block", gpu_memory_gib=80)
    assert m.weights_per_gpu_gib is not None and m.fits is True
    assert "non-expert remainder (assumed TP-split)" in m.breakdown_gib
    assert "taken as TP-split" in m.basis


def test_no_gpu_memory_is_unknown():
    m = estimate(DSV3, "fp8_block", 0, tp=8)
    assert m.usable_gib is None and m.fits is None and "GPU memory unknown" in m.unknowns


def test_pipeline_parallel_splits_layers():
    # PP 2 x TP 8: the fullest stage holds ceil(61/2) = 31 layers -> at most 31 of the 58 MoE layers
    m = estimate(DSV3, "fp8_block", 141, tp=8, pp=2)
    assert m.breakdown_gib["routed experts"] == pytest.approx(ROUTED_TP8_GIB * 31 / 58, abs=0.01)
    assert m.breakdown_gib["embedding + lm_head"] == pytest.approx(0.43 / 2, abs=0.01)
    assert "pipeline parallel 2" in m.basis
    # KV: 31 layers on that stage
    assert m.kv_bytes_per_token == 31 * 576 * 2


def test_routed_expert_bytes_from_the_safetensors_headers():
    # gpt-oss-20b (catalog: config subset + the first MoE layer's headers): per expert, from the fused
    # [32, ...] tensors / 32: down blocks 2880x90x16 + scales 2880x90 + bias 2880x2 B, gate_up blocks
    # 5760x90x16 + scales 5760x90 + bias 5760x2 B = 13,236,480 B; x 32 experts x 24 layers = 9.47 GiB
    from moe_inspect import detect

    d = detect.describe("openai/gpt-oss-20b", offline=True)
    m = M.memory_estimate(d, derive_layout(tp=1), scheme="mxfp4", gpu_memory_gib=80)
    assert m.breakdown_gib["routed experts"] == pytest.approx(13_236_480 * 32 * 24 / GIB, abs=0.01)
    assert "safetensors header of model.layers.0" in m.basis
    # DeepSeek-V3's per-expert FP8 weights + fp32 128x128 block scales: 3 x 2048 x 7168 + 3 x 16 x 56 x 4 B
    # = 44,050,944 B, the same as the config-derived 1.000244 B/param
    ds = detect.describe("deepseek-ai/DeepSeek-V3", offline=True)
    mm = M.memory_estimate(ds, derive_layout(tp=8), scheme="fp8_block", gpu_memory_gib=141)
    assert mm.breakdown_gib["routed experts"] == pytest.approx(ROUTED_TP8_GIB, abs=0.01)
    # the catalog has no attention / vocabulary keys: weights unknown, the known parts a lower bound
    assert mm.weights_per_gpu_gib is None and mm.weights_lower_bound_gib >= ROUTED_TP8_GIB
