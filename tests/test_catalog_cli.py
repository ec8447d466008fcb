"""`moe-inspect catalog` and `catalog --check` as a user reads them (first-hour issue items 2, 7, 8)."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from moe_inspect import catalog
from moe_inspect.cli.app import app

runner = CliRunner()


def run(*args, width=80):
    return runner.invoke(app, list(args), env={"COLUMNS": str(width)}, terminal_width=width)


def _ids():
    return [e.id for e in catalog.entries()]


def test_plain_catalog_at_80_columns_loses_nothing():
    # issue 11 item 2: at 80 columns the E, k, bias, groups and id columns shrank to nothing and
    # method names were cut ("RenormalizeNa…")
    r = run("catalog")
    assert r.exit_code == 0, r.output
    text = r.stdout
    assert "…" not in text
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = json.loads(run("catalog", "--json").stdout)["models"]
    for m in rows:
        assert any(m["id"] in line for line in lines), m["id"]  # never split over lines
        block = "\n".join(lines)
        assert re.search(rf"\b{m['method']}\b", block)
        assert f"E={m['num_experts']} k={m['top_k']}" in block or str(m["num_experts"]) in block


def test_catalog_check_with_three_gpus_keeps_model_ids_whole_at_80_columns():
    r = run("catalog", "--check", "--gpu", "H100,B200,RTX PRO 6000")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "…" not in r.stdout
    for mid in _ids():
        assert any(mid in line for line in lines), mid
    assert any("RenormalizeNaive" in line for line in lines)


def test_catalog_check_table_when_wide():
    r = run("catalog", "--check", "--gpu", "B200", width=120)
    head = next(line for line in r.stdout.splitlines() if "model" in line and "method" in line)
    assert "B200" in head and "why" in head


def test_catalog_check_honours_flashinfer_version():
    # issue 11 item 8: the output was identical with and without the version flags. FlashInfer 0.6.7's
    # RoutingMethodType has no MiniMax2 (added in 0.6.8, flashinfer PR #2803), so the fused TRT-LLM
    # kernels cannot route MiniMax-M2 there: B200 drops from fused routing to FlashInfer modular.
    new = json.loads(run("catalog", "--check", "--gpu", "B200", "--json").stdout)
    old = json.loads(run("catalog", "--check", "--gpu", "B200", "--flashinfer-version", "0.6.7", "--json").stdout)
    n = {m["id"]: m["targets"][0] for m in new["models"]}
    o = {m["id"]: m["targets"][0] for m in old["models"]}
    assert n["MiniMaxAI/MiniMax-M2"]["fused_routing"] is True
    assert o["MiniMaxAI/MiniMax-M2"]["fused_routing"] is False
    assert o["MiniMaxAI/MiniMax-M2"]["flashinfer"] is True
    assert "fi-version" in o["MiniMaxAI/MiniMax-M2"]["fused_routing_blocker"]
    assert o["deepseek-ai/DeepSeek-V3"]["fused_routing"] is True  # DeepSeekV3 exists in 0.6.7


def test_catalog_check_takes_the_layout_flags():
    d = json.loads(run("catalog", "--check", "--gpu", "B200", "--tp", "8", "--json").stdout)
    assert d["deployment"]["tp"] == 8 and d["deployment"]["moe_tp"] == 8
    rows = {m["id"]: m["targets"][0] for m in d["models"]}
    # MiniMax-M2.5 FP8 block at TP 8: 1536/8 = 192 -> refined 64x64 blocks, only Triton (oracle/fp8.py:292-310)
    assert rows["MiniMaxAI/MiniMax-M2.5"]["vllm_auto_choice"] == "Triton"
    assert rows["MiniMaxAI/MiniMax-M2.5"]["fused_routing"] is False


def test_layout_flags_without_check_are_bad_input():
    r = run("catalog", "--tp", "8")
    assert r.exit_code == 2 and "--check" in r.stderr


def test_one_gate_vocabulary_in_table_reasons_and_json():
    # issue 11 item 7: the table said "✗ arch" where the reason said "device:", and MXINT4 on B200 showed
    # "arch" though the gate is the VLLM_USE_FLASHINFER_MOE_INT4=1 switch (vllm 0.33.0
    # quantization/utils/flashinfer_mxint4_moe.py, is_flashinfer_mxint4_moe_available)
    args = ("check", "Qwen/Qwen3-30B-A3B", "--gpu", "B200,H100", "--quant", "int4", "--offline")
    d = json.loads(run(*args, "--json").stdout)
    b200 = {b["key"]: b for b in d["targets"][0]["backends"]}
    assert b200["trtllm_mxint4_mono"]["gate"] == "env"
    assert "VLLM_USE_FLASHINFER_MOE_INT4=1" in b200["trtllm_mxint4_mono"]["reason"]
    text = run(*args, width=160).stdout
    row = next(line for line in text.splitlines() if line.startswith("│TRT-LLM MXINT4 monolithic"))
    assert "✗ env" in row and "✗ arch" in row  # B200: the switch; H100: the architecture
    for t in d["targets"]:
        for b in t["backends"]:
            if not b["supported"]:
                assert re.search(rf"\] {re.escape(b['gate'])}: ", text), b["gate"]


def test_quiet_catalog_prints_ids_one_per_line():
    r = run("catalog", "-q")
    assert r.stdout.splitlines() == _ids()
    fused = run("catalog", "--check", "--gpu", "B200", "-q").stdout.splitlines()
    assert "deepseek-ai/DeepSeek-V3" in fused and "Qwen/Qwen1.5-MoE-A2.7B" not in fused  # Default routing: modular
