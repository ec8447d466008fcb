"""Config normalization: every real model in shared/facts/models.json (config subsets copied here as
literals), every alias of REFERENCE.md §4, nesting, per-layer lists, tensor evidence and bad input."""

from __future__ import annotations

import copy

import pytest

from moe_inspect import archs
from moe_inspect.errors import ConfigError, NotMoEError
from moe_inspect.normalize import normalize
from moe_inspect.spec import TensorEvidence, TensorInfo

# Config subsets of the 22 models in /work/shared/facts/models.json (quantization_config dropped;
# model_type / architectures added from the same entries).
MODELS = {'deepseek-ai/DeepSeek-V2-Lite': {'model_type': 'deepseek_v2',
                                  'architectures': ['DeepseekV2ForCausalLM'],
                                  'n_routed_experts': 64,
                                  'num_experts_per_tok': 6,
                                  'n_shared_experts': 2,
                                  'moe_intermediate_size': 1408,
                                  'intermediate_size': 10944,
                                  'hidden_size': 2048,
                                  'num_hidden_layers': 27,
                                  'first_k_dense_replace': 1,
                                  'moe_layer_freq': 1,
                                  'topk_method': 'greedy',
                                  'scoring_func': 'softmax',
                                  'n_group': 1,
                                  'topk_group': 1,
                                  'norm_topk_prob': False,
                                  'routed_scaling_factor': 1.0,
                                  'q_lora_rank': None,
                                  'kv_lora_rank': 512},
 'deepseek-ai/DeepSeek-V3': {'model_type': 'deepseek_v3',
                             'architectures': ['DeepseekV3ForCausalLM'],
                             'n_routed_experts': 256,
                             'num_experts_per_tok': 8,
                             'n_shared_experts': 1,
                             'moe_intermediate_size': 2048,
                             'intermediate_size': 18432,
                             'hidden_size': 7168,
                             'num_hidden_layers': 61,
                             'first_k_dense_replace': 3,
                             'moe_layer_freq': 1,
                             'num_nextn_predict_layers': 1,
                             'topk_method': 'noaux_tc',
                             'scoring_func': 'sigmoid',
                             'n_group': 8,
                             'topk_group': 4,
                             'norm_topk_prob': True,
                             'routed_scaling_factor': 2.5,
                             'torch_dtype': 'bfloat16'},
 'deepseek-ai/DeepSeek-V3.1': {'model_type': 'deepseek_v3',
                               'architectures': ['DeepseekV3ForCausalLM'],
                               'n_routed_experts': 256,
                               'num_experts_per_tok': 8,
                               'n_shared_experts': 1,
                               'moe_intermediate_size': 2048,
                               'intermediate_size': 18432,
                               'hidden_size': 7168,
                               'num_hidden_layers': 61,
                               'first_k_dense_replace': 3,
                               'moe_layer_freq': 1,
                               'num_nextn_predict_layers': 1,
                               'topk_method': 'noaux_tc',
                               'scoring_func': 'sigmoid',
                               'n_group': 8,
                               'topk_group': 4,
                               'norm_topk_prob': True,
                               'routed_scaling_factor': 2.5,
                               'torch_dtype': 'bfloat16'},
 'deepseek-ai/DeepSeek-V4-Flash': {'model_type': 'deepseek_v4',
                                   'architectures': ['DeepseekV4ForCausalLM'],
                                   'n_routed_experts': 256,
                                   'num_experts_per_tok': 6,
                                   'n_shared_experts': 1,
                                   'moe_intermediate_size': 2048,
                                   'hidden_size': 4096,
                                   'num_hidden_layers': 43,
                                   'num_hash_layers': 3,
                                   'num_nextn_predict_layers': 1,
                                   'topk_method': 'noaux_tc',
                                   'scoring_func': 'sqrtsoftplus',
                                   'norm_topk_prob': True,
                                   'routed_scaling_factor': 1.5,
                                   'swiglu_limit': 10.0,
                                   'expert_dtype': 'fp4',
                                   'torch_dtype': 'bfloat16'},
 'deepseek-ai/DeepSeek-V4-Pro': {'model_type': 'deepseek_v4',
                                 'architectures': ['DeepseekV4ForCausalLM'],
                                 'n_routed_experts': 384,
                                 'num_experts_per_tok': 6,
                                 'n_shared_experts': 1,
                                 'moe_intermediate_size': 3072,
                                 'hidden_size': 7168,
                                 'num_hidden_layers': 61,
                                 'num_hash_layers': 3,
                                 'num_nextn_predict_layers': 1,
                                 'topk_method': 'noaux_tc',
                                 'scoring_func': 'sqrtsoftplus',
                                 'norm_topk_prob': True,
                                 'routed_scaling_factor': 2.5,
                                 'swiglu_limit': 10.0,
                                 'expert_dtype': 'fp4',
                                 'torch_dtype': 'bfloat16'},
 'moonshotai/Kimi-K2-Instruct': {'model_type': 'kimi_k2',
                                 'architectures': ['DeepseekV3ForCausalLM'],
                                 'n_routed_experts': 384,
                                 'num_experts_per_tok': 8,
                                 'n_shared_experts': 1,
                                 'moe_intermediate_size': 2048,
                                 'intermediate_size': 18432,
                                 'hidden_size': 7168,
                                 'num_hidden_layers': 61,
                                 'first_k_dense_replace': 1,
                                 'moe_layer_freq': 1,
                                 'num_nextn_predict_layers': 0,
                                 'topk_method': 'noaux_tc',
                                 'scoring_func': 'sigmoid',
                                 'n_group': 1,
                                 'topk_group': 1,
                                 'norm_topk_prob': True,
                                 'routed_scaling_factor': 2.827,
                                 'torch_dtype': 'bfloat16'},
 'MiniMaxAI/MiniMax-M1-40k': {'model_type': 'minimax_m1',
                              'architectures': ['MiniMaxM1ForCausalLM'],
                              'num_local_experts': 32,
                              'num_experts_per_tok': 2,
                              'hidden_size': 6144,
                              'intermediate_size': 9216,
                              'num_hidden_layers': 80,
                              'shared_intermediate_size': 0,
                              'shared_moe_mode': 'sigmoid',
                              'router_aux_loss_coef': 0.001,
                              'router_jitter_noise': 0.0,
                              'head_dim': 128,
                              'rotary_dim': 64,
                              'postnorm': True},
 'MiniMaxAI/MiniMax-M2': {'model_type': 'minimax_m2',
                          'architectures': ['MiniMaxM2ForCausalLM'],
                          'num_local_experts': 256,
                          'num_experts_per_tok': 8,
                          'scoring_func': 'sigmoid',
                          'use_routing_bias': True,
                          'hidden_size': 3072,
                          'intermediate_size': 1536,
                          'num_hidden_layers': 62,
                          'shared_intermediate_size': 0,
                          'use_mtp': True,
                          'num_mtp_modules': 3,
                          'mtp_transformer_layers': 1,
                          'torch_dtype': 'bfloat16',
                          'max_position_embeddings': 196608},
 'MiniMaxAI/MiniMax-M2.5': {'model_type': 'minimax_m2',
                            'architectures': ['MiniMaxM2ForCausalLM'],
                            'num_local_experts': 256,
                            'num_experts_per_tok': 8,
                            'scoring_func': 'sigmoid',
                            'use_routing_bias': True,
                            'hidden_size': 3072,
                            'intermediate_size': 1536,
                            'num_hidden_layers': 62,
                            'shared_intermediate_size': 0,
                            'use_mtp': True,
                            'num_mtp_modules': 3,
                            'mtp_transformer_layers': 1,
                            'max_position_embeddings': 204800,
                            'dtype': 'bfloat16'},
 'Qwen/Qwen1.5-MoE-A2.7B': {'model_type': 'qwen2_moe',
                            'architectures': ['Qwen2MoeForCausalLM'],
                            'num_experts': 60,
                            'num_experts_per_tok': 4,
                            'moe_intermediate_size': 1408,
                            'shared_expert_intermediate_size': 5632,
                            'intermediate_size': 5632,
                            'hidden_size': 2048,
                            'num_hidden_layers': 24,
                            'decoder_sparse_step': 1,
                            'norm_topk_prob': False},
 'Qwen/Qwen2-57B-A14B': {'model_type': 'qwen2_moe',
                         'architectures': ['Qwen2MoeForCausalLM'],
                         'num_experts': 64,
                         'num_experts_per_tok': 8,
                         'moe_intermediate_size': 2560,
                         'shared_expert_intermediate_size': 20480,
                         'intermediate_size': 18944,
                         'hidden_size': 3584,
                         'num_hidden_layers': 28,
                         'decoder_sparse_step': 1,
                         'norm_topk_prob': False,
                         'torch_dtype': 'bfloat16'},
 'Qwen/Qwen3-30B-A3B': {'model_type': 'qwen3_moe',
                        'architectures': ['Qwen3MoeForCausalLM'],
                        'decoder_sparse_step': 1,
                        'mlp_only_layers': [],
                        'norm_topk_prob': True,
                        'torch_dtype': 'bfloat16',
                        'num_experts_per_tok': 8,
                        'num_experts': 128,
                        'moe_intermediate_size': 768,
                        'intermediate_size': 6144,
                        'hidden_size': 2048,
                        'num_hidden_layers': 48},
 'Qwen/Qwen3-235B-A22B': {'model_type': 'qwen3_moe',
                          'architectures': ['Qwen3MoeForCausalLM'],
                          'decoder_sparse_step': 1,
                          'mlp_only_layers': [],
                          'norm_topk_prob': True,
                          'torch_dtype': 'bfloat16',
                          'num_experts_per_tok': 8,
                          'num_experts': 128,
                          'moe_intermediate_size': 1536,
                          'intermediate_size': 12288,
                          'hidden_size': 4096,
                          'num_hidden_layers': 94},
 'Qwen/Qwen3-Next-80B-A3B-Instruct': {'model_type': 'qwen3_next',
                                      'architectures': ['Qwen3NextForCausalLM'],
                                      'num_experts': 512,
                                      'num_experts_per_tok': 10,
                                      'moe_intermediate_size': 512,
                                      'shared_expert_intermediate_size': 512,
                                      'intermediate_size': 5120,
                                      'hidden_size': 2048,
                                      'num_hidden_layers': 48,
                                      'decoder_sparse_step': 1,
                                      'mlp_only_layers': [],
                                      'norm_topk_prob': True,
                                      'full_attention_interval': 4,
                                      'torch_dtype': 'bfloat16'},
 'Qwen/Qwen3.5-35B-A3B': {'model_type': 'qwen3_5_moe',
                          'architectures': ['Qwen3_5MoeForConditionalGeneration'],
                          'text_config': {'model_type': 'qwen3_5_moe_text',
                                          'num_experts': 256,
                                          'num_experts_per_tok': 8,
                                          'moe_intermediate_size': 512,
                                          'shared_expert_intermediate_size': 512,
                                          'hidden_size': 2048,
                                          'num_hidden_layers': 40,
                                          'mlp_only_layers': [],
                                          'dtype': 'bfloat16'}},
 'Qwen/Qwen3.5-397B-A17B': {'model_type': 'qwen3_5_moe',
                            'architectures': ['Qwen3_5MoeForConditionalGeneration'],
                            'text_config': {'model_type': 'qwen3_5_moe_text',
                                            'num_experts': 512,
                                            'num_experts_per_tok': 10,
                                            'moe_intermediate_size': 1024,
                                            'shared_expert_intermediate_size': 1024,
                                            'hidden_size': 4096,
                                            'num_hidden_layers': 60,
                                            'mlp_only_layers': [],
                                            'dtype': 'bfloat16'}},
 'mistralai/Mixtral-8x7B-v0.1': {'model_type': 'mixtral',
                                 'architectures': ['MixtralForCausalLM'],
                                 'num_local_experts': 8,
                                 'num_experts_per_tok': 2,
                                 'hidden_size': 4096,
                                 'intermediate_size': 14336,
                                 'num_hidden_layers': 32,
                                 'router_aux_loss_coef': 0.02,
                                 'router_jitter_noise': 0.0},
 'mistralai/Mixtral-8x22B-v0.1': {'model_type': 'mixtral',
                                  'architectures': ['MixtralForCausalLM'],
                                  'num_local_experts': 8,
                                  'num_experts_per_tok': 2,
                                  'hidden_size': 6144,
                                  'intermediate_size': 16384,
                                  'num_hidden_layers': 56,
                                  'router_aux_loss_coef': 0.001},
 'meta-llama/Llama-4-Scout-17B-16E': {'model_type': 'llama4',
                                      'architectures': ['Llama4ForConditionalGeneration'],
                                      'text_config': {'model_type': 'llama4_text',
                                                      'num_local_experts': 16,
                                                      'num_experts_per_tok': 1,
                                                      'interleave_moe_layer_step': 1,
                                                      'hidden_size': 5120,
                                                      'intermediate_size': 8192,
                                                      'intermediate_size_mlp': 16384,
                                                      'num_hidden_layers': 48,
                                                      'use_qk_norm': True}},
 'zai-org/GLM-4.7': {'model_type': 'glm4_moe',
                     'architectures': ['Glm4MoeForCausalLM'],
                     'n_routed_experts': 160,
                     'num_experts_per_tok': 8,
                     'n_shared_experts': 1,
                     'moe_intermediate_size': 1536,
                     'intermediate_size': 12288,
                     'hidden_size': 5120,
                     'num_hidden_layers': 92,
                     'first_k_dense_replace': 3,
                     'n_group': 1,
                     'topk_group': 1,
                     'norm_topk_prob': True,
                     'routed_scaling_factor': 2.5,
                     'use_qk_norm': True,
                     'partial_rotary_factor': 0.5,
                     'num_nextn_predict_layers': 1,
                     'torch_dtype': 'bfloat16'},
 'zai-org/GLM-5': {'model_type': 'glm_moe_dsa',
                   'architectures': ['GlmMoeDsaForCausalLM'],
                   'n_routed_experts': 256,
                   'num_experts_per_tok': 8,
                   'n_shared_experts': 1,
                   'moe_intermediate_size': 2048,
                   'intermediate_size': 12288,
                   'hidden_size': 6144,
                   'num_hidden_layers': 78,
                   'first_k_dense_replace': 3,
                   'moe_layer_freq': 1,
                   'topk_method': 'noaux_tc',
                   'scoring_func': 'sigmoid',
                   'n_group': 1,
                   'topk_group': 1,
                   'norm_topk_prob': True,
                   'routed_scaling_factor': 2.5,
                   'num_nextn_predict_layers': 1,
                   'dtype': 'bfloat16'},
 'openai/gpt-oss-20b': {'model_type': 'gpt_oss',
                        'architectures': ['GptOssForCausalLM'],
                        'num_local_experts': 32,
                        'num_experts_per_tok': 4,
                        'experts_per_token': 4,
                        'hidden_size': 2880,
                        'intermediate_size': 2880,
                        'num_hidden_layers': 24,
                        'swiglu_limit': 7.0,
                        'router_aux_loss_coef': 0.9}}


