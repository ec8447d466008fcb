"""`moe-inspect check` through typer's CliRunner: exit codes 0/1/2 and the --json contract."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from moe_inspect.cli.app import app

runner = CliRunner()
M = "MiniMaxAI/MiniMax-M2.5"


def run(*args):
    return runner.invoke(app, ["check", *args])


def test_json_contract_shape():
    r = run(M, "--gpu", "B200,H100", "--offline", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["schema_version"] == 1
    assert d["model"]["id"] == M
    assert d["routing"]["method"] == "MiniMax2"
    assert [t["gpu"] for t in d["targets"]] == ["B200", "H100"]
    for t in d["targets"]:
        assert {"gpu", "arch", "backends", "vllm_auto_choice", "requirement_met"} <= set(t)
        for b in t["backends"]:
            assert {"name", "kind", "supported", "reason"} <= set(b)
            assert b["kind"] in ("monolithic", "modular")
    b200 = d["targets"][0]
    assert b200["arch"] == "sm100"
    assert b200["vllm_auto_choice"]["name"] == "TRT-LLM FP8 block monolithic"
    assert b200["specs"]["bandwidth_tbs"] == 8.0 and b200["specs"]["dense"] is True


def test_require_met_exit_0_and_not_met_exit_1():
    assert run(M, "--gpu", "B200", "--offline", "--require", "fused-routing", "--json").exit_code == 0
    r = run(M, "--gpu", "B200,H100", "--offline", "--require", "fused-routing", "--json")
    assert r.exit_code == 1
    d = json.loads(r.stdout)
    assert [t["requirement_met"] for t in d["targets"]] == [True, False]
    assert d["requirement_met"] is False
    assert run(M, "--gpu", "H100", "--offline", "--require", "flashinfer", "--json").exit_code == 0


def test_without_require_exit_0_even_when_unsupported():
    assert run(M, "--gpu", "H100", "--offline", "--quant", "mxfp8", "--json").exit_code == 0


@pytest.mark.parametrize("args,needle", [
    (["--gpu", "B20"], "B200"),
    (["--gpu", "B200", "--quant", "fp9"], "--quant fp9"),
    (["--gpu", "B200", "--require", "fast"], "--require fast"),
    (["--gpu", "B200", "--backend", "nope"], "--backend nope"),
    (["--gpu", "B200", "--backend", "triton", "--require", "fused-routing"], "fused-routing"),
])
def test_bad_input_exit_2_one_line(args, needle):
    r = run(M, "--offline", *args)
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err


def test_markdown_and_table_formats():
    r = run(M, "--gpu", "B200", "--offline", "--format", "markdown")
    assert r.exit_code == 0 and "| backend | kind | B200 |" in r.stdout
    r = run(M, "--gpu", "H100", "--offline")
    assert r.exit_code == 0 and "FlashInfer CUTLASS" in r.stdout and "vLLM picks" in r.stdout


def test_default_targets_all_when_no_local_gpu(monkeypatch):
    from moe_inspect import gpus

    monkeypatch.setattr(gpus, "detect_local_gpu", lambda timeout=2.0: None)
    d = json.loads(run(M, "--offline", "--json").stdout)
    assert [t["gpu"] for t in d["targets"]] == [g.name for g in gpus.GPU_TABLE]


def test_catalog_check_gpu_b200():
    r = runner.invoke(app, ["catalog", "--check", "--gpu", "B200", "--json"])
    assert r.exit_code == 0, r.output
    rows = {m["id"]: m for m in json.loads(r.stdout)["models"]}
    assert rows["MiniMaxAI/MiniMax-M2.5"]["targets"][0]["fused_routing"] is True
    assert rows["Qwen/Qwen1.5-MoE-A2.7B"]["targets"][0]["fused_routing"] is False
    plain = json.loads(runner.invoke(app, ["catalog", "--json"]).stdout)
    assert "models" in plain and "method" in plain["models"][0]  # plain listing unchanged


def test_check_all_gpus_at_80_columns_cuts_nothing():
    # the matrix squeezed columns to "s…" / "✗…" on a CI log's 80 columns; it now falls back to one
    # block per target group when the table does not fit
    r = runner.invoke(app, ["check", "deepseek-ai/DeepSeek-V3", "--offline", "--gpu", "all"],
                      env={"COLUMNS": "80"}, terminal_width=80)
    assert r.exit_code == 0, r.output
    assert "…" not in r.stdout and all(len(line) <= 80 for line in r.stdout.splitlines())
    assert "RTX PRO 6000" in r.stdout and "✗ arch: TRT-LLM FP8 block monolithic" in r.stdout
