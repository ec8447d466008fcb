"""FlashInfer's TRT-LLM fused MoE: in-kernel routing tiers and launcher limits (the one home of these facts).

``check`` (moe_inspect/backends.py ``kernel_limit_problems``), ``verify`` (through
:mod:`moe_inspect.kernels.trtllm_routing`) and ``run-layer`` (moe_inspect/layer/kernels.py
``check_kernel_shapes``) all read them from here. Every row cites flashinfer-python 0.7.2.post1
(paths relative to the wheel's ``flashinfer/data/``). No torch or flashinfer import.

* :data:`TIERS` -- the (max experts, max top_k) pairs compiled per routingCustom policy
  (``include/flashinfer/trtllm/fused_moe/RoutingCustomPolicy.cuh``): a size runs iff one tier
  covers it. Every list has one tier that covers all others, so :func:`max_tier` is that tier.
* Grouped DeepSeekV3 (``csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_runner.cu:160-161``,
  ``trtllm_fused_moe_routing_deepseek.cu:510-546``): :data:`GROUPED_MAX_*`.
* ``Fp8BlockScaleLauncher::check_routing`` (``csrc/trtllm_fused_moe_kernel_launcher.cu:4209-4281``),
  the launcher of FP8-block and MXFP8: top_k <= 8 when E <= 384 (grouped DeepSeekV3, :4249-4253),
  top_k < topk_group·E/n_group (:4258), E % 4 == 0 (:4276), E > top_k (:4278).
"""

from __future__ import annotations

FI = "flashinfer-python 0.7.2.post1"
_POLICY = "include/flashinfer/trtllm/fused_moe/RoutingCustomPolicy.cuh"
_RUNNER = "csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_runner.cu"
_DSV3 = "csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_deepseek.cu"
_LLAMA4 = "csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_llama4.cu"
LAUNCHER = "csrc/trtllm_fused_moe_kernel_launcher.cu"

# (max experts, max top_k) tiers compiled per routingCustom policy: a size runs iff one tier covers it
_TIERS_SMALL = ((128, 8), (256, 8))
_TIERS_RENORM = ((128, 4), (128, 8), (160, 8), (256, 8), (256, 16), (512, 8), (512, 16), (512, 22), (512, 32),
                 (576, 8), (768, 32), (896, 16), (1024, 32), (2048, 32))
_TIERS_MINIMAX = ((128, 8), (256, 8), (384, 8), (512, 8), (512, 22), (896, 16), (1024, 32))
#: method -> (tiers, source)
TIERS: dict[str, tuple[tuple[tuple[int, int], ...], str]] = {
    "Default": (_TIERS_SMALL, f"{_POLICY}:832 PolicyTraits<SoftmaxPreprocess, NoOpPostprocess>"),
    "Renormalize": (_TIERS_RENORM, f"{_POLICY}:840 PolicyTraits<NoOpPreprocess, SoftmaxPostprocess>"),
    "RenormalizeNaive": (_TIERS_RENORM, f"{_POLICY}:840 (runner.cu: the Renormalize policy pair)"),
    "SigmoidRenorm": (_TIERS_SMALL, f"{_POLICY}:863 PolicyTraits<SigmoidPreprocess, SumNormalizePostprocess>"),
    "Sigmoid": (_TIERS_SMALL, f"{_POLICY}:863 (runner.cu: the SigmoidRenorm policy pair)"),
    "MiniMax2": (_TIERS_MINIMAX, f"{_POLICY}:871 PolicyTraits<SigmoidBiasPreprocess, ScaledSumNormalizePostprocess>"),
    "DeepSeekV3-flat": (_TIERS_MINIMAX, f"{_RUNNER}:65 n_group <= 1 -> routingCustom SigmoidBias ({_POLICY}:871)"),
    "TopKSigmoid": (_TIERS_SMALL, f"{_POLICY}:887 PolicyTraits<NoOpPreprocess, SigmoidPostprocess>"),
    "TopK": (_TIERS_SMALL, f"{_POLICY}:896 PolicyTraits<NoOpPreprocess, NoOpPostprocess>"),
    "Llama4": (((128, 1),), f"{_RUNNER}:219-222 (top_k == 1), {_LLAMA4}:536 (E <= 128)"),
}

# grouped DeepSeekV3 (n_group > 1)
GROUPED_MAX_TOP_K = 22  # runner.cu:160
GROUPED_MAX_TOPK_GROUP = 4  # runner.cu:161
GROUPED_MAX_GROUPS = 8  # routing_deepseek.cu:527
GROUPED_MAX_EXPERTS_PER_GROUP = 32  # routing_deepseek.cu:533
GROUPED_MAX_EXPERTS = GROUPED_MAX_GROUPS * GROUPED_MAX_EXPERTS_PER_GROUP  # 256
GROUPED_SOURCE = f"{_RUNNER}:160-161, {_DSV3}:510-546"

# Fp8BlockScaleLauncher::check_routing (FP8-block and MXFP8)
FP8_BLOCK_SMALL_E = 384  # launcher.cu:4249 kNumKimiK2Experts
FP8_BLOCK_SMALL_E_MAX_K = 8  # launcher.cu:4250


