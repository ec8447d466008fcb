"""Quantization detection: config.json / hf_quant_config.json / tensor dtypes -> QuantInfo."""

import pytest

from moe_inspect.errors import ConfigError
from moe_inspect.quant import METHODS, detect_quant
from moe_inspect.spec import TensorInfo


def tensors(spec: dict) -> dict:
    """{name: (dtype, shape)} -> {name: TensorInfo}."""
    return {n: TensorInfo(name=n, dtype=d, shape=list(s)) for n, (d, s) in spec.items()}


DSV3_QC = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
           "weight_block_size": [128, 128]}
E = "model.layers.3.mlp.experts.0"


# ---------------------------------------------------------------- DeepSeek-style block FP8
@pytest.mark.parametrize("fmt", ["e4m3", "float8_e4m3fn"])
def test_block_fp8_both_fmt_spellings(fmt):
    q = detect_quant({"quantization_config": {**DSV3_QC, "fmt": fmt}})
    assert q.method == "fp8_block"
    assert q.weight_dtype == "fp8_e4m3"
    assert q.block_size == [128, 128]
    assert q.activation_scheme == "dynamic"
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kFp8Static128BlockSym", "kFp8Dynamic128Sym")
    assert q.warnings == []


def test_block_fp8_ue8m0_scale_fmt():
    q = detect_quant({"quantization_config": {**DSV3_QC, "scale_fmt": "ue8m0"}})
    assert q.method == "fp8_block" and q.scale_fmt == "ue8m0"


def test_block_fp8_top_level_while_moe_keys_in_text_config():
    # Qwen3.5 FP8: quantization_config at top level, no fmt key, MoE keys under text_config
    cfg = {"model_type": "qwen3_5_moe", "text_config": {"num_experts": 256},
           "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic",
                                   "weight_block_size": [128, 128], "weight_per_tensor": False}}
    q = detect_quant(cfg)
    assert q.method == "fp8_block" and q.vllm_weight_key == "kFp8Static128BlockSym"
    assert "config:quantization_config.quant_method=fp8" in q.provenance


def test_quant_config_under_text_config_is_found():
    q = detect_quant({"text_config": {"quantization_config": DSV3_QC}})
    assert q.method == "fp8_block"
    assert any("text_config.quantization_config" in p for p in q.provenance)


def test_block_fp8_tensors_agree():
    ts = tensors({f"{E}.gate_proj.weight": ("F8_E4M3", [2048, 7168]),
                  f"{E}.gate_proj.weight_scale_inv": ("F32", [16, 56])})
    q = detect_quant({"quantization_config": DSV3_QC}, tensors=ts)
    assert q.method == "fp8_block" and q.warnings == []
    assert any(p.startswith("tensor:") for p in q.provenance)


# ---------------------------------------------------------------- FP8 per-tensor
@pytest.mark.parametrize("scheme, akey", [("static", "kFp8StaticTensorSym"),
                                          ("dynamic", "kFp8DynamicTensorSym")])
def test_fp8_per_tensor(scheme, akey):
    q = detect_quant({"quantization_config": {"quant_method": "fp8", "activation_scheme": scheme}})
    assert q.method == "fp8_per_tensor" and q.activation_scheme == scheme
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kFp8StaticTensorSym", akey)
    assert q.block_size is None


# ---------------------------------------------------------------- ModelOpt
MODELOPT_HF = {"producer": {"name": "modelopt", "version": "0.37.0"},
               "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None, "group_size": 16,
                                "exclude_modules": ["lm_head", "model.layers.*.mlp.gate"]}}


def test_modelopt_nvfp4_from_hf_quant_config():
    q = detect_quant({"model_type": "qwen3_moe"}, hf_quant_config=MODELOPT_HF)
    assert q.method == "nvfp4" and q.producer == "modelopt"
    assert q.group_size == 16 and q.weight_dtype == "nvfp4"
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kNvfp4Static", "kNvfp4Dynamic")
    assert "hf_quant_config:quantization.quant_algo=NVFP4" in q.provenance


def test_modelopt_nvfp4_from_config():
    q = detect_quant({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4",
                                              "group_size": 16}})
    assert q.method == "nvfp4" and q.producer == "modelopt"


