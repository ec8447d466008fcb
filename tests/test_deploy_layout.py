"""The parallel layout as vLLM 0.33.0 derives it.

Expected values come from vLLM 0.33.0's own text: the worked examples in the docstring of
``FusedMoEParallelConfig.make`` (vllm/model_executor/layers/fused_moe/config.py:1146-1195),
``ParallelConfig.use_sequence_parallel_moe`` (vllm/config/parallel.py:768-785), the refusals of
``ParallelConfig._validate_parallel_config`` (config/parallel.py:563-592) and
``determine_expert_map`` (fused_moe/expert_map_manager.py:65-69).
"""

import pytest

from moe_inspect.deploy.layout import derive_layout, local_experts
from moe_inspect.errors import BadInputError


# (tp, dp, ep) -> (moe_tp, moe_ep) from the docstring of FusedMoEParallelConfig.make (config.py:1146-1195)
@pytest.mark.parametrize("tp,dp,ep,moe_tp,moe_ep", [
    (2, 1, False, 2, 1),   # "Tensors are sharded across 2 devices"
    (1, 2, False, 2, 1),   # TP = {2, r}: DP alone shards the experts over 2 devices
    (2, 2, False, 4, 1),   # TP = {4, r}
    (2, 1, True, 1, 2),    # "The experts are split between the 2 devices"
    (1, 2, True, 1, 2),
    (2, 2, True, 1, 4),    # EP = {4, r}
    (1, 1, True, 1, 1),    # use_ep needs dp*pcp*tp > 1 (config.py:1198-1201)
])
def test_moe_sharding_matches_vllm_docstring(tp, dp, ep, moe_tp, moe_ep):
    lay = derive_layout(tp=tp, dp=dp, ep_enabled=ep)
    assert (lay.moe_tp, lay.moe_ep) == (moe_tp, moe_ep)
    assert lay.use_ep == (moe_ep > 1)


def test_world_size_is_per_dp_rank_and_gpus_multiply_dp():
    lay = derive_layout(tp=4, dp=2, pp=2)
    assert lay.world_size == 8          # pp * tp (config/parallel.py:964)
    assert lay.gpus == 16


def test_tp_plus_ep_without_dp_has_no_all2all_kernels():
    # use_all2all_kernels = use_ep and (dp > 1 or pcp > 1 or sp > 1): TP 8 + EP keeps monolithic kernels eligible
    lay = derive_layout(tp=8, ep_enabled=True)
    assert lay.moe_ep == 8 and not lay.use_all2all_kernels and not lay.sequence_parallel_moe
    assert lay.all2all == "none"


def test_dp_plus_ep_uses_all2all():
    lay = derive_layout(tp=1, dp=8, ep_enabled=True)
    assert lay.use_all2all_kernels and lay.use_ag_rs_all2all_kernels
    assert not lay.sequence_parallel_moe  # needs TP > 1 too


def test_sequence_parallel_moe_needs_ep_tp_and_dp_on_listed_backends():
    assert derive_layout(tp=2, dp=2, ep_enabled=True).sequence_parallel_moe
    assert not derive_layout(tp=2, dp=2, ep_enabled=False).sequence_parallel_moe
    # flashinfer_nvlink_two_sided is not in use_sequence_parallel_moe's list (config/parallel.py:770-780)
    lay = derive_layout(tp=2, dp=2, ep_enabled=True, all2all_backend="flashinfer_nvlink_two_sided")
    assert not lay.sequence_parallel_moe and lay.use_fi_nvl_two_sided_kernels


def test_dp_without_ep_shards_experts_without_all2all():
    lay = derive_layout(dp=4)
    assert lay.moe_tp == 4 and lay.moe_ep == 1 and not lay.use_all2all_kernels


def test_eplb_without_ep_is_refused_with_vllms_message():
    lay = derive_layout(tp=8, eplb=True)
    assert not lay.starts
    assert lay.refusals[0].startswith("enable_expert_parallel must be True to use EPLB.")
    assert "config/parallel.py:570" in lay.refusals[0]


def test_eplb_on_one_gpu_is_refused():
    lay = derive_layout(ep_enabled=True, eplb=True)
    assert "EPLB requires tensor, prefill-context, or data parallelism, but got TP=1, PCP=1, DP=1." in lay.refusals[0]


def test_redundant_experts_without_eplb_are_refused():
    lay = derive_layout(tp=8, ep_enabled=True, num_redundant_experts=32)
    assert lay.refusals == (
        "num_redundant_experts is set to 32 but EPLB is not enabled. Either enable EPLB or unset "
        "num_redundant_experts. (vllm 0.33.0 vllm/config/parallel.py:587)",)


def test_valid_eplb_layout_starts():
    lay = derive_layout(tp=8, ep_enabled=True, eplb=True, num_redundant_experts=32)
    assert lay.starts and lay.moe_ep == 8


def test_removed_all2all_backends_fall_back_with_a_warning():
    lay = derive_layout(dp=2, ep_enabled=True, all2all_backend="pplx")
    assert lay.all2all_backend == "allgather_reducescatter"
    assert "has been removed" in lay.warnings[0]


@pytest.mark.parametrize("kw", [{"tp": 0}, {"dp": -1}, {"all2all_backend": "nccl"}, {"moe_backend": "trtllm"},
                                {"num_redundant_experts": -2}])
def test_bad_values_are_bad_input(kw):
    with pytest.raises(BadInputError):
        derive_layout(**kw)


def test_moe_backend_is_normalised_like_vllms_argparser():
    assert derive_layout(moe_backend="FlashInfer-TRTLLM").moe_backend == "flashinfer_trtllm"
    assert derive_layout(moe_backend="auto").moe_backend is None


def test_uneven_expert_placement():
    # determine_expert_map: ranks below E % ep get one more (expert_map_manager.py:65-69)
    assert local_experts(256, derive_layout(tp=8, ep_enabled=True)) == [32] * 8
    assert local_experts(60, derive_layout(tp=8, ep_enabled=True)) == [8, 8, 8, 8, 7, 7, 7, 7]
    # redundant experts join the global count (fused_moe/layer.py:82): 256 + 32 over 8 ranks
    assert local_experts(256, derive_layout(tp=8, ep_enabled=True, eplb=True, num_redundant_experts=32)) == [36] * 8
    assert local_experts(128, derive_layout(tp=8)) == [128]
