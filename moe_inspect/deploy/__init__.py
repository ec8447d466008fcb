"""Deployment-aware ``check``: the vLLM parallel layout, per-rank shape gates and memory per GPU.

Core only (no torch, typer or rich). ``layout`` derives the layout as vLLM 0.33.0 does,
``vllm_args`` reads a ``vllm serve`` command line, ``shapes`` and ``memory`` apply the per-rank
gates and the memory estimate.
"""

__all__ = ["Layout", "derive_layout", "local_experts"]


def __getattr__(name: str):  # lazy: `import moe_inspect.deploy.vllm_args` stays cheap
    if name in __all__:
        from . import layout

        return getattr(layout, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