def test_modelopt_nvfp4_tensors_agree():
    ts = tensors({f"{E}.gate_proj.weight": ("U8", [768, 1024]),
                  f"{E}.gate_proj.weight_scale": ("F8_E4M3", [768, 128]),
                  f"{E}.gate_proj.weight_scale_2": ("F32", []),
                  f"{E}.gate_proj.input_scale": ("F32", [])})
    q = detect_quant({}, hf_quant_config=MODELOPT_HF, tensors=ts)
    assert q.method == "nvfp4" and q.warnings == []


def test_modelopt_fp8():
    q = detect_quant({"quantization_config": {"quant_method": "modelopt", "quant_algo": "FP8"}})
    assert q.method == "fp8_per_tensor" and q.producer == "modelopt"
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kFp8StaticTensorSym", "kFp8StaticTensorSym")


def test_modelopt_excluding_experts_warns():
    hf = {"producer": {"name": "modelopt"},
          "quantization": {"quant_algo": "NVFP4", "exclude_modules": ["model.layers.0.mlp.experts*"]}}
    assert any("excludes expert modules" in w for w in detect_quant({}, hf_quant_config=hf).warnings)


# ---------------------------------------------------------------- compressed-tensors
def ct(fmt, weights, acts=None):
    group = {"targets": ["Linear"], "weights": weights, "input_activations": acts, "format": fmt}
    return {"quantization_config": {"quant_method": "compressed-tensors", "format": fmt,
                                    "config_groups": {"group_0": group}, "ignore": ["lm_head"]}}


def test_compressed_tensors_nvfp4():
    cfg = ct("nvfp4-pack-quantized",
             {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
             {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16,
              "dynamic": "local"})
    ts = tensors({f"{E}.up_proj.weight_packed": ("U8", [768, 1024]),
                  f"{E}.up_proj.weight_scale": ("F8_E4M3", [768, 128]),
                  f"{E}.up_proj.weight_global_scale": ("F32", [1])})
    q = detect_quant(cfg, tensors=ts)
    assert q.method == "nvfp4" and q.producer == "compressed-tensors" and q.group_size == 16
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kNvfp4Static", "kNvfp4Dynamic")
    assert q.warnings == []


def test_compressed_tensors_int4_kimi_k2_thinking():
    cfg = ct("pack-quantized", {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32,
                                "symmetric": True})
    ts = tensors({f"{E}.down_proj.weight_packed": ("I32", [7168, 256]),
                  f"{E}.down_proj.weight_scale": ("BF16", [7168, 64]),
                  f"{E}.down_proj.weight_shape": ("I64", [2])})
    q = detect_quant(cfg, tensors=ts)
    assert q.method == "int4" and q.group_size == 32 and q.weight_dtype == "int4"
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kInt4Static32", None)
    assert q.warnings == []


def test_compressed_tensors_fp8_block():
    cfg = ct("float-quantized",
             {"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 128]},
             {"num_bits": 8, "type": "float", "strategy": "group", "group_size": 128, "dynamic": True})
    q = detect_quant(cfg)
    assert q.method == "fp8_block"
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kFp8Static128BlockSym", "kFp8Dynamic128Sym")


# ---------------------------------------------------------------- MXFP4, GPTQ/AWQ
def test_mxfp4_gpt_oss():
    cfg = {"model_type": "gpt_oss", "quantization_config": {
        "quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.mlp.router"]}}
    ts = tensors({"model.layers.0.mlp.experts.gate_up_proj_blocks": ("U8", [32, 5760, 90, 16]),
                  "model.layers.0.mlp.experts.gate_up_proj_scales": ("U8", [32, 5760, 90]),
                  "model.layers.0.mlp.experts.gate_up_proj_bias": ("BF16", [32, 5760])})
    q = detect_quant(cfg, tensors=ts)
    assert q.method == "mxfp4" and q.producer == "openai" and q.group_size == 32
    assert (q.vllm_weight_key, q.vllm_activation_key) == ("kMxfp4Static", None)
    assert q.warnings == []


@pytest.mark.parametrize("qm", ["gptq", "GPTQ", "gptq_marlin"])
def test_gptq_int4(qm):
    q = detect_quant({"quantization_config": {"quant_method": qm, "bits": 4, "group_size": 128,
                                              "sym": True, "desc_act": False}})
    assert q.method == "int4" and q.producer == "gptq" and q.group_size == 128
    assert q.vllm_weight_key == "kInt4Static"


def test_awq_is_asymmetric_int4():
    q = detect_quant({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                                              "zero_point": True}})
    assert q.method == "int4" and q.vllm_weight_key == "kInt4StaticAsym"


