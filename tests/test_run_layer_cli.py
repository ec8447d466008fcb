"""run-layer as a user meets it without a GPU: every input that can be checked is checked before
looking for one (issue 11 item 9), a core install names the extra to install (item 3), and the
``--routing kernel|reference`` choice (ROUTING_CONTRACT.md). Each refusal is ONE line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from moe_inspect.errors import BadInputError, UnsupportedError

_SHAPES = ["--experts", "8", "--top-k", "2", "--hidden", "128", "--intermediate", "64", "--routing-method", "Renormalize"]


def _cli(*args, hide=(), env=None, tmp_path=None):
    """The real CLI in a subprocess; ``hide`` makes those modules unimportable (a core install)."""
    code = ("import sys\n"
            f"for m in {list(hide)!r}: sys.modules[m] = None\n"
            "from moe_inspect.cli.app import main\n"
            f"sys.argv = ['moe-inspect', 'run-layer', *{list(args)!r}]\n"
            "main()\n")
    e = dict(os.environ, **(env or {}))
    if tmp_path is not None:  # no Hub, no cache: the catalog answers
        e.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", MOE_INSPECT_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120,
                       cwd=tmp_path or None)
    return r.returncode, r.stdout + r.stderr


def _one_line(out: str) -> str:
    lines = [x for x in out.strip().splitlines() if x.strip()]
    assert len(lines) == 1, out
    return lines[0]


# ----------------------------------------------------------------------------- issue 11 item 3: core install
def test_core_install_without_torch_names_the_gpu_extra(tmp_path):
    rc, out = _cli(*_SHAPES, hide=["torch"], tmp_path=tmp_path)
    assert rc == 2
    assert _one_line(out) == "error: run-layer needs torch, which is not installed: pip install 'moe-inspect[gpu]'"


def test_plot_without_matplotlib_names_the_gpu_extra(tmp_path):
    rc, out = _cli(*_SHAPES, "--plot", str(tmp_path / "out.png"), hide=["matplotlib"], tmp_path=tmp_path)
    assert rc == 2
    assert _one_line(out) == "error: --plot needs matplotlib, which is not installed: pip install 'moe-inspect[gpu]'"
    assert not (tmp_path / "out.png").exists()


def test_require_names_a_missing_dependency_of_a_present_module(monkeypatch):
    from moe_inspect.errors import EnvironmentError_
    from moe_inspect.extras import require

    monkeypatch.setitem(sys.modules, "flashinfer", None)
    with pytest.raises(EnvironmentError_, match=r"^verify --kernel needs flashinfer-python, which is not installed: "
                                                r"pip install 'moe-inspect\[gpu\]'$"):
        require("flashinfer", "gpu", "verify --kernel")
    assert require("json", "gpu", "x").dumps([1]) == "[1]"


# ----------------------------------------------------------------------------- issue 11 item 9: before the GPU
torch = pytest.importorskip("torch")


@pytest.fixture
def cli():
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app

    def run(*a):
        r = CliRunner().invoke(app, ["run-layer", *a])
        return r.exit_code, r.output

    return run


def test_unknown_backend_names_the_valid_ones(cli):
    rc, out = cli(*_SHAPES, "--backend", "cutlass")
    assert rc == 2
    assert _one_line(out) == "error: --backend cutlass: unknown backend (known: auto, cutile, trtllm)"


def test_top_k_above_the_expert_count_is_refused_before_the_gpu(cli):
    rc, out = cli("--experts", "64", "--top-k", "80", "--hidden", "128", "--intermediate", "64",
                  "--routing-method", "Renormalize")
    assert rc == 2
    assert _one_line(out) == "error: --top-k 80: FlashInfer MoE takes 1 <= top_k <= min(32, experts=64)"


def test_checkpoint_weights_of_a_catalog_model_say_there_is_no_local_checkpoint(tmp_path):
    rc, out = _cli("MiniMaxAI/MiniMax-M2.5", "--weights", "checkpoint", "--offline", tmp_path=tmp_path)
    assert rc == 2
    line = _one_line(out)
    assert line.startswith("error: --weights checkpoint: MiniMaxAI/MiniMax-M2.5 has no local checkpoint "
                           "(answered from the catalog)"), line
    assert "no CUDA device" not in line


def test_layer_that_is_not_moe_names_the_moe_layers(tmp_path):
    rc, out = _cli("deepseek-ai/DeepSeek-V3", "--layer", "99", "--offline", tmp_path=tmp_path)
    assert rc == 2
    # DeepSeek-V3: 61 layers, first_k_dense_replace = 3 -> MoE layers 3..60 (config.json)
    assert _one_line(out) == "error: --layer 99: not a MoE layer of deepseek-ai/DeepSeek-V3 (MoE layers: 3-60)"


def test_routing_takes_kernel_or_reference_and_points_a_method_name_to_routing_method(cli):
    rc, out = cli(*_SHAPES, "--routing", "Renormalize")
    assert rc == 2
    assert _one_line(out) == ("error: --routing Renormalize: use kernel or reference; the routing METHOD of "
                              "explicit shapes is --routing-method Renormalize")


# ----------------------------------------------------------------------------- --routing kernel|reference
def _shapes(**kw):
    from moe_inspect.layer.weights import LayerShapes

    base = dict(num_experts=64, top_k=8, hidden_size=256, intermediate_size=256, routing_method="Renormalize")
    base.update(kw)
    return LayerShapes(**base)


def _module(unavailable=None, unsupported=None):
    """The two questions run-layer asks moe_inspect.kernels.trtllm_routing, answered as given."""
    return SimpleNamespace(unavailable_reason=lambda arch=None: unavailable,
                           supports=lambda method, e, k, g=None, tg=None: unsupported)


def test_default_routing_is_the_kernel_where_it_runs():
    from moe_inspect.layer.runner import TRTLLM_ROUTER, choose_routing

    r = choose_routing(None, _shapes(), "PackedPrecomputed", 90, module=_module())
    assert (r.used, r.source, r.reason) == ("kernel", TRTLLM_ROUTER, None)


def test_default_routing_falls_back_to_the_reference_with_the_reason():
    from moe_inspect.layer.runner import REFERENCE_ROUTER, choose_routing

    r = choose_routing(None, _shapes(), "PackedPrecomputed", 89, module=_module(unavailable="this GPU is SM89"))
    assert (r.used, r.source, r.reason) == ("reference", REFERENCE_ROUTER, "this GPU is SM89")
    r = choose_routing(None, _shapes(top_k=40), "PackedPrecomputed", 90, module=_module(unsupported="k <= 32"))
    assert (r.used, r.reason) == ("reference", "k <= 32")


def test_grouped_deepseek_falls_back_to_fused_topk_deepseek_before_the_reference():
    from moe_inspect.layer.runner import FUSED_TOPK_DEEPSEEK, choose_routing

    s = _shapes(num_experts=256, routing_method="DeepSeekV3", n_group=8, topk_group=4)
    r = choose_routing(None, s, "PackedPrecomputed", 90, module=_module(unavailable="no headers"))
    assert (r.used, r.source) == ("kernel", FUSED_TOPK_DEEPSEEK)


def test_explicit_kernel_routing_that_cannot_run_is_refused():
    from moe_inspect.layer.runner import choose_routing

    with pytest.raises(UnsupportedError, match=r"^--routing kernel: this GPU is SM89$"):
        choose_routing("kernel", _shapes(), "PackedPrecomputed", 89, module=_module(unavailable="this GPU is SM89"))


def test_reference_routing_forces_the_precomputed_trtllm_variant():
    from moe_inspect.layer.runner import RunLayerOptions, choose_routing, plan

    s = _shapes(routing_method="Renormalize")
    assert plan(RunLayerOptions(quant="nvfp4"), s, 100)[1] == "FromLogits"
    path, mode = plan(RunLayerOptions(quant="nvfp4", routing_impl="reference"), s, 100)
    assert mode == "PackedPrecomputed"
    r = choose_routing("reference", s, mode, 100, module=_module())
    assert (r.used, r.reason) == ("reference", "--routing reference")
    assert choose_routing(None, s, "FromLogits", 100, module=_module()).used == "in-kernel"
    with pytest.raises(BadInputError):
        choose_routing("fast", s, mode, 100, module=_module())


def test_routing_summary_reports_agreement_fields():
    from moe_inspect.layer.runner import RoutingChoice, TokenResult, routing_summary

    rows = [TokenResult(1, 8, {}, None, None, routing_agreement=1.0),
            TokenResult(16, 60, {}, None, None, routing_agreement=0.9375)]
    d = routing_summary(RoutingChoice("kernel", "moe_inspect.kernels.trtllm_routing.route"), rows)
    assert d["agreement_reference"] == 0.9375  # the worst token count
    assert d["agreement_model_router"] is None and "verify" in d["agreement_model_router_reason"]


def test_torch_without_flashinfer_names_the_gpu_extra_before_looking_for_a_gpu(tmp_path):
    rc, out = _cli(*_SHAPES, hide=["flashinfer"], tmp_path=tmp_path)
    assert rc == 2
    assert _one_line(out) == "error: run-layer needs flashinfer-python, which is not installed: pip install 'moe-inspect[gpu]'"


def test_a_format_backend_activation_triple_no_gpu_runs_is_refused_before_the_gpu(cli):
    rc, out = cli(*_SHAPES, "--quant", "fp8-block", "--act", "bf16")
    assert rc == 2
    # FP8-block runs only with quantized activations: TRT-LLM on SM100/103 (and CUTLASS on SM90 when built)
    assert _one_line(out) == ("error: --quant fp8-block --act bf16: no FlashInfer path runs it on any GPU "
                              "(runs: --backend trtllm --act quant)")
    rc, out = cli(*_SHAPES, "--quant", "fp8-block", "--backend", "cutile")
    assert rc == 2 and "no FlashInfer path runs it on any GPU" in out


# ----------------------------------------------------------------------------- issue 12 item 1: the output layer
def _result(passed=True):
    """A run-layer result as layer/runner.py's LayerRunResult.to_dict() writes it, by hand."""
    row = lambda n, us, peer_us, rel, ok: {  # noqa: E731
        "tokens": n, "experts_hit": 8.0, "first_call_s": 0.5, "routing_agreement": 1.0,
        "accuracy": {"rel_l2": rel, "cosine": 0.99999, "within_tol": 1.0, "passed": ok},
        "timing": {"median_us": us, "p10_us": us - 1, "p90_us": us + 1},
        "roofline": {"achieved_tbs": 1.5, "pct_bandwidth": 31.0, "achieved_tflops": 2.0, "pct_compute": 0.2,
                     "bound": "memory"},
        "peer": {"name": "torch._grouped_mm", "weights": "BF16 weights", "median_us": peer_us,
                 "flashinfer_over_peer": us / peer_us}}
    return {
        "model": "MiniMaxAI/MiniMax-M2.5", "layer": 0, "quant": "nvfp4",
        "shapes": {"num_experts": 256, "top_k": 8, "hidden_size": 3072, "intermediate_size": 1536,
                   "routing_method": "MiniMax2", "n_group": None, "topk_group": None,
                   "routed_scaling_factor": None, "num_shared_experts": 0},
        "path": {"config_class": "TrtllmFp4Config", "weight_format": "nvfp4", "activation_format": "nvfp4"},
        "routing_mode": "FromLogits", "routing_source": "in-kernel", "routing": {},
        "gpu": {"name": "NVIDIA B200", "arch": 100}, "versions": {"flashinfer": "0.7.2.post1"},
        "weights": {"source": "random"},
        "rows": [row(1, 20.0, 40.0, 1.234e-3, True), row(16, 50.0, 25.0, 2.5e-2, passed)],
        "notes": ["random weights | seed 0"], "passed": passed, "verdict": "pass" if passed else "fail",
    }


