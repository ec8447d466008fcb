"""find_evidence: locating the first MoE layer and classifying its tensors by name, across the naming
schemes of real checkpoints (shared/facts/models.json `router_tensor_names` / `expert_tensor_pattern`)."""

from __future__ import annotations

from moe_inspect.normalize import normalize
from moe_inspect.spec import TensorInfo
from moe_inspect.tensors import find_evidence


def T(name: str, dtype: str = "BF16", shape: list[int] | None = None, file: str = "model-00001.safetensors"):
    return TensorInfo(name=name, dtype=dtype, shape=shape or [], file=file)


def as_dict(*infos: TensorInfo) -> dict[str, TensorInfo]:
    return {t.name: t for t in infos}


def deepseek_v3_headers() -> dict[str, TensorInfo]:
    ts = [T("model.embed_tokens.weight", shape=[129280, 7168])]
    for L in range(3):  # dense prefix
        ts += [T(f"model.layers.{L}.mlp.{p}.weight", "F8_E4M3", [18432, 7168]) for p in ("gate_proj", "up_proj")]
    for L in (3, 4, 61):  # MoE layers + the MTP layer
        ts += [
            T(f"model.layers.{L}.mlp.gate.weight", "BF16", [256, 7168]),
            T(f"model.layers.{L}.mlp.gate.e_score_correction_bias", "F32", [256]),
            T(f"model.layers.{L}.mlp.shared_experts.gate_proj.weight", "F8_E4M3", [2048, 7168]),
        ]
        for e in (0, 1):
            for p, shape in (("gate_proj", [2048, 7168]), ("up_proj", [2048, 7168]), ("down_proj", [7168, 2048])):
                ts.append(T(f"model.layers.{L}.mlp.experts.{e}.{p}.weight", "F8_E4M3", shape))
                ts.append(T(f"model.layers.{L}.mlp.experts.{e}.{p}.weight_scale_inv", "F32", [16, 56]))
    return as_dict(*ts)


def test_deepseek_v3_first_moe_layer():
    ev = find_evidence(deepseek_v3_headers())
    assert ev.layer == 3
    assert ev.router_weight.name == "model.layers.3.mlp.gate.weight"
    assert ev.router_bias.name == "model.layers.3.mlp.gate.e_score_correction_bias"
    assert ev.linear_bias is None and ev.hash_table is None
    names = {t.name for t in ev.experts}
    assert "model.layers.3.mlp.experts.0.gate_proj.weight" in names
    assert "model.layers.3.mlp.experts.0.down_proj.weight_scale_inv" in names
    assert not any(".experts.1." in n or "shared_experts" in n for n in names)
    assert len(ev.experts) == 6 and ev.expert_layout == "per_expert_gate_up_down"
    assert ev.total_tensors == len(deepseek_v3_headers())
    assert ev.files_read == ["model-00001.safetensors"]


def test_explicit_layer():
    ev = find_evidence(deepseek_v3_headers(), layer=61)
    assert ev.layer == 61 and ev.router_weight.name == "model.layers.61.mlp.gate.weight"


def test_minimax_m2_sibling_bias_and_w1w3w2():
    ts = as_dict(
        T("model.layers.0.block_sparse_moe.gate.weight", "F32", [256, 3072]),
        T("model.layers.0.block_sparse_moe.e_score_correction_bias", "F32", [256]),
        T("model.layers.0.block_sparse_moe.experts.0.w1.weight", "F8_E4M3", [1536, 3072]),
        T("model.layers.0.block_sparse_moe.experts.0.w3.weight", "F8_E4M3", [1536, 3072]),
        T("model.layers.0.block_sparse_moe.experts.0.w2.weight", "F8_E4M3", [3072, 1536]),
    )
    ev = find_evidence(ts)
    assert ev.router_bias.name.endswith("block_sparse_moe.e_score_correction_bias")
    assert ev.expert_layout == "per_expert_w1w3w2"


