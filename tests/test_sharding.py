"""Sharding arithmetic of the multi-GPU layer: vLLM's layouts, expert ownership (uneven too), TP slices,
token splits, the all-to-all dispatch plan and the bytes on the links (expected values by hand or
from vLLM 0.33.0's determine_expert_map / FusedMoEParallelConfig.make)."""

from __future__ import annotations

import pytest

from moe_inspect.errors import BadInputError, UnsupportedError
from moe_inspect.layer import sharding as S


# ----------------------------------------------------------------------------- layouts
def test_no_parallel_flags_mean_one_gpu():
    assert S.plan_layout() is None
    assert S.plan_layout(tp=1, dp=1, ep=False) is None
    assert S.plan_layout(ep=True) is None  # vLLM: use_ep needs tp * dp > 1


def test_tp_shards_every_expert_and_all_reduces():
    p = S.plan_layout(tp=2)
    assert (p.scheme, p.world, p.moe_tp, p.moe_ep, p.dp) == ("tp", 2, 2, 1, 1)
    assert p.label == "TP 2"


def test_dp_with_expert_parallel_is_the_all_to_all():
    # vLLM: --data-parallel-size 2 --enable-expert-parallel -> ep = 2, all2all kernels (dp > 1)
    p = S.plan_layout(dp=2, ep=True)
    assert (p.scheme, p.world, p.moe_tp, p.moe_ep, p.dp) == ("ep-a2a", 2, 1, 2, 2)
    assert p.layout["all2all"] is True


def test_tp_with_ep_keeps_tokens_replicated_without_all2all():
    # vLLM: --tensor-parallel-size 4 --enable-expert-parallel -> ep = 4, use_all2all_kernels False (dp == 1)
    p = S.plan_layout(tp=4, ep=True)
    assert (p.scheme, p.world, p.moe_tp, p.moe_ep, p.dp) == ("ep", 4, 1, 4, 1)
    assert p.layout["all2all"] is False


@pytest.mark.parametrize("kw, msg", [
    (dict(tp=2, dp=2, ep=True), "does not model TP and DP together"),
    (dict(dp=2), "without --ep"),
    (dict(tp=0), "must be a positive integer"),
])
def test_layouts_run_layer_does_not_run_are_refused_in_one_line(kw, msg):
    with pytest.raises((BadInputError, UnsupportedError), match=msg) as ei:
        S.plan_layout(**kw)
    assert "\n" not in str(ei.value)


def test_companion_pairs_tp_with_ep_on_the_same_gpus():
    assert S.companion(S.plan_layout(tp=2)).scheme == "ep-a2a"
    assert S.companion(S.plan_layout(dp=2, ep=True)).scheme == "tp"


# ----------------------------------------------------------------------------- experts
def test_even_expert_split():
    assert S.expert_ranges(256, 2) == [(0, 128), (128, 128)]


def test_uneven_split_gives_the_first_ranks_one_more_as_vllm():
    # determine_expert_map: base = 10 // 4 = 2, remainder 2 -> ranks 0, 1 hold 3; linear start = r*2 + min(r, 2)
    assert S.expert_ranges(10, 4) == [(0, 3), (3, 3), (6, 2), (8, 2)]
    assert S.expert_owner(10, 4) == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]


def test_more_ranks_than_experts_is_refused():
    with pytest.raises(UnsupportedError, match="EP 8 over 4 experts"):
        S.expert_ranges(4, 8)


# ----------------------------------------------------------------------------- TP slices
def test_tp_slice_and_w1_rows():
    assert S.tp_slice(1536, 2, 1) == (768, 768)
    # rank 1 of 2 with I = 8: up rows 4..8, gate rows 12..16 of [up; gate]
    assert S.w1_rows(8, 2, 1) == [(4, 8), (12, 16)]
    with pytest.raises(UnsupportedError, match="not divisible by TP 3"):
        S.tp_slice(2048, 3, 0)


def test_bf16_tp_slice_takes_up_and_gate_rows_and_w2_columns():
    torch = pytest.importorskip("torch")
    e, i, h = 2, 4, 3
    w1 = torch.arange(e * 2 * i * h, dtype=torch.float32).reshape(e, 2 * i, h)
    w2 = torch.arange(e * h * i, dtype=torch.float32).reshape(e, h, i)
    out = S.slice_expert_tensors({"w1": w1, "w2": w2}, i, 2, 1)
    assert torch.equal(out["w1"], torch.cat((w1[:, 2:4], w1[:, 6:8]), dim=1))
    assert torch.equal(out["w2"], w2[:, :, 2:4])


