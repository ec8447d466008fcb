"""The deployment flags of ``check`` and ``catalog --check``, declared once (named as ``vllm serve`` names them).

Decorate a command with :func:`deploy_options` and take a ``deploy: DeployFlags`` parameter; Typer
sees the flags below instead of it.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

if TYPE_CHECKING:
    from ..deploy.vllm_args import DeployFlags

TpOpt = Annotated[Optional[int], typer.Option(
    "--tp", "--tensor-parallel-size", min=1, metavar="N",
    help="Tensor-parallel size (vLLM --tensor-parallel-size). Default 1.")]
DpOpt = Annotated[Optional[int], typer.Option(
    "--dp", "--data-parallel-size", min=1, metavar="N",
    help="Data-parallel size (vLLM --data-parallel-size): without --ep the experts are still sharded over tp·dp.")]
PpOpt = Annotated[Optional[int], typer.Option(
    "--pp", "--pipeline-parallel-size", min=1, metavar="N",
    help="Pipeline-parallel size (vLLM --pipeline-parallel-size). Default 1.")]
EpOpt = Annotated[bool, typer.Option(
    "--ep", "--enable-expert-parallel",
    help="Expert parallelism (vLLM --enable-expert-parallel): experts split over tp·dp ranks; all-to-all "
         "kernels only with DP > 1.")]
EplbOpt = Annotated[bool, typer.Option(
    "--eplb", "--enable-eplb", help="Expert-parallel load balancing (vLLM --enable-eplb).")]
RedundantOpt = Annotated[Optional[int], typer.Option(
    "--num-redundant-experts", min=0, metavar="N",
    help="Redundant expert replicas for EPLB (vLLM --eplb-config.num_redundant_experts).")]
All2allOpt = Annotated[Optional[str], typer.Option(
    "--all2all-backend", metavar="NAME",
    help="vLLM --all2all-backend (default allgather_reducescatter), e.g. deepep_high_throughput, "
         "deepep_low_latency, flashinfer_nvlink_one_sided.")]
MoeBackendOpt = Annotated[Optional[str], typer.Option(
    "--moe-backend", metavar="NAME",
    help="Forced vLLM --moe-backend (flashinfer_trtllm, flashinfer_cutlass, triton, deep_gemm, marlin, "
         "humming, …): vLLM then raises instead of falling back.")]
VllmArgsOpt = Annotated[Optional[str], typer.Option(
    "--vllm-args", metavar="'ARGS'",
    help="The flags of your real `vllm serve` line, quoted (model id taken from it when MODEL is omitted); "
         "flags that do not matter here are listed as ignored.")]
GmuOpt = Annotated[Optional[float], typer.Option(
    "--gpu-memory-utilization", metavar="F",
    help="Fraction of GPU memory vLLM may use (default 0.9).")]
MaxLenOpt = Annotated[Optional[str], typer.Option(
    "--max-model-len", metavar="N",
    help="Context length for the KV-cache estimate (32768, 32k, 32K).")]
KvDtypeOpt = Annotated[Optional[str], typer.Option(
    "--kv-cache-dtype", metavar="DTYPE", help="vLLM --kv-cache-dtype (auto, fp8, …).")]
ParallelOpt = Annotated[Optional[str], typer.Option(
    "--parallel", metavar="MODE",
    help="Deprecated: tp | ep (= --ep --dp 2) | eplb (= --ep --eplb --dp 2). Use --tp/--dp/--ep.")]

_PARAMS = (
    ("tp", TpOpt, None), ("dp", DpOpt, None), ("pp", PpOpt, None), ("ep", EpOpt, False), ("eplb", EplbOpt, False),
    ("num_redundant_experts", RedundantOpt, None), ("all2all_backend", All2allOpt, None),
    ("moe_backend", MoeBackendOpt, None), ("vllm_args", VllmArgsOpt, None), ("gpu_memory_utilization", GmuOpt, None),
    ("max_model_len", MaxLenOpt, None), ("kv_cache_dtype", KvDtypeOpt, None), ("parallel", ParallelOpt, None),
)


def deploy_options(fn: Callable) -> Callable:
    """Add the deployment flags to a command and pass it ``deploy: DeployFlags`` built from them."""
    # the command's `deploy: DeployFlags` annotation is evaluated against a stand-in: that parameter is
    # replaced below, and moe_inspect.deploy is imported only when a command runs (every command's cold
    # start pays for this module, through cli/app.py)
    sig = inspect.signature(fn, eval_str=True, locals={"DeployFlags": object})
    if "deploy" not in sig.parameters:
        raise TypeError(f"{fn.__name__}: @deploy_options needs a `deploy: DeployFlags` parameter")
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
              else p for name, p in sig.parameters.items() if name != "deploy"]
    extra = [inspect.Parameter(f"deploy_{n}", inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
             for n, a, d in _PARAMS]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..deploy.vllm_args import DeployFlags

        flags = DeployFlags(**{n: kwargs.pop(f"deploy_{n}", d) for n, _, d in _PARAMS})
        return fn(*args, deploy=flags, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*params, *extra])
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    del wrapper.__wrapped__  # Typer must read the new signature
    return wrapper


def __getattr__(name: str) -> Any:
    """``from moe_inspect.cli.layout_options import DeployFlags`` keeps working, imported on first use."""
    if name == "DeployFlags":
        from ..deploy.vllm_args import DeployFlags

        return DeployFlags
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["deploy_options", "DeployFlags"]
