"""moe-inspect: routing, backend support and one-layer kernel runs for Mixture-of-Experts LLMs.

The package root stays import-light: no torch, transformers or flashinfer at import time.
"""

__version__ = "0.1.0"
