"""The parallel layout of a vLLM deployment, derived exactly as vLLM 0.33.0 derives it.

Core only (no torch, typer or rich). :func:`derive_layout` reproduces, for one set of
``vllm serve`` parallel flags:

* ``ParallelConfig.__post_init__``: ``world_size = pp * tp * pcp`` per DP rank
  (vllm 0.33.0 ``config/parallel.py:964``); ``--data-parallel-size`` starts that many engine
  ranks, so the deployment uses ``gpus = world_size * dp`` GPUs;
* ``ParallelConfig._validate_parallel_config``: the config-time refusals (EPLB without expert
  parallelism, EPLB on one GPU, redundant experts without EPLB), with vLLM's own message
  (``config/parallel.py:563-592``), and the removed ``pplx``/``naive`` all2all backends that fall
  back to ``allgather_reducescatter`` with a warning (``config/parallel.py:537-543``);
* ``ParallelConfig.use_sequence_parallel_moe`` (``config/parallel.py:768-785``);
* ``FusedMoEParallelConfig.make`` (``model_executor/layers/fused_moe/config.py:1117-1245``):
  without EP the experts are tensor-sharded over ``tp * pcp * dp`` ranks (``moe_tp``), with EP
  they are split over the same ranks (``moe_ep = tp * pcp * dp``, ``moe_tp = 1``), and EP is used
  only when that product is > 1 (``config.py:1198-1201``);
* ``FusedMoEParallelConfig.use_all2all_kernels`` = EP and (DP > 1 or PCP > 1 or sequence
  parallel) (``config.py:1035-1038``), and the per-backend ``use_*_kernels`` properties the
  expert classes' ``_supports_parallel_config`` read (``config.py:1040-1103``);
* expert placement: ``determine_expert_map`` gives ranks below ``E % ep`` one extra expert
  (``fused_moe/expert_map_manager.py:65-69``) over ``E + num_redundant_experts`` global experts
  (``fused_moe/layer.py:82``).
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import BadInputError, close_hint

VLLM_SOURCE = "vllm 0.33.0"
_PAR = "vllm/config/parallel.py"
_MOE_CFG = "vllm/model_executor/layers/fused_moe/config.py"

# config/parallel.py:45-60 All2AllBackend (pplx / naive are accepted, then replaced: :537-543)
ALL2ALL_BACKENDS: tuple[str, ...] = (
    "naive", "pplx", "deepep_high_throughput", "deepep_low_latency", "deepep_v2", "mori_high_throughput",
    "mori_low_latency", "moonep", "nixl_ep", "allgather_reducescatter", "flashinfer_all2allv",
    "flashinfer_nvlink_two_sided", "flashinfer_nvlink_one_sided", "passthrough",
)
REMOVED_ALL2ALL = ("pplx", "naive")
DEFAULT_ALL2ALL = "allgather_reducescatter"

# config/parallel.py:768-785: the all2all backends with which EP + TP > 1 + DP > 1 turns on sequence-parallel MoE
_SP_MOE_ALL2ALL = frozenset({
    "allgather_reducescatter", "deepep_high_throughput", "deepep_low_latency", "deepep_v2",
    "flashinfer_nvlink_one_sided", "passthrough", "mori_high_throughput", "mori_low_latency", "nixl_ep",
})

# config/kernel.py:122-147 MoEBackend (the values of --moe-backend; "auto" = None here)
MOE_BACKENDS: tuple[str, ...] = (
    "auto", "triton", "batched_triton", "deep_gemm", "deep_gemm_mega_moe", "cutlass", "flashinfer_trtllm",
    "flashinfer_cutlass", "flashinfer_cutedsl", "flashinfer_moe_ep_cutedsl", "flashinfer_b12x", "b12x",
    "flashinfer_moe_ep_mega_deep_gemm", "marlin", "humming", "triton_unfused", "aiter", "aiter_mega_moe",
    "aiter_triton_mxfp4_bf16", "aiter_triton_mxfp4_mxfp4", "flydsl", "hpc", "emulation", "rdna3",
)


class Refusal(NamedTuple):
    """A config-time ValueError: vLLM exits before loading anything."""

    message: str  # vLLM's own message
    source: str  # "vllm 0.33.0 path:line"

    def __str__(self) -> str:
        return f"{self.message} ({self.source})"


class Layout(NamedTuple):
    tp: int = 1
    dp: int = 1
    pp: int = 1
    ep_enabled: bool = False
    eplb: bool = False
    num_redundant_experts: int = 0
    all2all_backend: str = DEFAULT_ALL2ALL
    moe_backend: str | None = None
    # ---- derived (see derive_layout) ----
    world_size: int = 1  # pp * tp * pcp, per DP rank
    moe_tp: int = 1
    moe_ep: int = 1
    use_all2all_kernels: bool = False
    sequence_parallel_moe: bool = False
    refusals: tuple[str, ...] = ()  # "message (source)" strings, vLLM's wording
    # ---- additions beyond the contract ----
    pcp: int = 1  # --prefill-context-parallel-size
    gpus: int = 1  # world_size * dp
    use_ep: bool = False  # FusedMoEParallelConfig.use_ep
    refusal_details: tuple[Refusal, ...] = ()
    warnings: tuple[str, ...] = ()

    # FusedMoEParallelConfig properties the expert classes read (config.py:1040-1103)
    @property
    def use_ag_rs_all2all_kernels(self) -> bool:
        return self.use_all2all_kernels and self.all2all_backend == "allgather_reducescatter"

    @property
    def use_deepep_ht_kernels(self) -> bool:
        return self.use_all2all_kernels and self.all2all_backend == "deepep_high_throughput"

    @property
    def use_deepep_ll_kernels(self) -> bool:
        return self.use_all2all_kernels and self.all2all_backend == "deepep_low_latency"

    @property
    def use_deepep_v2_kernels(self) -> bool:
        return self.use_all2all_kernels and self.all2all_backend == "deepep_v2"

    @property
    def use_fi_nvl_two_sided_kernels(self) -> bool:
        return self.use_all2all_kernels and self.all2all_backend in ("flashinfer_all2allv",
                                                                     "flashinfer_nvlink_two_sided")

    @property
    def use_fi_nvl_one_sided_kernels(self) -> bool:
        return self.use_all2all_kernels and self.all2all_backend == "flashinfer_nvlink_one_sided"

    @property
    def moe_dp(self) -> int:
        return self.dp

    @property
    def starts(self) -> bool:
        """False when vLLM refuses this parallel config before loading."""
        return not self.refusals

    @property
    def all2all(self) -> str:
        """What moves tokens between MoE ranks: 'none' (TP all-reduce only) or the all2all backend."""
        return self.all2all_backend if self.use_all2all_kernels else "none"

    def describe(self) -> str:
        """'TP 8 · EP 8 (all2all: allgather_reducescatter)' — one line for people."""
        parts = [f"TP {self.tp}"]
        if self.pp > 1:
            parts.append(f"PP {self.pp}")
        if self.pcp > 1:
            parts.append(f"PCP {self.pcp}")
        if self.dp > 1:
            parts.append(f"DP {self.dp}")
        moe = f"experts: EP {self.moe_ep}" if self.use_ep else f"experts: TP {self.moe_tp}"
        if self.eplb:
            moe += f" + EPLB ({self.num_redundant_experts} redundant)"
        a2a = f"all2all {self.all2all_backend}" if self.use_all2all_kernels else "no all2all"
        sp = " · sequence-parallel MoE" if self.sequence_parallel_moe else ""
        return f"{' · '.join(parts)} on {self.gpus} GPU{'s' if self.gpus != 1 else ''} ({moe}, {a2a}{sp})"

    def to_dict(self) -> dict:
        return {
            "tp": self.tp, "dp": self.dp, "pp": self.pp, "pcp": self.pcp, "ep_enabled": self.ep_enabled,
            "eplb": self.eplb, "num_redundant_experts": self.num_redundant_experts,
            "world_size": self.world_size, "gpus": self.gpus, "moe_tp": self.moe_tp, "moe_ep": self.moe_ep,
            "use_ep": self.use_ep, "all2all": self.use_all2all_kernels, "all2all_backend": self.all2all_backend,
            "sequence_parallel_moe": self.sequence_parallel_moe, "moe_backend": self.moe_backend,
            "refusals": [{"message": r.message, "source": r.source} for r in self.refusal_details],
            "warnings": list(self.warnings),
        }


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInputError(f"{name} {value!r}: must be a positive integer")
    return value


def _refusals(tp: int, pcp: int, dp: int, ep_enabled: bool, eplb: bool, redundant: int) -> tuple[Refusal, ...]:
    """ParallelConfig._validate_parallel_config (config/parallel.py:563-592), in vLLM's order."""
    out: list[Refusal] = []
    if eplb:
        if not ep_enabled:
            out.append(Refusal("enable_expert_parallel must be True to use EPLB.", f"{VLLM_SOURCE} {_PAR}:570"))
        elif tp * pcp * dp <= 1:
            out.append(Refusal(
                "EPLB requires tensor, prefill-context, or data parallelism, "
                f"but got TP={tp}, PCP={pcp}, DP={dp}.", f"{VLLM_SOURCE} {_PAR}:579"))
    elif redundant != 0:
        out.append(Refusal(
            f"num_redundant_experts is set to {redundant} but EPLB is not enabled. Either enable EPLB or unset "
            "num_redundant_experts.", f"{VLLM_SOURCE} {_PAR}:587"))
    return tuple(out)