def test_deepseek_v4_original_names_skip_hash_layers():
    ts = []
    for L in range(5):
        ts.append(T(f"layers.{L}.ffn.gate.weight", "BF16", [256, 4096]))
        if L < 3:
            ts.append(T(f"layers.{L}.ffn.gate.tid2eid", "I64", [129280, 6]))
        else:
            ts.append(T(f"layers.{L}.ffn.gate.bias", "F32", [256]))
        ts.append(T(f"layers.{L}.ffn.experts.0.w1.weight", "I8", [2048, 2048]))
        ts.append(T(f"layers.{L}.ffn.experts.0.w1.scale", "F8_E8M0", [2048, 128]))
    ts.append(T("mtp.0.ffn.gate.weight", "BF16", [256, 4096]))
    ev = find_evidence(as_dict(*ts))
    assert ev.layer == 3  # first non-hash MoE layer, so the correction bias is visible
    assert ev.router_bias.name == "layers.3.ffn.gate.bias"  # ffn.gate.bias IS the correction bias
    assert ev.linear_bias is None
    assert ev.hash_table.name == "layers.0.ffn.gate.tid2eid"
    assert ev.expert_layout == "per_expert_w1w3w2"


def test_ernie_ling_and_gpt_oss_bias_names():
    ernie = find_evidence(as_dict(T("model.layers.1.mlp.gate.weight", shape=[64, 2560]),
                                  T("model.layers.1.mlp.moe_statics.e_score_correction_bias", "F32", [1, 64])))
    assert ernie.router_bias.shape == [1, 64]
    ling = find_evidence(as_dict(T("model.layers.1.mlp.gate.weight", shape=[256, 8192]),
                                 T("model.layers.1.mlp.gate.expert_bias", "F32", [256])))
    assert ling.router_bias.name.endswith("mlp.gate.expert_bias")
    oss = find_evidence(as_dict(
        T("model.layers.0.mlp.router.weight", "BF16", [32, 2880]),
        T("model.layers.0.mlp.router.bias", "BF16", [32]),
        T("model.layers.0.mlp.experts.gate_up_proj_blocks", "U8", [32, 5760, 90, 16]),
        T("model.layers.0.mlp.experts.gate_up_proj_scales", "U8", [32, 5760, 90]),
        T("model.layers.0.mlp.experts.down_proj_bias", "BF16", [32, 2880]),
    ))
    assert oss.router_bias is None and oss.linear_bias.name == "model.layers.0.mlp.router.bias"
    assert oss.expert_layout == "fused_gate_up_mxfp4" and len(oss.experts) == 3


def test_qwen35_nested_prefix_mtp_and_shared_expert_gate():
    ts = as_dict(
        T("mtp.layers.0.mlp.gate.weight", shape=[256, 2048]),
        T("mtp.layers.0.mlp.experts.0.gate_proj.weight", shape=[512, 2048]),
        T("model.language_model.layers.0.mlp.shared_expert_gate.weight", shape=[1, 2048]),
        T("model.language_model.layers.0.mlp.gate.weight", shape=[256, 2048]),
        T("model.language_model.layers.0.mlp.experts.gate_up_proj", shape=[256, 1024, 2048]),
        T("model.language_model.layers.0.mlp.experts.down_proj", shape=[256, 2048, 512]),
        T("model.language_model.layers.0.mlp.shared_expert.gate_proj.weight", shape=[512, 2048]),
        T("model.visual.blocks.0.mlp.gate_proj.weight", shape=[4304, 1152]),
    )
    ev = find_evidence(ts)
    assert ev.router_weight.name == "model.language_model.layers.0.mlp.gate.weight"  # not the MTP layer
    assert [t.name.rsplit(".", 1)[-1] for t in ev.experts] == ["down_proj", "gate_up_proj"]
    assert ev.expert_layout == "fused_gate_up"


def test_shared_expert_gate_alone_is_not_a_router():
    ev = find_evidence(as_dict(T("model.layers.0.mlp.shared_expert_gate.weight", shape=[1, 2048])))
    assert ev.router_weight is None and ev.layer is None