def test_markdown_is_a_per_token_table_for_a_pr():
    from moe_inspect.cli.run_layer import markdown

    md = markdown(_result(passed=False))
    lines = md.splitlines()
    i = lines.index("| tokens | µs (median) | peer µs | FI/peer | rel L2 | verdict |")
    assert lines[i + 1] == "|---:|---:|---:|---:|---:|---|"
    # FI/peer = 20/40 and 50/25; rel L2 in the human table's .2e
    assert lines[i + 2] == "| 1 | 20.0 | 40.0 | 0.50 | 1.23e-03 | pass |"
    assert lines[i + 3] == "| 16 | 50.0 | 25.0 | 2.00 | 2.50e-02 | FAIL |"
    assert "random weights \\| seed 0" in md  # a note's pipe cannot break the Markdown
    assert lines[-1] == "**verdict: FAIL** (accuracy outside the format's threshold)"
    assert lines[0].startswith("`MiniMaxAI/MiniMax-M2.5` layer 0: E=256 k=8") and "NVIDIA B200 (SM100)" in lines[0]


def test_markdown_of_a_multi_gpu_run_has_one_row_per_scheme():
    from moe_inspect.cli.run_layer import markdown_distributed

    sc = lambda label, total, ok: {  # noqa: E731
        "label": label, "phases_us": {"route": 1.0, "dispatch": 2.0, "experts": 10.0, "combine": 3.0, "total": total},
        "accuracy": {"rel_l2": 1e-3, "passed": ok}, "bytes": {"dispatch": 0, "combine": 0}, "link_gbs": {}}
    d = {"model": None, "layer": None, "quant": "bf16",
         "shapes": {"num_experts": 64, "top_k": 8, "hidden_size": 2048, "intermediate_size": 768},
         "gpu": {"name": "NVIDIA H200", "arch": 90, "count": 2}, "path": {"config_class": "CuteDslConfig"},
         "versions": {"nccl": "2.27.3"}, "plans": [{"label": "TP 2", "layout_text": "experts 0–63 on every GPU"}],
         "rows": [{"tokens": 16, "schemes": [sc("TP 2", 16.0, True), sc("EP 2", 17.5, False)]}],
         "notes": [], "passed": False, "verdict": "fail"}
    lines = markdown_distributed(d).splitlines()
    assert lines[0].startswith("`custom layer` layer None: E=64 k=8") and "2× NVIDIA H200 (SM90)" in lines[0]
    i = lines.index("| tokens | scheme | route µs | dispatch µs | experts µs | combine µs | total µs | rel L2 | verdict |")
    assert lines[i + 2:i + 4] == ["| 16 | TP 2 | 1.0 | 2.0 | 10.0 | 3.0 | 16.0 | 1.00e-03 | pass |",
                                  "| 16 | EP 2 | 1.0 | 2.0 | 10.0 | 3.0 | 17.5 | 1.00e-03 | FAIL |"]
    assert lines[-1].startswith("**verdict: FAIL**")


