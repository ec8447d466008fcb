"""Agreement between routers that route the same logits: the model's own router, our references,
FlashInfer's routing kernels. Pure torch on CPU tensors (the kernels' outputs are moved here).

``pair(a, b)``: tokens whose expert SETS agree (order-insensitive), weights matched by expert id.
``disagreements(...)``: for each token where a kernel and the reference choose other experts, the
experts only one side chose, the score gap (reference selection keys) and the cause.
``layer_rel_l2(...)``: the MoE-layer output difference those tokens cause, with seeded random
experts (no checkpoint): what a divergent routing does to the layer's output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Pair:
    a: str
    b: str
    tokens: int
    same_experts: int  # tokens whose expert sets agree
    max_weight_error: float | None  # over tokens with equal sets, |w_a - w_b| matched by id
    weight_mismatches: int  # tokens with equal sets whose weights differ beyond the tolerance

    @property
    def fraction(self) -> float:
        return self.same_experts / self.tokens if self.tokens else 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fraction"] = round(self.fraction, 6)
        return d


def _sorted(ids, w):
    import torch

    s, p = torch.sort(ids.long().cpu(), dim=-1)
    return s, torch.gather(w.double().cpu(), 1, p)


def set_differs(ids_a, ids_b):
    """Bool [T]: the two expert sets differ."""
    import torch

    a, _ = torch.sort(ids_a.long().cpu(), dim=-1)
    b, _ = torch.sort(ids_b.long().cpu(), dim=-1)
    return ~(a == b).all(dim=-1)


def pair(a: str, ids_a, w_a, b: str, ids_b, w_b, *, atol: float, rtol: float) -> Pair:
    sa, wa = _sorted(ids_a, w_a)
    sb, wb = _sorted(ids_b, w_b)
    same = (sa == sb).all(dim=-1)
    err = (wa - wb).abs()
    bad = (err > atol + rtol * wb.abs()).any(dim=-1) & same
    max_err = float(err[same].max()) if bool(same.any()) else None
    return Pair(a, b, int(ids_a.shape[0]), int(same.sum()), max_err, int(bad.sum()))


def disagreements(kernel_ids, ref_ids, exact_ids, keys, *, cause_when_exact: str, limit: int = 16) -> list[dict]:
    """Tokens where the kernel's expert set differs from the reference's.

    ``keys`` [T, E]: the reference's fp32 selection keys (e.g. sigmoid + bias, unmasked);
    ``score_gap`` = smallest key among reference-only experts minus largest among kernel-only
    experts (> 0: the kernel chose a lower-scored expert). ``cause``: ``cause_when_exact`` when the
    kernel-exact reference reproduces the kernel's choice, else a near tie of that size.
    """
    import torch

    diff = torch.nonzero(set_differs(kernel_ids, ref_ids)).flatten().tolist()
    out = []
    for t in diff[:limit]:
        kset, rset = set(kernel_ids[t].tolist()), set(ref_ids[t].tolist())
        k_only, r_only = sorted(kset - rset), sorted(rset - kset)
        gap = float(keys[t, r_only].min() - keys[t, k_only].max()) if k_only and r_only else None
        reproduced = exact_ids is not None and set(exact_ids[t].tolist()) == kset
        cause = cause_when_exact if reproduced else (
            f"near tie not reproduced by the kernel-exact reference (gap {gap:.3g}: the kernel's fast-math "
            "sigmoid, tanh.approx.f32, vs an exact one)" if gap is not None else "not reproduced by the kernel-exact reference")
        out.append({"token": t, "kernel_only": k_only, "reference_only": r_only, "score_gap": gap,
                    "reproduced_by_kernel_exact": reproduced, "cause": cause})
    return out


def layer_rel_l2(ids_a, w_a, ids_b, w_b, num_experts: int, *, hidden: int = 64, inter: int = 32, seed: int = 0,
                 x=None) -> dict:
    """rel-L2 between MoE-layer outputs routed by a and by b, with seeded random SwiGLU experts.

    Returns {"all_tokens": ||y_a - y_b|| / ||y_b||, "divergent_tokens": the same over the tokens
    whose expert sets differ (None when there are none)}."""
    import torch

    t = ids_a.shape[0]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(t, hidden, generator=gen) if x is None else x.float().cpu()
    w1 = torch.randn(num_experts, 2 * inter, hidden, generator=gen) / hidden ** 0.5
    w2 = torch.randn(num_experts, hidden, inter, generator=gen) / inter ** 0.5

    def layer(ids, w):
        y = torch.zeros(t, hidden)
        for j in range(ids.shape[1]):
            e = ids[:, j].long().cpu()
            h = torch.einsum("th,toh->to", x, w1[e])
            g, u = h[:, :inter], h[:, inter:]
            y += w[:, j].float().cpu().unsqueeze(1) * torch.einsum("ti,thi->th", torch.nn.functional.silu(g) * u, w2[e])
        return y

    ya, yb = layer(ids_a, w_a), layer(ids_b, w_b)
    div = set_differs(ids_a, ids_b)

    def rel(m):
        den = float(yb[m].norm())
        return float((ya[m] - yb[m]).norm()) / den if den else 0.0

    return {"all_tokens": rel(torch.ones(t, dtype=torch.bool)), "divergent_tokens": rel(div) if bool(div.any()) else None,
            "experts": "seeded random SwiGLU experts (H=64, I=32): no checkpoint weights"}
