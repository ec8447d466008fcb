"""Routing-method resolution: which RoutingMethodType vLLM computes, and the ids it means."""

import pytest

from moe_inspect.errors import BadInputError
from moe_inspect.routing import (
    SGLANG_LABELS,
    SGLANG_ROWS,
    get_routing_method_type,
    resolve,
    sglang_can_bypass_trtllm_routing,
    sglang_routing,
)
from moe_inspect.spec import MoESpec


def spec(**kw) -> MoESpec:
    d = dict(model_type="test_moe", architecture=None, family="generic", num_experts=64, top_k=8,
             scoring_func="softmax", has_correction_bias=False, renormalize=True)
    d.update(kw)
    return MoESpec(**d)


# ---------------------------------------------------------------- §3.1, one test per row (v0.33)
@pytest.mark.parametrize(
    "scoring, bias, renorm, groups, expected",
    [
        ("sqrtsoftplus", True, True, None, "DeepseekV4"),
        ("sqrtsoftplus", False, True, 4, "DeepseekV4"),
        ("sqrtsoftplus", True, False, None, "Unspecified"),
        ("sigmoid", True, False, 8, "Unspecified"),
        ("sigmoid", True, True, 8, "DeepSeekV3"),
        ("sigmoid", True, True, None, "MiniMax2"),
        ("sigmoid", True, True, 0, "MiniMax2"),
        ("softmax", True, True, None, "Unspecified"),
        ("softmax", True, False, 4, "Unspecified"),
        ("sigmoid", False, True, None, "SigmoidRenorm"),
        ("sigmoid", False, False, 4, "Sigmoid"),
        ("softmax", False, True, None, "RenormalizeNaive"),
        ("softmax", False, False, 8, "Default"),
        ("relu", False, True, None, "Unspecified"),
    ],
)
def test_v033_get_routing_method_type_rows(scoring, bias, renorm, groups, expected):
    method, _ = get_routing_method_type(scoring, 8, renorm, groups, bias, 2.5, "0.33")
    assert method == expected


def test_v033_minimax2_ignores_routed_scaling_factor():
    for rsf in (None, 1.0, 2.5):
        assert get_routing_method_type("sigmoid", 8, True, None, True, rsf, "0.33")[0] == "MiniMax2"


def test_v033_never_returns_renormalize_llama4_or_topk():
    seen = set()
    for s in ("softmax", "sigmoid", "sqrtsoftplus", "x"):
        for b in (True, False):
            for r in (True, False):
                for g in (None, 0, 1, 8):
                    for k in (1, 8):
                        seen.add(get_routing_method_type(s, k, r, g, b, 1.0, "0.33")[0])
    assert not seen & {"Renormalize", "Llama4", "TopK"}


# ---------------------------------------------------------------- history rows
@pytest.mark.parametrize(
    "scoring, top_k, bias, renorm, groups, rsf, expected",
    [
        ("softmax", 8, False, True, None, 1.0, "Renormalize"),
        ("softmax", 8, False, False, None, 1.0, "Default"),
        ("sigmoid", 1, False, False, None, 1.0, "Llama4"),
        ("sigmoid", 8, False, True, None, 1.0, "Unspecified"),
        ("sigmoid", 8, True, True, 8, 2.5, "DeepSeekV3"),
        ("sigmoid", 8, True, True, None, 1.0, "Unspecified"),  # MiniMax2 did not exist
        ("softmax", 8, True, True, 8, 1.0, "Unspecified"),
        ("sqrtsoftplus", 6, True, True, None, 1.5, "Unspecified"),  # DeepseekV4 did not exist
    ],
)
def test_pre_39141_rows(scoring, top_k, bias, renorm, groups, rsf, expected):
    assert get_routing_method_type(scoring, top_k, renorm, groups, bias, rsf, "pre-39141")[0] == expected