# repo -> (num_experts, top_k, scoring, bias, renormalize, n_group, topk_group, grouped, rsf,
#          number of MoE layers, mtp_layers)
EXPECTED = {
    "deepseek-ai/DeepSeek-V2-Lite": (64, 6, "softmax", False, False, 1, 1, True, 1.0, 26, []),
    "deepseek-ai/DeepSeek-V3": (256, 8, "sigmoid", True, True, 8, 4, True, 2.5, 58, [61]),
    "deepseek-ai/DeepSeek-V3.1": (256, 8, "sigmoid", True, True, 8, 4, True, 2.5, 58, [61]),
    "deepseek-ai/DeepSeek-V4-Flash": (256, 6, "sqrtsoftplus", True, True, None, None, False, 1.5, 43, [43]),
    "deepseek-ai/DeepSeek-V4-Pro": (384, 6, "sqrtsoftplus", True, True, None, None, False, 2.5, 61, [61]),
    "moonshotai/Kimi-K2-Instruct": (384, 8, "sigmoid", True, True, 1, 1, True, 2.827, 60, []),
    "MiniMaxAI/MiniMax-M1-40k": (32, 2, "softmax", False, True, None, None, False, None, 80, []),
    "MiniMaxAI/MiniMax-M2": (256, 8, "sigmoid", True, True, None, None, False, 1.0, 62, [62, 63, 64]),
    "MiniMaxAI/MiniMax-M2.5": (256, 8, "sigmoid", True, True, None, None, False, 1.0, 62, [62, 63, 64]),
    "Qwen/Qwen1.5-MoE-A2.7B": (60, 4, "softmax", False, False, None, None, False, None, 24, []),
    "Qwen/Qwen2-57B-A14B": (64, 8, "softmax", False, False, None, None, False, None, 28, []),
    "Qwen/Qwen3-30B-A3B": (128, 8, "softmax", False, True, None, None, False, None, 48, []),
    "Qwen/Qwen3-235B-A22B": (128, 8, "softmax", False, True, None, None, False, None, 94, []),
    "Qwen/Qwen3-Next-80B-A3B-Instruct": (512, 10, "softmax", False, True, None, None, False, None, 48, []),
    "Qwen/Qwen3.5-35B-A3B": (256, 8, "softmax", False, True, None, None, False, None, 40, []),
    "Qwen/Qwen3.5-397B-A17B": (512, 10, "softmax", False, True, None, None, False, None, 60, []),
    "mistralai/Mixtral-8x7B-v0.1": (8, 2, "softmax", False, True, None, None, False, None, 32, []),
    "mistralai/Mixtral-8x22B-v0.1": (8, 2, "softmax", False, True, None, None, False, None, 56, []),
    "meta-llama/Llama-4-Scout-17B-16E": (16, 1, "sigmoid", False, False, None, None, False, None, 48, []),
    "zai-org/GLM-4.7": (160, 8, "sigmoid", True, True, 1, 1, True, 2.5, 89, [92]),
    "zai-org/GLM-5": (256, 8, "sigmoid", True, True, 1, 1, True, 2.5, 75, [78]),
    "openai/gpt-oss-20b": (32, 4, "softmax", False, True, None, None, False, None, 24, []),
}

