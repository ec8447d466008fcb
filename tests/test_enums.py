"""RoutingMethodType tables: the integer each framework/version assigns to each method."""

import pytest

from moe_inspect import enums
from moe_inspect.errors import BadInputError

BASE = {"Default": 0, "Renormalize": 1, "DeepSeekV3": 2, "Llama4": 3, "RenormalizeNaive": 4, "TopK": 5}


@pytest.mark.parametrize(
    "version, unspecified",
    [
        ("0.6.7", 6),
        ("0.6.8", 8), ("0.6.9", 8), ("0.6.10", 8),
        ("0.6.11", 9), ("0.6.12", 9), ("0.6.13", 9), ("0.6.14", 9), ("0.6.15", 9),
        ("0.6.16", 9), ("0.6.17", 9),
        ("0.6.18rc1", 9), ("0.6.18rc3", 9),
        ("0.6.18rc4", 10), ("0.6.18", 10),
        ("0.7.0", 10), ("0.7.1", 10), ("0.7.2", 10), ("0.7.2.post1", 10),
    ],
)
def test_flashinfer_unspecified_moves(version, unspecified):
    e = enums.flashinfer_enum(version)
    assert e["Unspecified"] == unspecified
    for name, value in BASE.items():  # values 0-5 never changed
        assert e[name] == value


def test_flashinfer_members_appear_in_the_right_release():
    assert "SigmoidRenorm" not in enums.flashinfer_enum("0.6.7")
    assert enums.flashinfer_enum("0.6.8")["MiniMax2"] == 7
    assert enums.flashinfer_enum("0.6.8")["SigmoidRenorm"] == 6
    assert "Sigmoid" not in enums.flashinfer_enum("0.6.10")
    assert enums.flashinfer_enum("0.6.11")["Sigmoid"] == 8
    assert "TopKSigmoid" not in enums.flashinfer_enum("0.6.18rc3")
    assert enums.flashinfer_enum("0.6.18rc4")["TopKSigmoid"] == 9


def test_every_listed_flashinfer_version_is_accepted():
    assert enums.DEFAULT_FLASHINFER in enums.FLASHINFER_VERSIONS
    for v in enums.FLASHINFER_VERSIONS:
        assert enums.flashinfer_enum(v)["Default"] == 0


def test_flashinfer_name_for_exposes_drift():
    # vLLM 0.33 sends Unspecified as 9: FlashInfer 0.7.2.post1 reads TopKSigmoid, 0.6.12 Unspecified
    assert enums.flashinfer_name_for(9, "0.7.2.post1") == "TopKSigmoid"
    assert enums.flashinfer_name_for(9, "0.6.12") == "Unspecified"
    assert enums.flashinfer_name_for(9, "0.6.8") is None
    assert enums.flashinfer_name_for(100, "0.7.2.post1") is None


@pytest.mark.parametrize("bad", ["0.6.6", "0.8.0", "1.0", "latest", "", "0.7.2+local"])
def test_unknown_flashinfer_version_lists_accepted(bad):
    with pytest.raises(BadInputError) as exc:
        enums.flashinfer_enum(bad)
    assert "0.7.2.post1" in exc.value.message and "0.6.7" in exc.value.message
    assert "\n" not in exc.value.message


def test_vllm_layouts():
    pre = enums.vllm_enum("pre-39141")
    assert (pre["Custom"], pre["Simulated"], pre["Unspecified"]) == (6, 7, 8)
    assert "MiniMax2" not in pre and "DeepseekV4" not in pre
    v39 = enums.vllm_enum("39141")
    assert (v39["SigmoidRenorm"], v39["MiniMax2"], v39["Unspecified"]) == (6, 7, 8)
    assert (v39["DeepseekV4"], v39["Custom"], v39["Simulated"]) == (100, 101, 102)
    assert "Sigmoid" not in v39
    v44 = enums.vllm_enum("44347")
    assert (v44["Sigmoid"], v44["Unspecified"]) == (8, 9)
    assert "TopKSigmoid" not in v44
    assert enums.vllm_enum("0.33") == v44
    assert enums.vllm_enum() == v44
    assert set(enums.VLLM_VERSIONS) == {"pre-39141", "39141", "44347", "0.33"}
    assert enums.DEFAULT_VLLM == "0.33"


def test_unknown_vllm_version():
    with pytest.raises(BadInputError) as exc:
        enums.vllm_enum("0.20")
    assert "pre-39141" in exc.value.message and "0.33" in exc.value.message


def test_sglang_enum():
    e = enums.sglang_enum()
    assert e["Unspecified"] == 9 and e["Sigmoid"] == 8 and e["MiniMax2"] == 7
    assert max(e.values()) == 9  # no vLLM-internal 100+ ids


def test_sglang_enum_is_read_from_the_0523_wheel():
    # SGLang 0.5.23 srt/layers/moe/utils.py:981-1001: same ids as FlashInfer 0.6.11, no TopKSigmoid
    assert enums.sglang_enum() == {"Default": 0, "Renormalize": 1, "DeepSeekV3": 2, "Llama4": 3,
                                   "RenormalizeNaive": 4, "TopK": 5, "SigmoidRenorm": 6,
                                   "MiniMax2": 7, "Sigmoid": 8, "Unspecified": 9}
    assert enums.sglang_enum() == enums.flashinfer_enum("0.6.11")
    assert "utils.py:981-1001" in enums.SGLANG_LAYOUT.source
    # what SGLang sends as 9 (Unspecified) FlashInfer 0.7.2 reads as something else
    assert enums.flashinfer_name_for(9, "0.7.2") != "Unspecified"


def test_tables_name_their_source():
    for _, layout in enums.FLASHINFER_LAYOUTS:
        assert "FlashInfer" in layout.source
    for layout in enums.VLLM_LAYOUTS.values():
        assert "vLLM" in layout.source
    assert "SGLang 0.5.23" in enums.SGLANG_LAYOUT.source


def test_returned_dicts_are_copies():
    e = enums.flashinfer_enum("0.7.2")
    e["Default"] = 99
    assert enums.flashinfer_enum("0.7.2")["Default"] == 0


def test_vllm_033_layout_is_read_from_the_wheel():
    # vLLM v0.33.0 fused_moe/config.py:105-136: Sigmoid 8, Unspecified 9, internal ids 100-102, no TopKSigmoid
    lay = enums.vllm_layout("0.33.0")
    assert "v0.33.0" in lay.source
    assert dict(lay.members) == {"Default": 0, "Renormalize": 1, "DeepSeekV3": 2, "Llama4": 3,
                                 "RenormalizeNaive": 4, "TopK": 5, "SigmoidRenorm": 6, "MiniMax2": 7,
                                 "Sigmoid": 8, "Unspecified": 9, "DeepseekV4": 100, "Custom": 101, "Simulated": 102}