def test_json_and_markdown_together_exit_2_in_one_line(cli):
    rc, out = cli(*_SHAPES, "--json", "--format", "markdown")
    assert rc == 2
    assert _one_line(out) == "error: --format markdown and --json contradict each other; give one output format"


@pytest.fixture
def ran(monkeypatch):
    """run-layer through the CLI with the GPU run replaced by a fixed result (no GPU needed)."""
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app
    from moe_inspect.layer import runner

    def run(*a, passed=True):
        d = _result(passed)
        monkeypatch.setattr(runner, "run_layer", lambda opts, *, progress=None, describe=None:
                            SimpleNamespace(passed=passed, to_dict=lambda: d))
        r = CliRunner().invoke(app, ["run-layer", *_SHAPES, *a], env={"COLUMNS": "200"})
        return r.exit_code, r.stdout

    return run


def test_quiet_prints_only_the_verdict_and_keeps_the_exit_code(ran):
    assert ran("--quiet") == (0, "pass\n")
    assert ran("--format", "quiet", passed=False) == (1, "fail\n")


def test_format_markdown_and_json_through_the_command(ran):
    import json

    rc, out = ran("--format", "markdown", passed=False)
    assert rc == 1 and "| 16 | 50.0 | 25.0 | 2.00 | 2.50e-02 | FAIL |" in out
    rc, out = ran("--json")
    assert rc == 0 and json.loads(out) == _result(True)  # the payload as the runner wrote it, keys unchanged


def test_people_still_get_the_rich_table(ran):
    rc, out = ran()
    assert rc == 0
    assert "MiniMaxAI/MiniMax-M2.5 layer 0: E=256 k=8 H=3072 I=1536 routing=MiniMax2" in out
    assert "peer µs" in out and "FI/peer" in out and "0.50" in out
    assert "note: random weights | seed 0" in out and out.rstrip().endswith("verdict: pass")