def derive_layout(tp: int = 1, dp: int = 1, ep_enabled: bool = False, eplb: bool = False,
                  num_redundant_experts: int = 0, all2all_backend: str = DEFAULT_ALL2ALL,
                  moe_backend: str | None = None, pp: int = 1, *, pcp: int = 1) -> Layout:
    """The layout vLLM 0.33.0 builds from these ``vllm serve`` flags (BadInputError on values its
    argument parser would reject)."""
    tp, dp, pp, pcp = (_positive(n, v) for n, v in (("--tensor-parallel-size", tp), ("--data-parallel-size", dp),
                                                     ("--pipeline-parallel-size", pp),
                                                     ("--prefill-context-parallel-size", pcp)))
    if isinstance(num_redundant_experts, bool) or not isinstance(num_redundant_experts, int) \
            or num_redundant_experts < 0:
        raise BadInputError(f"--num-redundant-experts {num_redundant_experts!r}: must be an integer >= 0")
    a2a = (all2all_backend or DEFAULT_ALL2ALL).strip().lower()
    if a2a not in ALL2ALL_BACKENDS:
        raise BadInputError(f"--all2all-backend {all2all_backend}: unknown backend",
                            hint=f"vLLM 0.33.0 takes {', '.join(b for b in ALL2ALL_BACKENDS if b not in REMOVED_ALL2ALL)}")
    warnings: list[str] = []
    if a2a in REMOVED_ALL2ALL:  # config/parallel.py:537-543
        warnings.append(f"The '{a2a}' all2all backend has been removed. Falling back to 'allgather_reducescatter'. "
                        f"({VLLM_SOURCE} {_PAR}:539)")
        a2a = DEFAULT_ALL2ALL
    mb = None
    if moe_backend is not None:
        mb = moe_backend.strip().lower().replace("-", "_")  # arg_utils.py:1844 normalises the same way
        if mb not in MOE_BACKENDS:
            raise BadInputError(f"--moe-backend {moe_backend}: not a vLLM 0.33.0 MoE backend",
                                hint=close_hint(mb, MOE_BACKENDS, otherwise=f"choices: {', '.join(MOE_BACKENDS)}"))
        if mb == "auto":
            mb = None

    world_size = pp * tp * pcp  # config/parallel.py:964
    flat = dp * pcp * tp  # FusedMoEParallelConfig.flatten_tp_across_dp_and_pcp (config.py:1112)
    use_ep = flat > 1 and ep_enabled  # config.py:1198-1201
    sp_moe = a2a in _SP_MOE_ALL2ALL and ep_enabled and tp > 1 and dp > 1  # config/parallel.py:768-785
    sp_size = tp if sp_moe else 1  # fused_moe/layer.py:59
    use_a2a = use_ep and (dp > 1 or pcp > 1 or sp_size > 1)  # config.py:1035-1038
    details = _refusals(tp, pcp, dp, ep_enabled, eplb, num_redundant_experts)
    return Layout(
        tp=tp, dp=dp, pp=pp, ep_enabled=ep_enabled, eplb=eplb, num_redundant_experts=num_redundant_experts,
        all2all_backend=a2a, moe_backend=mb, world_size=world_size,
        moe_tp=1 if use_ep else flat, moe_ep=flat if use_ep else 1,
        use_all2all_kernels=use_a2a, sequence_parallel_moe=sp_moe,
        refusals=tuple(str(r) for r in details), pcp=pcp, gpus=world_size * dp, use_ep=use_ep,
        refusal_details=details, warnings=tuple(warnings))


def local_experts(num_experts: int, layout: Layout) -> list[int]:
    """Experts held by each EP rank, in rank order, as ``determine_expert_map`` places them.

    ``num_experts`` is the model's routed (logical) expert count; the redundant EPLB replicas are
    added (fused_moe/layer.py:82). Without EP every rank holds all of them (a one-element list).
    """
    global_n = num_experts + layout.num_redundant_experts
    ep = layout.moe_ep
    if ep <= 1:
        return [global_n]
    base, rem = divmod(global_n, ep)  # expert_map_manager.py:67-69
    return [base + 1 if r < rem else base for r in range(ep)]


__all__ = ["Layout", "Refusal", "derive_layout", "local_experts", "ALL2ALL_BACKENDS",
           "MOE_BACKENDS", "DEFAULT_ALL2ALL"]
