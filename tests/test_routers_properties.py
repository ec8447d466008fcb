"""Property tests of the reference routers (hypothesis): output shape and range, sign and sum of
the weights per the METHODS table, optimality of the selection, and equivariance under
relabelling the experts (any permutation; for grouped DeepSeekV3 only permutations that keep
groups intact: whole groups moved, experts shuffled inside a group)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from moe_inspect.reference import METHODS, method_available, scale_applies  # noqa: E402
from moe_inspect.reference.routers import kernel_sigmoid, route, sqrt_softplus  # noqa: E402

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True)
VERSIONS = ("0.6.12", "0.6.14", "0.6.16", "0.7.2.post1")


@st.composite
def cases(draw, methods=tuple(sorted(METHODS)), grouped=None):
    method = draw(st.sampled_from(methods))
    e = draw(st.sampled_from([4, 8, 16]))
    t = draw(st.integers(1, 3))
    # distinct logits (no ties, so relabelling experts must relabel the answer)
    vals = draw(st.lists(st.integers(-600, 600), min_size=t * e, max_size=t * e, unique=True))
    logits = torch.tensor(vals, dtype=torch.float32).reshape(t, e) / 75.0
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16]))
    if dtype is torch.bfloat16:
        logits = logits.to(torch.bfloat16)
        assume(all(len(set(r.tolist())) == e for r in logits))
    bias = None
    if METHODS[method].uses_bias and draw(st.booleans()):
        b = draw(st.lists(st.integers(-100, 100), min_size=e, max_size=e))
        bias = torch.tensor(b, dtype=torch.float32) / 64.0
    kw = dict(
        bias=bias,
        routed_scaling_factor=draw(st.sampled_from([None, 1.0, 2.5])),
        flashinfer_version=draw(
            st.sampled_from([v for v in VERSIONS if method_available(method, v)])
        ),
        norm_topk_prob=draw(st.booleans()),
    )
    groups = method == "DeepSeekV3" and (grouped if grouped is not None else draw(st.booleans()))
    if groups:
        g = draw(st.sampled_from([d for d in (2, 4, 8) if e % d == 0 and e // d >= 2]))
        kg = draw(st.integers(1, g))
        kw.update(n_group=g, topk_group=kg)
        k = draw(st.integers(1, min(8, kg * (e // g))))
    else:
        k = 1 if method == "Llama4" else draw(st.integers(1, min(8, e)))
    return method, logits, k, kw


def _scale(method, kw):
    s = kw["routed_scaling_factor"]
    s = 1.0 if s is None else s
    return s if scale_applies(method, kw["flashinfer_version"]) else 1.0


@SETTINGS
@given(cases())
def test_ids_unique_in_range_and_weights_follow_the_table(case):
    method, logits, k, kw = case
    info = METHODS[method]
    out = route(method, logits, top_k=k, **kw)
    t, e = logits.shape
    assert out.topk_ids.shape == (t, k) and out.topk_ids.dtype == torch.int32
    assert out.topk_weights.shape == (t, k) and out.topk_weights.dtype == torch.bfloat16
    assert ((out.topk_ids >= 0) & (out.topk_ids < e)).all()
    for row in out.topk_ids.tolist():
        assert len(set(row)) == k
    w = out.topk_weights.float()
    assert torch.isfinite(w).all()
    if info.weights_nonnegative:
        assert (w >= 0).all()
    renorm = info.renormalizes and (method != "SigmoidRenorm" or kw["norm_topk_prob"])
    if renorm:
        s = _scale(method, kw)
        # each weight is rounded once to bf16 (relative error <= 2**-9)
        torch.testing.assert_close(w.sum(-1), torch.full((t,), s), rtol=0, atol=s * 2**-8 + 1e-6)


@SETTINGS
@given(cases(grouped=False))
def test_selection_is_the_top_k_of_the_selection_keys(case):
    method, logits, k, kw = case
    out = route(method, logits, top_k=k, output_dtype=None, **kw)
    keys = out.scores
    chosen = torch.gather(keys, 1, out.topk_ids.long())
    mask = torch.ones_like(keys, dtype=torch.bool).scatter_(1, out.topk_ids.long(), False)
    rest = keys.masked_fill(~mask, float("-inf"))
    assert (chosen.min(-1).values >= rest.max(-1).values).all()
    # returned in descending key order
    assert (chosen[:, :-1] >= chosen[:, 1:]).all()


@SETTINGS
@given(cases(methods=("MiniMax2", "DeepSeekV3", "DeepseekV4")))
def test_bias_never_enters_the_weights(case):
    method, logits, k, kw = case
    out = route(method, logits, top_k=k, output_dtype=None, **kw)
    raw_scores = sqrt_softplus(logits) if method == "DeepseekV4" else kernel_sigmoid(logits)
    raw = torch.gather(raw_scores, 1, out.topk_ids.long())
    expected = raw / raw.sum(-1, keepdim=True) * _scale(method, kw)
    torch.testing.assert_close(out.topk_weights, expected, rtol=1e-5, atol=1e-6)


def _distinct_keys(out) -> bool:
    return all(len(set(r)) == len(r) for r in out.scores.tolist())


@SETTINGS
@given(cases(grouped=False), st.randoms(use_true_random=False))
def test_relabelling_experts_relabels_the_answer(case, rnd):
    method, logits, k, kw = case
    e = logits.shape[1]
    perm = list(range(e))
    rnd.shuffle(perm)
    perm_t = torch.tensor(perm)
    base = route(method, logits, top_k=k, **kw)
    assume(_distinct_keys(base))
    kw2 = dict(kw, bias=None if kw["bias"] is None else kw["bias"][perm_t])
    moved = route(method, logits[:, perm_t], top_k=k, **kw2)
    # column j of the permuted problem is expert perm[j] of the original
    assert torch.equal(perm_t[moved.topk_ids.long()].int(), base.topk_ids)
    torch.testing.assert_close(moved.topk_weights.float(), base.topk_weights.float(),
                               rtol=2**-7, atol=1e-6)


@SETTINGS
@given(cases(methods=("DeepSeekV3",), grouped=True), st.randoms(use_true_random=False))
def test_grouped_relabelling_within_and_of_whole_groups(case, rnd):
    method, logits, k, kw = case
    t, e = logits.shape
    g = kw["n_group"]
    per = e // g
    order = list(range(g))
    rnd.shuffle(order)
    perm = []
    for grp in order:
        inner = list(range(per))
        rnd.shuffle(inner)
        perm += [grp * per + i for i in inner]
    perm_t = torch.tensor(perm)
    # exact ties between experts or between group scores make the lower index win, which a
    # relabelling legitimately changes: skip those draws
    u = kernel_sigmoid(logits) + (0 if kw["bias"] is None else kw["bias"])
    assume(all(len(set(r)) == e for r in u.tolist()))
    gs = torch.topk(u.view(t, g, per), 2, dim=-1).values.sum(-1)
    assume(all(len(set(r)) == g for r in gs.tolist()))
    base = route(method, logits, top_k=k, **kw)
    kw2 = dict(kw, bias=None if kw["bias"] is None else kw["bias"][perm_t])
    moved = route(method, logits[:, perm_t], top_k=k, **kw2)
    assert torch.equal(perm_t[moved.topk_ids.long()].int(), base.topk_ids)
    torch.testing.assert_close(moved.topk_weights.float(), base.topk_weights.float(),
                               rtol=2**-7, atol=1e-6)


@SETTINGS
@given(st.integers(1, 4), st.sampled_from([8, 16]), st.data())
def test_deepseek_v4_hash_layer_follows_the_table(t, e, data):
    k = data.draw(st.integers(1, 6))
    vocab = 5
    table = torch.tensor(
        [data.draw(st.permutations(range(e)))[:k] for _ in range(vocab)], dtype=torch.int32
    )
    tok = torch.tensor(data.draw(st.lists(st.integers(0, vocab - 1), min_size=t, max_size=t)))
    logits = torch.tensor(
        data.draw(st.lists(st.integers(-400, 400), min_size=t * e, max_size=t * e)),
        dtype=torch.float32,
    ).reshape(t, e) / 50.0
    out = route("DeepseekV4", logits, top_k=k, token_ids=tok, hash_table=table,
                routed_scaling_factor=1.5)
    assert torch.equal(out.topk_ids, table[tok])
    torch.testing.assert_close(out.topk_weights.float().sum(-1), torch.full((t,), 1.5),
                               rtol=0, atol=1.5 * 2**-8)
