"""FlashInfer's kernels: one module per kernel (or kernel family) holding its arch list, limits and call.

* :mod:`moe_inspect.kernels.fused_topk_deepseek` -- ``flashinfer.fused_moe.fused_topk_deepseek``
  (DeepSeekV3 only; SM 89/90/100/103/107/120/121).
* :mod:`moe_inspect.kernels.trtllm_routing` -- the trtllm-gen routing stage of FlashInfer's TRT-LLM
  fused MoE (every RoutingMethodType; FlashInfer's API on SM100/103/120/121, compiled here for sm_90a).
* :mod:`moe_inspect.kernels.trtllm_moe_limits` -- the TRT-LLM fused MoE's compiled routing tiers and
  launcher limits (check's ``limits`` gate, run-layer's shape checks, the routing kernel's tiers).
* :mod:`moe_inspect.kernels.unified_api` -- ``supported(arch)`` of every backend config of FlashInfer's
  unified MoE API (check's ``UNIFIED_CONFIGS``, run-layer's ``PATHS``).

``check``, ``verify`` and ``run-layer`` read these facts from here. Nothing here imports torch or
flashinfer at import time.
"""