@pytest.mark.parametrize(
    "scoring, top_k, bias, renorm, groups, expected",
    [
        ("sqrtsoftplus", 6, True, True, None, "DeepseekV4"),
        ("sqrtsoftplus", 6, True, False, None, "Unspecified"),
        ("sigmoid", 8, True, True, 8, "DeepSeekV3"),
        ("sigmoid", 8, True, False, 8, "DeepSeekV3"),  # renormalize not yet required
        ("sigmoid", 8, True, False, None, "MiniMax2"),
        ("softmax", 8, True, True, None, "Unspecified"),
        ("sigmoid", 1, False, False, None, "Llama4"),
        ("sigmoid", 8, False, True, None, "SigmoidRenorm"),
        ("sigmoid", 8, False, False, None, "Unspecified"),
        ("softmax", 8, False, True, None, "Renormalize"),
        ("softmax", 8, False, False, None, "Default"),
    ],
)
def test_39141_rows(scoring, top_k, bias, renorm, groups, expected):
    assert get_routing_method_type(scoring, top_k, renorm, groups, bias, 2.5, "39141")[0] == expected


@pytest.mark.parametrize(
    "bias, renorm, groups, rsf, expected",
    [
        (True, False, 8, 1.0, "Unspecified"),  # bias paths need renormalize
        (True, True, 8, 2.5, "DeepSeekV3"),
        (True, True, None, 1.0, "MiniMax2"),
        (True, True, None, None, "MiniMax2"),
        (True, True, None, 2.5, "Unspecified"),  # Step-3.7: MiniMax2 gated on unit scale
        (False, True, None, 2.5, "SigmoidRenorm"),
        (False, False, None, 2.5, "Sigmoid"),
    ],
)
def test_44347_rows(bias, renorm, groups, rsf, expected):
    assert get_routing_method_type("sigmoid", 8, renorm, groups, bias, rsf, "44347")[0] == expected


def test_44347_softmax_is_renormalize_naive():
    assert get_routing_method_type("softmax", 8, True, None, False, 1.0, "44347")[0] == "RenormalizeNaive"


# vLLM 0.20.0 / 0.20.2 wheels fused_moe/config.py:126-159 (same text): sqrtsoftplus is tested first
# (:133-139), then the 0.19.1 branches unchanged: no MiniMax2, no SigmoidRenorm, softmax + renormalize
# -> Renormalize (:155).
@pytest.mark.parametrize(
    "scoring, top_k, bias, renorm, groups, expected",
    [
        ("sqrtsoftplus", 6, True, True, None, "DeepseekV4"),  # :136-137
        ("sqrtsoftplus", 6, False, True, 4, "DeepseekV4"),  # before the bias branch
        ("sqrtsoftplus", 6, True, False, None, "Unspecified"),  # :138-139
        ("sigmoid", 8, True, True, 8, "DeepSeekV3"),  # :142-143
        ("sigmoid", 8, True, True, None, "Unspecified"),  # :144-145, MiniMax2 not yet
        ("softmax", 8, True, True, 8, "Unspecified"),  # :145
        ("sigmoid", 1, False, False, None, "Llama4"),  # :148-149
        ("sigmoid", 8, False, True, None, "Unspecified"),  # :150-151, SigmoidRenorm not yet
        ("softmax", 8, False, True, None, "Renormalize"),  # :154-155
        ("softmax", 8, False, False, None, "Default"),  # :156-157
        ("custom", 8, False, True, None, "Unspecified"),  # :159
    ],
)
def test_v020_rows(scoring, top_k, bias, renorm, groups, expected):
    for version in ("0.20", "0.20.0", "0.20.2"):
        assert get_routing_method_type(scoring, top_k, renorm, groups, bias, 1.0, version)[0] == expected


# vLLM 0.22.0 / 0.22.1 wheels fused_moe/config.py:129-166 (same text): 0.21.0's function except
# softmax + renormalize -> RenormalizeNaive (:160-162).
@pytest.mark.parametrize(
    "scoring, top_k, bias, renorm, groups, expected",
    [
        ("sqrtsoftplus", 6, True, True, None, "DeepseekV4"),  # :139-140
        ("sqrtsoftplus", 6, True, False, None, "Unspecified"),  # :141-142
        ("sigmoid", 8, True, False, 8, "DeepSeekV3"),  # :145-146, renormalize not looked at
        ("sigmoid", 8, True, False, None, "MiniMax2"),  # :147-148
        ("softmax", 8, True, True, None, "Unspecified"),  # :149-150
        ("sigmoid", 1, False, False, None, "Llama4"),  # :153-154
        ("sigmoid", 8, False, True, None, "SigmoidRenorm"),  # :155-156
        ("sigmoid", 8, False, False, None, "Unspecified"),  # :157-158
        ("softmax", 8, False, True, None, "RenormalizeNaive"),  # :161-162
        ("softmax", 8, False, False, None, "Default"),  # :163-164
    ],
)
def test_v022_rows(scoring, top_k, bias, renorm, groups, expected):
    for version in ("0.22", "0.22.0", "0.22.1"):
        assert get_routing_method_type(scoring, top_k, renorm, groups, bias, 2.5, version)[0] == expected


