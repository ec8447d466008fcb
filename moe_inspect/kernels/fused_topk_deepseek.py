"""FlashInfer's standalone DeepSeek-V3 routing kernel, ``flashinfer.fused_moe.fused_topk_deepseek``.

The one home of this kernel's facts (arch list, limits, call); ``check``, ``verify`` and
``run-layer`` import them from here. Read from flashinfer-python 0.7.2.post1
``flashinfer/fused_moe/fused_routing_dsv3.py``:

* ``_check_dsv3_fused_routing_supported`` (line 101) is decorated
  ``@supported_compute_capability([89, 90, 100, 103, 107, 120, 121])`` -> :data:`ARCHS`.
* Its checks (lines 160-196): ``topk_group * n_group >= topk`` and ``topk_group <= n_group``;
  ``n_group > 1``: ``topk <= 8``, ``num_experts / n_group <= 32``,
  ``num_experts / n_group * topk_group <= 128``; ``n_group == 1``: ``num_experts <= 384``,
  ``topk <= 8``. The docstring (lines 286-300) adds ``n_group <= 32``,
  ``num_experts % n_group == 0`` and ``topk <= num_experts``.
* Call (line 251): ``fused_topk_deepseek(scores, bias, n_group, topk_group, topk,
  routed_scaling_factor, topk_values, topk_indices, launch_with_pdl=True, routing_replay_out=None,
  *, backend="default")``; ``bias`` has the dtype of ``scores``; ``topk_values`` has the dtype of
  ``scores``; ``topk_indices`` is int32; every tensor contiguous.

The kernel computes in fp32 and keeps the bias in the scores' dtype (fp32 here): it is NOT the
trtllm-gen grouped routing kernel (``moe_inspect.kernels.trtllm_routing``), which rounds the bias
to bf16 (docs/routing-methods.md).
"""

from __future__ import annotations

NAME = "flashinfer.fused_moe.fused_topk_deepseek"
SOURCE = "flashinfer-python 0.7.2.post1 flashinfer/fused_moe/fused_routing_dsv3.py"
METHOD = "DeepSeekV3"

#: @supported_compute_capability of _check_dsv3_fused_routing_supported (fused_routing_dsv3.py:101)
ARCHS: tuple[int, ...] = (89, 90, 100, 103, 107, 120, 121)

# (limit, message) rows in the order FlashInfer checks them; each is a predicate on (e, k, g, tg)
_GROUPED_LIMITS = (
    (lambda e, k, g, tg: k <= 8, "top_k ({k}) must be <= 8"),
    (lambda e, k, g, tg: g <= 32, "n_group ({g}) must be <= 32"),
    (lambda e, k, g, tg: e % g == 0, "num_experts ({e}) must be divisible by n_group ({g})"),
    (lambda e, k, g, tg: e // g <= 32, "num_experts / n_group ({epg}) must be <= 32"),
    (lambda e, k, g, tg: (e // g) * tg <= 128, "num_experts / n_group * topk_group ({sel}) must be <= 128"),
)
_FLAT_LIMITS = (
    (lambda e, k, g, tg: e <= 384, "num_experts ({e}) must be <= 384 when n_group = 1"),
    (lambda e, k, g, tg: k <= 8, "top_k ({k}) must be <= 8"),
)


def limits_problem(num_experts: int, top_k: int, n_group: int | None, topk_group: int | None) -> str | None:
    """None when fused_topk_deepseek accepts these sizes, else FlashInfer's reason (one line)."""
    e, k = int(num_experts), int(top_k)
    g, tg = max(int(n_group or 1), 1), max(int(topk_group or 1), 1)
    if not 1 <= k <= e:
        return f"top_k ({k}) must be in 1..num_experts ({e})"
    if tg > g or tg * g < k:
        return f"topk_group ({tg}) must be <= n_group ({g}) and topk_group * n_group ({tg * g}) >= top_k ({k})"
    for ok, msg in (_GROUPED_LIMITS if g > 1 else _FLAT_LIMITS):
        if not ok(e, k, g, tg):
            return msg.format(e=e, k=k, g=g, tg=tg, epg=e // g, sel=(e // g) * tg)
    return None


def arch_problem(arch: int | None) -> str | None:
    """None when the kernel runs on SM``arch``."""
    if arch is None:
        return "no CUDA GPU"
    if arch not in ARCHS:
        return f"fused_topk_deepseek runs on SM {', '.join(map(str, ARCHS))}; this GPU is SM{arch}"
    return None


def supported(arch: int | None, num_experts: int, top_k: int, n_group: int | None, topk_group: int | None,
              method: str = METHOD) -> bool:
    """Whether fused_topk_deepseek routes ``method`` at these sizes on SM``arch``."""
    return (method == METHOD and arch_problem(arch) is None
            and limits_problem(num_experts, top_k, n_group, topk_group) is None)


def run(logits, bias, *, n_group: int | None, topk_group: int | None, top_k: int,
        routed_scaling_factor: float | None, synchronize: bool = True):
    """Route fp32 CUDA ``logits`` [T, E]; returns (ids int32 [T, k], weights fp32 [T, k]).

    ``synchronize`` False leaves the launch asynchronous (run-layer's timed multi-GPU route phase).

    ``bias`` None means zeros (the kernel always reads one, as vLLM passes zeros). The logits are
    passed as fp32 and the bias in the same dtype, as the kernel requires.
    """
    import torch
    from flashinfer.fused_moe import fused_topk_deepseek

    logits = logits.float().contiguous()
    t, e = logits.shape
    if bias is None:
        bias = torch.zeros(e, device=logits.device)
    bias = bias.reshape(e).to(device=logits.device, dtype=logits.dtype).contiguous()
    values = torch.empty(t, top_k, dtype=logits.dtype, device=logits.device)
    ids = torch.empty(t, top_k, dtype=torch.int32, device=logits.device)
    fused_topk_deepseek(logits, bias, max(int(n_group or 1), 1), max(int(topk_group or 1), 1), int(top_k),
                        float(1.0 if routed_scaling_factor is None else routed_scaling_factor), values, ids,
                        launch_with_pdl=False)
    if synchronize:
        torch.cuda.synchronize()
    return ids, values.float()