# ---------------------------------------------------------------- DeepSeek-V4 mixed
V4_QC = {**DSV3_QC, "scale_fmt": "ue8m0"}
V4_FP4_TENSORS = {"layers.3.ffn.experts.0.w1.weight": ("I8", [2048, 2048]),
                  "layers.3.ffn.experts.0.w1.scale": ("F8_E8M0", [2048, 128])}


def test_deepseek_v4_expert_dtype_top_level():
    q = detect_quant({"model_type": "deepseek_v4", "expert_dtype": "fp4", "quantization_config": V4_QC})
    assert q.method == "fp4_mixed" and q.expert_format == "mxfp4"
    assert q.weight_dtype == "fp8_e4m3" and q.block_size == [128, 128]
    assert q.vllm_weight_key == "kMxfp4Static"
    assert "config:expert_dtype=fp4" in q.provenance


def test_deepseek_v4_expert_dtype_inside_quantization_config():
    q = detect_quant({"quantization_config": {**V4_QC, "expert_dtype": "fp4"}})
    assert q.method == "fp4_mixed"
    assert "config:quantization_config.expert_dtype=fp4" in q.provenance


def test_deepseek_v4_tensors_beat_config_without_expert_dtype():
    q = detect_quant({"quantization_config": V4_QC}, tensors=tensors(V4_FP4_TENSORS))
    assert q.method == "fp4_mixed" and q.expert_format == "mxfp4"
    assert any("trusting tensor dtypes" in w for w in q.warnings)


def test_deepseek_v4_config_and_tensors_agree_no_warning():
    q = detect_quant({"expert_dtype": "fp4", "quantization_config": V4_QC},
                     tensors=tensors(V4_FP4_TENSORS))
    assert q.method == "fp4_mixed" and q.warnings == []


def test_expert_dtype_fp4_but_fp8_tensors_trusts_tensors():
    ts = tensors({"layers.3.ffn.experts.0.w1.weight": ("F8_E4M3", [2048, 4096]),
                  "layers.3.ffn.experts.0.w1.scale": ("F32", [16, 32])})
    q = detect_quant({"expert_dtype": "fp4", "quantization_config": V4_QC}, tensors=ts)
    assert q.method == "fp8_block" and q.expert_format is None
    assert q.vllm_weight_key == "kFp8Static128BlockSym"
    assert any("trusting tensor dtypes" in w for w in q.warnings)


# ---------------------------------------------------------------- unquantized, tensors only
def test_unquantized():
    q = detect_quant({"model_type": "mixtral", "torch_dtype": "bfloat16"})
    assert q.method == "unquantized" and q.weight_dtype == "bf16"
    assert q.vllm_weight_key is None and q.vllm_activation_key is None


def test_unquantized_fused_experts_from_tensors():
    ts = tensors({"model.language_model.layers.0.mlp.experts.gate_up_proj": ("BF16", [256, 1024, 2048])})
    q = detect_quant({"text_config": {"dtype": "bfloat16"}}, tensors=ts)
    assert q.method == "unquantized" and q.weight_dtype == "bf16"


def test_no_config_but_fp8_tensors():
    ts = tensors({f"{E}.gate_proj.weight": ("F8_E4M3", [2048, 7168]),
                  f"{E}.gate_proj.weight_scale_inv": ("F32", [16, 56])})
    q = detect_quant({}, tensors=ts)
    assert q.method == "fp8_block"
    assert any("no quantization_config" in w for w in q.warnings)


def test_config_tensor_disagreement_warns():
    ts = tensors({f"{E}.gate_proj.weight": ("BF16", [2048, 7168])})
    q = detect_quant({"quantization_config": DSV3_QC}, tensors=ts)
    assert q.method == "fp8_block"
    assert any("look like bf16" in w for w in q.warnings)