def test_deepseek_v4_on_vllm_020_is_8_and_collides_with_flashinfer_sigmoid():
    """vLLM 0.20.x: DeepseekV4 = 8 (config.py:121), not the internal 100 of 0.21.0+; FlashInfer
    0.7.2.post1 (tllm_enums.py) has Sigmoid = 8 and no DeepseekV4."""
    s = spec(model_type="deepseek_v4", scoring_func="sqrtsoftplus", has_correction_bias=True,
             top_k=6, num_experts=256, routed_scaling_factor=1.5, num_hash_layers=3)
    r = resolve(s, vllm_version="0.20.1")
    assert (r.method, r.vllm_value, r.flashinfer_value, r.flashinfer_name) == ("DeepseekV4", 8, None, "Sigmoid")
    assert r.vllm_version == "0.20.1" and "vLLM 0.20.x get_routing_method_type" in r.rule
    assert r.fused_routing_possible is False
    assert any("enum drift: vLLM 0.20.1 sends DeepseekV4 as 8" in w and "reads 8 as Sigmoid" in w
               for w in r.warnings)
    assert not any("vLLM-internal" in w for w in r.warnings)
    # one release later the same model is the internal 100; one release earlier Unspecified (8)
    assert (resolve(s, vllm_version="0.21.0").method, resolve(s, vllm_version="0.21.0").vllm_value) == ("DeepseekV4", 100)
    assert (resolve(s, vllm_version="0.19.1").method, resolve(s, vllm_version="0.19.1").vllm_value) == ("Unspecified", 8)


@pytest.mark.parametrize("release, method, value", [
    ("0.19.1", "Renormalize", 1), ("0.20.2", "Renormalize", 1), ("0.21.0", "Renormalize", 1),
    ("0.22.0", "RenormalizeNaive", 4), ("0.22.1", "RenormalizeNaive", 4), ("0.23.0", "RenormalizeNaive", 4),
])
def test_qwen3_30b_a3b_softmax_renormalize_by_release(release, method, value):
    """Qwen3-30B-A3B (softmax, norm_topk_prob true, no bias): Renormalize up to 0.21.0,
    RenormalizeNaive from 0.22.0 (0.22.x wheels config.py:160-162)."""
    from moe_inspect import catalog
    from moe_inspect.detect import describe_files

    r = describe_files(catalog.lookup("Qwen/Qwen3-30B-A3B"), vllm_version=release).routing
    assert (r.method, r.vllm_value, r.router) == (method, value, "FusedTopKRouter")
    assert r.vllm_version == release


@pytest.mark.parametrize("typed, shown", [
    ("0.19.1", "0.19.1"), ("v0.33.0", "0.33.0"), ("0.19", "0.19"),
    ("pre-39141", "pre-39141"), ("#44347", "44347"), ("0.22", "0.22"), ("0.33", "0.33"),
])
def test_result_names_the_release_typed(typed, shown):
    assert resolve(spec(), vllm_version=typed).vllm_version == shown


def test_detect_shows_the_release_typed():
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app

    r = CliRunner().invoke(app, ["detect", "MiniMaxAI/MiniMax-M2.5", "--offline", "--vllm-version", "0.19.1"])
    assert r.exit_code == 0, r.output
    # MiniMax-M2.5 (sigmoid + bias, no groups) is Unspecified = 8 in vLLM 0.19.1 (config.py:102-123)
    assert "vLLM 0.19.1: 8" in r.stdout and "pre-39141: " not in r.stdout


# ---------------------------------------------------------------- §3.2 router rules
def test_zero_expert_router():
    r = resolve(spec(model_type="longcat_flash", has_correction_bias=True, renormalize=False,
                     zero_expert_num=256, zero_expert_type="identity"))
    assert r.router == "ZeroExpertRouter"
    assert r.method == "Unspecified" and r.vllm_value == 9
    assert r.fused_routing_possible is False
    assert any("zero/identity experts" in w for w in r.warnings)
    assert any("selection bias" in w for w in r.warnings)


