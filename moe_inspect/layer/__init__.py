"""``run-layer``: one MoE layer through FlashInfer kernels on the local GPU, checked and timed.

This package root is import-light (no torch, no flashinfer): it only names the formats and the
modules. Everything that needs torch lives in the submodules and is imported lazily:

* :mod:`.quantizers`  -- our torch quantizers (NVFP4, MXFP4, MXFP8, FP8 per-tensor, FP8 128x128)
* :mod:`.weights`     -- seeded random weights or one layer read from a local checkpoint
* :mod:`.reference`   -- the float32 torch reference layer and the accuracy metrics
* :mod:`.kernels`     -- which FlashInfer path runs on which GPU, argument construction, launch
* :mod:`.timing`      -- CUDA-graph timing with a cold L2 and the roofline numbers
* :mod:`.runner`      -- orchestration and the result object (``to_dict`` = the ``--json`` contract)
"""

from __future__ import annotations

#: ``--quant`` values, in help order.
QUANT_FORMATS: tuple[str, ...] = ("bf16", "fp8", "fp8-block", "nvfp4", "mxfp4", "mxfp8")

#: Token counts timed when ``--tokens`` is not given.
DEFAULT_TOKENS: tuple[int, ...] = (1, 16, 128, 1024)

__all__ = ["QUANT_FORMATS", "DEFAULT_TOKENS"]
