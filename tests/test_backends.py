"""The backend table and its gates (moe_inspect.backends, moe_inspect.gpus): no model files needed."""

from __future__ import annotations

import pytest

from moe_inspect import backends as B
from moe_inspect import gpus
from moe_inspect.deploy.layout import derive_layout
from moe_inspect.errors import BadInputError


def ctx(**kw) -> B.RoutingContext:
    base = dict(method="MiniMax2", num_experts=256, top_k=8, scheme="fp8_block")
    base.update(kw)
    return B.RoutingContext(**base)


def row(key: str) -> B.Backend:
    return B.BACKEND_BY_KEY[key]


def test_every_row_names_its_source_and_version():
    for b in B.BACKENDS:
        assert b.source.startswith("vLLM v0.33 "), b.key
        assert b.kind in ("monolithic", "modular")
        assert b.archs <= B.ALL_ARCHS
    for c in B.UNIFIED_CONFIGS:
        assert "FlashInfer 0.7.2.post1" in c.source
    for o in B.AUTO_ORDER:
        assert o.source.startswith("vLLM v0.33 ")
        assert all(k in B.BACKEND_BY_KEY for k in o.order)


def test_issue_backends_are_all_in_the_table():
    names = {b.name for b in B.BACKENDS}
    for n in ("TRT-LLM FP8 block monolithic", "TRT-LLM FP8 block modular", "TRT-LLM MXFP8 monolithic",
              "TRT-LLM MXFP8 modular", "TRT-LLM FP8 per-tensor monolithic", "TRT-LLM NVFP4 monolithic",
              "TRT-LLM NVFP4 modular", "TRT-LLM MXFP4 monolithic", "TRT-LLM MXFP4 modular",
              "TRT-LLM MXINT4 monolithic", "TRT-LLM BF16 monolithic", "TRT-LLM BF16 modular", "FlashInfer CUTLASS",
              "FlashInfer CuTe-DSL NVFP4", "FlashInfer B12x", "DeepGEMM", "Triton", "Marlin"):
        assert n in names
    assert {"CuTileBf16Config", "CutlassFp8BlockConfig", "CutlassBf16Config"} <= {c.name for c in B.UNIFIED_CONFIGS}


def test_gates_run_in_vllm_order_device_first():
    # wrong arch AND unsupported method: the device gate is reported (vLLM checks it first)
    v = B.evaluate(row("trtllm_fp8_block_mono"), ctx(method="Unspecified"), 90)
    assert (v.supported, v.gate) == (False, "arch")
    assert "sm100" in v.reason and "sm90" in v.reason


def test_unspecified_method_names_the_pattern():
    v = B.evaluate(row("trtllm_fp8_block_mono"), ctx(method="Unspecified", pattern="softmax + correction bias"), 100)
    assert v.gate == "routing"
    assert v.reason == ("routing method Unspecified is not implemented by the fused router "
                        "(softmax + correction bias)")


def test_modular_rows_accept_any_method():
    v = B.evaluate(row("trtllm_fp8_block_mod"), ctx(method="Unspecified"), 100)
    assert v.supported


def test_hash_routing_gate_precedes_routing_method():
    v = B.evaluate(row("trtllm_nvfp4_mono"), ctx(method="DeepseekV4", scheme="nvfp4", num_hash_layers=3), 100)
    assert v.gate == "hash" and "hash-routed" in v.reason


def test_fp16_router_logits_rejected_by_fp8_monolithic():
    v = B.evaluate(row("trtllm_fp8_block_mono"), ctx(router_dtype="float16"), 100)
    assert v.gate == "logits"
    assert B.evaluate(row("trtllm_fp8_block_mono"), ctx(router_dtype="float32"), 100).supported


@pytest.mark.parametrize("E,G,tg,k,ok,needle", [
    (256, 8, 4, 8, True, None),  # DeepSeek-V3
    (384, 8, 4, 8, False, "at most 256 experts"),  # over the grouped tier
    (256, 16, 4, 8, False, "n_group <= 8"),
    (256, 8, 5, 8, False, "topk_group <= 4"),
    (256, 4, 4, 8, False, "E/n_group <= 32"),
    (256, 8, 4, 10, False, "top_k <= 8 when grouped"),  # fp8-block launcher, E <= 384
])
def test_deepseek_grouped_tiers(E, G, tg, k, ok, needle):
    v = B.evaluate(row("trtllm_fp8_block_mono"), ctx(method="DeepSeekV3", num_experts=E, n_group=G, topk_group=tg,
                                                      top_k=k), 100)
    assert v.supported is ok
    if needle:
        assert v.gate == "limits" and needle in v.reason