FAMILIES = {
    "deepseek-ai/DeepSeek-V2-Lite": "deepseek_v2",
    "moonshotai/Kimi-K2-Instruct": "deepseek_v3",
    "deepseek-ai/DeepSeek-V4-Flash": "deepseek_v4",
    "MiniMaxAI/MiniMax-M1-40k": "minimax_m1",
    "Qwen/Qwen3.5-35B-A3B": "qwen3_5_moe",
    "meta-llama/Llama-4-Scout-17B-16E": "llama4",
    "zai-org/GLM-4.7": "glm4_moe",
    "zai-org/GLM-5": "glm_moe_dsa",
    "openai/gpt-oss-20b": "gpt_oss",
}


def cfg(repo: str, **changes) -> dict:
    c = copy.deepcopy(MODELS[repo])
    c.update(changes)
    return c


def test_every_model_is_covered():
    assert set(EXPECTED) == set(MODELS)


@pytest.mark.parametrize("repo", sorted(MODELS))
def test_real_models_normalize(repo):
    spec, warnings = normalize(copy.deepcopy(MODELS[repo]))
    e, k, scoring, bias, renorm, ng, tg, grouped, rsf, n_moe, mtp = EXPECTED[repo]
    got = (spec.num_experts, spec.top_k, spec.scoring_func, spec.has_correction_bias, spec.renormalize,
           spec.n_group, spec.topk_group, spec.use_grouped_topk, spec.routed_scaling_factor,
           len(spec.moe_layers), spec.mtp_layers)
    assert got == (e, k, scoring, bias, renorm, ng, tg, grouped, rsf, n_moe, mtp)
    assert spec.family != "generic" and spec.guessed == []
    assert warnings == []
    if repo in FAMILIES:
        assert spec.family == FAMILIES[repo]
    # every field that carries a value records where it came from
    for name in ("num_experts", "top_k", "scoring_func", "has_correction_bias", "renormalize",
                 "use_grouped_topk", "moe_layers", "num_hidden_layers", "hidden_size", "activation"):
        assert name in spec.provenance, name
    for name in ("n_group", "topk_group", "routed_scaling_factor", "router_dtype", "moe_intermediate_size",
                 "custom_routing", "topk_method", "mtp_layers", "shared_expert_intermediate_size"):
        if getattr(spec, name) not in (None, []):
            assert name in spec.provenance, name
    assert spec.to_dict()["num_experts"] == e


def test_provenance_strings():
    spec, _ = normalize(cfg("zai-org/GLM-4.7"))
    assert spec.provenance["num_experts"] == "config:n_routed_experts"
    assert spec.provenance["scoring_func"] == "arch:glm4_moe"  # hard-coded sigmoid
    assert spec.provenance["has_correction_bias"] == "arch:glm4_moe"
    assert spec.provenance["moe_layers"] == "config:first_k_dense_replace"
    assert spec.provenance["mtp_layers"] == "config:num_nextn_predict_layers"
    assert spec.moe_layers[0] == 3 and spec.router_dtype == "float32"
    spec, _ = normalize(cfg("Qwen/Qwen3.5-35B-A3B"))
    assert spec.provenance["num_experts"] == "config:text_config.num_experts"
    assert spec.provenance["renormalize"] == "arch:qwen3_5_moe"