def test_shared_experts_do_not_count():
    ts = tensors({"model.layers.3.mlp.shared_experts.gate_proj.weight": ("BF16", [2048, 7168]),
                  f"{E}.gate_proj.weight": ("F8_E4M3", [2048, 7168]),
                  f"{E}.gate_proj.weight_scale_inv": ("F32", [16, 56])})
    assert detect_quant({"quantization_config": DSV3_QC}, tensors=ts).warnings == []


def test_unknown_quant_method_is_other():
    q = detect_quant({"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}})
    assert q.method == "other" and q.warnings


def test_methods_vocabulary():
    assert set(METHODS) == {"unquantized", "fp8_block", "fp8_per_tensor", "nvfp4", "mxfp4", "int4",
                            "fp4_mixed", "other"}


# ---------------------------------------------------------------- bad shapes -> ConfigError
@pytest.mark.parametrize(
    "config, hf, key",
    [
        ({"quantization_config": [1, 2]}, None, "quantization_config"),
        ({"quantization_config": "fp8"}, None, "quantization_config"),
        ({"quantization_config": {**DSV3_QC, "weight_block_size": [128]}}, None, "weight_block_size"),
        ({"quantization_config": {**DSV3_QC, "weight_block_size": "128x128"}}, None, "weight_block_size"),
        ({"quantization_config": {**DSV3_QC, "weight_block_size": [128, 12.8]}}, None, "weight_block_size"),
        ({"quantization_config": {**DSV3_QC, "weight_block_size": [True, 128]}}, None, "weight_block_size"),
        ({"quantization_config": {**DSV3_QC, "activation_scheme": "sometimes"}}, None, "activation_scheme"),
        ({"quantization_config": {**DSV3_QC, "fmt": 4}}, None, "fmt"),
        ({"quantization_config": {"quant_method": 8}}, None, "quant_method"),
        ({"quantization_config": {"activation_scheme": "dynamic"}}, None, "quant_method"),
        ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": []}}, None,
         "config_groups"),
        ({"quantization_config": {"quant_method": "gptq", "bits": "four"}}, None, "bits"),
        ({}, ["NVFP4"], "hf_quant_config.json"),
        ({}, {"quantization": "NVFP4"}, "quantization"),
        ({}, {"quantization": {"quant_algo": "NVFP4", "group_size": 0}}, "group_size"),
        ({"expert_dtype": 4, "quantization_config": DSV3_QC}, None, "expert_dtype"),
    ],
)
def test_bad_shapes_raise_config_error_naming_the_key(config, hf, key):
    with pytest.raises(ConfigError) as exc:
        detect_quant(config, hf_quant_config=hf)
    assert key in exc.value.message
    assert "\n" not in exc.value.message


def test_config_not_an_object():
    with pytest.raises(ConfigError):
        detect_quant(["not", "a", "dict"])


# ---------------------------------------------------------------- modules vLLM leaves unquantized
def test_ignored_modules_per_quant_method():
    # fp8: ignored_layers wins, else modules_to_not_convert (vLLM 0.33.0 fp8.py:162-167)
    q = detect_quant({"quantization_config": {**DSV3_QC, "modules_to_not_convert": ["lm_head", "gate"]}})
    assert q.ignored_modules == ["lm_head", "gate"]
    assert "config:quantization_config.modules_to_not_convert (2 modules)" in q.provenance
    q = detect_quant({"quantization_config": {**DSV3_QC, "ignored_layers": ["lm_head"],
                                              "modules_to_not_convert": ["x"]}})
    assert q.ignored_modules == ["lm_head"]
    # ModelOpt hf_quant_config.json: exclude_modules (modelopt.py:342)
    hf = {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4", "group_size": 16,
                                                              "exclude_modules": ["lm_head", "model.layers.0.mlp"]}}
    assert detect_quant({}, hf_quant_config=hf).ignored_modules == ["lm_head", "model.layers.0.mlp"]
    # mxfp4: vLLM's Mxfp4Config reads no ignore list (mxfp4.py:67-68)
    q = detect_quant({"model_type": "gpt_oss", "quantization_config": {
        "quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]}})
    assert q.ignored_modules == []
    with pytest.raises(ConfigError, match="ignored_layers"):
        detect_quant({"quantization_config": {**DSV3_QC, "ignored_layers": "lm_head"}})
