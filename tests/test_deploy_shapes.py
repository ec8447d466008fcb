"""Per-rank shape gates (moe_inspect.deploy.shapes) against vLLM 0.33.0.

Every expected number below is worked out by hand from the model's config.json and the vLLM
0.33.0 source line named next to it; every expected message is vLLM's own text. Model configs
are the published config.json values (Hugging Face, the keys that matter here).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from moe_inspect.deploy import shapes as S
from moe_inspect.deploy.layout import derive_layout
from moe_inspect.detect import describe_files
from moe_inspect.spec import ModelFiles, ModelRef

FP8_BLOCK = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}

# MiniMaxAI/MiniMax-M2.5 (../shared/facts/models.json + attention keys of its config.json)
MINIMAX_M25 = {
    "architectures": ["MiniMaxM2ForCausalLM"], "model_type": "minimax_m2", "num_local_experts": 256,
    "num_experts_per_tok": 8, "scoring_func": "sigmoid", "use_routing_bias": True, "hidden_size": 3072,
    "intermediate_size": 1536, "num_hidden_layers": 62, "shared_intermediate_size": 0, "num_attention_heads": 48,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 200064, "max_position_embeddings": 196608,
    "quantization_config": {**FP8_BLOCK, "modules_to_not_convert": ["gate", "e_score_correction_bias", "lm_head"]},
}
# Qwen/Qwen3-235B-A22B-FP8
QWEN3_235B = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": 128, "num_experts_per_tok": 8,
    "moe_intermediate_size": 1536, "intermediate_size": 12288, "hidden_size": 4096, "num_hidden_layers": 94,
    "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": True, "num_attention_heads": 64,
    "num_key_value_heads": 4, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
    "quantization_config": FP8_BLOCK,
}
# Qwen/Qwen3-30B-A3B (BF16; the FP8 / NVFP4 / INT4 variants below add a quantization_config)
QWEN3_30B = {**QWEN3_235B, "num_experts": 128, "moe_intermediate_size": 768, "intermediate_size": 6144,
             "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4}
QWEN3_30B.pop("quantization_config")
# Qwen/Qwen3-Next-80B-A3B-Instruct-FP8
QWEN3_NEXT = {
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next", "num_experts": 512, "num_experts_per_tok": 10,
    "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512, "intermediate_size": 5120,
    "hidden_size": 2048, "num_hidden_layers": 48, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "norm_topk_prob": True, "full_attention_interval": 4, "num_attention_heads": 16, "num_key_value_heads": 2,
    "head_dim": 256, "vocab_size": 151936,
    "quantization_config": {**FP8_BLOCK, "modules_to_not_convert": ["lm_head", "model.embed_tokens"]},
}
# deepseek-ai/DeepSeek-V3
DSV3 = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "n_routed_experts": 256,
    "num_experts_per_tok": 8, "n_shared_experts": 1, "moe_intermediate_size": 2048, "intermediate_size": 18432,
    "hidden_size": 7168, "num_hidden_layers": 61, "first_k_dense_replace": 3, "moe_layer_freq": 1,
    "num_nextn_predict_layers": 1, "topk_method": "noaux_tc", "scoring_func": "sigmoid", "n_group": 8, "topk_group": 4,
    "norm_topk_prob": True, "routed_scaling_factor": 2.5, "num_attention_heads": 128, "num_key_value_heads": 128,
    "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "vocab_size": 129280, "max_position_embeddings": 163840, "tie_word_embeddings": False,
    "quantization_config": FP8_BLOCK,
}
# openai/gpt-oss-120b
GPT_OSS_120B = {
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "num_local_experts": 128, "num_experts_per_tok": 4,
    "experts_per_token": 4, "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 36,
    "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 201088, "swiglu_limit": 7.0,
    "layer_types": ["sliding_attention", "full_attention"] * 18, "max_position_embeddings": 131072,
    "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]},
}


def ct_config(weights: dict, activations: dict | None = None, ignore: list | None = None) -> dict:
    group = {"targets": ["Linear"], "weights": weights}
    if activations is not None:
        group["input_activations"] = activations
    return {"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"group_0": group},
            "ignore": ignore if ignore is not None else ["lm_head", "re:.*mlp.gate$"]}


CT_FP8_BLOCK = ct_config({"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 128],
                          "symmetric": True, "dynamic": False},
                         {"num_bits": 8, "type": "float", "strategy": "group", "group_size": 128, "dynamic": True})


def desc(cfg: dict):
    return describe_files(ModelFiles(ref=ModelRef(id="test/model", source="local"), config=copy.deepcopy(cfg)))


def report(cfg: dict, scheme: str | None = None, arch: int = 100, **layout):
    d = desc(cfg)
    if scheme is None:
        from moe_inspect import backends as B
        q = d.quantization
        scheme = B.scheme_from_quant(q.method, expert_format=q.expert_format, block_size=q.block_size)
    return S.shape_report(d, derive_layout(**layout), scheme=scheme, arch=arch, config=copy.deepcopy(cfg))


def messages(r) -> list[str]:
    return [e.message for e in r.load_errors]


# ------------------------------------------------------------------------------------------------
# the cases
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg,hidden", [(MINIMAX_M25, 3072), (QWEN3_235B, 4096)])
def test_fp8_block_tp8_refines_to_64_and_only_triton_runs(cfg, hidden):
    # I/8 = 1536/8 = 192; 192 % 128 != 0 -> refine = gcd(128, 128, 192, hidden) = 64 >= 32
    # (vllm oracle/fp8.py:316-321); the refined QuantKey is taken by TritonExperts only (triton_moe.py:167-178)
    r = report(cfg, tp=8)
    assert r.load_errors == ()
    assert r.per_rank["intermediate_size"] == 192
    assert r.per_rank["fp8_block"] == {"checkpoint": [128, 128], "used": [64, 64], "outcome": "refine"}
    assert [a.kind for a in r.adjustments] == ["fp8_block_refine"]
    assert "refined from [128, 128] to [64, 64]" in r.adjustments[0].detail
    assert "triton" not in r.backend_blocks
    for key in ("trtllm_fp8_block_mono", "trtllm_fp8_block_mod", "flashinfer_cutlass", "deep_gemm", "marlin"):
        assert "refined" in r.backend_blocks[key]


def test_fp8_block_tp4_needs_no_refine():
    r = report(MINIMAX_M25, tp=4)  # 1536/4 = 384 = 3 x 128
    assert r.per_rank["fp8_block"]["outcome"] == "ok" and r.adjustments == () and r.backend_blocks == {}


def test_fp8_block_forced_trtllm_pads_the_tp_shard():
    # --moe-backend flashinfer_trtllm cannot take [64, 64]: pad_tp_shard_to_weight_blocks rounds 192 up to 256
    # (oracle/fp8.py:324-355): 256/192 - 1 = 33.3 % more expert memory
    r = report(MINIMAX_M25, tp=8, moe_backend="flashinfer_trtllm")
    assert r.load_errors == () and r.backend_blocks == {}
    (adj,) = r.adjustments
    assert adj.kind == "fp8_block_forced_pad" and adj.overhead_pct == 33.3
    assert "192 to 256" in adj.detail


def test_fp8_block_forced_triton_refines():
    r = report(MINIMAX_M25, tp=8, moe_backend="triton")
    assert r.per_rank["fp8_block"]["used"] == [64, 64]


def test_fp8_block_forced_backend_pad_error():
    # I = 1344 (21 x 64), H = 2048, TP 2: 672 % 128 = 32 -> misaligned; 1344 % 128 = 64 -> no padding possible
    cfg = {**QWEN3_30B, "moe_intermediate_size": 1344, "quantization_config": FP8_BLOCK}
    assert report(cfg, tp=2).per_rank["fp8_block"]["used"] == [32, 32]  # auto: gcd(128, 672, 2048) = 32
    r = report(cfg, tp=2, moe_backend="flashinfer_trtllm")
    assert messages(r) == ["Block-aligned FP8 TP sharding requires 128-aligned global expert dimensions, pure TP, "
                           "and no LoRA or expert bias."]
    assert r.load_errors[0].source.endswith("oracle/fp8.py:336-346")


def test_fp8_block_unrefinable_shard_fails_validation():
    # Qwen3-30B-A3B FP8 at TP 16: 768/16 = 48, gcd(128, 48, 2048) = 16 < 32 -> no refine, then
    # validate_fp8_block_shape_moe raises (quantization/utils/fp8_utils.py:1361-1366)
    cfg = {**QWEN3_30B, "quantization_config": FP8_BLOCK}
    assert report(cfg, tp=8).per_rank["fp8_block"]["used"] == [32, 32]  # 96: gcd = 32, refined
    r = report(cfg, tp=16)
    assert ("The output_size of gate's and up's weight = 48 is not divisible by weight quantization block_n = 128."
            in messages(r))


def test_qwen3_next_fp8_tp8_shared_expert_fails_even_with_ep():
    # shared expert down_proj is a RowParallelLinear: 512/8 = 64, 64 % 128 != 0 (fp8_utils.py:1318-1327);
    # EP moves only the routed experts (qwen3_next.py:99-128: no replication for FP8 block)
    for ep in (False, True):
        r = report(QWEN3_NEXT, tp=8, ep_enabled=ep)
        assert "Weight input_size_per_partition = 64 is not divisible by weight quantization block_k = 128." in \
            messages(r)
        err = next(e for e in r.load_errors if "block_k" in e.message)
        assert "shared_expert.down_proj" in err.layer
    assert report(QWEN3_NEXT, tp=4).load_errors == ()  # 512/4 = 128


def test_qwen3_next_shared_expert_replicated_under_sequence_parallel_moe():
    # EP + TP 8 + DP 2 on the default all2all turns on sequence-parallel MoE (config/parallel.py:768-785):
    # Qwen2MoeMLP then gets disable_tp (qwen2_moe.py:90 via qwen3_next.py:218): no 512/8 shard
    r = report(QWEN3_NEXT, tp=8, dp=2, ep_enabled=True)
    assert r.load_errors == ()
    assert any("replicated" in s for s in r.per_rank["layers_checked"])


def test_ignore_list_exempts_the_shared_expert():
    cfg = copy.deepcopy(QWEN3_NEXT)
    cfg["quantization_config"]["modules_to_not_convert"] += [f"model.layers.{i}.mlp.shared_expert.down_proj"
                                                             for i in range(48)]
    assert report(cfg, tp=8).load_errors == ()


def test_deepseek_v3_fp8_tp8_starts_and_tp32_dense_mlp_fails():
    assert report(DSV3, tp=8).load_errors == ()
    # dense MLP down_proj: 18432/32 = 576, 576 % 128 = 64 (the arithmetic of sgl-project/sglang#3345)
    r = report(DSV3, tp=32)
    first = r.load_errors[0]
    assert first.message == "Weight input_size_per_partition = 576 is not divisible by weight quantization block_k = 128."
    assert "model.layers.0.mlp.down_proj" in first.layer and "dense MLP (layers 0-2)" in first.layer


def test_merged_column_exempt_under_fp8_config_not_under_compressed_tensors():
    # gate_up_proj parts 18432/32 = 576: exempt for Fp8Config (linear.py:562-581 sets
    # allow_fp8_block_shape_mismatch), checked for compressed-tensors (no weight_block_size on its config)
    r_fp8 = report(DSV3, tp=32)
    assert not any("output_partition_size" in m for m in messages(r_fp8))
    ct = {**DSV3, "quantization_config": CT_FP8_BLOCK}
    r_ct = report(ct, tp=32)
    assert "Weight output_partition_size = 576 is not divisible by weight quantization block_n = 128." in messages(r_ct)


def test_compressed_tensors_fp8_block_has_no_refine():
    # CompressedTensorsW8A8Fp8MoEMethod validates directly (compressed_tensors_moe_w8a8_fp8.py:137)
    r = report({**QWEN3_235B, "quantization_config": CT_FP8_BLOCK}, tp=8)
    assert "The output_size of gate's and up's weight = 192 is not divisible by weight quantization block_n = 128." \
        in messages(r)
    assert r.adjustments == ()


def test_compressed_tensors_fp8_block_k_message():
    # block_structure [64, 128]: 192 % 64 == 0 but 192 % 128 != 0 at TP 8 (fp8_utils.py:1367-1373)
    ct = ct_config({"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [64, 128],
                    "symmetric": True, "dynamic": False}, {"num_bits": 8, "type": "float", "dynamic": True})
    r = report({**QWEN3_235B, "quantization_config": ct}, tp=8)
    assert "The input_size of down's weight = 192 is not divisible by weight quantization block_k = 128." in messages(r)


# ------------------------------------------------------------------------------------------------
# the other schemes
# ------------------------------------------------------------------------------------------------
def test_moe_intermediate_divides_moe_tp_dp_alone_trips_it():
    # no EP: experts are sharded over moe_tp = tp*dp = 3 (fused_moe/config.py:1351-1352); 768 % 3 == 0 but
    # Mixtral-8x7B's 14336 % 3 = 2
    mixtral = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 8,
               "num_experts_per_tok": 2, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8}
    r = report(mixtral, scheme="bf16", tp=1, dp=3)
    assert messages(r) == ["AssertionError: assert self.intermediate_size % tp_size == 0 "
                           "(intermediate_size 14336, moe tp 3)"]
    assert report(mixtral, scheme="bf16", tp=1, dp=3, ep_enabled=True).load_errors == ()


def test_mxfp8_per_rank_multiple_of_32():
    # ModelOptMxFp8FusedMoE.create_weights (modelopt.py:1325-1329): 768/16 = 48, 48 % 32 = 16
    r = report(QWEN3_30B, scheme="mxfp8", tp=16)
    assert "MXFP8 MoE requires intermediate_size_per_partition divisible by 32, got 48." in messages(r)
    assert not any("MXFP8 MoE" in m for m in messages(report(QWEN3_30B, scheme="mxfp8", tp=8)))  # 96 = 3 x 32


def test_wna16_group_size():
    # group 128: 768/8 = 96, 96 % 128 != 0 (compressed_tensors_moe_wna16.py:244-251)
    ct = ct_config({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True})
    r = report({**QWEN3_30B, "quantization_config": ct}, tp=8)
    assert messages(r)[0].startswith("CompressedTensors WNA16 MoE with static group scales requires the MoE "
                                     "intermediate size per tensor-parallel partition (96) to be divisible by "
                                     "group_size (128).")
    assert report({**QWEN3_30B, "quantization_config": ct}, tp=2).load_errors == ()  # 384 = 3 x 128


def test_w4a8_fp8_multiple_of_256():
    # CUTLASS reorder_tensor asserts (compressed_tensors_moe_w4a8_fp8.py:69-73): 768/4 = 192, 192 % 256 != 0
    ct = ct_config({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True},
                   {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True})
    cfg = {**QWEN3_30B, "quantization_config": ct}
    assert messages(report(cfg, tp=4)) == ["AssertionError: intermediate_size_per_partition=192 must be divisible "
                                           "by 256"]
    assert report(cfg, tp=1).load_errors == ()  # 768 = 3 x 256, hidden 2048 = 8 x 256


def test_nvfp4_trtllm_silent_padding():
    # TRT-LLM NVFP4: gated -> intermediate to a multiple of 64, hidden to 256 (flashinfer_fp4_moe.py:399-430):
    # 768/8 = 96 -> 128: +33.3 % expert memory; hidden 2048 unchanged
    r = report(QWEN3_30B, scheme="nvfp4", tp=8)
    (adj,) = r.backend_adjustments["trtllm_nvfp4_mono"]
    assert adj.overhead_pct == 33.3 and "96 -> 128" in adj.detail
    assert "flashinfer_cutlass" not in r.backend_adjustments  # CUTLASS NVFP4 does not pad
    assert r.per_rank["padded"]["trtllm_nvfp4_mod"] == {"intermediate_size": 128, "hidden_size": 2048}


def test_gpt_oss_mxfp4_paddings_per_backend_tp8():
    # I/8 = 2880/8 = 360; oracle/mxfp4.py:837-916
    r = report(GPT_OSS_120B, tp=8)
    pads = r.per_rank["padded"]
    assert pads["trtllm_mxfp4_mono"] == {"intermediate_size": 384, "hidden_size": 3072}  # 128 / 256
    assert pads["triton"] == {"intermediate_size": 384, "hidden_size": 2880}  # 64 only
    assert pads["flashinfer_cutlass"] == {"intermediate_size": 384, "hidden_size": 2944}  # 128 / 128
    assert pads["marlin"] == {"intermediate_size": 384, "hidden_size": 3072}  # 128 / 256
    ba = r.backend_adjustments
    assert ba["trtllm_mxfp4_mono"][0].overhead_pct == 13.8  # 384*3072 / (360*2880) = 1.1378
    assert ba["triton"][0].overhead_pct == 6.7  # 384/360
    assert ba["flashinfer_cutlass"][0].overhead_pct == 9.0  # 384*2944 / (360*2880) = 1.0904
    assert r.load_errors == ()


def test_gpt_oss_one_gpu():
    r = report(GPT_OSS_120B, arch=90, tp=1)
    # 2880 = 45 x 64: Triton does not pad; TRT-LLM pads 2880 -> 2944 and 2880 -> 3072
    assert "triton" not in r.backend_adjustments
    assert r.per_rank["padded"]["trtllm_mxfp4_mono"] == {"intermediate_size": 2944, "hidden_size": 3072}
    assert r.load_errors == ()


def test_bf16_trtllm_pads_to_128():
    r = report(QWEN3_30B, scheme="bf16", tp=8)  # oracle/unquantized.py:391-392: 96 -> 128
    assert r.backend_adjustments["trtllm_bf16_mono"][0].overhead_pct == 33.3
    assert "triton" not in r.backend_adjustments


def test_gpt_oss_intermediate_divides_world_size_across_dp():
    # gpt_oss.py:381,389: torch.distributed world = tp*pp*dp = 8*16 = 128; 2880 % 128 = 64
    r = report(GPT_OSS_120B, tp=8, dp=16)
    assert messages(r)[0] == ("AssertionError: assert config.intermediate_size % self.world_size == 0 "
                              "(intermediate_size 2880, world size 128)")
    assert not any("world size" in m for m in messages(report(GPT_OSS_120B, tp=8, dp=2)))  # 2880 % 16 == 0


def test_gpt_oss_eplb_not_supported_by_its_quant_method():
    # GptOssMxfp4MoEMethod defines no supports_eplb (base: False) -> routed_experts.py:186-199
    r = report(GPT_OSS_120B, tp=4, ep_enabled=True, eplb=True)
    assert messages(r) == ["EPLB is not supported GptOssMxfp4MoEMethod."]


def test_eplb_even_spread():
    # fused_moe/layer.py:274-279: (256 + 10) % 8 = 2
    r = report(DSV3, tp=8, ep_enabled=True, eplb=True, num_redundant_experts=10)
    assert messages(r) == ["EPLB currently only supports even distribution of experts across ranks. Got 266 experts "
                           "and 8 EP ranks."]
    ok = report(DSV3, tp=8, ep_enabled=True, eplb=True, num_redundant_experts=16)  # 272 = 8 x 34
    assert ok.load_errors == () and ok.per_rank["local_experts"] == {"max": 34, "min": 34}


def test_redundant_experts_need_eplb_row():
    # derive_layout already refuses at config time (config/parallel.py:586-592); the layer's assert
    # (fused_moe/layer.py:281-284) is what a layout without that refusal would hit
    layout = derive_layout(tp=8, ep_enabled=True, num_redundant_experts=8)
    assert layout.refusals
    d = desc(DSV3)
    assert S.shape_report(d, layout, scheme="fp8_block", arch=100, config=DSV3).load_errors == ()
    bare = layout._replace(refusals=())
    r = S.shape_report(d, bare, scheme="fp8_block", arch=100, config=DSV3)
    assert messages(r) == ["Redundant experts are only supported with EPLB."]


def test_tp_greater_than_experts():
    tiny = {**QWEN3_30B, "num_experts": 4, "num_experts_per_tok": 2}
    assert "Tensor parallel size 8 is greater than the number of experts 4." in messages(
        report(tiny, scheme="bf16", tp=8))  # qwen3_moe.py:154-158
    mixtral = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 8,
               "num_experts_per_tok": 2, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8}
    assert not any("greater than" in m for m in messages(report(mixtral, scheme="bf16", tp=16)))  # no such check


def test_attention_heads_divide_tp():
    r = report(DSV3, tp=3)  # config/model.py:1557-1564
    assert r.load_errors[0].message == "Total number of attention heads (128) must be divisible by tensor parallel size (3)."


def test_b12x_mxfp4_per_rank_multiple_of_32():
    # fused_moe/b12x.py:472-476 (forced --moe-backend b12x): 768/16 = 48, 48 % 32 = 16
    r = report(QWEN3_30B, scheme="mxfp4", arch=120, tp=16, moe_backend="b12x")
    assert messages(r)[-1] == ("Mxfp4 MoE backend 'B12X_MXFP4_MXFP8' does not support the deployment configuration "
                               "since MXFP4 requires the per-rank intermediate size to be divisible by 32.")
    assert report(QWEN3_30B, scheme="mxfp4", arch=120, tp=8, moe_backend="b12x").load_errors == ()  # 96 = 3 x 32
    gpt = report(GPT_OSS_120B, arch=120, tp=1, moe_backend="b12x")  # expert biases: b12x.py:448-449
    assert messages(gpt) == ["Mxfp4 MoE backend 'B12X_MXFP4_MXFP8' does not support the deployment configuration "
                             "since kernel does not support expert biases."]


def test_deepseek_v4_megamoe_physical_experts_divide_ep():
    v4 = {"architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4", "n_routed_experts": 256,
          "num_experts_per_tok": 6, "n_shared_experts": 1, "moe_intermediate_size": 2048, "hidden_size": 4096,
          "num_hidden_layers": 43, "num_hash_layers": 3, "topk_method": "noaux_tc", "scoring_func": "sqrtsoftplus",
          "norm_topk_prob": True, "routed_scaling_factor": 1.5, "swiglu_limit": 10.0, "expert_dtype": "fp4",
          "quantization_config": {**FP8_BLOCK, "scale_fmt": "ue8m0"}}
    # models/deepseek_v4/nvidia/model.py:355-359: 256 % 6 = 4
    r = report(v4, tp=1, dp=6, ep_enabled=True, moe_backend="deep_gemm_mega_moe")
    assert "n_physical_experts=256 must be divisible by ep_size=6. Adjust num_redundant_experts." in messages(r)
    assert not any("n_physical" in m for m in messages(report(v4, tp=1, dp=8, ep_enabled=True,
                                                              moe_backend="deep_gemm_mega_moe")))
    assert not any("n_physical" in m for m in messages(report(v4, tp=1, dp=6, ep_enabled=True)))  # other backends
    assert "DeepSeek V4 MegaMoE currently requires expert parallel." in messages(
        report(v4, tp=8, moe_backend="deep_gemm_mega_moe"))[0]


def test_fp8_all2all_dispatch_hidden():
    # flashinfer_nvlink_one_sided + DeepSeek FP8 dispatch: all2all_utils.py:88-97; 2880 % 128 = 64
    cfg = {**GPT_OSS_120B, "quantization_config": FP8_BLOCK}
    r = report(cfg, scheme="fp8_block", tp=1, dp=8, ep_enabled=True, all2all_backend="flashinfer_nvlink_one_sided")
    assert ("flashinfer_nvlink_one_sided DeepSeek Blockwise FP8 dispatch requires hidden_dim divisible by 128; "
            "got 2880") in messages(r)
    # DeepEP low-latency first rounds the hidden size up to a supported one (deepep_ll.py:57-79)
    ll = report(cfg, scheme="fp8_block", tp=1, dp=8, ep_enabled=True, all2all_backend="deepep_low_latency")
    assert not any("hidden_dim" in m for m in messages(ll))
    assert any("2880 -> 3072" in a.detail for a in ll.adjustments)
    big = {**QWEN3_30B, "hidden_size": 12288}
    assert "Hidden Size 12288 is greater than the maximum supported hidden size 8192" in messages(
        report(big, scheme="bf16", tp=1, dp=2, ep_enabled=True, all2all_backend="deepep_low_latency"))


def test_nvfp4_compressed_tensors_eplb_blocks_backends():
    ct = ct_config({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": True},
                   {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "dynamic": "local"})
    r = report({**QWEN3_30B, "quantization_config": ct}, tp=4, ep_enabled=True, eplb=True)
    # compressed_tensors_moe_w4a4_nvfp4.py:39-45: TRT-LLM and CuTe-DSL only
    assert "flashinfer_cutlass" in r.backend_blocks and "trtllm_nvfp4_mono" not in r.backend_blocks
    assert r.backend_blocks["flashinfer_cutlass"].startswith("EPLB is not supported CompressedTensorsW4A4Nvfp4MoEMethod.")


# ------------------------------------------------------------------------------------------------
# reading the model's own files, the what-if note, the table
# ------------------------------------------------------------------------------------------------
def test_reads_config_and_quant_ignore_list_from_the_model_directory(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_NEXT))
    d = describe_files(ModelFiles(ref=ModelRef(id=str(tmp_path), source="local", path=str(tmp_path)),
                                  config=copy.deepcopy(QWEN3_NEXT)))
    r = S.shape_report(d, derive_layout(tp=8), scheme="fp8_block", arch=100)
    assert any("block_k = 128" in m for m in messages(r))
    assert not any("what-if" in n for n in r.notes)


def test_what_if_scheme_says_every_linear_layer_is_quantized():
    r = report(QWEN3_30B, scheme="fp8_block", tp=8)
    assert any("every linear layer except the router and lm_head" in n for n in r.notes)


def test_missing_attention_keys_are_reported_not_guessed():
    cfg = {k: v for k, v in DSV3.items() if k not in ("num_attention_heads",)}
    r = report(cfg, tp=8)
    assert any("attention projections not checked" in n for n in r.notes)


def test_gate_table_rows_are_complete():
    rows = S.gate_table()
    assert len(rows) == len(S.SHAPE_GATES) >= 30
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    for r in rows:
        assert r["source"].startswith("vllm 0.33.0 ") and re.search(r"\.py:\d+", r["source"]), r
        assert r["scheme"] and r["rule"] and r["message"] and r["applies"]


UPSTREAM = Path("/work/upstream/vllm-0.33.0/vllm")


def _joined_source(rel: str) -> str:
    """The file with adjacent string literals joined ("a "\\n  f"b" -> "a b")."""
    text = (UPSTREAM / rel).read_text().replace("{MXFP8_BLOCK_SIZE}", "32")  # modelopt.py's constant
    return re.sub(r'"\s*\n\s*f?"', "", text)


@pytest.mark.skipif(not (UPSTREAM / "__init__.py").exists(), reason="vLLM 0.33.0 wheel not extracted here")
def test_every_verbatim_message_is_in_the_cited_vllm_file():
    for g in S.SHAPE_GATES:
        files = re.findall(r"([\w/]+\.py):\d+", g.source)
        assert files, g.name
        if not g.verbatim:
            continue
        base = g.source.split(" ", 2)[2]
        first = base.split(":")[0]
        prefix = first.rsplit("/", 1)[0] + "/" if "/" in first else ""
        texts = []
        for f in files:
            for cand in (f, prefix + f, "model_executor/layers/fused_moe/" + f, "model_executor/layers/" + f,
                         "model_executor/layers/quantization/" + f):
                if (UPSTREAM / cand).is_file():
                    texts.append(_joined_source(cand))
                    break
        assert texts, (g.name, files)
        message = g.message.removeprefix("AssertionError: ")  # vLLM raises a bare assert with this text
        for frag in re.split(r"\{[^}]*\}", message):
            frag = frag.strip(" .")
            if len(frag) >= 12:
                assert any(frag in t for t in texts), (g.name, frag)


@pytest.mark.skipif(not (UPSTREAM / "__init__.py").exists(), reason="vLLM 0.33.0 wheel not extracted here")
def test_cited_line_ranges_exist():
    by_name: dict[str, list[Path]] = {}
    for p in UPSTREAM.rglob("*.py"):
        by_name.setdefault(p.name, []).append(p)
    for g in S.SHAPE_GATES:
        for f, a, b in re.findall(r"([\w/]+\.py):(\d+)(?:-(\d+))?", g.source):
            cands = [p for p in by_name.get(Path(f).name, []) if str(p).endswith(f)]
            assert cands, (g.name, f)
            n = len(cands[0].read_text().splitlines())
            assert int(b or a) <= n, (g.name, f, a, b, n)


@pytest.mark.skipif(not (UPSTREAM / "__init__.py").exists(), reason="vLLM 0.33.0 wheel not extracted here")
def test_composed_b12x_messages_quote_vllm():
    b12x = _joined_source("model_executor/layers/fused_moe/b12x.py")
    oracle = _joined_source("model_executor/layers/fused_moe/oracle/mxfp4.py")
    assert "MXFP4 requires the per-rank intermediate size to be divisible by 32" in b12x
    assert "kernel does not support expert biases" in b12x
    assert "' does not support the deployment configuration" in oracle and "{base} since {reason}." in oracle


def test_vllm_52997_qwen3_5_shared_expert_tp8():
    # vllm-project/vllm#52997 (Qwen3.6-35B-A3B-FP8, TP 8, one H100 node): "Weight input_size_per_partition = 64
    # is not divisible by weight quantization block_k = 128." — the Qwen3.5-35B-A3B layout (models.json):
    # shared_expert_intermediate_size 512 / 8 = 64 in Qwen3NextSparseMoeBlock's shared expert
    cfg = {"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
           "text_config": {"model_type": "qwen3_5_moe_text", "num_experts": 256, "num_experts_per_tok": 8,
                           "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512, "hidden_size": 2048,
                           "num_hidden_layers": 40, "mlp_only_layers": [], "dtype": "bfloat16"},
           "quantization_config": FP8_BLOCK}
    r = report(cfg, tp=8)
    assert r.load_errors[0].message == ("Weight input_size_per_partition = 64 is not divisible by weight "
                                        "quantization block_k = 128.")
    assert "shared_expert.down_proj" in r.load_errors[0].layer
    # the routed experts alone would refine: 512/8 = 64, gcd(128, 64, 2048) = 64
    assert r.per_rank["fp8_block"]["used"] == [64, 64]


def test_glm4_moe_shared_expert_is_never_replicated():
    # zai-org/GLM-4.7 layout (models.json) in FP8 block: shared expert 1536/8 = 192, 192 % 128 != 0.
    # Glm4MoeMLP is always TP-sharded (glm4_moe.py:80-105, :174), even under sequence-parallel MoE,
    # unlike DeepseekV2MLP (deepseek_v2.py:266,275: disable_tp=is_sequence_parallel)
    glm = {"architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "n_routed_experts": 160,
           "num_experts_per_tok": 8, "n_shared_experts": 1, "moe_intermediate_size": 1536, "intermediate_size": 12288,
           "hidden_size": 5120, "num_hidden_layers": 92, "first_k_dense_replace": 3, "n_group": 1, "topk_group": 1,
           "norm_topk_prob": True, "routed_scaling_factor": 2.5, "quantization_config": FP8_BLOCK}
    msg = "Weight input_size_per_partition = 192 is not divisible by weight quantization block_k = 128."
    for layout in ({"tp": 8}, {"tp": 8, "dp": 2, "ep_enabled": True}):
        r = report(glm, **layout)
        assert msg in messages(r), layout
    ds = {**glm, "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3"}
    assert msg in messages(report(ds, tp=8))
    assert msg not in messages(report(ds, tp=8, dp=2, ep_enabled=True))  # replicated under SP MoE


def test_vocab_parallel_embedding_divides_tp():
    # vocab_parallel_embedding.py:289-306: divide(pad_vocab_size(vocab, 64), tp); 151936 = 64 x 2374, 2374 % 3 != 0
    cfg = {**QWEN3_30B, "num_attention_heads": 48, "num_key_value_heads": 3, "vocab_size": 151936}
    r = report(cfg, scheme="bf16", tp=3)
    assert "151936 is not divisible by 3" in messages(r)
    assert not any("151936" in m for m in messages(report(cfg, scheme="bf16", tp=2)))


def test_qkv_kv_head_replication_divides_tp():
    # QKVParallelLinear: tp >= kv heads -> divide(tp, kv heads) (linear.py:1066-1068): 8 % 3 != 0
    cfg = {**QWEN3_30B, "num_attention_heads": 48, "num_key_value_heads": 3}
    assert "8 is not divisible by 3" in messages(report(cfg, scheme="bf16", tp=8))
    assert not any("divisible by 3" in m for m in messages(report(cfg, scheme="bf16", tp=6)))  # 6 % 3 == 0


def test_qkv_replicated_kv_part_under_compressed_tensors():
    # head_dim 64, 8 KV heads at TP 8: the K and V parts are 64 wide per rank. Fp8Config exempts the merged
    # qkv_proj (linear.py:562-581); compressed-tensors checks every part (fp8_utils.py:1329-1343)
    ct = {**GPT_OSS_120B, "quantization_config": CT_FP8_BLOCK}
    assert ("Weight output_partition_size = 64 is not divisible by weight quantization block_n = 128."
            in messages(report(ct, tp=8)))
    fp8 = {**GPT_OSS_120B, "quantization_config": FP8_BLOCK}
    assert not any("output_partition_size" in m for m in messages(report(fp8, scheme="fp8_block", tp=8)))