def test_grouped_router_kept_for_real_groups():
    r = resolve(spec(model_type="deepseek_v3", scoring_func="sigmoid", has_correction_bias=True,
                     n_group=8, topk_group=4, use_grouped_topk=True, routed_scaling_factor=2.5,
                     topk_method="noaux_tc", num_experts=256))
    assert r.router == "GroupedTopKRouter"
    assert (r.method, r.vllm_value, r.flashinfer_value, r.flashinfer_name) == (
        "DeepSeekV3", 2, 2, "DeepSeekV3")
    assert r.inputs["num_expert_group"] == 8 and r.inputs["has_e_score_bias"] is True
    assert r.fused_routing_possible and r.warnings == []
    assert r.sglang_label.startswith("DeepSeekV3") and "kernel may route" in r.sglang_label


@pytest.mark.parametrize("model_type, rsf", [("kimi_k2", 2.827), ("glm4_moe", 2.5), ("glm_moe_dsa", 2.5)])
def test_n_group_one_sigmoid_bias_trap_stays_deepseekv3(model_type, rsf):
    # Kimi-K2, GLM-4.7, GLM-5: n_group = topk_group = 1 -> grouped router kept, not MiniMax2
    r = resolve(spec(model_type=model_type, scoring_func="sigmoid", has_correction_bias=True,
                     n_group=1, topk_group=1, use_grouped_topk=True, routed_scaling_factor=rsf,
                     num_experts=384))
    assert r.router == "GroupedTopKRouter"
    assert r.method == "DeepSeekV3" and r.vllm_value == 2
    assert "MiniMax2" in r.rule  # says why it did not fall through


def test_degenerate_groups_fall_through_deepseek_v2_lite():
    r = resolve(spec(model_type="deepseek_v2", scoring_func="softmax", renormalize=False,
                     n_group=1, topk_group=1, use_grouped_topk=True, routed_scaling_factor=1.0,
                     topk_method="greedy"))
    assert r.router == "FusedTopKRouter"
    assert r.method == "Default" and r.vllm_value == 0
    assert "falls through" in r.rule
    assert r.warnings == []
    # SGLang hard-codes DeepSeekV3 in deepseek_v2.py, which does not match softmax routing
    assert "SGLang routes in Python" in r.sglang_label


def test_degenerate_groups_but_scale_not_handled_stays_grouped():
    r = resolve(spec(scoring_func="softmax", renormalize=False, n_group=1, topk_group=1,
                     use_grouped_topk=True, routed_scaling_factor=2.0))
    assert r.router == "GroupedTopKRouter" and r.method == "Default"


def test_custom_router_llama4():
    r = resolve(spec(model_type="llama4", scoring_func="sigmoid", custom_routing="llama4",
                     top_k=1, renormalize=False, num_experts=16))
    assert r.router == "CustomRoutingRouter"
    assert (r.method, r.vllm_value, r.flashinfer_value) == ("Llama4", 3, 3)
    assert r.fused_routing_possible
    assert r.sglang_label.startswith("Llama4")


@pytest.mark.parametrize("renorm, expected, value", [(True, "SigmoidRenorm", 6), (False, "Sigmoid", 8)])
def test_custom_router_cohere2(renorm, expected, value):
    r = resolve(spec(model_type="cohere2_moe", scoring_func="sigmoid", custom_routing="cohere2_sigmoid",
                     renormalize=renorm))
    assert r.router == "CustomRoutingRouter"
    assert (r.method, r.vllm_value, r.flashinfer_value) == (expected, value, value)
    assert r.sglang_label.startswith(expected)


def test_custom_router_other_is_custom_101():
    r = resolve(spec(model_type="phimoe", scoring_func="custom", custom_routing="phimoe", top_k=2))
    assert r.router == "CustomRoutingRouter"
    assert (r.method, r.vllm_value, r.flashinfer_value, r.flashinfer_name) == ("Custom", 101, None, None)
    assert r.fused_routing_possible is False
    assert any("must never reach a FlashInfer kernel" in w for w in r.warnings)
    assert any("sparsemixer" in w for w in r.warnings)


