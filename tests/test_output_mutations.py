"""Human-output details the snapshots (tests/test_snapshots.py) did not reach, found by planting
bugs in the renderers (a mutation audit of issue 12's "drops a column, swaps a label or misformats
a value" criterion): the quiet answer of `check`, the Output table's notes, detect's byte count and
[guessed] marker, and check's KV-token count, narrow --require verdict, "[all targets]" reasons,
"also:" blockers and padding overhead.

Each expected text is derived from the model's shapes and vLLM's rules (stated next to it), not
copied from the current output. Output is compared with runs of whitespace collapsed, so Rich's
line wrapping at a given width does not matter.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from moe_inspect.cli.app import app
from moe_inspect.cli.output import Column, Output
from tests.hub_server import isolate_hf
from tests.modelgen import make_model_dir, moe_config, moe_tensors

MINIMAX = "MiniMaxAI/MiniMax-M2.5"  # catalog: E=256, k=8, moe_intermediate_size 1536, FP8 block [128, 128]
DSV3 = "deepseek-ai/DeepSeek-V3"  # catalog: E=256, k=8, moe_intermediate_size 2048, FP8 block [128, 128]


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf_home", offline=True)

    def run(*args, width: int = 200):
        env = {"COLUMNS": str(width), "LINES": "50", "NO_COLOR": "1", "TERM": "dumb", "TERMINAL_WIDTH": None,
               "MOE_INSPECT_DEBUG": None, "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
        r = CliRunner().invoke(app, list(args), env=env)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return r

    return run


def flat(text: str) -> str:
    return " ".join(text.split())


# --- the shared Output layer ---------------------------------------------------------------------
def test_check_quiet_prints_yes_or_no_not_a_python_bool(cli):
    # MiniMax-M2.5 on one B200 with no layout: vLLM starts (exit 0 without a layout)
    r = cli("check", MINIMAX, "--gpu", "B200", "--offline", "-q")
    assert (r.exit_code, r.stdout) == (0, "yes\n")
    # TP 1 on one H100: ~230 B FP8 parameters (≥ 200 GiB) cannot fit 80 GiB × 0.9 = 72 GiB -> vLLM
    # does not start; with a layout given that is a finding, exit 1
    r = cli("check", MINIMAX, "--gpu", "H100", "--tp", "1", "--offline", "-q")
    assert (r.exit_code, r.stdout) == (1, "no\n")


def test_table_notes_follow_the_human_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows = [{"model": "a/b", "why": "1"}]
    cols = [Column("model", "model"), Column("why", "why")]
    Output("table").table(rows, cols, notes=["[1] B200: no fused routing"])
    out = capsys.readouterr().out.splitlines()
    assert out[-1].strip() == "[1] B200: no fused routing"
    Output("markdown").table(rows, cols, notes=["[1] B200: no fused routing"])
    assert capsys.readouterr().out.splitlines()[-1] == "[1] B200: no fused routing  "


# --- detect ----------------------------------------------------------------------------------------
def test_detect_head_groups_the_bytes_read_in_thousands(tmp_path):
    from moe_inspect.cli.render import detect_markdown
    from moe_inspect.detect import describe

    d = describe(str(make_model_dir(tmp_path / "m", moe_config(), moe_tensors()))).to_dict()
    d["model"].update(source="hub", path=None, bytes_read=1234567)
    head = detect_markdown(d).splitlines()[0]
    assert head.endswith("· from hub, 1,234,567 bytes read"), head


def test_detect_marks_guessed_fields_of_an_unknown_architecture(cli, tmp_path):
    cfg = {"architectures": ["FooMoeForCausalLM"], "model_type": "foo_moe", "hidden_size": 64,
           "num_hidden_layers": 4, "num_local_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
           "torch_dtype": "bfloat16"}
    model = make_model_dir(tmp_path / "foo", cfg, {})
    r = cli("detect", str(model))
    assert r.exit_code == 0, r.output
    rows = {line.split("  ")[0]: line for line in r.stdout.splitlines()}
    # every MoE field of an unknown architecture comes from generic keys: the value says so
    assert re.match(r"experts\s+8 \[guessed\]\s+guessed:config:num_local_experts", rows["experts"])
    assert re.match(r"top-k\s+2 \[guessed\]\s+guessed:config:num_experts_per_tok", rows["top-k"])
    assert re.match(r"MoE layers\s+0–3 \(4\) \[guessed\]", rows["MoE layers"])


# --- check -----------------------------------------------------------------------------------------
def test_check_memory_line_groups_kv_tokens_in_thousands(cli, tmp_path):
    # the tiny DeepSeek-V3 model with MLA attention keys: KV per token = 4 layers × (kv_lora_rank 16 +
    # qk_rope_head_dim 8) × 2 bytes (bf16) = 192 bytes; H200: 141 GiB × 0.9 = 126.9 GiB usable, the
    # weights are a few MiB, so the KV room holds just under 126.9 · 2^30 / 192 = 709,674,393 tokens
    cfg = moe_config(num_attention_heads=4, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16,
                     v_head_dim=16, vocab_size=256, max_position_embeddings=4096)
    model = str(make_model_dir(tmp_path / "mla", cfg, moe_tensors()))
    m = cli("check", model, "--gpu", "H200", "--json").stdout
    mem = json.loads(m)["targets"][0]["memory"]
    assert mem["kv_bytes_per_token"] == 192
    n = mem["kv_tokens"]
    assert 709_000_000 < n <= 709_674_393
    text = flat(cli("check", model, "--gpu", "H200").stdout)
    assert f"memory: weights 0.0 GiB/GPU of 126.9 GiB usable (×0.9): fits · KV cache 126.9 GiB ≈ {n:,} tokens" in text


def test_check_narrow_view_says_whether_require_is_met_per_group(cli):
    # DeepSeek-V3 FP8 block: fused routing only through TRT-LLM FP8 block monolithic, sm100/sm103 only
    r = cli("check", DSV3, "--gpu", "H100,B200", "--offline", "--require", "fused-routing", "--all-backends",
            width=60)
    assert r.exit_code == 1
    text = flat(r.stdout)
    assert "┃" not in r.stdout  # 60 columns: the stacked view, not the table
    assert "H100 (sm90): vLLM picks Triton · starts · --require NOT met" in text
    assert "B200 (sm100): vLLM picks TRT-LLM FP8 block monolithic · starts · --require met" in text


def test_check_narrow_view_says_does_not_start(cli):
    # DeepSeek-V3 at TP 3 on one H100 and one B200 (different columns): 2048 % 3 != 0, vLLM refuses on both
    r = cli("check", DSV3, "--gpu", "H100,B200", "--tp", "3", "--offline", width=60)
    assert r.exit_code == 1 and "┃" not in r.stdout
    text = flat(r.stdout)
    assert "H100 (sm90): vLLM picks Triton · does NOT start" in text
    assert "B200 (sm100): vLLM picks TRT-LLM FP8 block monolithic · does NOT start" in text


def test_check_memory_line_says_does_not_fit_when_the_weights_are_known(cli, tmp_path):
    # a DeepSeek-V3-shaped BF16 model, every part known: 7 MoE layers × 256 experts × 3 × 4096 × 2048
    # × 2 bytes = 84.0 GiB of routed experts alone, over an H100's 80 GiB × 0.9 = 72.0 GiB usable
    cfg = moe_config(hidden_size=4096, num_hidden_layers=8, n_routed_experts=256, num_experts_per_tok=8,
                     n_group=8, topk_group=4, moe_intermediate_size=2048, intermediate_size=8192,
                     num_attention_heads=32, kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
                     v_head_dim=128, q_lora_rank=1536, vocab_size=32000, max_position_embeddings=4096)
    model = str(make_model_dir(tmp_path / "big", cfg, {}))
    mem = json.loads(cli("check", model, "--gpu", "H100", "--json").stdout)["targets"][0]["memory"]
    assert mem["breakdown_gib"]["routed experts"] == 84.0 and mem["fits"] is False
    text = flat(cli("check", model, "--gpu", "H100").stdout)
    w = mem["weights_per_gpu_gib"]
    assert w > 84.0
    assert f"memory: weights {w:.1f} GiB/GPU of 72.0 GiB usable (×0.9): does NOT fit" in text


def test_check_reasons_shared_by_every_target_say_all_targets(cli):
    # TRT-LLM FP8 block kernels need sm100/sm103: both Hopper targets refuse them for the same reason
    text = flat(cli("check", MINIMAX, "--gpu", "H100,H200", "--offline").stdout)
    assert "TRT-LLM FP8 block monolithic [all targets] arch: needs sm100, sm103; sm90 is not supported" in text
    assert "[H100, H200]" not in text
    # one target: its name, never "all targets"
    text = flat(cli("check", MINIMAX, "--gpu", "H100", "--offline").stdout)
    assert "TRT-LLM FP8 block monolithic [H100] arch:" in text


def test_check_lists_every_start_blocker_after_the_first(cli):
    # DeepSeek-V3 at TP 3: 2048 (the shared and the routed experts' width) is not divisible by 3, so
    # vLLM refuses more than once; the first refusal is in the "would start: no" line, the rest "also:"
    r = cli("check", DSV3, "--gpu", "H100", "--tp", "3", "--offline")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert any(line.startswith("H100: vLLM 0.33 would start: no — ") for line in lines)
    also = [line for line in lines if line.startswith("  also: ")]
    assert len(also) >= 2
    assert any("routed experts" in line and "2048" in line for line in also)


def test_check_forced_padding_shows_its_overhead(cli):
    # MiniMax-M2.5 at TP 8: 1536 / 8 = 192 per rank; forcing TRT-LLM pads it to whole 128-blocks:
    # 256, i.e. +(256 - 192) / 192 = +33.3 % expert memory
    text = flat(cli("check", MINIMAX, "--gpu", "B200", "--tp", "8", "--moe-backend", "flashinfer_trtllm",
                    "--offline").stdout)
    assert "TP shard padded from 192 to 256" in text
    assert re.search(r"adjustment: fp8_block_forced_pad: .*\(\+33\.3 %\)", text)


# --- catalog ---------------------------------------------------------------------------------------
def test_catalog_markdown_says_which_models_would_not_start(cli):
    # TP 3 on B200: MiniMax-M2.5's expert width 1536 / 3 = 512 is whole 128-blocks, vLLM starts it;
    # DeepSeek-V3's 2048 is not divisible by 3, vLLM refuses it (its routing would still be fused)
    r = cli("catalog", "--check", "--gpu", "B200", "--tp", "3", "--format", "markdown")
    lines = r.stdout.splitlines()
    assert "| MiniMaxAI/MiniMax-M2.5 | MiniMax2 | FP8 block | ✓ fused |" in lines
    assert "| deepseek-ai/DeepSeek-V3 | DeepSeekV3 | FP8 block | ✓ fused, does not start |" in lines


# --- verify ----------------------------------------------------------------------------------------
def test_verify_markdown_inputs_line(cli):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    r = cli("verify", DSV3, "--offline", "--tokens", "8", "--seed", "3", "--format", "markdown")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"**MATCH** `{DSV3}`"
    assert "- inputs: 8 tokens, seed 3, experts 256, top-k 8" in lines  # DeepSeek-V3: 256 experts, top-8


# verify --kernel needs a GPU; its renderers take the result dict, so a hand-made one (the shape of
# VerifyResult.to_dict() with --kernel) pins what they print: 61 of 64 tokens agree = 95.3 %
KERNEL_RESULT = {
    "verdict": "mismatch", "model": DSV3, "method": "DeepSeekV3", "method_source": "resolved",
    "kernel": "trtllm-gen routing", "oracle_version": "0.7.2.post1", "tokens": 64, "seed": 0,
    "num_experts": 256, "top_k": 8, "tolerance": {"atol": 1e-05, "rtol": 0.0001, "dtype": "float32"},
    "logit_scale": 1.0, "explanation": "3 tokens route differently", "notes": [],
    "agreement": [{"a": "reference", "b": "trtllm-gen routing", "same_experts": 61, "tokens": 64,
                   "fraction": 61 / 64, "max_weight_error": 2.4e-07},
                  {"a": "transformers", "b": "reference", "same_experts": 64, "tokens": 64, "fraction": 1.0,
                   "max_weight_error": None}],
    "kernels": {}, "disagreements": {}, "consequence": {},
}


def test_verify_kernel_agreement_table_human():
    import io

    from rich.console import Console

    from moe_inspect.cli.verify import render

    buf = io.StringIO()
    render(KERNEL_RESULT, Console(file=buf, width=200, no_color=True, force_terminal=False, highlight=False))
    text = flat(buf.getvalue())
    assert "agreement on 64 tokens (logits N(0, 1²))" in text
    assert re.search(r"reference\s*│\s*trtllm-gen routing\s*│\s*61/64 \(95\.3 %\)\s*│\s*2\.4e-07", buf.getvalue())
    assert re.search(r"transformers\s*│\s*reference\s*│\s*64/64 \(100\.0 %\)\s*│\s*—", buf.getvalue())


def test_verify_kernel_agreement_table_markdown():
    from moe_inspect.cli.verify import markdown

    lines = markdown(KERNEL_RESULT).splitlines()
    assert lines[0] == f"**MISMATCH** `{DSV3}`"
    i = lines.index("| router | vs | same experts | max weight error |")
    assert lines[i + 1:i + 4] == ["|---|---|---|---|", "| reference | trtllm-gen routing | 61/64 | 2.4e-07 |",
                                  "| transformers | reference | 64/64 | — |"]


def test_check_markdown_says_why_vllm_would_not_start(cli):
    # DeepSeek-V3 at TP 3: layer 3 is its first MoE layer (first_k_dense_replace 3) and its one shared
    # expert is 2048 wide (n_shared_experts 1 × moe_intermediate_size 2048): 2048 % 3 != 0, vLLM refuses
    r = cli("check", DSV3, "--gpu", "H100,B200", "--tp", "3", "--offline", "--format", "markdown")
    assert r.exit_code == 1
    no = "no: model.layers.3.mlp.shared_experts.gate_up_proj (shared expert): 2048 is not divisible by 3"
    assert f"| **starts** | | {no} | {no} |" in r.stdout.splitlines()
    # MiniMax-M2.5 at TP 3: 1536 / 3 = 512, whole 128-blocks: it starts
    r = cli("check", MINIMAX, "--gpu", "B200", "--tp", "3", "--offline", "--format", "markdown")
    assert "| **starts** | | yes |" in r.stdout.splitlines()