def test_e_not_divisible_by_4_is_named():
    v = B.evaluate(row("trtllm_bf16_mono"), ctx(method="RenormalizeNaive", num_experts=62, scheme="bf16"), 100)
    assert v.gate == "limits" and "E % 4" in v.reason and "62" in v.reason


def test_llama4_needs_input_side_weights_and_k1():
    good = ctx(method="Llama4", num_experts=16, top_k=1, apply_router_weight_on_input=True)
    assert B.evaluate(row("trtllm_nvfp4_mono"), B.RoutingContext(**{**good.__dict__, "scheme": "nvfp4"}), 100).supported
    # the NVFP4 and FP8 per-tensor monolithic classes assert it (vLLM v0.33.0 trtllm_nvfp4_moe.py:541-547,
    # trtllm_fp8_moe.py:548-551) ...
    for key, scheme in (("trtllm_nvfp4_mono", "nvfp4"), ("trtllm_fp8_tensor_mono", "fp8_per_tensor")):
        no_input = B.RoutingContext(**{**good.__dict__, "scheme": scheme, "apply_router_weight_on_input": False})
        v = B.evaluate(row(key), no_input, 100)
        assert v.gate == "limits" and "apply_router_weight_on_input" in v.reason, key
    # ... the BF16 monolithic class neither checks it nor passes it on (trtllm_bf16_moe.py:273-319)
    no_input = B.RoutingContext(**{**good.__dict__, "scheme": "bf16", "apply_router_weight_on_input": False})
    assert B.evaluate(row("trtllm_bf16_mono"), no_input, 100).supported
    k2 = B.RoutingContext(**{**good.__dict__, "scheme": "bf16", "top_k": 2})
    assert "top_k <= 1" in B.evaluate(row("trtllm_bf16_mono"), k2, 100).reason


def test_flashinfer_cutlass_fp8_block_is_hopper_only():
    assert B.evaluate(row("flashinfer_cutlass"), ctx(), 90).supported
    v = B.evaluate(row("flashinfer_cutlass"), ctx(), 100)
    assert v.gate == "quant" and "sm90" in v.reason


def test_no_modular_fp8_per_tensor_class():
    v = B.evaluate(row("trtllm_fp8_tensor_mod"), ctx(scheme="fp8_per_tensor"), 100)
    assert v.gate == "quant" and "no modular" in v.reason


def test_auto_order_hopper_block_fp8_prefers_triton_for_tp_and_cutlass_for_ep():
    # vLLM 0.33.0 oracle/fp8.py:122-132: ep_size > 1 -> FLASHINFER_CUTLASS first, else TRITON first
    assert B.auto_order("fp8_block", 90, derive_layout(tp=8)).order[0] == "triton"
    assert B.auto_order("fp8_block", 90, derive_layout(tp=8, ep_enabled=True)).order[0] == "flashinfer_cutlass"
    # DP without EP is still ep_size 1 (FusedMoEParallelConfig.make, fused_moe/config.py:1211-1225)
    assert B.auto_order("fp8_block", 90, derive_layout(dp=4)).order[0] == "triton"
    assert B.auto_order("fp8_block", 100, derive_layout(tp=8)).order[:2] == ("trtllm_fp8_block_mono",
                                                                             "trtllm_fp8_block_mod")
    assert "flashinfer_b12x" not in B.auto_order("nvfp4", 120).order  # opt-in only


@pytest.mark.parametrize("method,block,expert,scheme", [
    ("fp8_block", [128, 128], None, "fp8_block"), ("fp8", [128, 128], None, "fp8_block"),
    ("fp8_per_tensor", None, None, "fp8_per_tensor"), ("unquantized", None, None, "bf16"),
    ("mxfp4", None, None, "mxfp4"), ("nvfp4", None, None, "nvfp4"), ("fp8", [1, 32], None, "mxfp8"),
    ("fp8", [128, 128], "mxfp4", "mxfp4"), ("weird", None, None, "unknown:weird"),
])
def test_scheme_from_quant(method, block, expert, scheme):
    assert B.scheme_from_quant(method, expert_format=expert, block_size=block) == scheme


