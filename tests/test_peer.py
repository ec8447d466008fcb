"""The grouped-GEMM peer: its device-side offsets (hand-computed) and its output against the float32
reference of the layer, on CPU (torch >= 2.8 has torch._grouped_mm; 2.13 runs it on CPU)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moe_inspect.layer.peer import GroupedMMPeer, group_ends, peer_weights_note, sort_pairs  # noqa: E402

needs_grouped_mm = pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch without _grouped_mm")


def test_torch_has_grouped_mm_on_cpu():
    assert hasattr(torch, "_grouped_mm"), f"torch {torch.__version__} lacks torch._grouped_mm"


def test_group_ends_are_cumulative_counts_with_empty_experts():
    ids = torch.tensor([0, 0, 2, 2, 2, 3])
    # experts 0..4 hold 2, 0, 3, 1, 0 pairs -> ends 2, 2, 5, 6, 6
    offs = group_ends(ids, 5)
    assert offs.dtype == torch.int32 and offs.tolist() == [2, 2, 5, 6, 6]


def test_group_ends_of_no_tokens():
    assert group_ends(torch.zeros(0, dtype=torch.long), 3).tolist() == [0, 0, 0]


def test_sort_pairs_is_stable_and_maps_back_to_tokens():
    ids = torch.tensor([[3, 0], [0, 2]])
    sorted_ids, perm, tok = sort_pairs(ids)
    assert sorted_ids.tolist() == [0, 0, 2, 3]
    assert perm.tolist() == [1, 2, 3, 0]  # flat positions: (t0,s1), (t1,s0), (t1,s1), (t0,s0)
    assert tok.tolist() == [0, 1, 1, 0]


@needs_grouped_mm
def test_grouped_mm_offsets_select_rows_per_expert():
    x = torch.randn(5, 16, dtype=torch.bfloat16)
    w = torch.randn(3, 8, 16, dtype=torch.bfloat16)  # [E, N, K]
    offs = group_ends(torch.tensor([0, 0, 2, 2, 2]), 3)  # expert 1 empty
    y = torch._grouped_mm(x, w.transpose(1, 2), offs=offs)
    want = torch.cat((x[:2].float() @ w[0].float().t(), x[2:].float() @ w[2].float().t()))
    assert torch.allclose(y.float(), want, rtol=2e-2, atol=2e-2)


@needs_grouped_mm
@pytest.mark.parametrize("quant", ["bf16", "nvfp4", "mxfp8"])
def test_peer_matches_the_float32_reference(quant):
    from moe_inspect.layer.reference import compare, reference_moe, tolerance_for
    from moe_inspect.layer.weights import LayerShapes, random_layer
    from moe_inspect.reference.routers import route

    sh = LayerShapes(num_experts=8, top_k=3, hidden_size=64, intermediate_size=64, routing_method="Renormalize")
    w = random_layer(sh, quant, seed=1)
    x = torch.randn(33, 64, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    r = route("Renormalize", w.router_logits(x), top_k=3)
    out = GroupedMMPeer.from_weights(w)(x, r.topk_ids, r.topk_weights)
    acc = compare(out, reference_moe(x, r.topk_ids, r.topk_weights, w), tolerance_for(quant, False))
    assert acc.passed and acc.rel_l2 < 0.01, acc


@needs_grouped_mm
def test_peer_with_every_token_on_one_expert():
    from moe_inspect.layer.weights import LayerShapes, random_layer

    sh = LayerShapes(num_experts=4, top_k=1, hidden_size=32, intermediate_size=32, routing_method="Renormalize")
    w = random_layer(sh, "bf16", seed=0)
    x = torch.randn(6, 32).to(torch.bfloat16)
    ids = torch.full((6, 1), 2)
    wts = torch.full((6, 1), 0.5)
    out = GroupedMMPeer.from_weights(w)(x, ids, wts).float()
    w1, w2 = w.tensors["w1"][2].float(), w.tensors["w2"][2].float()
    h = x.float() @ w1.t()
    want = 0.5 * ((torch.nn.functional.silu(h[:, 32:]) * h[:, :32]) @ w2.t())
    assert torch.allclose(out, want, rtol=3e-2, atol=3e-2)


def test_weight_only_formats_name_the_peer_weights():
    assert peer_weights_note("bf16") == "BF16 weights, as FlashInfer"
    assert "BF16 dequantization of the nvfp4 codes" in peer_weights_note("nvfp4")