def test_deepseek_details():
    spec, _ = normalize(cfg("deepseek-ai/DeepSeek-V3"))
    assert spec.moe_layers == list(range(3, 61))
    assert spec.topk_method == "noaux_tc" and spec.provenance["has_correction_bias"] == "config:topk_method"
    assert (spec.num_shared_experts, spec.shared_expert_intermediate_size) == (1, 2048)
    assert (spec.hidden_size, spec.moe_intermediate_size) == (7168, 2048)
    spec, _ = normalize(cfg("deepseek-ai/DeepSeek-V2-Lite"))
    assert (spec.num_shared_experts, spec.shared_expert_intermediate_size) == (2, 1408)
    # moe_layer_freq 2 -> even layers after the dense prefix
    spec, _ = normalize(cfg("deepseek-ai/DeepSeek-V2-Lite", moe_layer_freq=2))
    assert spec.moe_layers == list(range(2, 27, 2))
    # DeepSeek scoring_func defaults to softmax when absent
    c = cfg("deepseek-ai/DeepSeek-V2-Lite")
    del c["scoring_func"]
    spec, _ = normalize(c)
    assert spec.scoring_func == "softmax" and spec.provenance["scoring_func"] == "arch:deepseek_v2"


def test_group_limited_greedy_noted():
    spec, _ = normalize(cfg("deepseek-ai/DeepSeek-V2-Lite", topk_method="group_limited_greedy", n_group=8,
                            topk_group=3))
    assert spec.topk_method == "group_limited_greedy"
    assert any("group_limited_greedy" in n for n in spec.notes)


def test_deepseek_v4_hash_layers_and_swiglu_limit():
    spec, _ = normalize(cfg("deepseek-ai/DeepSeek-V4-Flash"))
    assert spec.num_hash_layers == 3 and spec.swiglu_limit == 10.0
    assert spec.moe_layers == list(range(43))


def test_deepseek_v4_hash_layers_from_mlp_layer_types_or_the_transformers_default():
    """vLLM 0.33.0 counts "hash_moe" in mlp_layer_types; transformers defaults num_hash_layers to 3."""
    c = cfg("deepseek-ai/DeepSeek-V4-Flash")
    c.pop("num_hash_layers")
    spec, _ = normalize(c)
    assert spec.num_hash_layers == 3 and spec.provenance["num_hash_layers"].startswith("arch:deepseek_v4")
    c["mlp_layer_types"] = ["hash_moe"] * 2 + ["moe"] * 41
    spec, _ = normalize(c)
    assert spec.num_hash_layers == 2 and spec.provenance["num_hash_layers"] == "config:mlp_layer_types"


def test_kimi_k2_matched_through_model_type_and_architecture():
    spec, _ = normalize(cfg("moonshotai/Kimi-K2-Instruct"))
    assert spec.family == "deepseek_v3" and spec.model_type == "kimi_k2"
    # an unregistered model_type still matches through architectures[0]
    spec, _ = normalize(cfg("moonshotai/Kimi-K2-Instruct", model_type="kimi_k2_custom"))
    assert spec.family == "deepseek_v3"
    assert any("matched by architecture" in n for n in spec.notes)


def test_minimax_m2_forced_values():
    spec, _ = normalize(cfg("MiniMaxAI/MiniMax-M2", norm_topk_prob=False))
    assert spec.renormalize is True  # always, whatever the config says
    assert any("norm_topk_prob" in n and "ignored" in n for n in spec.notes)
    assert spec.router_dtype == "float32" and spec.provenance["router_dtype"] == "arch:minimax_m2"
    assert spec.provenance["has_correction_bias"] == "config:use_routing_bias"
    assert spec.num_shared_experts == 0  # shared_intermediate_size 0
    spec, _ = normalize(cfg("MiniMaxAI/MiniMax-M2", use_mtp=False))
    assert spec.mtp_layers == []


def test_qwen_shared_expert_and_sparse_step():
    spec, _ = normalize(cfg("Qwen/Qwen1.5-MoE-A2.7B"))
    assert (spec.num_shared_experts, spec.shared_expert_intermediate_size) == (1, 5632)
    spec, _ = normalize(cfg("Qwen/Qwen3-30B-A3B", decoder_sparse_step=2, mlp_only_layers=[1, 3]))
    assert spec.moe_layers == [i for i in range(48) if (i + 1) % 2 == 0 and i not in (1, 3)]
    assert spec.provenance["moe_layers"] == "config:decoder_sparse_step,mlp_only_layers"
    # Qwen3-Next: norm_topk_prob defaults to True
    c = cfg("Qwen/Qwen3-Next-80B-A3B-Instruct")
    del c["norm_topk_prob"]
    spec, _ = normalize(c)
    assert spec.renormalize is True and spec.provenance["renormalize"] == "arch:qwen3_next"
    # Qwen3-MoE: defaults to False
    c = cfg("Qwen/Qwen3-30B-A3B")
    del c["norm_topk_prob"]
    assert normalize(c)[0].renormalize is False


def test_mixtral_and_olmoe_renormalize():
    spec, _ = normalize(cfg("mistralai/Mixtral-8x7B-v0.1"))
    assert spec.renormalize is True and spec.moe_intermediate_size == 14336
    olmoe = {"model_type": "olmoe", "architectures": ["OlmoeForCausalLM"], "num_experts": 64,
             "num_experts_per_tok": 8, "norm_topk_prob": False, "intermediate_size": 1024,
             "hidden_size": 2048, "num_hidden_layers": 16}
    spec, _ = normalize(olmoe)
    assert (spec.family, spec.renormalize, len(spec.moe_layers)) == ("olmoe", False, 16)


def test_llama4_nested_text_config():
    spec, _ = normalize(cfg("meta-llama/Llama-4-Scout-17B-16E"))
    assert spec.custom_routing == "llama4" and spec.top_k == 1
    assert spec.provenance["num_experts"] == "config:text_config.num_local_experts"
    assert (spec.num_shared_experts, spec.shared_expert_intermediate_size) == (1, 8192)
    c = cfg("meta-llama/Llama-4-Scout-17B-16E")
    c["text_config"]["interleave_moe_layer_step"] = 2
    spec, _ = normalize(c)
    assert spec.moe_layers == list(range(1, 48, 2))
    c["text_config"]["moe_layers"] = [3, 7]
    assert normalize(c)[0].moe_layers == [3, 7]


def test_nested_text_config_only_model_type_known_there():
    # Kimi-K2.5-style wrapper: unknown top-level type, MoE keys + kimi_k2 model_type under text_config
    inner = copy.deepcopy(MODELS["moonshotai/Kimi-K2-Instruct"])
    inner.pop("architectures")
    c = {"model_type": "kimi_k25", "architectures": ["KimiK25ForConditionalGeneration"], "text_config": inner}
    spec, warnings = normalize(c)
    assert spec.family == "deepseek_v3" and spec.num_experts == 384 and warnings == []
    assert spec.provenance["top_k"] == "config:text_config.num_experts_per_tok"