# ---- gpus ----
@pytest.mark.parametrize("text,label,arch", [
    ("B200", "B200", 100), ("b200", "B200", 100), ("rtx pro 6000", "RTX PRO 6000", 120), ("RTX-5090", "RTX 5090", 120),
    ("dgx-spark", "DGX Spark", 121), ("sm90", "sm90", 90), ("sm_103", "sm103", 103), ("12.1", "sm121", 121),
    ("GB300", "GB300", 103), ("H200", "H200", 90),
])
def test_parse_gpu_names_and_archs(text, label, arch):
    (t,) = gpus.parse_target(text)
    assert (t.label, t.arch) == (label, arch)


def test_all_expands_and_dedupes():
    ts = gpus.parse_targets(["all", "B200"])
    assert [t.label for t in ts] == [g.name for g in gpus.GPU_TABLE]


def test_unknown_gpu_suggests_close_match():
    with pytest.raises(BadInputError) as e:
        gpus.parse_target("B20")
    assert "B20" in e.value.message and "B200" in (e.value.hint or "")


def test_gpu_peaks_are_dense_and_sourced():
    for g in gpus.GPU_TABLE:
        assert g.dense and g.peaks_source and g.bandwidth_tbs > 0
        assert g.fp8_tflops == pytest.approx(2 * g.bf16_tflops, rel=0.01)
    assert gpus.gpu_by_name("H100").fp4_tflops is None


def test_nvidia_smi_parsing_without_torch():
    t = gpus.parse_nvidia_smi("NVIDIA H200, 9.0\n")
    assert (t.label, t.arch, t.local) == ("H200", 90, True)
    t = gpus.parse_nvidia_smi("NVIDIA L40S, 8.9\n")
    assert (t.label, t.arch) == ("sm89", 89)
    assert gpus.parse_nvidia_smi("") is None


def test_detect_local_gpu_absent(monkeypatch):
    monkeypatch.setattr(gpus.shutil, "which", lambda name: None)
    assert gpus.detect_local_gpu() is None


# ---- DeepSeek-V4 FP4 experts (vLLM v0.33 oracle/mxfp4.py select_deepseek_v4_mxfp4_moe_backend) ----
def test_detect_fp4_mixed_maps_to_the_deepseek_v4_scheme_not_gpt_oss_mxfp4():
    assert B.scheme_from_quant("fp4_mixed", expert_format="mxfp4", block_size=[128, 128]) == "fp4_mixed"
    assert B.QUANT_ALIASES["fp4-mixed"] == "fp4_mixed"


def test_trtllm_mxfp4_takes_silu_with_clamp_in_v033():
    # TrtLlmMxfp4ExpertsBase._supports_activation: SWIGLUOAI or SILU (swiglu_limit -> gemm1_clamp_limit)
    v4 = ctx(method="DeepseekV4", scheme="fp4_mixed", top_k=6, activation="silu", swiglu_limit=10.0)
    assert B.evaluate(row("trtllm_mxfp4_mod"), v4, 100).supported
    mono = B.evaluate(row("trtllm_mxfp4_mono"), v4, 103)
    assert mono.gate == "routing" and "DeepseekV4" in mono.reason


def test_deepseek_v4_auto_order_puts_humming_ahead_of_marlin_only_on_hopper():
    h = B.auto_order("fp4_mixed", 90).order
    b = B.auto_order("fp4_mixed", 100).order
    assert h[:3] == b[:3] == ("trtllm_mxfp4_mono", "trtllm_mxfp4_mod", "deep_gemm_mxfp4")
    assert h.index("humming") < h.index("marlin") and b.index("marlin") < b.index("humming")


def test_deepgemm_fp4_runs_on_blackwell_families_only():
    v4 = ctx(method="DeepseekV4", scheme="fp4_mixed", top_k=6)
    assert [a for a in sorted(B.ALL_ARCHS) if B.evaluate(row("deep_gemm_mxfp4"), v4, a).supported] == [100, 103, 120, 121]


def test_flashinfer_b12x_is_nvfp4_only():
    v = B.evaluate(row("flashinfer_b12x"), ctx(scheme="mxfp4", method="RenormalizeNaive", activation="swigluoai"), 120)
    assert v.gate == "quant" and "NVFP4" in v.reason


