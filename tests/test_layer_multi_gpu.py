"""The 2-GPU layer (TP 2, EP 2 with all-reduce, EP 2 with all-to-all) on a small layer, against the
float32 reference of the whole layer. Skipped without 2 CUDA GPUs and FlashInfer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs"),
]


def _run(quant, plan_kw, *, compare=False, **kw):
    pytest.importorskip("flashinfer")
    from moe_inspect.layer.distributed import run_distributed
    from moe_inspect.layer.runner import RunLayerOptions
    from moe_inspect.layer.sharding import plan_layout

    base = dict(experts=16, top_k=4, hidden=512, intermediate=256, routing="Renormalize", tokens=(1, 40),
                repeat_ms=5.0, act="bf16")
    base.update(kw)
    return run_distributed(RunLayerOptions(quant=quant, **base), plan_layout(**plan_kw), compare=compare)


@pytest.mark.parametrize("quant", ["bf16", "nvfp4"])
def test_tp2_and_ep2_all_to_all_match_the_whole_layer(quant):
    d = _run(quant, dict(tp=2), compare=True)
    assert [p["scheme"] for p in d["plans"]] == ["tp", "ep-a2a"]
    for row in d["rows"]:
        for sc in row["schemes"]:
            assert sc["accuracy"]["passed"], (quant, row["tokens"], sc["scheme"], sc["accuracy"])
            assert sc["phases_us"]["experts"] > 0 and sc["phases_us"]["combine"] > 0
    assert d["passed"] and d["env"]["NCCL_NVLS_ENABLE"] == "0"


def test_tp2_with_ep_all_reduce_and_uneven_experts():
    d = _run("bf16", dict(tp=2, ep=True), experts=15, top_k=3)  # 8 + 7 experts
    assert d["plans"][0]["scheme"] == "ep" and d["passed"]


def test_grouped_deepseek_routing_with_shared_expert():
    d = _run("bf16", dict(dp=2, ep=True), experts=64, top_k=6, routing="DeepSeekV3", n_group=8, topk_group=4,
             routed_scaling_factor=2.5, shared_experts=1)
    assert d["passed"]