def test_gpt_oss_linear_bias_and_activation():
    spec, _ = normalize(cfg("openai/gpt-oss-20b"))
    assert spec.linear_router_bias is True and spec.has_correction_bias is False
    assert spec.activation == "swigluoai" and spec.swiglu_limit == 7.0
    spec, warnings = normalize(cfg("openai/gpt-oss-20b", experts_per_token=2))
    assert any("disagree" in w for w in warnings)


# --- every alias of REFERENCE.md §4 through the generic row --------------------------------------

BASE = {"model_type": "mystery_moe", "architectures": ["MysteryMoeForCausalLM"], "hidden_size": 64,
        "num_hidden_layers": 4}


@pytest.mark.parametrize("key", ["n_routed_experts", "num_experts", "num_local_experts", "moe_num_experts"])
def test_expert_aliases(key):
    spec, _ = normalize({**BASE, key: 16, "num_experts_per_tok": 2})
    assert spec.num_experts == 16 and spec.provenance["num_experts"] == f"guessed:config:{key}"


def test_dbrx_ffn_config():
    dbrx = {"model_type": "dbrx", "architectures": ["DbrxForCausalLM"], "d_model": 6144, "n_layers": 40,
            "ffn_config": {"moe_num_experts": 16, "moe_top_k": 4, "ffn_hidden_size": 10752,
                           "moe_normalize_expert_weights": 1, "ffn_act_fn": {"name": "silu"}}}
    spec, _ = normalize(dbrx)
    assert (spec.num_experts, spec.top_k, spec.hidden_size, spec.moe_intermediate_size) == (16, 4, 6144, 10752)
    assert spec.provenance["num_experts"] == "config:ffn_config.moe_num_experts"
    assert spec.renormalize is True and len(spec.moe_layers) == 40


@pytest.mark.parametrize("key", ["num_experts_per_tok", "experts_per_token", "moe_k", "moe_topk",
                                 "num_experts_per_token", "moe_top_k"])
def test_topk_aliases(key):
    spec, _ = normalize({**BASE, "num_experts": 16, key: 3})
    assert spec.top_k == 3 and spec.provenance["top_k"] == f"guessed:config:{key}"


@pytest.mark.parametrize("key", ["scoring_func", "score_function", "moe_router_activation_func",
                                 "moe_router_activation"])
def test_scoring_aliases(key):
    spec, _ = normalize({**BASE, "num_experts": 16, "num_experts_per_tok": 2, key: "sigmoid"})
    assert spec.scoring_func == "sigmoid" and "scoring_func" in spec.guessed


@pytest.mark.parametrize("key,value", [("topk_method", "noaux_tc"), ("use_routing_bias", True),
                                       ("moe_router_enable_expert_bias", True), ("use_moe_router_bias", True)])
def test_bias_aliases(key, value):
    spec, _ = normalize({**BASE, "num_experts": 16, "num_experts_per_tok": 2, key: value})
    assert spec.has_correction_bias is True


@pytest.mark.parametrize("key", ["norm_topk_prob", "moe_renormalize", "norm_expert_weight"])
def test_renormalize_aliases(key):
    spec, _ = normalize({**BASE, "num_experts": 16, "num_experts_per_tok": 2, key: False})
    assert spec.renormalize is False


@pytest.mark.parametrize("key", ["routed_scaling_factor", "moe_router_scaling_factor", "router_scaling_factor",
                                 "route_scale"])
def test_scaling_aliases(key):
    spec, _ = normalize({**BASE, "num_experts": 16, "num_experts_per_tok": 2, key: 2.5})
    assert spec.routed_scaling_factor == 2.5


@pytest.mark.parametrize("key", ["moe_intermediate_size", "intermediate_size", "expert_ffn_hidden_size"])
def test_width_aliases(key):
    spec, _ = normalize({**BASE, "num_experts": 16, "num_experts_per_tok": 2, key: 96})
    assert spec.moe_intermediate_size == 96


def test_groups_aliases_and_nulls():
    spec, _ = normalize({**BASE, "num_experts": 16, "num_experts_per_tok": 2, "num_expert_group": 4,
                         "topk_group": 2})
    assert (spec.n_group, spec.topk_group, spec.use_grouped_topk) == (4, 2, True)
    # null n_group/topk_group are "not set"
    c = cfg("zai-org/GLM-4.7", n_group=None, topk_group=None)
    spec, _ = normalize(c)
    assert (spec.n_group, spec.topk_group, spec.use_grouped_topk) == (None, None, True)


@pytest.mark.parametrize("key", ["num_hidden_layers", "num_layers", "n_layers"])
def test_layer_count_aliases(key):
    c = {k: v for k, v in BASE.items() if k != "num_hidden_layers"}
    spec, _ = normalize({**c, key: 6, "num_experts": 16, "num_experts_per_tok": 2})
    assert spec.num_hidden_layers == 6 and spec.moe_layers == list(range(6))


def test_generic_schedules():
    base = {**BASE, "num_experts": 16, "num_experts_per_tok": 2, "num_hidden_layers": 8}
    assert normalize({**base, "first_k_dense_replace": 2})[0].moe_layers == list(range(2, 8))
    assert normalize({**base, "moe_layer_freq": [0, 1, 1, 0, 1, 1, 1, 1]})[0].moe_layers == [1, 2, 4, 5, 6, 7]
    assert normalize({**base, "decoder_sparse_step": 2})[0].moe_layers == [1, 3, 5, 7]
    assert normalize({**base, "mlp_only_layers": [0]})[0].moe_layers == list(range(1, 8))
    assert normalize({**base, "interleave_moe_layer_step": 4})[0].moe_layers == [3, 7]
    assert normalize({**base, "moe_layers": [2, 5]})[0].moe_layers == [2, 5]
    ernie = {**base, "moe_layer_start_index": 1, "moe_layer_end_index": 6, "moe_layer_interval": 1}
    assert normalize(ernie)[0].moe_layers == list(range(1, 7))
    types = {**base, "mlp_layer_types": ["dense"] * 2 + ["sparse"] * 6}
    assert normalize(types)[0].moe_layers == list(range(2, 8))


def test_mtp_aliases():
    base = {**BASE, "num_experts": 16, "num_experts_per_tok": 2}
    assert normalize({**base, "num_nextn_predict_layers": 2})[0].mtp_layers == [4, 5]
    assert normalize({**base, "mtp_num_hidden_layers": 1})[0].mtp_layers == [4]
    assert normalize({**base, "num_mtp_modules": 3, "use_mtp": True})[0].mtp_layers == [4, 5, 6]
    assert normalize({**base, "num_mtp_modules": 3, "use_mtp": False})[0].mtp_layers == []


def test_unknown_architecture_lists_guessed_fields():
    spec, warnings = normalize({**BASE, "num_local_experts": 16, "num_experts_per_tok": 2})
    assert spec.family == "generic"
    assert any("unknown MoE architecture" in w for w in warnings)
    for name in ("num_experts", "top_k", "scoring_func", "has_correction_bias", "renormalize", "moe_layers"):
        assert name in spec.guessed
        assert spec.provenance[name].startswith("guessed:")
    assert "model_type" not in spec.guessed and "family" not in spec.guessed
    assert spec.provenance["scoring_func"].startswith("guessed:scoring_func defaults to 'softmax'")