# ------------------------------------------------------------------ re-read from the vLLM v0.33.0 wheel
def test_mxint4_takes_fp32_router_logits_only_with_deepseekv3():
    # trtllm_mxint4_moe.py:97-105: float32 logits only for DeepSeekV3; bf16 for every listed method
    on = frozenset({"VLLM_USE_FLASHINFER_MOE_INT4"})
    qwen = ctx(method="RenormalizeNaive", scheme="int4", num_experts=128, top_k=8, router_dtype="float32",
               env_switches=on)
    v = B.evaluate(row("trtllm_mxint4_mono"), qwen, 100)
    assert v.gate == "logits" and "DeepSeekV3" in v.reason
    assert B.evaluate(row("trtllm_mxint4_mono"), ctx(method="RenormalizeNaive", scheme="int4", num_experts=128,
                                                     router_dtype="bfloat16", env_switches=on), 100).supported
    kimi = ctx(method="DeepSeekV3", scheme="int4", num_experts=384, top_k=8, n_group=1, topk_group=1,
               router_dtype="float32", env_switches=on)
    assert B.evaluate(row("trtllm_mxint4_mono"), kimi, 100).supported


def test_mxint4_needs_its_env_switch(monkeypatch):
    # flashinfer_mxint4_moe.py:24-31 + envs.py:221: VLLM_USE_FLASHINFER_MOE_INT4 defaults to 0
    monkeypatch.delenv("VLLM_USE_FLASHINFER_MOE_INT4", raising=False)
    c = ctx(method="DeepSeekV3", scheme="int4", num_experts=384, top_k=8, n_group=1, topk_group=1)
    v = B.evaluate(row("trtllm_mxint4_mono"), c, 100)
    assert v.gate == "env" and "VLLM_USE_FLASHINFER_MOE_INT4=1" in v.reason
    monkeypatch.setenv("VLLM_USE_FLASHINFER_MOE_INT4", "1")
    assert B.evaluate(row("trtllm_mxint4_mono"), c, 100).supported


def test_mxint4_accepts_swigluoai():
    c = ctx(method="Renormalize", scheme="int4", activation="swigluoai",
            env_switches=frozenset({"VLLM_USE_FLASHINFER_MOE_INT4"}))
    assert B.evaluate(row("trtllm_mxint4_mono"), c, 100).supported


def test_mxfp8_has_no_top_k_32_assert_but_fp8_block_does():
    # trtllm_fp8_moe.py:481 asserts top_k <= 32 only on the DeepSeek-FP8 branch; E <= 512 (:467) for both
    probs_block = B.kernel_limit_problems(ctx(top_k=40, num_experts=256), fp8_block_launcher=True)
    probs_mx = B.kernel_limit_problems(ctx(top_k=40, num_experts=256), fp8_block_launcher=True,
                                       launcher_topk_assert=False)
    assert any("asserts top_k <= 32" in p for p in probs_block)
    assert not any("asserts top_k <= 32" in p for p in probs_mx)
    assert row("trtllm_mxfp8_mono").launcher_topk_assert is False
    assert row("trtllm_fp8_block_mono").launcher_topk_assert is True


def test_allow_lists_match_the_v033_wheel():
    # REFERENCE §5 rows, re-read in the wheel's experts/*.py
    assert row("trtllm_bf16_mono").routing_methods == {"DeepSeekV3", "Llama4", "Renormalize", "RenormalizeNaive",
                                                      "SigmoidRenorm", "MiniMax2", "Sigmoid"}
    assert row("trtllm_mxfp4_mono").routing_methods == {"DeepSeekV3", "Renormalize", "RenormalizeNaive"}
    assert row("trtllm_mxint4_mono").routing_methods == {"Renormalize", "RenormalizeNaive", "DeepSeekV3", "Llama4"}
    assert row("trtllm_nvfp4_mono").routing_methods == {"DeepSeekV3", "Renormalize", "RenormalizeNaive", "Llama4",
                                                       "SigmoidRenorm", "Sigmoid", "MiniMax2"}
    assert "Llama4" not in row("trtllm_fp8_block_mono").routing_methods
    assert "Llama4" in row("trtllm_fp8_tensor_mono").routing_methods


@pytest.mark.parametrize("scheme, arch, first_weight_only", [
    ("nvfp4", 90, "humming"), ("nvfp4", 100, "marlin"),
    ("int4", 90, "humming"), ("int4", 100, "marlin"),
    ("mxfp8", 90, "humming"), ("mxfp8", 100, "marlin"),
    ("fp8_per_tensor", 90, "humming"), ("fp8_per_tensor", 100, "marlin"),
])
def test_prioritize_humming_only_on_hopper(scheme, arch, first_weight_only):
    # quantization/utils/humming/priority.py: HUMMING moves ahead of MARLIN on capability 90 only
    order = B.auto_order(scheme, arch).order
    pair = [k for k in order if k in ("humming", "marlin")]
    assert pair[0] == first_weight_only, order