def test_fused_topk_bias_router_minimax_m25():
    r = resolve(spec(model_type="minimax_m2", scoring_func="sigmoid", has_correction_bias=True,
                     num_experts=256, routed_scaling_factor=None))
    assert r.router == "FusedTopKBiasRouter"
    assert (r.method, r.vllm_value, r.flashinfer_value, r.flashinfer_name) == ("MiniMax2", 7, 7, "MiniMax2")
    assert r.inputs == {"scoring_func": "sigmoid", "top_k": 8, "renormalize": True,
                        "routed_scaling_factor": None, "num_expert_group": None,
                        "has_e_score_bias": True}
    assert "sigmoid + correction bias + renormalize, no expert groups -> MiniMax2" in r.rule
    assert "v0.33" in r.rule
    assert r.warnings == [] and r.fused_routing_possible
    assert "none (SGLang routes in Python)" in r.sglang_label


def test_fused_topk_router_qwen3():
    r = resolve(spec(model_type="qwen3_moe", num_experts=128))
    assert r.router == "FusedTopKRouter"
    assert (r.method, r.vllm_value, r.flashinfer_value) == ("RenormalizeNaive", 4, 4)
    assert r.inputs["has_e_score_bias"] is False and r.inputs["num_expert_group"] is None
    assert r.sglang_label.startswith("Renormalize (declared in qwen3_moe.py)")


# ---------------------------------------------------------------- DeepSeek-V4, patterns
def test_deepseek_v4_is_internal_100_with_warning():
    r = resolve(spec(model_type="deepseek_v4", scoring_func="sqrtsoftplus", has_correction_bias=True,
                     top_k=6, num_experts=256, routed_scaling_factor=1.5, num_hash_layers=3))
    assert r.router == "FusedTopKBiasRouter"
    assert (r.method, r.vllm_value, r.flashinfer_value, r.flashinfer_name) == ("DeepseekV4", 100, None, None)
    assert r.fused_routing_possible is False
    assert any("must never reach a FlashInfer kernel" in w for w in r.warnings)
    assert any("hash-routed layers reject fused-routing kernels" in w for w in r.warnings)
    # SGLang 0.5.23 runs DeepSeek-V4 through deepseek_v2.DeepseekV2MoE: DeepSeekV3 declared, TopK
    # ungrouped, so _can_bypass_trtllm_routing refuses and SGLang routes in Python
    assert r.sglang_label.startswith("DeepSeekV3 (declared in deepseek_v2.py)")
    assert "SGLang routes in Python" in r.sglang_label


def test_hash_table_alone_selects_bias_router():
    r = resolve(spec(scoring_func="sqrtsoftplus", has_correction_bias=False, num_hash_layers=2))
    assert r.router == "FusedTopKBiasRouter" and r.inputs["has_e_score_bias"] is True


def test_group_limited_softmax_deepseek_v2():
    r = resolve(spec(model_type="deepseek_v2", scoring_func="softmax", renormalize=False,
                     n_group=8, topk_group=3, use_grouped_topk=True, topk_method="group_limited_greedy",
                     routed_scaling_factor=16.0, num_experts=160, top_k=6))
    assert r.router == "GroupedTopKRouter" and r.method == "Default"
    assert r.fused_routing_possible is False
    assert any("group-limited softmax" in w and "ignores the expert groups" in w for w in r.warnings)


def test_softmax_selection_bias_ernie():
    r = resolve(spec(model_type="ernie4_5_moe", has_correction_bias=True))
    assert r.router == "FusedTopKBiasRouter" and r.method == "Unspecified"
    assert r.fused_routing_possible is False
    assert any("softmax + selection bias" in w for w in r.warnings)


def test_gpt_oss_linear_router_bias_is_a_note_not_a_warning():
    r = resolve(spec(model_type="gpt_oss", linear_router_bias=True, top_k=4, num_experts=32))
    assert r.method == "RenormalizeNaive" and r.router == "FusedTopKRouter"
    assert any("part of the logits" in n for n in r.notes)
    assert not any("logits" in w for w in r.warnings)


# ---------------------------------------------------------------- enum ids per version, drift
UNSPEC_SPEC = dict(model_type="ernie4_5_moe", has_correction_bias=True)