@pytest.mark.parametrize("quant", ["nvfp4", "mxfp4", "fp8", "mxfp8"])
def test_quantized_tp_slice_dequantizes_to_the_slice_of_the_full_expert(quant):
    torch = pytest.importorskip("torch")
    from dataclasses import replace

    from moe_inspect.layer.weights import LayerShapes, LayerWeights, random_layer

    sh = LayerShapes(num_experts=3, top_k=2, hidden_size=64, intermediate_size=128, routing_method="Renormalize")
    w = random_layer(sh, quant, seed=3)
    for rank in range(2):
        part = S.slice_expert_tensors(w.tensors, 128, 2, rank)
        pw = LayerWeights(quant, replace(sh, intermediate_size=64), part, w.router_weight)
        for ex in range(3):
            f1, f2 = w.dequant_expert(ex)
            p1, p2 = pw.dequant_expert(ex)
            (a, b), (c, d) = S.w1_rows(128, 2, rank)
            assert torch.equal(p1, torch.cat((f1[a:b], f1[c:d])))
            assert torch.equal(p2, f2[:, rank * 64:(rank + 1) * 64])


def test_slice_off_a_block_boundary_is_refused():
    torch = pytest.importorskip("torch")
    # fp8-block scales are per 128 columns: I = 256 over TP 4 gives 64-wide slices
    w2_scale = torch.ones((1, 2, 2))
    with pytest.raises(UnsupportedError, match="w2_scale: TP 4 slice of 64 columns"):
        S.slice_expert_tensors({"w2_scale": w2_scale}, 256, 4, 1)


def test_ep_slice_keeps_the_rank_experts():
    torch = pytest.importorskip("torch")
    w1 = torch.arange(10).reshape(10, 1)
    g = torch.ones(10)
    out = S.slice_experts({"w1": w1, "w1_global": g, "other": 5}, 10, 3, 3)
    assert out["w1"].flatten().tolist() == [3, 4, 5] and out["w1_global"].shape == (3,) and out["other"] == 5


# ----------------------------------------------------------------------------- tokens
def test_token_split_uneven_and_empty_ranks():
    assert S.token_split(5, 2) == [(0, 3), (3, 2)]
    assert S.token_split(1, 2) == [(0, 1), (1, 0)]
    assert S.token_split(1024, 2) == [(0, 512), (512, 512)]


def test_dispatch_plan_sends_each_token_once_per_owning_rank():
    torch = pytest.importorskip("torch")
    owner = torch.tensor(S.expert_owner(8, 2))  # experts 0-3 on rank 0, 4-7 on rank 1
    ids = torch.tensor([[0, 5], [5, 6], [1, 2], [7, 4]])
    plan = S.dispatch_plan(ids, owner, 2)
    # token 0 -> both ranks, token 1 -> rank 1, token 2 -> rank 0, token 3 -> rank 1
    assert plan.counts == [2, 3]
    assert plan.order.tolist() == [0, 2, 0, 1, 3]


def test_dispatch_plan_of_no_tokens():
    torch = pytest.importorskip("torch")
    plan = S.dispatch_plan(torch.zeros((0, 8), dtype=torch.int32), torch.zeros(16, dtype=torch.long), 2)
    assert plan.counts == [0, 0] and plan.order.numel() == 0


def test_local_pairs_rebase_ids_to_the_rank_range():
    torch = pytest.importorskip("torch")
    row, slot, lid = S.local_pairs(torch.tensor([[4, 1], [6, 7]]), 4, 4)
    assert row.tolist() == [0, 1, 1] and slot.tolist() == [0, 0, 1] and lid.tolist() == [0, 2, 3]


def test_link_bytes():
    # ring all-reduce: 2 (N-1)/N * T*H*2 bytes per rank; T = 128, H = 3072, N = 2
    assert S.allreduce_bytes(128, 3072, 2) == 128 * 3072 * 2
    assert S.allreduce_bytes(128, 3072, 1) == 0
    # rank 0 sends 3 rows to rank 1 (2 stay local): 3 * (H*2 + k*8)
    assert S.a2a_dispatch_bytes([2, 3], 0, 4, 2) == 3 * (8 + 16)
    assert S.a2a_combine_bytes([2, 3], 1, 4) == 2 * 8