# --- per-layer lists (Hunyuan) --------------------------------------------------------------------

HUNYUAN = {"model_type": "hunyuan", "architectures": ["HunYuanMoEV1ForCausalLM"], "num_experts": 64,
           "moe_topk": [8] * 32, "moe_intermediate_size": [3072] * 32, "num_shared_expert": [1] * 32,
           "hidden_size": 4096, "num_hidden_layers": 32, "use_mixed_mlp_moe": True}


def test_hunyuan_per_layer_lists():
    spec, _ = normalize(copy.deepcopy(HUNYUAN))
    assert (spec.top_k, spec.moe_intermediate_size, spec.num_shared_experts) == (8, 3072, 1)
    assert spec.per_layer["top_k"] == {i: 8 for i in range(32)}
    assert spec.custom_routing == "transformers_backend"
    c = copy.deepcopy(HUNYUAN)
    c["moe_topk"] = [8] * 30 + [4, 4]
    spec, _ = normalize(c)
    assert spec.top_k == 8 and spec.per_layer["top_k"][31] == 4
    assert any("varies per layer" in n for n in spec.notes)
    assert spec.to_dict()["per_layer"]["top_k"]["31"] == 4


def test_per_layer_topk_above_experts_rejected():
    c = copy.deepcopy(HUNYUAN)
    c["moe_topk"] = [8] * 31 + [65]
    with pytest.raises(ConfigError, match=r"moe_topk\[31\]"):
        normalize(c)


# --- special rows ---------------------------------------------------------------------------------


def test_longcat_zero_experts():
    c = {"model_type": "longcat_flash", "architectures": ["LongcatFlashForCausalLM"], "n_routed_experts": 512,
         "moe_topk": 12, "zero_expert_num": 256, "zero_expert_type": "identity", "expert_ffn_hidden_size": 2048,
         "hidden_size": 6144, "num_layers": 28, "routed_scaling_factor": 6.0}
    spec, _ = normalize(c)
    assert (spec.zero_expert_num, spec.zero_expert_type) == (256, "identity")
    assert spec.has_correction_bias and not spec.renormalize and spec.moe_intermediate_size == 2048
    ev = TensorEvidence(layer=0, router_weight=TensorInfo("model.layers.0.mlp.router.classifier.weight", "F32",
                                                          [768, 6144]),
                        router_bias=TensorInfo("model.layers.0.mlp.router.e_score_correction_bias", "F32", [768]))
    assert normalize(c, ev)[1] == []  # E + zero experts rows: consistent


def test_ling_groups_only_when_both_set():
    ling = {"model_type": "bailing_moe", "architectures": ["BailingMoeV2ForCausalLM"], "num_experts": 256,
            "num_experts_per_tok": 8, "score_function": "sigmoid", "moe_router_enable_expert_bias": True,
            "n_group": 8, "topk_group": 4, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
            "first_k_dense_replace": 1, "num_hidden_layers": 20, "hidden_size": 8192, "router_dtype": "fp32"}
    spec, _ = normalize(ling)
    assert (spec.use_grouped_topk, spec.has_correction_bias, spec.router_dtype) == (True, True, "float32")
    assert spec.provenance["use_grouped_topk"] == "config:n_group,topk_group"
    spec, _ = normalize({**ling, "topk_group": None})
    assert spec.use_grouped_topk is False


def test_cohere2_sigmoid_custom_routing():
    c = {"model_type": "cohere2_moe", "architectures": ["Cohere2MoeForCausalLM"], "num_experts": 64,
         "num_experts_per_tok": 8, "expert_selection_fn": "sigmoid", "intermediate_size": 1024,
         "num_shared_experts": 1, "hidden_size": 4096, "num_hidden_layers": 4,
         "mlp_layer_types": ["dense", "sparse", "sparse", "sparse"]}
    spec, _ = normalize(c)
    assert (spec.scoring_func, spec.custom_routing, spec.renormalize) == ("sigmoid", "cohere2_sigmoid", True)
    assert spec.moe_layers == [1, 2, 3] and spec.shared_expert_intermediate_size == 1024


def test_lfm2_and_nemotron_forced_groups():
    lfm2 = {"model_type": "lfm2_moe", "architectures": ["Lfm2MoeForCausalLM"], "num_experts": 32,
            "num_experts_per_tok": 4, "norm_topk_prob": True, "use_expert_bias": True,
            "routed_scaling_factor": 1.0, "num_dense_layers": 2, "num_hidden_layers": 24,
            "moe_intermediate_size": 1792, "hidden_size": 2048}
    spec, _ = normalize(lfm2)
    assert (spec.n_group, spec.topk_group, spec.use_grouped_topk, spec.scoring_func) == (1, 1, True, "sigmoid")
    assert spec.moe_layers == list(range(2, 24)) and spec.has_correction_bias
    nem = {"model_type": "nemotron_h", "architectures": ["NemotronHForCausalLM"], "n_routed_experts": 128,
           "num_experts_per_tok": 6, "n_group": 1, "topk_group": 1, "norm_topk_prob": True,
           "routed_scaling_factor": 2.5, "hybrid_override_pattern": "MEM*EMEM", "num_hidden_layers": 8,
           "mlp_hidden_act": "relu2", "moe_intermediate_size": 1856, "hidden_size": 2688}
    spec, _ = normalize(nem)
    assert spec.moe_layers == [1, 4, 6] and spec.activation == "relu2" and spec.router_dtype == "float32"


def test_step3p5_and_afmoe():
    step = {"model_type": "step3p5", "architectures": ["Step3p5ForCausalLM"], "moe_num_experts": 288,
            "moe_top_k": 8, "use_moe_router_bias": True, "moe_router_scaling_factor": 3.0,
            "norm_expert_weight": True, "num_hidden_layers": 45, "hidden_size": 4096,
            "moe_layers_enum": ",".join(str(i) for i in range(3, 45)), "share_expert_dim": 1280}
    spec, _ = normalize(step)
    assert (spec.scoring_func, spec.has_correction_bias, spec.routed_scaling_factor) == ("sigmoid", True, 3.0)
    assert spec.moe_layers == list(range(3, 45)) and spec.num_shared_experts == 1
    af = {"model_type": "afmoe", "architectures": ["AfmoeForCausalLM"], "num_experts": 128,
          "num_experts_per_tok": 8, "score_func": "softmax", "route_norm": True, "route_scale": 2.0,
          "n_group": 1, "topk_group": 1, "num_dense_layers": 1, "num_hidden_layers": 4, "hidden_size": 512}
    spec, _ = normalize(af)
    assert spec.renormalize is False  # route_norm applies to sigmoid only


def test_gemma4_dense_is_not_moe():
    c = {"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"],
         "text_config": {"model_type": "gemma4_text", "enable_moe_block": False, "num_experts": None,
                         "top_k_experts": None, "num_hidden_layers": 4}}
    with pytest.raises(NotMoEError):
        normalize(c)
    c["text_config"].update(enable_moe_block=True, num_experts=128, top_k_experts=8, moe_intermediate_size=704)
    spec, _ = normalize(c)
    assert (spec.family, spec.custom_routing, spec.top_k) == ("gemma4", "gemma4", 8)