@pytest.mark.parametrize("fi, value", [("0.6.7", 6), ("0.6.10", 8), ("0.6.12", 9), ("0.7.2.post1", 10)])
def test_unspecified_value_per_flashinfer_version(fi, value):
    r = resolve(spec(**UNSPEC_SPEC), flashinfer_version=fi)
    assert r.method == "Unspecified" and r.vllm_value == 9
    assert r.flashinfer_value == value


def test_drift_warning_vllm_033_vs_flashinfer_072():
    r = resolve(spec(**UNSPEC_SPEC))
    assert r.flashinfer_name == "TopKSigmoid"
    assert any("vLLM 0.33 sends Unspecified as 9" in w and "TopKSigmoid" in w for w in r.warnings)


def test_no_drift_warning_when_enums_agree():
    r = resolve(spec(**UNSPEC_SPEC), flashinfer_version="0.6.15")
    assert r.flashinfer_name == "Unspecified"
    assert not any("drift" in w for w in r.warnings)


def test_sigmoid_on_old_flashinfer_drifts_and_is_missing():
    r = resolve(spec(scoring_func="sigmoid", renormalize=False), flashinfer_version="0.6.9")
    assert r.method == "Sigmoid" and r.vllm_value == 8 and r.flashinfer_value is None
    assert r.flashinfer_name == "Unspecified"
    assert r.fused_routing_possible is False
    assert any("drift" in w for w in r.warnings)


def test_pre_39141_custom_collides_with_sigmoid_renorm():
    r = resolve(spec(scoring_func="custom", custom_routing="phimoe"), vllm_version="pre-39141")
    assert (r.method, r.vllm_value, r.flashinfer_name) == ("Custom", 6, "SigmoidRenorm")
    assert any("drift" in w for w in r.warnings)


def test_minimax2_scale_ignored_before_flashinfer_0613():
    s = spec(scoring_func="sigmoid", has_correction_bias=True, routed_scaling_factor=2.0)
    old = resolve(s, flashinfer_version="0.6.12")
    assert old.method == "MiniMax2"
    assert any("ignores routed_scaling_factor" in w for w in old.warnings)
    assert not any("ignores routed_scaling_factor" in w for w in resolve(s).warnings)


def test_versions_change_the_minimax_answer():
    s = spec(model_type="step3p5", scoring_func="sigmoid", has_correction_bias=True,
             routed_scaling_factor=3.0)
    assert resolve(s, vllm_version="0.33").method == "MiniMax2"
    assert resolve(s, vllm_version="44347").method == "Unspecified"
    assert resolve(s, vllm_version="39141").method == "MiniMax2"
    r = resolve(s, vllm_version="pre-39141")
    assert r.method == "Unspecified" and r.vllm_value == 8


def test_bad_versions_raise_bad_input():
    with pytest.raises(BadInputError):
        resolve(spec(), vllm_version="0.34")
    with pytest.raises(BadInputError):
        resolve(spec(), flashinfer_version="0.5.0")


def test_result_serialises():
    d = resolve(spec()).to_dict()
    assert d["method"] == "RenormalizeNaive" and d["vllm_version"] == "0.33"
    assert d["flashinfer_version"] == "0.7.2.post1"


def test_grouped_topk_without_group_sizes_warns():
    r = resolve(spec(scoring_func="sigmoid", has_correction_bias=True, use_grouped_topk=True))
    assert any("raises ValueError" in w for w in r.warnings)


def test_zero_expert_router_needs_zero_expert_type():
    """vLLM 0.33.0 router_factory.py:127 picks ZeroExpertRouter on zero_expert_type alone."""
    r = resolve(spec(model_type="longcat_flash", zero_expert_num=256, has_correction_bias=True))
    assert r.router == "FusedTopKBiasRouter" and r.method == "Unspecified"
    assert any("zero" in w for w in r.warnings)
    r = resolve(spec(model_type="longcat_flash", zero_expert_num=256, zero_expert_type="identity",
                     has_correction_bias=True))
    assert r.router == "ZeroExpertRouter"


# ---------------------------------------------------------------- SGLang 0.5.23 (read from the wheel)
def _catalog_routing(model_id):
    from moe_inspect import catalog
    from moe_inspect.detect import describe_files

    return describe_files(catalog.lookup(model_id)).routing


