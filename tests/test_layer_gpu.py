"""GPU tests for run-layer: every SM90 cuTile path on a small layer (skipped without CUDA)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _sm() -> int:
    major, minor = torch.cuda.get_device_capability(0)
    return major * 10 + minor


def _run(quant, **kw):
    pytest.importorskip("flashinfer")
    from moe_inspect.layer.runner import RunLayerOptions, run_layer

    base = dict(experts=16, top_k=4, hidden=512, intermediate=256, routing="Renormalize", tokens=(1, 40),
                repeat_ms=5.0)
    base.update(kw)
    return run_layer(RunLayerOptions(quant=quant, **base))


@pytest.mark.parametrize("quant", ["bf16", "fp8", "nvfp4", "mxfp4", "mxfp8"])
def test_sm90_cutile_weight_only_paths_match_the_float32_reference(quant):
    if _sm() != 90:
        pytest.skip("SM90 cuTile paths")
    r = _run(quant, act="bf16")
    assert r.path["backend"] == "cutile" and not r.path["quantized_activations"]
    for row in r.rows:
        assert row.accuracy["passed"], (quant, row.tokens, row.accuracy)
        assert row.timing["median_us"] > 0 and row.roofline["pct_bandwidth"] is not None
    assert r.passed


def test_sm90_grouped_deepseek_routing_uses_fused_topk_deepseek():
    if _sm() != 90:
        pytest.skip("SM90 cuTile paths")
    from moe_inspect.layer.runner import FUSED_TOPK_DEEPSEEK, TRTLLM_ROUTER

    r = _run("bf16", experts=64, top_k=6, routing="DeepSeekV3", n_group=8, topk_group=4,
             routed_scaling_factor=2.5, shared_experts=1)
    # default --routing: the trtllm-gen kernel where it is built here, else fused_topk_deepseek
    assert r.routing_source in (TRTLLM_ROUTER, FUSED_TOPK_DEEPSEEK) and r.routing["used"] == "kernel"
    assert all(row.routing_agreement is not None and row.routing_agreement >= 0.95 for row in r.rows)
    assert r.routing["agreement_reference"] >= 0.95
    assert r.passed


def test_sm90_reference_routing_is_used_when_asked():
    if _sm() != 90:
        pytest.skip("SM90 cuTile paths")
    r = _run("bf16", experts=64, top_k=6, routing="DeepSeekV3", n_group=8, topk_group=4,
             routed_scaling_factor=2.5, routing_impl="reference")
    assert r.routing == {**r.routing, "used": "reference", "source": "moe_inspect.reference.routers.route"}
    assert all(row.routing_agreement is None for row in r.rows) and r.passed


def test_sm90_minimax2_routing_with_bias_passes():
    if _sm() != 90:
        pytest.skip("SM90 cuTile paths")
    r = _run("nvfp4", experts=32, top_k=8, routing="MiniMax2", act="bf16")
    assert r.routing_mode == "PackedPrecomputed"
    assert r.passed


def test_sm90_refuses_trtllm_nvfp4_with_a_one_line_reason():
    if _sm() != 90:
        pytest.skip("SM90 only")
    from moe_inspect.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="needs SM100/SM103; this is SM90"):
        _run("nvfp4", act="quant", backend="trtllm")