def test_every_table_row_has_a_source_and_known_schedule():
    from moe_inspect.normalize import SCHEDULES

    for row in archs.all_rows():
        assert row.source and row.schedule in SCHEDULES
    fams = {r.family for r in archs.ROWS}
    for fam in ("deepseek_v2", "deepseek_v3", "deepseek_v4", "minimax_m2", "minimax_m1", "qwen2_moe", "qwen3_moe",
                "qwen3_next", "qwen3_5_moe", "mixtral", "dbrx", "olmoe", "llama4", "glm4_moe", "glm_moe_dsa",
                "gpt_oss", "ernie4_5_moe", "step3_text", "step3p5", "bailing_moe", "phimoe", "gemma4",
                "longcat_flash", "mimo_v2", "exaone_moe", "nemotron_h", "lfm2_moe", "openpangu", "afmoe",
                "cohere2_moe", "hunyuan"):
        assert fam in fams


# --- tensor evidence ------------------------------------------------------------------------------


def _ev(layer, router, bias=None, experts=(), linear=None):
    return TensorEvidence(layer=layer, router_weight=router, router_bias=bias, linear_bias=linear,
                          experts=list(experts))


def test_glm_bias_confirmed_by_tensor_is_a_note_not_a_warning():
    ev = _ev(3, TensorInfo("model.layers.3.mlp.gate.weight", "BF16", [160, 5120]),
             TensorInfo("model.layers.3.mlp.gate.e_score_correction_bias", "F32", [160]),
             [TensorInfo("model.layers.3.mlp.experts.0.gate_proj.weight", "BF16", [1536, 5120])])
    spec, warnings = normalize(cfg("zai-org/GLM-4.7"), ev)
    assert warnings == [] and spec.has_correction_bias
    assert any("confirmed by model.layers.3.mlp.gate.e_score_correction_bias" in n for n in spec.notes)
    assert spec.router_dtype == "float32"  # vLLM computes GLM router logits in fp32 whatever the storage


def test_bias_tensor_overrides_config_without_bias():
    ev = _ev(1, TensorInfo("model.layers.1.mlp.gate.weight", "BF16", [16, 64]),
             TensorInfo("model.layers.1.mlp.gate.e_score_correction_bias", "F32", [16]))
    spec, warnings = normalize({**BASE, "num_experts": 16, "num_experts_per_tok": 2}, ev)
    assert spec.has_correction_bias is True
    assert spec.provenance["has_correction_bias"] == "tensor:model.layers.1.mlp.gate.e_score_correction_bias"
    assert any("correction-bias tensor" in w and "config says no bias" in w for w in warnings)
    assert spec.router_dtype == "bfloat16" and spec.provenance["router_dtype"].startswith("tensor:")


def test_config_bias_without_tensor_warns():
    ev = _ev(3, TensorInfo("model.layers.3.mlp.gate.weight", "BF16", [256, 7168]))
    _, warnings = normalize(cfg("deepseek-ai/DeepSeek-V3"), ev)
    assert any("no correction-bias tensor" in w for w in warnings)


def test_router_shape_contradictions_warn():
    ev = _ev(3, TensorInfo("model.layers.3.mlp.gate.weight", "BF16", [128, 4096]))
    spec, warnings = normalize(cfg("deepseek-ai/DeepSeek-V3"), ev)
    assert any("128 rows" in w and "256" in w for w in warnings)
    assert any("4096 columns" in w and "7168" in w for w in warnings)


def test_hidden_and_width_filled_from_tensors():
    c = {**BASE, "num_experts": 16, "num_experts_per_tok": 2}
    del c["hidden_size"]
    ev = _ev(0, TensorInfo("model.layers.0.mlp.gate.weight", "F32", [16, 64]),
             experts=[TensorInfo("model.layers.0.mlp.experts.gate_up_proj", "BF16", [16, 192, 64])])
    spec, _ = normalize(c, ev)
    assert spec.hidden_size == 64 and spec.provenance["hidden_size"] == "tensor:model.layers.0.mlp.gate.weight"
    assert spec.moe_intermediate_size == 96
    assert spec.provenance["moe_intermediate_size"] == "tensor:model.layers.0.mlp.experts.gate_up_proj"


def test_expert_width_contradiction_warns():
    ev = _ev(0, TensorInfo("model.layers.0.block_sparse_moe.gate.weight", "BF16", [8, 4096]),
             experts=[TensorInfo("model.layers.0.block_sparse_moe.experts.0.w1.weight", "BF16", [1000, 4096])])
    _, warnings = normalize(cfg("mistralai/Mixtral-8x7B-v0.1"), ev)
    assert any("expert width of 1000" in w for w in warnings)


def test_gpt_oss_linear_bias_evidence():
    ev = _ev(0, TensorInfo("model.layers.0.mlp.router.weight", "BF16", [32, 2880]),
             linear=TensorInfo("model.layers.0.mlp.router.bias", "BF16", [32]),
             experts=[TensorInfo("model.layers.0.mlp.experts.gate_up_proj_blocks", "U8", [32, 5760, 90, 16])])
    spec, warnings = normalize(cfg("openai/gpt-oss-20b"), ev)
    assert warnings == [] and spec.has_correction_bias is False and spec.moe_intermediate_size == 2880
    spec, warnings = normalize(cfg("openai/gpt-oss-20b"), _ev(0, ev.router_weight))
    assert any("linear router bias" in w for w in warnings)


def test_weight_map_only_evidence_skips_shape_checks():
    ev = _ev(3, TensorInfo("model.layers.3.mlp.gate.weight", "?", []),
             TensorInfo("model.layers.3.mlp.gate.e_score_correction_bias", "?", []))
    spec, warnings = normalize(cfg("deepseek-ai/DeepSeek-V3"), ev)
    assert warnings == [] and spec.router_dtype is None


# --- bad input ------------------------------------------------------------------------------------

GOOD = {**BASE, "model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "num_experts": 16,
        "num_experts_per_tok": 2}


@pytest.mark.parametrize("key,value,match", [
    ("num_experts", "16", r"num_experts = '16': expected an integer, got a string"),
    ("num_experts", True, r"num_experts = True: expected an integer, got a boolean"),
    ("num_experts", 16.0, r"num_experts = 16.0: expected an integer, got a float \(integral floats"),
    ("num_experts", -4, r"num_experts = -4: expected a positive integer"),
    ("num_experts", 0, r"num_experts = 0: expected a positive integer"),
    ("num_experts", 2_000_000, r"num_experts = 2000000: absurdly large"),
    ("num_experts_per_tok", None, r"num_experts_per_tok = None: expected a positive integer top-k, got null"),
    ("num_experts_per_tok", 17, r"num_experts_per_tok = 17: top-k 17 exceeds the number of experts"),
    ("num_experts_per_tok", [2, 2], r"num_experts_per_tok has 2 entries|num_experts_per_tok"),
    ("num_hidden_layers", "4", r"num_hidden_layers = '4': expected an integer"),
    ("norm_topk_prob", "yes", r"norm_topk_prob = 'yes': expected true/false"),
    ("hidden_size", 64.5, r"hidden_size = 64.5: expected an integer"),
])
def test_bad_counts(key, value, match):
    c = {**GOOD, key: value}
    if isinstance(value, list):
        # a list whose length matches neither the layers nor the MoE layers: first value + warning
        _, warnings = normalize(c)
        assert any(key in w for w in warnings)
        return
    with pytest.raises(ConfigError, match=match) as info:
        normalize(c)
    assert "\n" not in info.value.message and key in info.value.message