# model id -> (declared method or None, model file, kernel may route with flashinfer_trtllm)
SGLANG_CATALOG = {
    "MiniMaxAI/MiniMax-M2.5": (None, "minimax_m2.py", False),
    "deepseek-ai/DeepSeek-V3": ("DeepSeekV3", "deepseek_v2.py", True),
    "deepseek-ai/DeepSeek-V2-Lite": ("DeepSeekV3", "deepseek_v2.py", False),  # greedy: no bias
    "moonshotai/Kimi-K2-Instruct": ("DeepSeekV3", "deepseek_v2.py", True),
    "zai-org/GLM-4.7": ("DeepSeekV3", "glm4_moe.py", True),
    "zai-org/GLM-5": ("DeepSeekV3", "deepseek_v2.py", True),
    "Qwen/Qwen3-30B-A3B": ("Renormalize", "qwen3_moe.py", True),
    "Qwen/Qwen1.5-MoE-A2.7B": ("RenormalizeNaive", "qwen2_moe.py", False),  # norm_topk_prob false
    "Qwen/Qwen3-Next-80B-A3B-Instruct": ("RenormalizeNaive", "qwen2_moe.py", True),
    "Qwen/Qwen3.5-35B-A3B": ("RenormalizeNaive", "qwen2_moe.py", True),
    "mistralai/Mixtral-8x7B-v0.1": (None, "mixtral.py", False),
    "meta-llama/Llama-4-Scout-17B-16E": ("Llama4", "llama4.py", True),
    "openai/gpt-oss-20b": (None, "gpt_oss.py", False),
    "deepseek-ai/DeepSeek-V4-Flash": ("DeepSeekV3", "deepseek_v2.py", False),  # ungrouped TopK
}


@pytest.mark.parametrize("model_id", sorted(SGLANG_CATALOG))
def test_sglang_label_for_catalog_models(model_id):
    method, file, bypass = SGLANG_CATALOG[model_id]
    label = _catalog_routing(model_id).sglang_label
    if method is None:
        assert label.startswith(f"none (SGLang routes in Python); {file} binds no routing_method_type")
    else:
        assert label.startswith(f"{method} (declared in {file})")
        assert ("kernel may route with flashinfer_trtllm" in label) is bypass
        assert ("SGLang routes in Python" in label) is not bypass


def test_sglang_gpt_oss_label_mentions_the_mxfp4_backend_routing():
    label = _catalog_routing("openai/gpt-oss-20b").sglang_label
    assert "flashinfer_mxfp4" in label and "Renormalize" in label


def test_sglang_no_model_file_for_minimax_m1():
    assert _catalog_routing("MiniMaxAI/MiniMax-M1-40k").sglang_label.startswith(
        "no SGLang 0.5.23 model file")


def test_sglang_unknown_model_type():
    assert resolve(spec(model_type="brand_new_moe")).sglang_label.startswith("unknown")


BYPASS_KW = dict(top_k=8, use_grouped_topk=False, has_correction_bias=False, renormalize=True,
                 scoring_func="softmax", custom_routing=False)


@pytest.mark.parametrize(
    "method, changes, expected",
    [
        (None, {}, False),
        ("Unspecified", {}, False),
        ("TopK", {}, False),
        ("MiniMax2", {"scoring_func": "sigmoid", "has_correction_bias": True}, False),
        ("Renormalize", {}, True),
        ("RenormalizeNaive", {}, True),
        ("RenormalizeNaive", {"renormalize": False}, False),
        ("Renormalize", {"has_correction_bias": True}, False),  # not plain
        ("Renormalize", {"scoring_func": "sigmoid"}, False),  # Step-3.5: sigmoid TopK
        ("Default", {"renormalize": False}, True),
        ("SigmoidRenorm", {"scoring_func": "sigmoid"}, True),
        ("Sigmoid", {"scoring_func": "sigmoid", "renormalize": False}, True),
        ("Sigmoid", {"scoring_func": "sigmoid", "renormalize": False, "custom_routing": True}, False),
        ("DeepSeekV3", {"use_grouped_topk": True, "has_correction_bias": True}, True),
        # scoring_func is not checked for DeepSeekV3 (GLM-4.x TopK says softmax)
        ("DeepSeekV3", {"use_grouped_topk": True, "has_correction_bias": True,
                        "scoring_func": "softmax"}, True),
        ("DeepSeekV3", {"use_grouped_topk": True}, False),  # DeepSeek-V2: no bias
        ("DeepSeekV3", {"has_correction_bias": True}, False),  # DeepSeek-V4: ungrouped
        ("DeepSeekV3", {"use_grouped_topk": True, "has_correction_bias": True,
                        "renormalize": False}, False),
        ("DeepSeekV3", {"use_grouped_topk": True, "has_correction_bias": True,
                        "sqrtsoftplus_log1p": True}, False),
        ("DeepSeekV3", {"use_grouped_topk": True, "has_correction_bias": True,
                        "num_shared_topk_slots": 1}, False),
        ("Llama4", {"top_k": 1, "renormalize": False, "custom_routing": True,
                    "scoring_func": "sigmoid"}, True),
        ("Llama4", {"top_k": 2, "renormalize": False, "custom_routing": True}, False),
        ("Llama4", {"top_k": 1, "renormalize": False, "custom_routing": False}, False),
    ],
)
def test_sglang_can_bypass_mirrors_topk_py(method, changes, expected):
    ok, why = sglang_can_bypass_trtllm_routing(method, **{**BYPASS_KW, **changes})
    assert ok is expected and why