def test_llama4_language_model_prefix():
    ts = as_dict(
        T("language_model.model.layers.0.feed_forward.router.weight", shape=[16, 5120]),
        T("language_model.model.layers.0.feed_forward.experts.gate_up_proj", shape=[16, 5120, 16384]),
        T("language_model.model.layers.0.feed_forward.experts.down_proj", shape=[16, 8192, 5120]),
        T("vision_model.model.layers.0.mlp.fc1.weight", shape=[5632, 1408]),
    )
    ev = find_evidence(ts)
    assert ev.layer == 0 and ev.router_weight.shape == [16, 5120] and len(ev.experts) == 2


def test_nemotron_backbone_and_lfm2_names():
    nem = find_evidence(as_dict(
        T("backbone.layers.1.mixer.gate.weight", "F32", [128, 2688]),
        T("backbone.layers.1.mixer.gate.e_score_correction_bias", "F32", [128]),
        T("backbone.layers.1.mixer.experts.0.up_proj.weight", shape=[1856, 2688]),
        T("backbone.layers.1.mixer.experts.0.down_proj.weight", shape=[2688, 1856]),
    ))
    assert nem.router_bias is not None and nem.expert_layout == "per_expert_up_down"
    lfm = find_evidence(as_dict(T("model.layers.2.feed_forward.gate.weight", shape=[32, 2048]),
                                T("model.layers.2.feed_forward.expert_bias", "F32", [32])))
    assert lfm.layer == 2 and lfm.router_bias.name.endswith("feed_forward.expert_bias")


def test_weight_map_only_names():
    wm = {n: "model-00002-of-00163.safetensors" for n in deepseek_v3_headers()}
    ev = find_evidence({}, wm)
    assert ev.layer == 3 and ev.router_weight.dtype == "?" and ev.router_weight.shape == []
    assert ev.router_weight.file == "model-00002-of-00163.safetensors"
    assert ev.files_read == []  # nothing was read, names only
    # headers that were read win over the index
    hdr = {"model.layers.3.mlp.gate.weight": T("model.layers.3.mlp.gate.weight", "BF16", [256, 7168])}
    ev = find_evidence(hdr, wm)
    assert ev.router_weight.dtype == "BF16" and ev.router_bias.dtype == "?"


def test_no_moe_tensors():
    ev = find_evidence(as_dict(T("model.layers.0.mlp.gate_proj.weight", shape=[11008, 4096])))
    assert ev.layer is None and ev.router_weight is None and ev.experts == []
    ev = find_evidence({}, None)
    assert ev.total_tensors == 0


def test_glm_end_to_end_bias_from_tensor():
    glm = {"model_type": "glm4_moe", "architectures": ["Glm4MoeForCausalLM"], "n_routed_experts": 160,
           "num_experts_per_tok": 8, "n_shared_experts": 1, "moe_intermediate_size": 1536, "hidden_size": 5120,
           "num_hidden_layers": 92, "first_k_dense_replace": 3, "n_group": 1, "topk_group": 1,
           "norm_topk_prob": True, "routed_scaling_factor": 2.5, "num_nextn_predict_layers": 1}
    ts = as_dict(
        T("model.layers.3.mlp.gate.weight", "BF16", [160, 5120]),
        T("model.layers.3.mlp.gate.e_score_correction_bias", "F32", [160]),
        T("model.layers.3.mlp.experts.0.gate_proj.weight", "BF16", [1536, 5120]),
        T("model.layers.3.mlp.experts.0.up_proj.weight", "BF16", [1536, 5120]),
        T("model.layers.3.mlp.experts.0.down_proj.weight", "BF16", [5120, 1536]),
    )
    spec, warnings = normalize(glm, find_evidence(ts))
    assert warnings == [] and spec.has_correction_bias
    assert any("confirmed by model.layers.3.mlp.gate.e_score_correction_bias" in n for n in spec.notes)
    # a Qwen3-style config that claims no bias but ships one: the tensor wins, with a warning
    qwen = {"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "num_experts": 160,
            "num_experts_per_tok": 8, "hidden_size": 5120, "num_hidden_layers": 4}
    spec, warnings = normalize(qwen, find_evidence(ts))
    assert spec.has_correction_bias and spec.provenance["has_correction_bias"].startswith("tensor:")
    assert len(warnings) == 1 and "model.layers.3.mlp.gate.e_score_correction_bias" in warnings[0]