def tier_key(method: str, n_group: int | None) -> str:
    return "DeepSeekV3-flat" if method == "DeepSeekV3" and (n_group or 0) <= 1 else method


def max_tier(method: str, n_group: int | None = None) -> tuple[int, int] | None:
    """(max experts, max top_k) of the in-kernel routing of ``method``; None for a method with no tier."""
    if method == "DeepSeekV3" and (n_group or 0) > 1:
        return GROUPED_MAX_EXPERTS, GROUPED_MAX_TOP_K
    row = TIERS.get(tier_key(method, n_group))
    if row is None:
        return None
    return max(e for e, _ in row[0]), max(k for _, k in row[0])


def experts_mod4_problem(num_experts: int) -> str | None:
    """launcher.cu:4276 (every TRT-LLM launcher's routing): E % 4 == 0."""
    e = int(num_experts)
    return None if e % 4 == 0 else f"E % 4 == 0 is required by the fused router (E={e}, E % 4 = {e % 4})"


def launcher_experts_problem(num_experts: int, top_k: int) -> str | None:
    """launcher.cu:4278 Fp8BlockScaleLauncher::check_routing: num_experts > top_k (k = E is refused)."""
    e, k = int(num_experts), int(top_k)
    return None if e > k else f"FP8-block launcher needs experts > top_k (E={e}, k={k}; {LAUNCHER}:4278)"


def tier_problems(method: str, num_experts: int, top_k: int, n_group: int | None = None,
                  topk_group: int | None = None) -> list[str]:
    """The in-kernel routing tier problems of ``method`` at these sizes (empty list = fits)."""
    e, k, g, tg = int(num_experts), int(top_k), int(n_group or 0), int(topk_group or 0)
    out: list[str] = []
    if not 1 <= k <= e:
        out.append(f"top_k must satisfy 1 <= k <= E (k={k}, E={e})")
    grouped = method == "DeepSeekV3" and g > 1
    tier = max_tier(method, g)
    if tier is not None:
        label = "DeepSeekV3 grouped" if grouped else method
        if e > tier[0]:
            out.append(f"{label} routing tier allows at most {tier[0]} experts (E={e})")
        if k > tier[1]:
            out.append(f"{label} routing tier allows top_k <= {tier[1]} (k={k})")
    if grouped:
        if e % g:
            out.append(f"E={e} is not divisible into n_group={g} groups")
        elif e // g > GROUPED_MAX_EXPERTS_PER_GROUP:
            out.append(f"DeepSeekV3 grouped needs E/n_group <= {GROUPED_MAX_EXPERTS_PER_GROUP} (E/n_group={e // g})")
        if g > GROUPED_MAX_GROUPS:
            out.append(f"DeepSeekV3 grouped needs n_group <= {GROUPED_MAX_GROUPS} (n_group={g})")
        if tg > GROUPED_MAX_TOPK_GROUP:
            out.append(f"DeepSeekV3 grouped needs topk_group <= {GROUPED_MAX_TOPK_GROUP} (topk_group={tg})")
        if tg > g:
            out.append(f"DeepSeekV3 grouped needs topk_group <= n_group (topk_group={tg}, n_group={g})")
    return out


def fp8_block_routing_problems(method: str, num_experts: int, top_k: int, n_group: int | None = None,
                               topk_group: int | None = None) -> list[str]:
    """Fp8BlockScaleLauncher::check_routing's grouped DeepSeekV3 checks (launcher.cu:4249-4259)."""
    e, k, g, tg = int(num_experts), int(top_k), int(n_group or 0), int(topk_group or 0)
    if method != "DeepSeekV3" or g <= 1:
        return []
    out: list[str] = []
    if e <= FP8_BLOCK_SMALL_E and k > FP8_BLOCK_SMALL_E_MAX_K:
        out.append(f"FP8-block launcher allows top_k <= {FP8_BLOCK_SMALL_E_MAX_K} when grouped and "
                   f"E <= {FP8_BLOCK_SMALL_E} (k={k}, E={e})")
    if tg and k >= tg * e // g:  # C++ int arithmetic: (topk_group * num_experts) / n_group
        out.append(f"FP8-block launcher's grouped DeepSeekV3 routing needs top_k < topk_group·E/n_group = "
                   f"{tg * e // g} (k={k}; {LAUNCHER}:4258)")
    return out


def fused_moe_problems(method: str, num_experts: int, top_k: int, n_group: int | None = None,
                       topk_group: int | None = None, *, fp8_block_launcher: bool = False) -> list[str]:
    """Everything FlashInfer's TRT-LLM fused MoE refuses for in-kernel routing at these sizes."""
    out = [p for p in (experts_mod4_problem(num_experts),) if p]
    out += tier_problems(method, num_experts, top_k, n_group, topk_group)
    if fp8_block_launcher:
        out += fp8_block_routing_problems(method, num_experts, top_k, n_group, topk_group)
        p = launcher_experts_problem(num_experts, top_k)
        if p and not any(x.startswith("top_k must satisfy") for x in out):
            out.append(p)
    return out
