"""Fuzz suites (``pytest -m fuzz``): hostile configs, safetensors headers, indexes and CLI runs."""
