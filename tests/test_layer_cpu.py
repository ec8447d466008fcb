"""run-layer on CPU: weight loading and layouts, the float32 reference, cuTile argument construction
up to the kernel call (with a recording stand-in for the API: FlashInfer's cuTile code is not driven
on CPU), timing arithmetic, and clear refusals without a GPU. The TRT-LLM (SM100/SM103) paths are
driven through FlashInfer's REAL code in tests/test_blackwell_flashinfer.py."""

from __future__ import annotations

import enum
import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from moe_inspect.errors import BadInputError, CheckpointError, EnvironmentError_, UnsupportedError  # noqa: E402
from moe_inspect.layer import kernels as K  # noqa: E402
from moe_inspect.layer import quantizers as Q  # noqa: E402
from moe_inspect.layer import timing as T  # noqa: E402
from moe_inspect.layer.reference import compare, reference_moe, swiglu_up_gate, tolerance_for  # noqa: E402
from moe_inspect.layer.runner import RunLayerOptions, parse_tokens, plan, resolve_shapes  # noqa: E402
from moe_inspect.layer.weights import LayerShapes, load_checkpoint_layer, random_layer  # noqa: E402

E, H, I = 4, 128, 128


def _shapes(**kw) -> LayerShapes:
    base = dict(num_experts=E, top_k=2, hidden_size=H, intermediate_size=I, routing_method="Renormalize")
    base.update(kw)
    return LayerShapes(**base)


# ----------------------------------------------------------------------------- checkpoints
def _write_ckpt(tmp_path, tensors: dict, *, shards: dict | None = None):
    from safetensors.torch import save_file

    if shards is None:
        save_file(tensors, str(tmp_path / "model.safetensors"))
        return tmp_path
    wm = {}
    for fname, names in shards.items():
        save_file({n: tensors[n] for n in names}, str(tmp_path / fname))
        wm.update({n: fname for n in names})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    return tmp_path


def _expert_tensors(prefix="model.layers.1.mlp", names=("gate_proj", "up_proj", "down_proj"), dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(0)
    t = {}
    for e in range(E):
        t[f"{prefix}.experts.{e}.{names[0]}.weight"] = torch.full((I, H), float(e + 1), dtype=dtype)  # gate
        t[f"{prefix}.experts.{e}.{names[1]}.weight"] = torch.full((I, H), -float(e + 1), dtype=dtype)  # up
        t[f"{prefix}.experts.{e}.{names[2]}.weight"] = torch.randn((H, I), generator=g).to(dtype)
    t[f"{prefix}.gate.weight"] = torch.randn((E, H), generator=g)
    return t


def test_checkpoint_gate_up_down_is_loaded_as_up_then_gate(tmp_path):
    root = _write_ckpt(tmp_path, _expert_tensors())
    w = load_checkpoint_layer(root, _shapes(), "bf16", layer=1)
    assert w.tensors["w1"].shape == (E, 2 * I, H)
    assert torch.all(w.tensors["w1"][2, :I] == -3)  # up first (FlashInfer canonical)
    assert torch.all(w.tensors["w1"][2, I:] == 3)  # then gate
    assert w.tensors["w2"].shape == (E, H, I)
    assert w.router_weight.shape == (E, H)


def test_checkpoint_w1_w3_w2_names_map_w1_to_gate(tmp_path):
    root = _write_ckpt(tmp_path, _expert_tensors("model.layers.1.block_sparse_moe", ("w1", "w3", "w2")))
    w = load_checkpoint_layer(root, _shapes(), "bf16", layer=1)
    assert torch.all(w.tensors["w1"][0, :I] == -1) and torch.all(w.tensors["w1"][0, I:] == 1)


def test_checkpoint_fused_gate_up_proj_is_swapped(tmp_path):
    gu = torch.cat((torch.full((E, I, H), 2.0), torch.full((E, I, H), -5.0)), dim=1).to(torch.bfloat16)
    t = {"model.layers.1.mlp.experts.gate_up_proj": gu,
         "model.layers.1.mlp.experts.down_proj": torch.zeros((E, H, I), dtype=torch.bfloat16),
         "model.layers.1.mlp.gate.weight": torch.zeros((E, H))}
    w = load_checkpoint_layer(_write_ckpt(tmp_path, t), _shapes(), "bf16", layer=1)
    assert torch.all(w.tensors["w1"][:, :I] == -5) and torch.all(w.tensors["w1"][:, I:] == 2)


def test_checkpoint_reads_only_the_requested_layer(tmp_path):
    t = _expert_tensors()
    other = {k.replace("layers.1.", "layers.2."): v for k, v in t.items()}
    root = _write_ckpt(tmp_path, {**t, **other}, shards={"a.safetensors": list(t), "b.safetensors": list(other)})
    (tmp_path / "b.safetensors").write_bytes(b"\x00garbage, never opened")
    w = load_checkpoint_layer(root, _shapes(), "bf16", layer=1)
    assert w.tensors["w1"].shape[0] == E


def test_checkpoint_missing_expert_tensor_is_named(tmp_path):
    t = _expert_tensors()
    del t["model.layers.1.mlp.experts.3.down_proj.weight"]
    with pytest.raises(CheckpointError, match=r"experts\.3\.down_proj\.weight.*missing"):
        load_checkpoint_layer(_write_ckpt(tmp_path, t), _shapes(), "bf16", layer=1)


def test_checkpoint_layer_without_experts_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no expert tensors for layer 0"):
        load_checkpoint_layer(_write_ckpt(tmp_path, _expert_tensors()), _shapes(), "bf16", layer=0)


def test_checkpoint_missing_correction_bias_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="e_score_correction_bias is missing"):
        load_checkpoint_layer(_write_ckpt(tmp_path, _expert_tensors()), _shapes(has_bias=True), "bf16", layer=1)


