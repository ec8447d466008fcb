"""FP8-block on SM90 through FlashInfer's CUTLASS module only when it is already built: the lookup
(no compile), the refusal, and everything up to the kernel call against FlashInfer's own code on CPU."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from moe_inspect.errors import UnsupportedError
from moe_inspect.layer import cutlass_sm90 as C


def _no_aot(name):
    return ()


def test_nothing_built_gives_the_refusal_with_how_to_get_it(tmp_path):
    lk = C.find_module(aot_artifacts=_no_aot, jit_dir=tmp_path)
    assert not lk.found and lk.name == "fused_moe_90"
    with pytest.raises(UnsupportedError) as ei:
        C.sm90_fp8_block_path(90, lookup=lk)
    msg = str(ei.value)
    assert "fused_moe_90, which is not built here" in msg and "flashinfer install-jit-cache-wheel" in msg
    assert str(tmp_path / "fused_moe_90" / "fused_moe_90.so") in msg and "\n" not in msg


def test_an_earlier_jit_build_is_found(tmp_path):
    so = tmp_path / "fused_moe_90" / "fused_moe_90.so"
    so.parent.mkdir()
    so.write_bytes(b"\x7fELF")
    lk = C.find_module(aot_artifacts=_no_aot, jit_dir=tmp_path)
    assert (lk.found, lk.provider, lk.path) == (True, "jit-cache", str(so))
    path, _ = C.sm90_fp8_block_path(90, lookup=lk)
    assert (path.backend, path.config_class, path.quant) == ("cutlass", "CutlassFp8BlockConfig", "fp8-block")


def test_a_jit_cache_package_provider_wins_over_the_jit_dir(tmp_path):
    so = tmp_path / "prov" / "fused_moe_90.so"
    so.parent.mkdir()
    so.write_bytes(b"\x7fELF")
    art = SimpleNamespace(provider_id="flashinfer-jit-cache-cu130", path=so)
    lk = C.find_module(aot_artifacts=lambda name: (art,) if name == "fused_moe_90" else (), jit_dir=tmp_path)
    assert (lk.found, lk.provider) == (True, "flashinfer-jit-cache-cu130")


def test_an_artifact_listed_but_missing_on_disk_is_not_found(tmp_path):
    art = SimpleNamespace(provider_id="p", path=tmp_path / "gone.so")
    assert not C.find_module(aot_artifacts=lambda n: (art,), jit_dir=tmp_path).found


def test_only_sm90():
    with pytest.raises(UnsupportedError, match="SM90 only; this is SM100"):
        C.sm90_fp8_block_path(100)


def test_no_jit_build_sets_and_restores_the_switch(monkeypatch):
    monkeypatch.delenv("FLASHINFER_DISABLE_JIT", raising=False)
    with C.no_jit_build():
        assert os.environ["FLASHINFER_DISABLE_JIT"] == "1"
    assert "FLASHINFER_DISABLE_JIT" not in os.environ


# ----------------------------------------------------------------------------- FlashInfer's own code, CPU
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def fi():
    pytest.importorskip("flashinfer")
    from moe_inspect.layer import kernels as K

    ns = K.flashinfer_namespace()
    C.add_to_namespace(ns)
    return ns


def test_flashinfer_runs_this_config_on_sm90_only(fi):
    assert fi.CutlassFp8BlockConfig.supported(90) and not fi.CutlassFp8BlockConfig.supported(100)
    assert C.CUTLASS_SM90_FP8_BLOCK.archs == (90,)


def test_our_stored_fp8_block_tensors_are_exactly_flashinfers_prepared_view(fi):
    from flashinfer.fused_moe.prepare import prepare_cutlass_fp8_block_weights

    from moe_inspect.layer.weights import LayerShapes, random_layer

    sh = LayerShapes(num_experts=3, top_k=2, hidden_size=256, intermediate_size=128, routing_method="Renormalize")
    w = random_layer(sh, "fp8-block", seed=4)
    view = C.weight_view(w)
    w1, w2 = w.bf16_canonical()
    theirs = prepare_cutlass_fp8_block_weights(w1, w2, num_local_experts=3, hidden_size=256, intermediate_size=128)
    assert set(view) == set(theirs)
    for k in view:
        assert view[k].dtype == theirs[k].dtype and view[k].shape == theirs[k].shape
        assert torch.equal(view[k].float(), theirs[k].float()), k


def test_flashinfer_accepts_everything_but_the_cpu_device(fi):
    from unittest import mock

    import flashinfer.fused_moe.layer as L

    from moe_inspect.layer import kernels as K
    from moe_inspect.layer.weights import LayerShapes, random_layer

    sh = LayerShapes(num_experts=4, top_k=2, hidden_size=256, intermediate_size=128, routing_method="Renormalize")
    w = random_layer(sh, "fp8-block", seed=0)
    cfg = K.build_config(fi, C.CUTLASS_SM90_FP8_BLOCK, sh)
    pack = K.make_weight_pack(fi, C.CUTLASS_SM90_FP8_BLOCK, C.weight_view(w))
    act = C.activation_pack(fi, torch.randn(3, 256).to(torch.bfloat16), torch.tensor([[0, 1], [2, 3], [1, 2]]),
                            torch.full((3, 2), 0.5))
    assert act.topk_ids.dtype == torch.int32 and act.hidden_states_q.dtype == torch.bfloat16 and pack is not None
    with mock.patch.object(L, "get_compute_capability", return_value=(9, 0)):
        with pytest.raises(RuntimeError) as ei:
            fi.MoELayer(cfg, device=torch.device("cpu"))
    # FlashInfer's only objection is the device: quant pair, arch and activation all passed its checks
    assert "Backends rejected this configuration: CutlassFp8BlockRunner: CutlassFp8BlockRunner requires CUDA, got cpu" \
        in " ".join(str(ei.value).split())


def _plan(quant="fp8-block", **kw):
    from moe_inspect.layer.runner import RunLayerOptions, plan
    from moe_inspect.layer.weights import LayerShapes

    sh = LayerShapes(num_experts=256, top_k=8, hidden_size=7168, intermediate_size=2048, routing_method="DeepSeekV3",
                     n_group=8, topk_group=4, routed_scaling_factor=2.5, has_bias=True)
    return plan(RunLayerOptions(quant=quant, **kw), sh, 90)


def test_run_layer_plan_on_sm90_refuses_fp8_block_when_the_module_is_missing(monkeypatch, tmp_path):
    real = C.find_module
    monkeypatch.setattr(C, "find_module", lambda: real(aot_artifacts=_no_aot, jit_dir=tmp_path))
    with pytest.raises(UnsupportedError, match="not built here.*flashinfer install-jit-cache-wheel"):
        _plan()


def test_run_layer_plan_on_sm90_takes_the_cutlass_path_when_built(monkeypatch, tmp_path):
    so = tmp_path / "fused_moe_90" / "fused_moe_90.so"
    so.parent.mkdir()
    so.write_bytes(b"\x7fELF")
    real = C.find_module
    monkeypatch.setattr(C, "find_module", lambda: real(aot_artifacts=_no_aot, jit_dir=tmp_path))
    path, mode = _plan()
    assert (path.config_class, mode) == ("CutlassFp8BlockConfig", "PackedPrecomputed")
    with pytest.raises(UnsupportedError):  # weight-only FP8-block has no SM90 path at all
        _plan(act="bf16")
