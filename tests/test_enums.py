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
    assert set(enums.VLLM_VERSIONS) == {"pre-39141", "0.20", "39141", "0.22", "44347", "0.33"}
    assert enums.DEFAULT_VLLM == "0.33"


@pytest.mark.parametrize("bad", ["0.21.1", "0.34.0", "latest", "", "0.33.0+cu129", "1"])
def test_unknown_vllm_version(bad):
    with pytest.raises(BadInputError) as exc:
        enums.vllm_enum(bad)
    msg = exc.value.message
    assert "pre-39141" in msg and "0.17.0 to 0.33.0" in msg and "\n" not in msg


# ---------------------------------------------------------------------------- vLLM releases
# What each release's wheel says (vllm/model_executor/layers/fused_moe/config.py, read from
# `pip download --no-deps vllm==X` of every release 0.10.2 … 0.33.0; docs/upstream-facts.md):
#   0.17.0-0.19.1 enum Custom 6, Simulated 7, Unspecified 8; softmax+renormalize -> Renormalize
#   0.20.0-0.20.2 enum DeepseekV4 8, Unspecified 9; sqrtsoftplus tested first (:126-159)
#   0.21.0        enum SigmoidRenorm 6, MiniMax2 7, Unspecified 8, DeepseekV4 100 (PR #39141)
#   0.22.0-0.22.1 0.21.0's enum; softmax+renormalize -> RenormalizeNaive (:160-162)
#   0.23.0-0.30.0 enum Sigmoid 8, Unspecified 9; MiniMax2 gated on routed_scaling_factor (PR #44347)
#   0.31.0-0.33.0 same enum, the scale gate gone
@pytest.mark.parametrize("release, key", [
    ("0.17.0", "pre-39141"), ("0.18.1", "pre-39141"), ("0.19.1", "pre-39141"),
    ("0.20.0", "0.20"), ("0.20.2", "0.20"), ("0.20", "0.20"),
    ("0.21.0", "39141"),
    ("0.22.0", "0.22"), ("0.22.1", "0.22"), ("v0.22.1", "0.22"),
    ("0.23.0", "44347"), ("0.25.1", "44347"), ("0.27.1", "44347"), ("0.30.0", "44347"),
    ("0.31.0", "0.33"), ("0.32.0", "0.33"), ("0.33.0", "0.33"), ("v0.33.0", "0.33"),
    ("0.19", "pre-39141"), ("0.25", "44347"), ("0.33", "0.33"),
])
def test_release_maps_to_the_table_its_wheel_carries(release, key):
    assert enums.vllm_table_key(release) == key
    assert enums.normalize_vllm_version(release) == key


def test_release_enum_values_as_read():
    assert enums.vllm_enum("0.19.1")["Unspecified"] == 8 and "MiniMax2" not in enums.vllm_enum("0.19.1")
    assert enums.vllm_enum("0.21.0")["MiniMax2"] == 7 and enums.vllm_enum("0.21.0")["Unspecified"] == 8
    assert enums.vllm_enum("0.23.0")["Sigmoid"] == 8 and enums.vllm_enum("0.23.0")["Unspecified"] == 9
    # 0.20.x carries an enum of its own: DeepseekV4 is 8 there (100 from 0.21.0 on), Unspecified 9
    assert dict(enums.VLLM_LAYOUTS["0.20"].members) == {**BASE, "Custom": 6, "Simulated": 7,
                                                       "DeepseekV4": 8, "Unspecified": 9}


@pytest.mark.parametrize("key", ["pre-39141", "39141", "44347", "0.33", "#39141", "PR44347", "pre39141"])
def test_pr_keys_keep_working(key):
    assert enums.vllm_table_key(key) in ("pre-39141", "39141", "44347", "0.33")


@pytest.mark.parametrize("release, reason", [
    ("0.10.2", "no RoutingMethodType"), ("0.11.0", "no RoutingMethodType"),
    ("0.13.0", "no get_routing_method_type"), ("0.15.1", "no get_routing_method_type"),
    ("0.16.0", "3-argument get_routing_method_type"),
])
def test_releases_read_but_not_modelled_are_refused_with_the_reason(release, reason):
    with pytest.raises(BadInputError) as exc:
        enums.vllm_table_key(release)
    assert reason in exc.value.message and "0.17.0 to 0.33.0" in exc.value.message
    assert "\n" not in exc.value.message


def test_every_release_names_its_wheel_file_and_lines():
    versions = [r.version for r in enums.VLLM_RELEASES]
    assert versions[0] == "0.17.0" and versions[-1] == "0.33.0" and len(versions) == len(set(versions))
    for r in enums.VLLM_RELEASES:
        assert f"vllm-{r.version} wheel vllm/model_executor/layers/fused_moe/config.py:" in r.source
        assert r.key in enums.VLLM_LAYOUTS


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


# ---------------------------------------------------------------------------- through the CLI
def _detect(*args):
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app

    return CliRunner().invoke(app, ["detect", "MiniMaxAI/MiniMax-M2.5", "--offline", *args])


@pytest.mark.parametrize("release, method, vllm_id", [
    # sigmoid + correction bias + renormalize, no groups: Unspecified (8) before #39141, MiniMax2 (7) after
    ("0.19.1", "Unspecified", 8), ("0.20.2", "Unspecified", 9), ("0.21.0", "MiniMax2", 7),
    ("0.22.1", "MiniMax2", 7), ("0.28.0", "MiniMax2", 7), ("0.33.0", "MiniMax2", 7),
])
def test_detect_takes_a_release_version(release, method, vllm_id):
    import json

    r = _detect("--vllm-version", release, "--json")
    assert r.exit_code == 0, r.output
    routing = json.loads(r.stdout)["routing"]
    assert (routing["method"], routing["vllm_value"]) == (method, vllm_id)


def test_detect_refuses_an_unread_release_in_one_line():
    r = _detect("--vllm-version", "0.10.2")
    assert r.exit_code == 2 and r.stdout == ""
    line, = r.stderr.strip().splitlines()
    assert "0.10.2" in line and "0.17.0 to 0.33.0" in line