@pytest.mark.parametrize(
    "kw, method, bypass",
    [
        (dict(scoring_func="sigmoid", custom_routing="cohere2_sigmoid", renormalize=True),
         "SigmoidRenorm", True),
        # sigmoid without renormalize gets cohere2_sigmoid_topk as a custom function: no bypass
        (dict(scoring_func="sigmoid", custom_routing="cohere2_sigmoid", renormalize=False),
         "Sigmoid", False),
        (dict(renormalize=True), "RenormalizeNaive", True),
        (dict(renormalize=False), "Default", True),
    ],
)
def test_sglang_cohere2_rule(kw, method, bypass):
    d = sglang_routing(spec(model_type="cohere2_moe", **kw))
    assert (d["method"], d["bypass"]) == (method, bypass)


@pytest.mark.parametrize(
    "kw, method, bypass",
    [
        (dict(scoring_func="sigmoid", has_correction_bias=True, n_group=8, topk_group=4),
         "DeepSeekV3", True),
        (dict(), "RenormalizeNaive", True),
        (dict(scoring_func="sigmoid", has_correction_bias=True), None, False),  # ungrouped + bias
        (dict(renormalize=False), None, False),
    ],
)
def test_sglang_bailing_rule(kw, method, bypass):
    d = sglang_routing(spec(model_type="bailing_moe", **kw))
    assert (d["method"], d["bypass"]) == (method, bypass)


def test_sglang_mimo_v2_declares_deepseekv3_only_with_bias_and_renormalize():
    s = dict(model_type="mimo_v2", scoring_func="sigmoid", n_group=1, topk_group=1,
             use_grouped_topk=True, topk_method="noaux_tc", has_correction_bias=True)
    assert sglang_routing(spec(**s))["method"] == "DeepSeekV3"
    assert sglang_routing(spec(**s))["bypass"] is True
    assert sglang_routing(spec(**{**s, "renormalize": False}))["method"] is None


@pytest.mark.parametrize("model_type, method",
                         [("step3p5", "Renormalize"), ("exaone_moe", "RenormalizeNaive")])
def test_sglang_declared_method_that_never_matches_its_sigmoid_topk(model_type, method):
    d = sglang_routing(spec(model_type=model_type, scoring_func="sigmoid", has_correction_bias=True,
                            n_group=1, topk_group=1))
    assert d["method"] == method and d["bypass"] is False


def test_sglang_glm4_moe_lite_binds_no_method():
    d = sglang_routing(spec(model_type="glm4_moe_lite", scoring_func="sigmoid",
                            has_correction_bias=True, n_group=1, topk_group=1,
                            use_grouped_topk=True))
    assert d["method"] is None and d["bypass"] is False


def test_sglang_rows_cite_the_wheel():
    seen = set()
    for row in SGLANG_ROWS:
        assert row.source.startswith("SGLang 0.5.23 srt/models/")
        assert ":" in row.source.split("srt/models/", 1)[1]  # file:line
        assert not seen & set(row.model_types)
        seen |= set(row.model_types)
    assert set(SGLANG_LABELS) == seen