def test_null_experts_with_topk_is_a_config_error():
    with pytest.raises(ConfigError, match="num_experts = None"):
        normalize({**GOOD, "num_experts": None})


@pytest.mark.parametrize("changes,match", [
    ({"n_group": 3}, r"n_group = 3: does not divide the number of experts \(256\)"),
    ({"topk_group": 16}, r"topk_group = 16: exceeds n_group \(8\)"),
    ({"routed_scaling_factor": "2.5"}, r"routed_scaling_factor = '2.5': expected a number"),
    ({"routed_scaling_factor": True}, r"routed_scaling_factor = True: expected a number"),
    ({"scoring_func": 1}, r"scoring_func = 1: expected a string"),
    ({"first_k_dense_replace": -1}, r"first_k_dense_replace = -1"),
    ({"n_group": 8.0}, r"n_group = 8.0: expected an integer"),
])
def test_bad_routing_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        normalize(cfg("deepseek-ai/DeepSeek-V3", **changes))


def test_nested_bad_value_names_full_path():
    c = cfg("Qwen/Qwen3.5-35B-A3B")
    c["text_config"]["num_experts"] = "256"
    with pytest.raises(ConfigError, match=r"text_config\.num_experts = '256'"):
        normalize(c)


def test_dense_model_is_not_moe():
    dense = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
             "num_hidden_layers": 32, "intermediate_size": 11008}
    with pytest.raises(NotMoEError, match=r"^llama: no Mixture-of-Experts keys \(num_experts/n_routed_experts/"
                                          r"num_local_experts…\): this looks like a dense model$"):
        normalize(dense)


def test_schedule_selecting_no_layer_is_not_moe():
    with pytest.raises(NotMoEError, match="selects none"):
        normalize({**GOOD, "mlp_only_layers": [0, 1, 2, 3]})


@pytest.mark.parametrize("bad", [[], "config", None, 3])
def test_non_object_config(bad):
    with pytest.raises(ConfigError, match="top level"):
        normalize(bad)


def test_bad_architectures_and_model_type():
    with pytest.raises(ConfigError, match="architectures"):
        normalize({**GOOD, "architectures": "Qwen3MoeForCausalLM"})
    with pytest.raises(ConfigError, match="model_type"):
        normalize({**GOOD, "model_type": 7})


# ------------------------------------------------------------------ rows re-read from the vLLM v0.33.0 wheel
def _nested_cfg(repo: str, **changes) -> dict:
    c = copy.deepcopy(MODELS[repo])
    target = c.get("text_config", c)
    target.update(changes)
    return c


def test_qwen3_5_reads_norm_topk_prob_default_true():
    # qwen3_5.py:173 uses Qwen3NextSparseMoeBlock: renormalize=getattr(config, "norm_topk_prob", True)
    spec, _ = normalize(copy.deepcopy(MODELS["Qwen/Qwen3.5-35B-A3B"]))
    assert spec.renormalize is True
    spec, _ = normalize(_nested_cfg("Qwen/Qwen3.5-35B-A3B", norm_topk_prob=False))
    assert spec.renormalize is False


def test_glm5_bias_follows_topk_method_and_router_is_fp32():
    # deepseek_v2.py:327 (bias iff topk_method == noaux_tc), :139-142 (glm_moe_dsa -> fp32 router)
    spec, _ = normalize(cfg("zai-org/GLM-5"))
    assert spec.has_correction_bias is True and spec.router_dtype == "float32"
    c = cfg("zai-org/GLM-5")
    del c["topk_method"]
    spec, _ = normalize(c)
    assert spec.has_correction_bias is False


def test_deepseek_v4_bias_follows_topk_method():
    # deepseek_v4/nvidia/model.py:301
    c = cfg("deepseek-ai/DeepSeek-V4-Flash")
    del c["topk_method"]
    spec, _ = normalize(c)
    assert spec.has_correction_bias is False and spec.num_hash_layers == 3


def test_minimax_m2_ignores_a_routed_scaling_factor_key():
    # minimax_m2.py:96-108 passes no routed_scaling_factor to the MoE layer
    spec, _ = normalize(cfg("MiniMaxAI/MiniMax-M2", routed_scaling_factor=2.0))
    assert spec.routed_scaling_factor == 1.0
    assert any("routed_scaling_factor" in n and "ignored" in n for n in spec.notes)


def test_deepseek_v3_without_norm_topk_prob_renormalizes():
    # vLLM reads config.norm_topk_prob; transformers' DeepseekV3Config defaults it to True, V2 to False
    c = cfg("deepseek-ai/DeepSeek-V3")
    del c["norm_topk_prob"]
    assert normalize(c)[0].renormalize is True
    c = cfg("deepseek-ai/DeepSeek-V2-Lite")
    c.pop("norm_topk_prob", None)
    assert normalize(c)[0].renormalize is False


def test_rows_marked_v0330_are_verified():
    for r in archs.ROWS:
        if "v0.33.0" in r.source:
            assert r.verified, r.family


# ------------------------------------------------------------------ non-MoE shapes (ModelShape)
def test_read_shape_mla_gqa_and_dense_width():
    from moe_inspect.normalize import read_shape

    # DeepSeek-V3's config.json (values from its model card config): MLA, 128 heads, dense layers 18432
    ds = {"model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"], "n_routed_experts": 256,
          "num_experts_per_tok": 8, "hidden_size": 7168, "num_hidden_layers": 61, "moe_intermediate_size": 2048,
          "intermediate_size": 18432, "num_attention_heads": 128, "num_key_value_heads": 128,
          "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
          "v_head_dim": 128, "vocab_size": 129280, "first_k_dense_replace": 3, "n_group": 8, "topk_group": 4}
    spec, _ = normalize(ds)
    s = read_shape(ds, spec)
    assert (s.attention, s.kv_lora_rank, s.q_lora_rank, s.qk_rope_head_dim) == ("mla", 512, 1536, 64)
    assert s.vocab_size == 129280 and s.dense_intermediate_size == 18432
    assert s.head_dim == 7168 // 128 and s.provenance["head_dim"].startswith("derived:")
    assert s.provenance["vocab_size"] == "config:vocab_size"

    # Mixtral: intermediate_size IS the expert width, there is no dense MLP; 32 heads over 8 KV heads
    mx = {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "num_local_experts": 8,
          "num_experts_per_tok": 2, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
          "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000}
    spec, _ = normalize(mx)
    s = read_shape(mx, spec)
    assert spec.moe_intermediate_size == 14336 and s.dense_intermediate_size is None
    assert (s.attention, s.head_dim) == ("gqa", 128)

    # a bad type is one line, like every other count
    with pytest.raises(ConfigError, match="vocab_size"):
        read_shape({**mx, "vocab_size": "32000"}, spec)