def test_auto_orders_name_the_v033_backends():
    assert "triton" in B.auto_order("int4", 100).order  # int_wna16.py:133-142 TRITON (TritonWNA16Experts)
    mx = B.auto_order("mxfp8", 100).order  # mxfp8.py:20-32
    assert mx[:3] == ("trtllm_mxfp8_mono", "trtllm_mxfp8_mod", "deep_gemm")
    sm120 = B.auto_order("mxfp4", 120).order  # mxfp4.py:426-434: TRITON behind (BATCHED_)MARLIN on SM12x
    assert sm120.index("marlin") < sm120.index("triton")
    assert B.evaluate(row("deep_gemm"), ctx(scheme="mxfp8"), 100).supported
    assert B.evaluate(row("deep_gemm"), ctx(scheme="mxfp8"), 90).gate == "quant"


# ---- the layout gate: each class's _supports_parallel_config in vLLM 0.33.0 (fused_moe/experts/*.py) ----
def par(key, lay, **kw):
    c = ctx(**{**kw, "layout": lay})
    return B.evaluate(row(key), c, 100)


def test_tp_plus_ep_without_dp_keeps_every_monolithic_kernel():
    # use_all2all_kernels needs DP > 1 (fused_moe/config.py:1035-1038), so TP 8 + EP has no all2all
    lay = derive_layout(tp=8, ep_enabled=True)
    assert par("trtllm_fp8_block_mono", lay).supported
    assert par("trtllm_nvfp4_mono", lay, scheme="nvfp4").supported
    assert par("trtllm_mxfp4_mono", lay, scheme="mxfp4", method="RenormalizeNaive", activation="swigluoai").supported


def test_dp_ep_allgather_keeps_fp8_monolithic_but_not_nvfp4_or_mxfp4():
    lay = derive_layout(dp=8, ep_enabled=True)  # all2all on allgather_reducescatter
    assert par("trtllm_fp8_block_mono", lay).supported  # trtllm_fp8_moe.py:189-196 takes ag/rs
    v = par("trtllm_nvfp4_mono", lay, scheme="nvfp4")  # trtllm_nvfp4_moe.py:486-491: no all2all at all
    assert v.gate == "parallel" and "trtllm_nvfp4_moe.py:486-491" in v.reason
    assert par("trtllm_nvfp4_mod", lay, scheme="nvfp4").supported
    assert par("trtllm_bf16_mono", lay, scheme="bf16").supported  # trtllm_bf16_moe.py:248-255
    assert par("trtllm_bf16_mod", lay, scheme="bf16").gate == "parallel"  # needs a non-ag/rs all2all


def test_mxfp4_monolithic_needs_dp_1_even_without_ep():
    v = par("trtllm_mxfp4_mono", derive_layout(dp=2), scheme="mxfp4", method="RenormalizeNaive")
    assert v.gate == "parallel" and "data-parallel size 1" in v.reason  # trtllm_mxfp4_moe.py:176-183


def test_sequence_parallel_moe_rejects_fp8_monolithic():
    lay = derive_layout(tp=2, dp=2, ep_enabled=True)
    assert lay.sequence_parallel_moe
    v = par("trtllm_fp8_block_mono", lay)
    assert v.gate == "parallel" and "sequence-parallel" in v.reason
    assert par("trtllm_fp8_block_mod", lay).supported  # trtllm_fp8_moe.py:203-210 has no SP clause


def test_eplb_rejects_trtllm_fp8_both_classes_but_not_nvfp4_modular():
    lay = derive_layout(tp=8, ep_enabled=True, eplb=True)
    assert par("trtllm_fp8_block_mono", lay).gate == "parallel"
    assert par("trtllm_fp8_block_mod", lay).gate == "parallel"
    assert par("trtllm_nvfp4_mod", lay, scheme="nvfp4").supported  # "supports all parallel configs"


def test_low_latency_all2all_needs_batched_classes():
    lay = derive_layout(dp=8, ep_enabled=True, all2all_backend="deepep_low_latency")
    v = par("triton", lay)
    assert v.gate == "parallel" and "batched activation format" in v.reason


def test_b12x_refuses_expert_parallelism():
    v = B.evaluate(row("flashinfer_b12x"), ctx(scheme="nvfp4", layout=derive_layout(tp=2, ep_enabled=True)), 120)
    assert v.gate == "parallel"  # flashinfer_b12x_moe.py:199-202: not use_ep
    assert B.evaluate(row("flashinfer_b12x"), ctx(scheme="nvfp4", layout=derive_layout(tp=2)), 120).supported