def test_modelopt_nvfp4_checkpoint_is_used_as_stored_with_its_scales(tmp_path):
    pre = "model.layers.1.mlp"
    t, stored = {f"{pre}.gate.weight": torch.zeros(E, H)}, {}
    g = torch.Generator().manual_seed(1)
    for e in range(E):
        for proj, shape in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
            p, s, gs = Q.quantize_nvfp4(torch.randn(shape, generator=g))
            base = f"{pre}.experts.{e}.{proj}"
            t[base + ".weight"], t[base + ".weight_scale"], t[base + ".weight_scale_2"] = p, s, gs.reshape(1)
            t[base + ".input_scale"] = torch.ones(1)
            stored[(e, proj)] = (p, s, gs)
    w = load_checkpoint_layer(_write_ckpt(tmp_path, t), _shapes(), "nvfp4", layer=1)
    assert w.tensors["w1"].dtype == torch.uint8 and w.tensors["w1"].shape == (E, 2 * I, H // 2)
    assert torch.equal(w.tensors["w1"][1, :I], stored[(1, "up_proj")][0])  # bytes untouched, [up, gate]
    assert torch.equal(w.tensors["w1_scale"][1, I:].view(torch.uint8), stored[(1, "gate_proj")][1].view(torch.uint8))
    assert w.tensors["w1_global"].shape == (E, 2)  # per [up, gate] shard
    assert torch.isclose(w.tensors["w1_global"][1, 0], stored[(1, "up_proj")][2])
    assert any("used as stored" in n for n in w.notes)
    # and the float32 view is exactly the ModelOpt dequantization of the stored tensors
    w1, _ = w.dequant_expert(1)
    up = Q.dequantize_nvfp4(*stored[(1, "up_proj")])
    assert torch.equal(w1[:I], up)


def test_fp8_block_checkpoint_is_used_as_stored_or_requantized(tmp_path):
    pre = "model.layers.1.mlp"
    t = {f"{pre}.gate.weight": torch.zeros(E, H)}
    for e in range(E):
        for proj, shape in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
            q, s = Q.quantize_fp8_block(torch.randn(shape))
            t[f"{pre}.experts.{e}.{proj}.weight"], t[f"{pre}.experts.{e}.{proj}.weight_scale_inv"] = q, s
    root = _write_ckpt(tmp_path, t)
    w = load_checkpoint_layer(root, _shapes(), "fp8-block", layer=1)
    assert w.tensors["w1_scale"].shape == (E, 2, 1)
    assert torch.equal(w.tensors["w1"][0, :I].view(torch.uint8), t[f"{pre}.experts.0.up_proj.weight"].view(torch.uint8))
    w4 = load_checkpoint_layer(root, _shapes(), "nvfp4", layer=1)
    assert any("quantized to nvfp4" in n for n in w4.notes)


# ----------------------------------------------------------------------------- reference
def test_swiglu_takes_up_first_then_gate():
    h = torch.tensor([[2.0, 1.0]])  # up = 2, gate = 1
    assert torch.allclose(swiglu_up_gate(h), torch.nn.functional.silu(torch.tensor([[1.0]])) * 2)


def test_reference_matches_a_per_token_loop_with_shared_expert():
    w = random_layer(_shapes(num_shared_experts=1, shared_intermediate_size=32), "bf16", seed=3)
    x = torch.randn(5, H).to(torch.bfloat16)
    ids = torch.tensor([[0, 1], [1, 2], [3, 0], [2, 2], [0, 3]], dtype=torch.int32)
    wt = torch.rand(5, 2)
    out = reference_moe(x, ids, wt, w)
    for t in range(5):
        acc = torch.zeros(H)
        for j in range(2):
            w1, w2 = w.dequant_expert(int(ids[t, j]))
            h = w1 @ x[t].float()
            acc += wt[t, j] * (w2 @ (torch.nn.functional.silu(h[I:]) * h[:I]))
        sh = w.shared_w1.float() @ x[t].float()
        acc += w.shared_w2.float() @ (torch.nn.functional.silu(sh[32:]) * sh[:32])
        assert torch.allclose(out[t], acc, atol=1e-4, rtol=1e-4)


def test_compare_reports_metrics_and_verdict():
    r = torch.randn(64, 32)
    good = compare(r + 1e-4 * torch.randn_like(r), r, tolerance_for("bf16", False))
    assert good.passed and good.rel_l2 < 1e-3 and good.cosine > 0.9999 and good.within_tol == 1.0
    bad = compare(r + 0.5 * torch.randn_like(r), r, tolerance_for("bf16", False))
    assert not bad.passed
    nan = compare(torch.full_like(r, float("nan")), r, tolerance_for("bf16", False))
    assert not nan.passed


@pytest.mark.parametrize("quant", ["bf16", "fp8", "fp8-block", "nvfp4", "mxfp4", "mxfp8"])
def test_random_layer_in_every_format_dequantizes_close_to_bf16(quant):
    ref = random_layer(_shapes(), "bf16", seed=7)
    w = random_layer(_shapes(), quant, seed=7)
    a, _ = w.dequant_expert(2)
    b, _ = ref.dequant_expert(2)
    assert float((a - b).norm() / b.norm()) < {"bf16": 1e-6, "nvfp4": 0.12, "mxfp4": 0.15}.get(quant, 0.04)
    assert w.expert_bytes() > 0


def test_random_layer_refuses_shapes_the_format_cannot_take():
    with pytest.raises(UnsupportedError, match="multiples of 128"):
        random_layer(_shapes(intermediate_size=96), "fp8-block")


# ----------------------------------------------------------------------------- paths
@pytest.mark.parametrize("quant,arch,cls", [
    ("bf16", 90, "CuTileBf16Config"), ("fp8", 90, "CuTileFp8PerTensorBf16Config"),
    ("nvfp4", 90, "CuTileNvfp4Bf16Config"), ("mxfp4", 90, "CuTileMxfp4Bf16Config"),
    ("mxfp8", 90, "CuTileMxfp8Bf16Config"), ("bf16", 100, "TrtllmBf16Config"),
    ("nvfp4", 100, "TrtllmFp4Config"), ("nvfp4", 103, "TrtllmFp4Config"), ("fp8-block", 100, "TrtllmFp8BlockConfig"),
    ("fp8", 103, "TrtllmFp8PerTensorConfig"), ("mxfp8", 100, "TrtllmFp8BlockConfig"),
])
def test_path_per_arch(quant, arch, cls):
    assert K.select_path(quant, arch).config_class == cls


def test_sm90_refusal_names_the_alternative():
    with pytest.raises(UnsupportedError) as e:
        K.select_path("nvfp4", 90, backend="trtllm", quantized_activations=True)
    msg = str(e.value)
    assert msg == ("TRT-LLM NVFP4×NVFP4 with fused routing needs SM100/SM103; this is SM90 — the cuTile "
                   "NVFP4×BF16 path runs instead with --backend cutile --act bf16")


def test_fp8_block_on_sm90_is_refused():
    with pytest.raises(UnsupportedError, match="needs SM100/SM103; this is SM90"):
        K.select_path("fp8-block", 90)


def test_mxfp4_weight_only_trtllm_is_not_on_sm103():
    with pytest.raises(UnsupportedError):
        K.select_path("mxfp4", 103, backend="trtllm", quantized_activations=False)


def test_routing_mode_from_logits_only_for_allow_listed_methods():
    p = K.select_path("nvfp4", 100)
    assert K.routing_mode(p, "MiniMax2") == "FromLogits"
    assert K.routing_mode(p, "Default") == "PackedPrecomputed"  # not in the monolithic allow-list
    assert K.routing_mode(p, "MiniMax2", force_precomputed=True) == "PackedPrecomputed"
    assert K.routing_mode(K.select_path("bf16", 90), "MiniMax2") == "PackedPrecomputed"


@pytest.mark.parametrize("kw,match", [
    (dict(num_experts=6, top_k=2), r"E % 4 == 0 is required .*E=6"),
    (dict(hidden_size=96), "hidden a multiple of 128 and intermediate a multiple of 64"),
    (dict(num_experts=512, top_k=8, routing_method="DeepSeekV3", n_group=8, topk_group=4),
     "DeepSeekV3 grouped routing tier allows at most 256 experts"),
    (dict(num_experts=512, top_k=16, routing_method="Sigmoid"), "Sigmoid routing tier allows at most 256 experts"),
    (dict(top_k=40, num_experts=64), "top_k"),
])
def test_kernel_shape_limits(kw, match):
    p = K.select_path("nvfp4", 100)
    s = _shapes(**kw)
    with pytest.raises(UnsupportedError, match=match):
        K.check_kernel_shapes(p, s, K.routing_mode(p, s.routing_method))


def test_fused_topk_deepseek_limits():
    from moe_inspect.kernels import fused_topk_deepseek as ftd

    # fused_routing_dsv3.py:160-196: DeepSeek-V3's 256/8/8/4 runs; n_group = topk_group = 1 with k = 8 fails
    # topk_group * n_group >= topk; only DeepSeekV3 is routed by this kernel
    assert ftd.supported(90, 256, 8, 8, 4)
    assert not ftd.supported(90, 384, 8, 1, 1)
    assert not ftd.supported(90, 256, 8, 8, 4, method="MiniMax2")


# ----------------------------------------------------------------------------- API arguments
def _fake_fi():
    """A recording stand-in for flashinfer.fused_moe's public API (same names, same call shapes)."""
    calls = []

    class Rec:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs
            self.__dict__.update(kwargs)  # attribute access like the real frozen dataclasses
            calls.append((type(self).__name__, args, kwargs))

    def backend(name):
        def prepare_weights(*args, **kwargs):
            calls.append((name + ".prepare_weights", args, kwargs))
            return {"prepared": name}

        def prepare_activations(x, **kwargs):
            calls.append((name + ".prepare_activations", (x,), kwargs))
            return x.to(torch.float8_e4m3fn), torch.ones(1)

        return type(name, (Rec,), {"prepare_weights": staticmethod(prepare_weights),
                                   "prepare_activations": staticmethod(prepare_activations)})

    class WeightPack:
        def __init__(self):
            self.native_views = {}

        def prepare_for(self, key, view):
            self.native_views[key] = view

    ns = SimpleNamespace(
        calls=calls,
        QuantFormat=enum.Enum("QuantFormat", "BF16 FP16 FP8PerTensor DeepSeekFp8 MXFP8 NVFP4 MXFP4 MXINT4 INT4"),
        RoutingMethodType=enum.IntEnum("RoutingMethodType", [(m, i) for i, m in enumerate(
            ("Default", "Renormalize", "DeepSeekV3", "Llama4", "RenormalizeNaive", "TopK", "SigmoidRenorm",
             "MiniMax2", "Sigmoid", "TopKSigmoid"))]),
        RoutingInputMode=enum.IntEnum("RoutingInputMode", "FromLogits PackedPrecomputed UnpackedPrecomputed"),
        MoEWeightPack=WeightPack,
    )
    for n in ("MoEConfig", "RoutingConfig", "QuantConfig", "ExpertConfig", "BackendOptions", "ExecutionConfig",
              "MoEActivationPack", "SwiGLU"):
        setattr(ns, n, type(n, (Rec,), {}))
    for p in K.PATHS:
        setattr(ns, p.config_class, backend(p.config_class))
    return ns


def _last(fi, name):
    return [c for c in fi.calls if c[0] == name][-1]


def test_cutile_nvfp4_gets_checkpoint_native_modelopt_tensors():
    fi = _fake_fi()
    s = _shapes(routing_method="MiniMax2", has_bias=True)
    w = random_layer(s, "nvfp4")
    path = K.select_path("nvfp4", 90)
    cfg = K.build_config(fi, path, s)
    view = K.prepare_weight_view(fi, path, w, device="cpu", config=cfg)
    _, args, kwargs = _last(fi, "CuTileNvfp4Bf16Config.prepare_weights")
    w1, s1, g1, w2, s2, g2 = args
    assert (w1.dtype, tuple(w1.shape)) == (torch.uint8, (E, 2 * I, H // 2))
    assert (s1.dtype, tuple(s1.shape)) == (torch.float8_e4m3fn, (E, 2 * I, H // 16))
    assert (g1.dtype, tuple(g1.shape)) == (torch.float32, (E,))
    assert (w2.dtype, tuple(w2.shape), tuple(s2.shape), tuple(g2.shape)) == (torch.uint8, (E, H, I // 2), (E, H, I // 16), (E,))
    assert kwargs == dict(num_local_experts=E, hidden_size=H, intermediate_size=I, device="cpu", source_format="modelopt")
    pack = K.make_weight_pack(fi, path, view)
    assert pack.native_views == {"cutile_nvfp4": {"prepared": "CuTileNvfp4Bf16Config"}}


def test_config_carries_routing_groups_scale_and_one_backend():
    fi = _fake_fi()
    s = _shapes(num_experts=256, top_k=8, routing_method="DeepSeekV3", n_group=8, topk_group=4,
                routed_scaling_factor=2.5)
    K.build_config(fi, K.select_path("bf16", 90), s, tune_max_num_tokens=4096)
    _, _, rk = _last(fi, "RoutingConfig")
    assert rk == dict(num_experts=256, top_k=8, method=fi.RoutingMethodType.DeepSeekV3, n_group=8, topk_group=4,
                      routed_scaling_factor=2.5)
    _, _, qk = _last(fi, "QuantConfig")
    assert qk == dict(weight=fi.QuantFormat.BF16, activation=fi.QuantFormat.BF16)
    _, _, mk = _last(fi, "MoEConfig")
    (cand,) = mk["backend"].kwargs["candidates"]
    assert type(cand).__name__ == "CuTileBf16Config"
    assert mk["experts"].kwargs == dict(intermediate_size=I)
    assert mk["execution"].kwargs == dict(tune_max_num_tokens=4096)


def test_cutile_activation_pack_is_packed_precomputed_int32_fp32():
    fi = _fake_fi()
    path = K.select_path("bf16", 90)
    cfg = K.build_config(fi, path, _shapes())
    x = torch.randn(3, H).to(torch.bfloat16)
    ids = torch.tensor([[0, 1], [2, 3], [1, 0]])
    K.make_activation_pack(fi, path, cfg, x, mode="PackedPrecomputed", topk_ids=ids,
                           topk_weights=torch.rand(3, 2, dtype=torch.bfloat16))
    _, args, kwargs = _last(fi, "MoEActivationPack")
    assert args[0] is x and args[1] is None
    assert args[2].dtype == torch.int32 and args[3].dtype == torch.float32
    assert kwargs == dict(routing_input_mode=fi.RoutingInputMode.PackedPrecomputed)


def test_cutile_weights_must_match_the_path_format():
    fi = _fake_fi()
    with pytest.raises(UnsupportedError):
        K.prepare_weight_view(fi, K.select_path("nvfp4", 90), random_layer(_shapes(), "bf16"), device="cpu")


def test_non_silu_activation_is_refused():
    with pytest.raises(UnsupportedError, match="SwiGLU"):
        K.build_config(_fake_fi(), K.select_path("bf16", 90), _shapes(activation="swigluoai"))


# ----------------------------------------------------------------------------- timing
def test_bench_cycles_every_token_set_inside_the_graph():
    seen = []
    got = {}

    def fake_bench(fn, **kw):
        got.update(kw)
        for _ in range(kw["num_iters_within_graph"]):
            fn()
        return [0.010, 0.012, 0.011]

    calls = [lambda i=i: seen.append(i) for i in range(3)]
    st = T.bench_cycled(calls, bench=fake_bench, est_call_ms=1.0, repeat_time_ms=50)
    assert sorted(set(seen)) == [0, 1, 2] and got["use_cuda_graph"] is True
    assert got["num_iters_within_graph"] % 3 == 0 and got["repeat_iters"] >= 20
    assert st.median_us == pytest.approx(11.0) and st.token_sets == 3


def test_roofline_names_the_binding_limit():
    decode = T.roofline(100e-6, nbytes=200e6, flops=1e9, peak_tbs=4.8, peak_tflops=989.4, mma_dtype="bf16")
    assert decode.bound == "memory" and decode.achieved_tbs == pytest.approx(2.0)
    assert decode.pct_bandwidth == pytest.approx(100 * 2.0 / 4.8)
    prefill = T.roofline(1e-3, nbytes=1e9, flops=5e14, peak_tbs=4.8, peak_tflops=989.4, mma_dtype="bf16")
    assert prefill.bound == "compute" and prefill.pct_of_bound == prefill.pct_compute


def test_flops_and_bytes_count_only_experts_hit():
    assert T.moe_flops(1, 8, 3072, 1536) == 2 * 8 * (3072 * 3072 + 1536 * 3072)
    assert T.moe_bytes(8, 1000, 1, 10, 8) == 8 * 1000 + 1 * 10 * 4 + 64


def test_cold_l2_token_sets():
    assert T.token_sets_for_cold_l2(10e6, 50 * 2**20) >= 11
    assert T.token_sets_for_cold_l2(5e9, 50 * 2**20) == 2


# ----------------------------------------------------------------------------- options / CLI
def test_tokens_parsing():
    assert parse_tokens("1, 16,128,16") == (1, 16, 128)
    for bad in ("0", "x", "", "9000"):
        with pytest.raises(BadInputError):
            parse_tokens(bad)


def test_shapes_from_the_catalog_models():
    from moe_inspect import catalog
    from moe_inspect.detect import describe_files

    def describe(model, offline=None):
        return describe_files(catalog.lookup(model))

    s, _, layer = resolve_shapes(RunLayerOptions(model="MiniMaxAI/MiniMax-M2.5"), describe=describe)
    assert (s.num_experts, s.top_k, s.hidden_size, s.intermediate_size, s.routing_method, s.has_bias) == \
        (256, 8, 3072, 1536, "MiniMax2", True)
    s, _, layer = resolve_shapes(RunLayerOptions(model="deepseek-ai/DeepSeek-V3"), describe=describe)
    assert (s.routing_method, s.n_group, s.topk_group, s.routed_scaling_factor, s.num_shared_experts, layer) == \
        ("DeepSeekV3", 8, 4, 2.5, 1, 3)
    path, mode = plan(RunLayerOptions(quant="nvfp4"), s, 90)
    assert path.config_class == "CuTileNvfp4Bf16Config" and mode == "PackedPrecomputed"
    path, mode = plan(RunLayerOptions(quant="nvfp4"), s, 100)
    assert path.config_class == "TrtllmFp4Config" and mode == "FromLogits"


def test_explicit_shapes_need_every_flag():
    with pytest.raises(BadInputError, match="--hidden, --intermediate"):
        resolve_shapes(RunLayerOptions(experts=8, top_k=2, routing="Renormalize"))
    with pytest.raises(BadInputError, match="shapes come from MODEL"):
        resolve_shapes(RunLayerOptions(model="x", experts=8))


@pytest.fixture
def cli():
    from typer.testing import CliRunner

    from moe_inspect.cli.app import app

    return lambda *a: CliRunner().invoke(app, ["run-layer", *a])


_SHAPES = ["--experts", "8", "--top-k", "2", "--hidden", "128", "--intermediate", "64", "--routing-method", "Renormalize"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_cli_without_a_gpu_is_one_line_exit_2(cli, tmp_path):
    r = cli(*_SHAPES)
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "error: no CUDA device: run-layer needs an NVIDIA GPU (torch.cuda.is_available() is False)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,match", [
    (["--quant", "int3"], "--quant int3: unknown format"),
    (["--tokens", "0"], "outside 1..8192"),
    (["--weights", "somewhere"], "--weights somewhere"),
    (["--act", "fp8"], "--act fp8"),
    (["--plot", "out.jpg"], "PNG"),
])
def test_cli_bad_input_is_one_line_exit_2(cli, args, match):
    r = cli(*_SHAPES, *args)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and match in r.output


def test_cli_missing_shapes_without_model(cli):
    r = cli("--experts", "8")
    assert r.exit_code == 2 and "pass --top-k, --hidden, --intermediate, --routing-method" in r.output


def test_environment_error_is_exit_2():
    assert EnvironmentError_("x").exit_code == 2 and UnsupportedError("x").exit_code == 2


def test_reference_matmuls_do_not_leave_tf32_changed():
    """run-layer turns TF32 off for its float32 reference only inside the run (issue 12), restoring the caller's flag."""
    from moe_inspect.layer.runner import _fp32_matmuls

    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        with _fp32_matmuls(torch):
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
        with pytest.raises(RuntimeError), _fp32_matmuls(torch):
            raise RuntimeError("a failing run")
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
