"""`detect` resolves every verified model to the method vLLM v0.33 computes for it.

Expected values come from REFERENCE.md §3.3 (vLLM v0.33 model files + get_routing_method_type),
enum ids from §1 (vLLM 0.33 / FlashInfer 0.7.2.post1). Each model is described three ways:
from the built-in catalog, from a generated local checkpoint directory (config.json + real
safetensors headers with the real tensor names), and through the CLI with --json.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from moe_inspect import catalog
from moe_inspect.cli.app import app
from moe_inspect.detect import describe, describe_files

from .modelgen import make_model_dir

# model id -> (method, vLLM 0.33 id, FlashInfer 0.7.2.post1 id or None, grouped router?)
EXPECTED = {
    "deepseek-ai/DeepSeek-V2-Lite": ("Default", 0, 0),
    "deepseek-ai/DeepSeek-V3": ("DeepSeekV3", 2, 2),
    "deepseek-ai/DeepSeek-V3.1": ("DeepSeekV3", 2, 2),
    "deepseek-ai/DeepSeek-V4-Flash": ("DeepseekV4", 100, None),
    "deepseek-ai/DeepSeek-V4-Pro": ("DeepseekV4", 100, None),
    "moonshotai/Kimi-K2-Instruct": ("DeepSeekV3", 2, 2),
    "MiniMaxAI/MiniMax-M1-40k": ("RenormalizeNaive", 4, 4),
    "MiniMaxAI/MiniMax-M2": ("MiniMax2", 7, 7),
    "MiniMaxAI/MiniMax-M2.5": ("MiniMax2", 7, 7),
    "Qwen/Qwen1.5-MoE-A2.7B": ("Default", 0, 0),
    "Qwen/Qwen2-57B-A14B": ("Default", 0, 0),
    "Qwen/Qwen3-30B-A3B": ("RenormalizeNaive", 4, 4),
    "Qwen/Qwen3-235B-A22B": ("RenormalizeNaive", 4, 4),
    "Qwen/Qwen3-Next-80B-A3B-Instruct": ("RenormalizeNaive", 4, 4),
    "Qwen/Qwen3.5-35B-A3B": ("RenormalizeNaive", 4, 4),
    "Qwen/Qwen3.5-397B-A17B": ("RenormalizeNaive", 4, 4),
    "mistralai/Mixtral-8x7B-v0.1": ("RenormalizeNaive", 4, 4),
    "mistralai/Mixtral-8x22B-v0.1": ("RenormalizeNaive", 4, 4),
    "meta-llama/Llama-4-Scout-17B-16E": ("Llama4", 3, 3),
    "zai-org/GLM-4.7": ("DeepSeekV3", 2, 2),
    "zai-org/GLM-5": ("DeepSeekV3", 2, 2),
    "openai/gpt-oss-20b": ("RenormalizeNaive", 4, 4),
}

# the MoE facts a deployer reads off `detect` (num_experts, top_k, scoring, bias, groups)
MOE_FACTS = {
    "deepseek-ai/DeepSeek-V3": (256, 8, "sigmoid", True, 8, 4),
    "moonshotai/Kimi-K2-Instruct": (384, 8, "sigmoid", True, 1, 1),
    "MiniMaxAI/MiniMax-M2.5": (256, 8, "sigmoid", True, None, None),
    "zai-org/GLM-4.7": (160, 8, "sigmoid", True, 1, 1),
    "Qwen/Qwen3.5-35B-A3B": (256, 8, "softmax", False, None, None),
    "meta-llama/Llama-4-Scout-17B-16E": (16, 1, None, False, None, None),
    "openai/gpt-oss-20b": (32, 4, "softmax", False, None, None),
    "deepseek-ai/DeepSeek-V2-Lite": (64, 6, "softmax", False, 1, 1),
}


def test_catalog_covers_every_verified_model():
    assert {e.id for e in catalog.entries()} == set(EXPECTED)


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_catalog_entry_resolves_to_vllm_033_method(model_id):
    d = describe_files(catalog.lookup(model_id))
    method, vllm_id, fi_id = EXPECTED[model_id]
    assert d.routing.method == method, d.routing.rule
    assert d.routing.vllm_value == vllm_id
    assert d.routing.flashinfer_value == fi_id
    assert d.model.source == "catalog"
    assert d.routing.rule  # the rule that fired is always named


@pytest.mark.parametrize("model_id", sorted(MOE_FACTS))
def test_catalog_entry_moe_facts(model_id):
    m = describe_files(catalog.lookup(model_id)).moe
    e, k, scoring, bias, g, tg = MOE_FACTS[model_id]
    assert (m.num_experts, m.top_k, m.has_correction_bias, m.n_group, m.topk_group) == (e, k, bias, g, tg)
    if scoring:
        assert m.scoring_func == scoring


def _local_dir(tmp_path, model_id):
    e = catalog.find(model_id)
    tensors = {n: (d if d != "?" else "BF16", s or [4]) for n, (d, s) in e.tensors.items()}
    return make_model_dir(tmp_path / model_id.split("/")[1], e.config, tensors)


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_local_directory_resolves_like_the_catalog(tmp_path, model_id):
    path = _local_dir(tmp_path, model_id)
    d = describe(str(path), offline=True, use_catalog=False)
    assert d.model.source == "local"
    assert d.routing.method == EXPECTED[model_id][0], d.routing.rule
    assert d.tensors is not None and d.tensors.router_weight is not None


def test_glm_bias_comes_from_the_tensor_not_a_config_key(tmp_path):
    d = describe(str(_local_dir(tmp_path, "zai-org/GLM-4.7")), offline=True, use_catalog=False)
    assert d.moe.has_correction_bias
    assert d.moe.provenance["has_correction_bias"].startswith(("tensor:", "arch:"))


def test_minimax_cli_json_contract():
    r = CliRunner().invoke(app, ["detect", "MiniMaxAI/MiniMax-M2.5", "--offline", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["schema_version"] == 1
    assert data["model"]["source"] == "catalog"
    assert {"id", "source", "model_type", "architecture"} <= set(data["model"])
    moe = data["moe"]
    for key in ("num_experts", "top_k", "scoring_func", "has_correction_bias", "n_group", "topk_group",
                "renormalize", "routed_scaling_factor"):
        assert key in moe
    assert data["routing"]["method"] == "MiniMax2"
    assert data["routing"]["vllm_value"] == 7 and data["routing"]["flashinfer_value"] == 7
    assert "rule" in data["routing"]
    assert isinstance(data["warnings"], list)
    assert any("catalog" in w for w in data["warnings"])


def test_minimax_cli_table_names_method_and_rule():
    r = CliRunner().invoke(app, ["detect", "MiniMaxAI/MiniMax-M2.5", "--offline"])
    assert r.exit_code == 0, r.output
    assert "MiniMax2" in r.stdout and "catalog" in r.stdout


def test_vllm_version_changes_the_ids():
    old = describe_files(catalog.lookup("MiniMaxAI/MiniMax-M2.5"), vllm_version="pre-39141", flashinfer_version="0.6.7")
    # before vLLM #39141 sigmoid + bias without groups had no method
    assert old.routing.method == "Unspecified"
    assert old.routing.vllm_value == 8


def test_catalog_command_lists_every_model_with_its_method():
    r = CliRunner().invoke(app, ["catalog", "--json"])
    assert r.exit_code == 0, r.output
    rows = {m["id"]: m for m in json.loads(r.stdout)["models"]}
    assert {k: rows[k]["method"] for k in rows} == {k: v[0] for k, v in EXPECTED.items()}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["detect", "no-such-org/no-such-model", "--offline"], "no-such-org/no-such-model"),
        (["detect", "MiniMaxAI/MiniMax-M2.5", "--offline", "--vllm-version", "9.9"], "9.9"),
        (["detect", "MiniMaxAI/MiniMax-M2.5", "--offline", "--flashinfer-version", "0.1"], "0.1"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and needle in err
    assert "Traceback" not in r.output


# ----------------------------------------------------------------- Hub (local server) and cache
from .hub_server import FakeHub, isolate_hf  # noqa: E402


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with FakeHub() as h:
        isolate_hf(monkeypatch, tmp_path / "hf_home", endpoint=h.url)
        yield h


def test_every_model_resolves_from_the_hub_then_from_the_cache_offline(hub, tmp_path, monkeypatch):
    """A real huggingface_hub client against the local Hub server, then the same ids offline."""
    for model_id in EXPECTED:
        hub.add_repo(model_id, _local_dir(tmp_path / "repos", model_id))
    for model_id, (method, vllm_id, fi_id) in EXPECTED.items():
        d = describe(model_id, use_catalog=False)
        assert d.model.source == "hub", model_id
        assert (d.routing.method, d.routing.vllm_value, d.routing.flashinfer_value) == (method, vllm_id, fi_id), model_id
        assert d.model.bytes_read > 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear_log()
    for model_id, (method, _, _) in EXPECTED.items():
        d = describe(model_id, use_catalog=False)
        assert d.model.source == "cache", model_id
        assert d.routing.method == method, model_id
        # the cached description still has the tensor evidence (headers cached by moe-inspect)
        assert d.tensors is not None and d.tensors.router_weight is not None, model_id
    assert hub.log == []  # offline: not a single request


def test_hub_detect_cli_reports_source_and_bytes(hub, tmp_path):
    hub.add_repo("MiniMaxAI/MiniMax-M2.5", _local_dir(tmp_path / "repos", "MiniMaxAI/MiniMax-M2.5"))
    r = CliRunner().invoke(app, ["detect", "MiniMaxAI/MiniMax-M2.5", "--json", "--no-catalog"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["model"]["source"] == "hub" and data["model"]["bytes_read"] > 0
    assert data["routing"]["method"] == "MiniMax2"


def test_hub_404_without_catalog_is_exit_2(hub):
    r = CliRunner().invoke(app, ["detect", "nobody/nothing", "--no-catalog"])
    assert r.exit_code == 2
    assert r.stderr.startswith("error:") and r.stderr.count("\n") == 1


def test_deepseek_v4_matches_vllm_033_wheel_facts():
    """vLLM 0.33.0 (wheel): V4 experts are Mxfp4MoEMethod(activation_key=kMxfp8Dynamic), router logits fp32."""
    d = describe_files(catalog.lookup("deepseek-ai/DeepSeek-V4-Flash"))
    assert d.quantization.method == "fp4_mixed"
    assert (d.quantization.vllm_weight_key, d.quantization.vllm_activation_key) == ("kMxfp4Static", "kMxfp8Dynamic")
    assert d.moe.router_dtype == "float32"
    assert d.moe.num_hash_layers == 3