def test_bf16_dp_moves_flashinfer_cutlass_to_the_back():
    # oracle/unquantized.py:68-97: FLASHINFER_TRTLLM, FLASHINFER_CUTLASS, TRITON; dp_size > 1 -> CUTLASS last
    assert B.auto_order("bf16", 100, derive_layout(tp=8)).order == (
        "trtllm_bf16_mono", "trtllm_bf16_mod", "flashinfer_cutlass", "triton")
    assert B.auto_order("bf16", 100, derive_layout(dp=8, ep_enabled=True)).order == (
        "trtllm_bf16_mono", "trtllm_bf16_mod", "triton", "flashinfer_cutlass")
    assert B.auto_order("bf16", 90, derive_layout()).order[0] == "triton"


def test_flashinfer_version_without_the_method_fails_monolithic():
    # FlashInfer 0.6.7's RoutingMethodType has no MiniMax2 (added in 0.6.8, PR #2803)
    from moe_inspect import enums

    old = ctx(flashinfer_version="0.6.7", flashinfer_methods=frozenset(enums.flashinfer_enum("0.6.7")))
    v = B.evaluate(row("trtllm_fp8_block_mono"), old, 100)
    assert v.gate == "fi-version" and "0.6.7" in v.reason and "MiniMax2" in v.reason
    assert B.evaluate(row("trtllm_fp8_block_mod"), old, 100).supported  # vLLM routes in Python


def test_gate_vocabulary_is_documented():
    assert set(B.GATE_MEANING) == set(B.GATES)
    doc = (__import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "check.md").read_text()
    for g in B.GATES:
        assert f"`{g}`" in doc, g


# Fp8BlockScaleLauncher::check_routing, flashinfer-python 0.7.2.post1 data/csrc/trtllm_fused_moe_kernel_launcher.cu:
#   :4278  TVM_FFI_ICHECK_GT(args->num_experts, args->top_k) << "num_experts must be greater than top_k";
#   :4258  TVM_FFI_ICHECK_LT(args->top_k, (args->topk_group * args->num_experts / args->n_group))
# MXFP8 and DeepSeek FP8-block both launch through it (trtllm_fp8_block_scale_moe).
@pytest.mark.parametrize("key,scheme", [("trtllm_fp8_block_mono", "fp8_block"), ("trtllm_mxfp8_mono", "mxfp8")])
def test_fp8_block_launcher_needs_more_experts_than_top_k(key, scheme):
    v = B.evaluate(row(key), ctx(method="Renormalize", num_experts=8, top_k=8, scheme=scheme), 100)
    assert not v.supported and v.gate == "limits"
    assert "experts > top_k (E=8, k=8" in v.reason and "launcher.cu:4278" in v.reason
    assert B.evaluate(row(key), ctx(method="Renormalize", num_experts=12, top_k=8, scheme=scheme), 100).supported


@pytest.mark.parametrize("key,scheme", [("trtllm_fp8_block_mono", "fp8_block"), ("trtllm_mxfp8_mono", "mxfp8")])
def test_fp8_block_launcher_grouped_top_k_below_kept_groups_experts(key, scheme):
    # E=64 in 8 groups of 8, topk_group=1: 1*64/8 = 8 experts to pick from, so k=8 fails (8 < 8 is false), k=7 runs
    c = dict(method="DeepSeekV3", num_experts=64, n_group=8, topk_group=1, scheme=scheme)
    v = B.evaluate(row(key), ctx(top_k=8, **c), 100)
    assert not v.supported and v.gate == "limits" and "top_k < topk_group·E/n_group = 8 (k=8" in v.reason
    assert B.evaluate(row(key), ctx(top_k=7, **c), 100).supported
    # topk_group=2: 2*64/8 = 16 > 8, the same k=8 runs
    assert B.evaluate(row(key), ctx(top_k=8, **{**c, "topk_group": 2}), 100).supported


def test_the_launcher_checks_are_where_we_cite_them():
    fi = pytest.importorskip("flashinfer")
    import os

    cu = open(os.path.join(os.path.dirname(fi.__file__), "data/csrc/trtllm_fused_moe_kernel_launcher.cu")).readlines()
    assert "TVM_FFI_ICHECK_GT(args->num_experts, args->top_k)" in cu[4278 - 1]
    assert "TVM_FFI_ICHECK_LT(args->top_k, (args->topk_group * args->num_experts / args->n_group))" in cu[4258 - 1]
    assert "class Fp8BlockScaleLauncher" in cu[4140 - 1]
