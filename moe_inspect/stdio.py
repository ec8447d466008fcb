"""Keep library chatter off stdout while GPU libraries run, so that stdout holds only our output.

FlashInfer's C++ logs through spdlog to STDOUT: ``FLASHINFER_LOG_INFO`` is ``spdlog::info``
(flashinfer-python 0.7.2.post1 ``data/include/flashinfer/logging.h:24``), e.g. the first TRT-LLM
fused MoE launch prints ``[info] TRT-LLM fused MoE cooperative launch SM allocation: ...``
(``data/include/flashinfer/trtllm/fused_moe/RoutingKernel.cuh:98-106``). A Python-level redirect
cannot catch that, so :func:`library_output_to_stderr` points file descriptor 1 at stderr for the
duration (C stdio flushed on both edges) and ``sys.stdout`` at ``sys.stderr`` for Python ``print``
calls: nothing is discarded, it all lands on stderr. Processes started inside (run-layer's
one-process-per-GPU spawn) inherit the redirected descriptor.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Iterator


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no libc symbol table (non-POSIX): nothing buffered we can reach
        pass


def _flush(stream) -> None:
    try:
        stream.flush()
    except (AttributeError, ValueError, OSError):
        pass


@contextlib.contextmanager
def library_output_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Inside: anything written to fd 1 or ``sys.stdout`` goes to stderr instead."""
    if not enabled:
        yield
        return
    py_stdout = sys.stdout
    _flush(py_stdout)
    _flush_c_stdio()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 at all: only the Python-level redirect
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        _flush(sys.stderr)
        _flush(py_stdout)  # a handler holding the old stream object: its buffer goes to stderr too
        _flush_c_stdio()
        sys.stdout = py_stdout
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
