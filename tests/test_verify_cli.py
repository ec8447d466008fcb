"""`moe-inspect verify` through the CLI: exit codes 0/1/2, JSON shape, one-line errors."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.oracle
pytest.importorskip("torch")
pytest.importorskip("transformers")

from moe_inspect.cli.app import app  # noqa: E402

runner = CliRunner()

JSON_KEYS = {
    "model", "verdict", "method", "method_source", "oracle", "transformers_class", "kernel",
    "oracle_version", "tokens", "seed", "hidden_size", "num_experts", "top_k", "id_mismatches",
    "weight_mismatches", "max_weight_error", "tolerance", "first_difference", "explanation",
    "reflects", "reflects_note", "config", "flashinfer_version", "vllm_version", "source", "notes",
    "exit_code", "logit_scale", "kernels", "agreement", "disagreements", "consequence",
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def _run(*args):
    return runner.invoke(app, ["verify", *args, "--offline"])


def test_match_exits_0_with_verdict_line():
    r = _run("deepseek-ai/DeepSeek-V3", "--tokens", "32")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("MATCH deepseek-ai/DeepSeek-V3")
    assert "DeepseekV3TopkRouter" in r.output and "atol 1e-05" in r.output


def test_match_json_shape():
    r = _run("openai/gpt-oss-20b", "--json", "--tokens", "16", "--seed", "3")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert set(d) == JSON_KEYS
    assert (d["verdict"], d["method"], d["tokens"], d["seed"], d["exit_code"]) == ("match", "RenormalizeNaive", 16, 3, 0)
    assert d["tolerance"] == {"atol": 1e-05, "rtol": 0.0001, "dtype": "float32"}
    assert d["first_difference"] is None


def test_forced_wrong_method_exits_1_and_shows_first_token():
    r = _run("MiniMaxAI/MiniMax-M2", "--method", "Default")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("MISMATCH")
    assert "first differing token 0" in r.output and "transformers ids" in r.output


def test_mismatch_json_first_difference():
    r = _run("MiniMaxAI/MiniMax-M2", "--method", "Default", "--json")
    assert r.exit_code == 1
    d = json.loads(r.stdout)
    fd = d["first_difference"]
    assert d["verdict"] == "mismatch" and d["method_source"] == "forced"
    assert set(fd) == {"token", "reason", "reference_ids", "reference_weights", "oracle_ids", "oracle_weights"}
    assert len(fd["reference_ids"]) == len(fd["oracle_ids"]) == 8


def test_absent_architecture_exits_2():
    r = _run("MiniMaxAI/MiniMax-M1-40k", "--json")
    assert r.exit_code == 2
    d = json.loads(r.stdout)
    assert d["verdict"] == "cannot_verify" and "minimax_m1" in d["explanation"]


def test_missing_transformers_is_one_line_exit_2(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    r = _run("zai-org/GLM-4.7")
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: verify needs transformers, which is not installed: pip install 'moe-inspect[oracle]'"


def test_kernel_without_cuda_is_one_line_exit_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the kernel path runs (tests/test_verify_gpu.py)")
    r = _run("deepseek-ai/DeepSeek-V3", "--kernel")
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "CUDA" in r.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU answer")
def test_kernel_for_renormalize_naive_needs_the_trtllm_gen_kernel():
    """Every RoutingMethodType has a FlashInfer kernel now (trtllm-gen); fused_topk_deepseek is
    DeepSeekV3-only and is not mentioned for Qwen3."""
    r = _run("Qwen/Qwen3-30B-A3B", "--kernel")
    assert r.exit_code == 2
    assert "trtllm-gen" in r.stderr and "fused_topk_deepseek" not in r.stderr


def test_unknown_method_exits_2():
    r = _run("zai-org/GLM-4.7", "--method", "Bogus")
    assert r.exit_code == 2 and "Bogus" in r.stderr


def test_unknown_model_exits_2():
    r = _run("nobody/no-such-moe")
    assert r.exit_code == 2
    assert r.stderr.startswith("error:")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU answer")
def test_kernel_without_a_gpu_is_one_line_exit_2():
    r = _run("deepseek-ai/DeepSeek-V3", "--kernel")
    assert r.exit_code == 2
    lines = [x for x in r.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "no FlashInfer routing kernel can run here" in lines[0]
    assert "trtllm-gen" in lines[0] and "fused_topk_deepseek" in lines[0]


def test_kernel_for_a_method_no_flashinfer_kernel_implements_is_exit_2():
    r = _run("deepseek-ai/DeepSeek-V4-Flash", "--kernel")
    assert r.exit_code == 2 and "no FlashInfer routing kernel implements DeepseekV4" in r.output


def test_deepseek_v4_verify_is_a_finding_exit_1():
    r = _run("deepseek-ai/DeepSeek-V4-Flash", "--tokens", "16")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("MISMATCH") and "no FlashInfer routing method computes DeepseekV4" in r.output


def test_quiet_prints_the_verdict_and_markdown_a_pr_ready_block():
    r = _run("deepseek-ai/DeepSeek-V3", "--tokens", "8", "-q")
    assert (r.exit_code, r.stdout) == (0, "match\n")
    r = _run("deepseek-ai/DeepSeek-V4-Flash", "--tokens", "8", "--format", "markdown")
    assert r.exit_code == 1 and r.stdout.startswith("**MISMATCH** `deepseek-ai/DeepSeek-V4-Flash`")
    assert "- method: DeepseekV4" in r.stdout


def test_contradictory_output_flags_exit_2_one_line():
    r = _run("deepseek-ai/DeepSeek-V3", "--json", "--format", "markdown")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
