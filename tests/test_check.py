"""check core: ModelDescriptions built directly (and end-to-end through the catalog) against GPU targets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moe_inspect import check as C
from moe_inspect import gpus
from moe_inspect.errors import BadInputError
from moe_inspect.spec import ModelDescription, ModelRef, MoESpec, QuantInfo, RoutingResult


def desc(method: str, *, E=256, k=8, scoring="sigmoid", bias=True, quant="fp8_block", n_group=None, topk_group=None,
         activation="silu", hash_layers=0, custom=None, router_dtype=None, mid="test/model") -> ModelDescription:
    moe = MoESpec(model_type="t", architecture="T", family="t", num_experts=E, top_k=k, scoring_func=scoring,
                  has_correction_bias=bias, renormalize=True, n_group=n_group, topk_group=topk_group,
                  activation=activation, num_hash_layers=hash_layers, custom_routing=custom, router_dtype=router_dtype)
    r = RoutingResult(method=method, vllm_value=None, flashinfer_value=None, flashinfer_name=None, rule="test",
                      router="FusedTopKRouter", vllm_version="0.33", flashinfer_version="0.7.2.post1")
    q = QuantInfo(method=quant, block_size=[128, 128] if quant == "fp8_block" else None)
    return ModelDescription(model=ModelRef(id=mid, source="local"), moe=moe, routing=r, quantization=q)


def T(*names):
    return gpus.parse_targets(list(names))


def verdict(report, target_label, name):
    t = next(t for t in report.targets if t.target.label == target_label)
    return next(v for v in t.verdicts if v.backend.name == name)


MINIMAX = dict(E=256, k=8, scoring="sigmoid", bias=True, quant="fp8_block")


def test_minimax_fp8_b200_monolithic_and_h100_cutlass():
    rep = C.check(desc("MiniMax2", **MINIMAX), T("B200", "H100"))
    assert verdict(rep, "B200", "TRT-LLM FP8 block monolithic").supported
    assert rep.targets[0].auto_choice.backend.name == "TRT-LLM FP8 block monolithic"
    v = verdict(rep, "H100", "TRT-LLM FP8 block monolithic")
    assert (v.supported, v.gate) == (False, "arch")
    assert verdict(rep, "H100", "FlashInfer CUTLASS").supported
    assert rep.to_dict()["routing"]["method"] == "MiniMax2"


def test_deepseek_v3_grouped_fits_and_variant_over_tier_names_limit():
    ok = C.check(desc("DeepSeekV3", E=256, k=8, n_group=8, topk_group=4), T("B200"))
    assert verdict(ok, "B200", "TRT-LLM FP8 block monolithic").supported
    bad = C.check(desc("DeepSeekV3", E=512, k=8, n_group=16, topk_group=4), T("B200"))
    v = verdict(bad, "B200", "TRT-LLM FP8 block monolithic")
    assert not v.supported and v.gate == "limits" and "256" in v.reason
    # vLLM silently falls back to the modular TRT-LLM class
    t = bad.targets[0]
    assert t.auto_choice.backend.name == "TRT-LLM FP8 block modular"
    assert [x.backend.name for x in t.auto_trace] == ["TRT-LLM FP8 block monolithic"]


def test_gpt_oss_mxfp4_b200():
    d = desc("RenormalizeNaive", E=32, k=4, scoring="softmax", bias=False, quant="mxfp4", activation="swigluoai")
    rep = C.check(d, T("B200"))
    assert verdict(rep, "B200", "TRT-LLM MXFP4 monolithic").supported
    assert rep.targets[0].auto_choice.backend.key == "trtllm_mxfp4_mono"


def test_ernie_like_softmax_bias_unspecified_modular_only():
    d = desc("Unspecified", E=64, k=6, scoring="softmax", bias=True, quant="fp8_block")
    rep = C.check(d, T("B200"), require="fused-routing")
    v = verdict(rep, "B200", "TRT-LLM FP8 block monolithic")
    assert v.reason == "routing method Unspecified is not implemented by the fused router (softmax + correction bias)"
    assert verdict(rep, "B200", "TRT-LLM FP8 block modular").supported
    t = rep.targets[0]
    assert not t.fused_routing and t.flashinfer and rep.requirement_met is False
    assert C.check(d, T("B200"), require="flashinfer").requirement_met is True


def test_deepseek_v4_hash_layers_reject_monolithic():
    d = desc("DeepseekV4", E=256, k=6, scoring="sqrtsoftplus", hash_layers=3, quant="nvfp4")
    rep = C.check(d, T("B200"))
    v = verdict(rep, "B200", "TRT-LLM NVFP4 monolithic")
    assert v.gate == "hash"
    assert verdict(rep, "B200", "TRT-LLM NVFP4 modular").supported


@pytest.mark.parametrize("quant,row", [("nvfp4", "TRT-LLM NVFP4 monolithic"), ("bf16", "TRT-LLM BF16 monolithic")])
def test_llama4_e16_k1_monolithic(quant, row):
    d = desc("Llama4", E=16, k=1, scoring="sigmoid", bias=False, quant="unquantized", custom="llama4")
    rep = C.check(d, T("B200"), quant=quant)
    assert verdict(rep, "B200", row).supported
    assert rep.scheme_source == "--quant"


def test_e_not_multiple_of_4_rejected():
    d = desc("RenormalizeNaive", E=62, k=4, scoring="softmax", bias=False, quant="unquantized")
    v = verdict(C.check(d, T("B200")), "B200", "TRT-LLM BF16 monolithic")
    assert not v.supported and "E % 4" in v.reason


def test_quant_override_and_bad_quant():
    rep = C.check(desc("MiniMax2", **MINIMAX), T("B200"), quant="nvfp4")
    assert rep.ctx.scheme == "nvfp4"
    assert verdict(rep, "B200", "TRT-LLM NVFP4 monolithic").supported
    with pytest.raises(BadInputError, match="--quant fp9"):
        C.check(desc("MiniMax2", **MINIMAX), T("B200"), quant="fp9")


def test_contradictory_require_and_backend_is_bad_input():
    with pytest.raises(BadInputError, match="fused-routing"):
        C.check(desc("MiniMax2", **MINIMAX), T("B200"), backends=["trtllm_fp8_block_mod"], require="fused-routing")
    with pytest.raises(BadInputError, match="--require flashinfer"):
        C.check(desc("MiniMax2", **MINIMAX), T("B200"), backends=["triton"], require="flashinfer")


def test_backend_filter_selects_rows():
    rep = C.check(desc("MiniMax2", **MINIMAX), T("H100"), backends=["flashinfer_cutlass", "deep_gemm"])
    assert [v.backend.key for v in rep.targets[0].verdicts] == ["flashinfer_cutlass", "deep_gemm"]


def test_markdown_has_matrix():
    from moe_inspect.cli.check import to_markdown

    md = to_markdown(C.check(desc("MiniMax2", **MINIMAX), T("B200", "H100")))
    assert "| backend | kind | B200 | H100 |" in md and "vLLM picks" in md and "| **starts** | | yes | yes |" in md


def test_version_warning_uses_metadata_only():
    assert C.flashinfer_version_warning("0.7.2.post1") is None
    assert "0.6.7" in C.flashinfer_version_warning("0.6.7")
    assert C.flashinfer_version_warning(None) is None


def test_cross_check_against_installed_flashinfer():
    pytest.importorskip("flashinfer")
    assert C.cross_check_flashinfer() == []


# ---- end to end through the catalog (detect pipeline) ----
def _catalog_desc(mid: str):
    from moe_inspect import catalog
    from moe_inspect.detect import describe_files

    return describe_files(catalog.lookup(mid))


def test_e2e_minimax_m25_catalog():
    rep = C.check(_catalog_desc("MiniMaxAI/MiniMax-M2.5"), T("B200", "H100"))
    assert rep.ctx.method == "MiniMax2" and rep.ctx.scheme == "fp8_block"
    assert verdict(rep, "B200", "TRT-LLM FP8 block monolithic").supported
    assert verdict(rep, "H100", "FlashInfer CUTLASS").supported


def test_e2e_deepseek_v3_and_gpt_oss_catalog():
    rep = C.check(_catalog_desc("deepseek-ai/DeepSeek-V3"), T("B200"), require="fused-routing")
    assert rep.requirement_met is True
    rep = C.check(_catalog_desc("openai/gpt-oss-20b"), T("B200"))
    assert verdict(rep, "B200", "TRT-LLM MXFP4 monolithic").supported


def test_check_imports_neither_torch_nor_flashinfer():
    code = ("import sys; from moe_inspect import check, gpus, catalog; from moe_inspect.detect import describe_files;"
            "d = describe_files(catalog.lookup('MiniMaxAI/MiniMax-M2.5'));"
            "r = check.check(d, gpus.parse_targets(['all'])); r.to_dict();"
            "bad = [m for m in ('torch', 'flashinfer', 'transformers') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_docs_support_matrix_is_current():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "scripts/gen_support_matrix.py", "--check"], cwd=root, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr + "\n(regenerate with: python scripts/gen_support_matrix.py)"


# ---- DeepSeek-V4 FP4 experts: what vLLM v0.33 runs (models/deepseek_v4/quant_config.py ->
# Mxfp4MoEMethod -> oracle/mxfp4.py select_deepseek_v4_mxfp4_moe_backend) ----
V4 = dict(E=256, k=6, scoring="sqrtsoftplus", bias=True, quant="fp4_mixed", hash_layers=3)


def test_deepseek_v4_b200_b300_run_trtllm_mxfp4_modular_after_monolithic_is_rejected():
    rep = C.check(desc("DeepseekV4", **V4), T("B200", "B300"), require="flashinfer")
    assert rep.ctx.scheme == "fp4_mixed" and rep.requirement_met is True
    for t in rep.targets:
        mono = next(v for v in t.verdicts if v.backend.key == "trtllm_mxfp4_mono")
        assert mono.gate == "hash" and "DeepseekV4" in mono.reason  # both reasons named
        assert t.auto_choice.backend.key == "trtllm_mxfp4_mod"
        assert [v.backend.key for v in t.auto_trace] == ["trtllm_mxfp4_mono"]
        assert not t.fused_routing and t.flashinfer
    assert C.check(desc("DeepseekV4", **V4), T("B200"), require="fused-routing").requirement_met is False


def test_deepseek_v4_without_hash_layers_still_fails_the_routing_method_gate():
    d = desc("DeepseekV4", **{**V4, "hash_layers": 0})
    v = verdict(C.check(d, T("B200")), "B200", "TRT-LLM MXFP4 monolithic")
    assert v.gate == "routing" and "DeepseekV4" in v.reason


def test_deepseek_v4_h100_auto_is_humming_and_flashinfer_only_when_forced():
    rep = C.check(desc("DeepseekV4", **V4), T("H100"))
    t = rep.targets[0]
    assert t.auto_choice.backend.key == "humming"
    assert [v.backend.key for v in t.auto_trace] == ["trtllm_mxfp4_mono", "trtllm_mxfp4_mod", "deep_gemm_mxfp4"]
    assert verdict(rep, "H100", "Marlin").supported
    assert verdict(rep, "H100", "FlashInfer CUTLASS").supported  # MXFP4 × BF16, --moe-backend flashinfer_cutlass
    assert t.flashinfer and not t.fused_routing


def test_deepseek_v4_sm120_auto_is_deepgemm_fp4():
    t = C.check(desc("DeepseekV4", **V4), T("RTX PRO 6000")).targets[0]
    assert t.auto_choice.backend.key == "deep_gemm_mxfp4"


def test_e2e_deepseek_v4_flash_catalog_verdicts():
    rep = C.check(_catalog_desc("deepseek-ai/DeepSeek-V4-Flash"), T("B200", "H100"))
    assert rep.ctx.scheme == "fp4_mixed" and rep.ctx.swiglu_limit == 10.0
    b200, h100 = rep.targets
    assert b200.auto_choice.backend.name == "TRT-LLM MXFP4 modular"
    assert h100.auto_choice.backend.name == "Humming"
    d = rep.to_dict()
    assert d["quantization"]["label"] == "MXFP4 (DeepSeek-V4)" and d["swiglu_limit"] == 10.0
    assert "TrtllmFp4Config" in {u["config"] for u in d["targets"][0]["flashinfer_unified_api"]}
