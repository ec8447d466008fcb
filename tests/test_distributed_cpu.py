"""The multi-GPU launcher and the sharded layer's dispatch/combine, on CPU.

The launcher spawns real processes (their environment is checked); the sharded layer runs over
torch.distributed's gloo backend in two processes, with torch's grouped GEMM as each rank's expert
call in place of FlashInfer, against the float32 reference of the whole layer."""

from __future__ import annotations

import os

import pytest

from moe_inspect.errors import BadInputError, EnvironmentError_, UnsupportedError
from moe_inspect.layer import distributed as D
from moe_inspect.layer import sharding as S


# ----------------------------------------------------------------------------- launcher
def _report_env(rank, world, payload, say):
    keys = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS", "RANK", "WORLD_SIZE",
            "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    return {k: os.environ.get(k) for k in keys} | {"pid": os.getpid(), "payload": payload}


def _fail_on_rank_1(rank, world, payload, say):
    if rank == 1:
        raise UnsupportedError("FlashInfer refused the layer: demo")
    return {}


def _crash_on_rank_0(rank, world, payload, say):
    if rank == 0:
        raise ZeroDivisionError("division by zero")
    return {}


def test_spawned_ranks_get_multicast_off_and_the_rendezvous(monkeypatch):
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")  # a parent that has it on must not leak it
    res = D.launch(2, _report_env, "p")
    assert [r["RANK"] for r in res] == ["0", "1"]
    for r in res:
        assert r["NCCL_NVLS_ENABLE"] == "0"
        assert r["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
        assert r["NVSHMEM_DISABLE_NVLS"] == "1"
        assert r["WORLD_SIZE"] == "2" and r["MASTER_ADDR"] == "127.0.0.1" and r["payload"] == "p"
        assert r["pid"] != os.getpid()
    assert res[0]["MASTER_PORT"] == res[1]["MASTER_PORT"]
    assert os.environ["NCCL_NVLS_ENABLE"] == "1"  # the parent's own environment is restored


def test_a_rank_error_comes_back_as_one_typed_line():
    with pytest.raises(UnsupportedError) as ei:
        D.launch(2, _fail_on_rank_1, None)
    assert str(ei.value) == "rank 1: FlashInfer refused the layer: demo"


def test_an_unexpected_exception_names_rank_and_type():
    with pytest.raises(UnsupportedError, match=r"^rank 0: ZeroDivisionError: division by zero$"):
        D.launch(2, _crash_on_rank_0, None)


def test_fewer_gpus_than_the_layout_needs_is_one_line():
    with pytest.raises(EnvironmentError_) as ei:
        D.check_world(S.plan_layout(tp=2), device_count=1, env={})
    assert str(ei.value).startswith("TP 2 needs 2 GPUs of one host; this machine has 1")
    D.check_world(S.plan_layout(tp=2), device_count=2, env={})  # enough: no error


def test_torchrun_world_must_match_the_layout():
    env = {"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}
    with pytest.raises(BadInputError, match=r"torchrun started 4 processes but .* needs 2 \(--nproc-per-node 2\)"):
        D.check_world(S.plan_layout(dp=2, ep=True), device_count=8, env=env)
    assert D.torchrun_env(env) == (0, 4, 0)
    assert D.is_primary(env) and not D.is_primary({**env, "RANK": "3"}) and D.is_primary({})


# ----------------------------------------------------------------------------- the sharded layer over gloo
CASES = [("tp", "nvfp4", 9), ("ep", "bf16", 9), ("ep-a2a", "mxfp4", 9),
         ("ep-a2a", "bf16", 1)]  # the last: rank 1 holds no token


def _gloo_layers(rank, world, cases, say):
    """Every case in one process group (one spawn for all: the CPU is scarce)."""
    from dataclasses import replace

    import torch
    import torch.distributed as dist

    from moe_inspect.layer.peer import GroupedMMPeer
    from moe_inspect.layer.weights import LayerShapes, LayerWeights, random_layer
    from moe_inspect.reference.routers import route

    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = []
    try:
        for scheme, quant, tokens in cases:
            sh = LayerShapes(num_experts=10, top_k=3, hidden_size=64, intermediate_size=64,
                             routing_method="Renormalize")
            w = random_layer(sh, quant, seed=7)
            if scheme == "tp":
                tensors, rsh, rng = S.slice_expert_tensors(w.tensors, 64, world, rank), replace(sh, intermediate_size=32), None
            else:
                first, count = S.expert_ranges(10, world)[rank]
                tensors, rsh, rng = S.slice_experts(w.tensors, 10, first, count), replace(sh, num_experts=count), (first, count)
            peer = GroupedMMPeer.from_weights(LayerWeights(quant, rsh, tensors, w.router_weight))

            def rt(x, w=w):
                r = route("Renormalize", w.router_logits(x), top_k=3)
                return r.topk_ids, r.topk_weights

            layer = D.ShardedMoE(scheme, rank=rank, world=world, num_experts=10, top_k=3, hidden=64, expert_call=peer,
                                 route=rt, dist=dist, device=torch.device("cpu"), ep_range=rng)
            x = torch.randn((tokens, 64), generator=torch.Generator().manual_seed(11)).to(torch.bfloat16)
            lo, cnt = S.token_split(tokens, world)[rank] if scheme == "ep-a2a" else (0, tokens)
            y = layer.forward(x[lo:lo + cnt])
            out.append({"out": y, "ids": layer.last["ids"], "wts": layer.last["wts"], "pairs": layer.last["pairs"],
                        "combine_bytes": layer.last["combine_bytes"]})
    finally:
        dist.destroy_process_group()
    return out


@pytest.fixture(scope="module")
def gloo_results():
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("torch without _grouped_mm")
    return D.launch(2, _gloo_layers, CASES)


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{a}-{b}-T{c}" for a, b, c in CASES])
def test_sharded_layer_matches_the_whole_layer_reference(gloo_results, case):
    import torch

    from moe_inspect.layer.reference import compare, reference_moe, tolerance_for
    from moe_inspect.layer.weights import LayerShapes, random_layer

    scheme, quant, tokens = CASES[case]
    res = [gloo_results[0][case], gloo_results[1][case]]
    sh = LayerShapes(num_experts=10, top_k=3, hidden_size=64, intermediate_size=64, routing_method="Renormalize")
    w = random_layer(sh, quant, seed=7)
    x = torch.randn((tokens, 64), generator=torch.Generator().manual_seed(11)).to(torch.bfloat16)
    if scheme == "ep-a2a":
        out = torch.cat([r["out"] for r in res])
        ids = torch.cat([r["ids"] for r in res])
        wts = torch.cat([r["wts"] for r in res])
    else:  # replicated tokens: every rank holds the all-reduced output
        assert torch.equal(res[0]["out"], res[1]["out"])
        out, ids, wts = res[0]["out"], res[0]["ids"], res[0]["wts"]
    assert out.shape == (tokens, 64)
    acc = compare(out, reference_moe(x, ids, wts, w), tolerance_for(quant, False))
    assert acc.passed and acc.rel_l2 < 0.01, acc
    if scheme != "tp":  # every (token, expert) pair computed exactly once, by its owner
        assert sum(r["pairs"] for r in res) == tokens * 3
    else:
        assert res[0]["combine_bytes"] == S.allreduce_bytes(tokens, 64, 2)


def test_render_shows_tp_and_ep_side_by_side():
    from rich.console import Console

    sc = lambda label, scheme, tot: {  # noqa: E731
        "scheme": scheme, "label": label, "layout": "", "accuracy": {"rel_l2": 4.2e-3, "passed": True},
        "phases_us": {"route": 10.0, "dispatch": 1.0 if scheme == "tp" else 800.0, "experts": 3000.0,
                      "combine": 100.0, "total": tot},
        "bytes": {"dispatch": 0 if scheme == "tp" else 3_000_000, "combine": 6_000_000},
        "link_gbs": {"dispatch": None if scheme == "tp" else 3.6, "combine": 60.0}, "per_rank": []}
    d = {"model": "m", "layer": 0, "quant": "bf16",
         "shapes": {"num_experts": 256, "top_k": 8, "hidden_size": 3072, "intermediate_size": 1536},
         "gpu": {"count": 2, "name": "NVIDIA H200", "arch": 90}, "path": {"config_class": "CuTileBf16Config"},
         "versions": {"nccl": "2.27.7"}, "plans": [{"label": "TP 2", "layout_text": "TP 2 on 2 GPUs"}],
         "rows": [{"tokens": 1024, "schemes": [sc("TP 2", "tp", 4184.0), sc("EP 2 (all-to-all)", "ep-a2a", 5125.0)]}],
         "notes": ["n1"], "passed": True}
    con = Console(record=True, width=200)
    from moe_inspect.cli.run_layer import render_distributed

    render_distributed(d, con)
    text = con.export_text()
    assert "TP 2" in text and "EP 2 (all-to-all)" in text and "4184.0" in text and "5125.0" in text
    assert "3.6/60.0" in text and "9.00" in text and "verdict: pass" in text


def test_kernel_routing_request_is_refused_for_methods_the_ranks_route_with_the_reference(monkeypatch):
    from moe_inspect.layer.runner import RunLayerOptions

    opts = RunLayerOptions(experts=16, top_k=4, hidden=512, intermediate=256, routing="MiniMax2",
                           routing_impl="kernel")
    with pytest.raises(UnsupportedError, match="--routing kernel with --tp/--dp/--ep: .* routes MiniMax2"):
        D.run_distributed(opts, S.plan_layout(tp=2))
