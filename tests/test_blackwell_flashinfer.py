"""Our Blackwell (SM100/SM103) run-layer path through FlashInfer 0.7.2.post1's REAL TRT-LLM code.

No GPU here: tests/fi_blackwell.py makes exactly the three substitutions of issue 14 (compute
capability, the compiled ``moe_op`` -> a launch recorder checked against the C++ signature, torch
twins of three CUDA-only quantize/swizzle ops). Everything else is FlashInfer's own Python: its
config classes, ``supported(arch)``, ``MoELayer.__init__``/``__call__``, the runners' ``pack_inputs``
validators, weight preparation (shuffles, permutes, interleaves), the autotuner's tactic fallback.

What is driven is OUR code, the functions ``run_layer`` calls: ``plan`` (path + routing mode),
``prepare_layer`` (config, FlashInfer's prepare_weights, weight pack, MoELayer) and ``prepare_call``
(activation pack) of moe_inspect/layer/runner.py; the test then calls the MoELayer as ``_run`` does.

* full model sizes on ``meta`` (shapes and dtypes of every launched tensor), every TRT-LLM path we
  offer, on SM100 and SM103, FromLogits and PackedPrecomputed;
* values on CPU with E = 8 at Qwen3-30B-A3B's real H/I (2048/768): the launched routing logits,
  bias, packed ids/weights and activations are the ones our code computed.

Expected values come from the model configs (DeepSeek-V3: E=256, k=8, H=7168, I=2048, groups 8/4,
scale 2.5) and from FlashInfer's C++ launcher signature, not from the code under test.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("flashinfer", reason="flashinfer-python is not installed (pip install -e '.[dev]' installs 0.7.2.post1)")

from moe_inspect.layer import kernels as K  # noqa: E402
from moe_inspect.layer.runner import (  # noqa: E402
    RoutingChoice,
    RunLayerOptions,
    plan,
    prepare_call,
    prepare_layer,
)
from moe_inspect.layer.weights import LayerShapes, LayerWeights, random_layer  # noqa: E402

from .fi_blackwell import blackwell  # noqa: E402

DSV3 = LayerShapes(num_experts=256, top_k=8, hidden_size=7168, intermediate_size=2048, routing_method="DeepSeekV3",
                   n_group=8, topk_group=4, routed_scaling_factor=2.5, has_bias=True)
# FlashInfer RoutingMethodType (flashinfer/tllm_enums.py, 0.7.2.post1): the id the launcher gets
METHOD_ID = {"Default": 0, "Renormalize": 1, "DeepSeekV3": 2, "Llama4": 3, "RenormalizeNaive": 4, "TopK": 5,
             "SigmoidRenorm": 6, "MiniMax2": 7, "Sigmoid": 8, "TopKSigmoid": 9}
LAUNCH = {"TrtllmBf16Config": "trtllm_bf16_moe", "TrtllmFp8BlockConfig": "trtllm_fp8_block_scale_moe",
          "TrtllmFp4Config": "trtllm_fp4_block_scale_moe"}
MODES = ("FromLogits", "PackedPrecomputed")


def _trt_paths(arch):
    """Every TRT-LLM path run-layer offers on ``arch``: (quant, --act)."""
    return [(p.quant, "quant" if p.quantized_activations else "bf16") for p in K.PATHS
            if p.backend == "trtllm" and arch in p.archs]


CASES = [(arch, q, a) for arch in (100, 103) for q, a in _trt_paths(arch)]


def _meta_layer(s: LayerShapes) -> LayerWeights:
    """BF16 weights on ``meta`` (TRT-LLM paths hand FlashInfer canonical BF16 and let it quantize)."""
    m = dict(device="meta")
    return LayerWeights("bf16", s, {"w1": torch.empty((s.num_experts, 2 * s.intermediate_size, s.hidden_size),
                                                      dtype=torch.bfloat16, **m),
                                    "w2": torch.empty((s.num_experts, s.hidden_size, s.intermediate_size),
                                                      dtype=torch.bfloat16, **m)},
                        torch.empty((s.num_experts, s.hidden_size), **m),
                        torch.empty((s.num_experts,), **m) if s.has_bias else None)


def _plan(quant, act, shapes, arch, mode):
    path, got = plan(RunLayerOptions(quant=quant, act=act, precomputed_routing=mode == "PackedPrecomputed"),
                     shapes, arch)
    assert got == mode, (quant, arch, got)
    return path


def _launch(rec, fi, prep, mode, x, logits, bias):
    rec.launches.clear()
    call = prepare_call(fi, prep, mode, x, logits, router_bias=bias,
                        routing=RoutingChoice("reference", "moe_inspect.reference.routers.route"))
    out = prep.moe(call.act, prep.pack)  # exactly what runner._run_tokens does
    return rec.only, call, out


# ----------------------------------------------------------------------------- full size on meta
def _expected_weights(path, s: LayerShapes) -> dict:
    """FlashInfer's launched weight tensors at ``s``: (dtype, shape) by C++ parameter name.

    Shapes: BF16 BlockMajorK [E, N/128... ] per fused_moe/prepare.py prepare_trtllm_bf16_weights
    (block_k = 128 // 2 bytes = 64); FP4 packed uint8 [E, N, K/2] + fp8-viewed swizzled scales
    (128x4 swizzle pads rows to 128: here N is already a multiple of 128); FP8 E4M3 [E, N, K]."""
    e, h, i = s.num_experts, s.hidden_size, s.intermediate_size
    f8, u8, bf, f32 = torch.float8_e4m3fn, torch.uint8, torch.bfloat16, torch.float32
    if path.config_class == "TrtllmBf16Config":
        return {"gemm1_weights": (bf, (e, h // 64, 2 * i, 64)), "gemm2_weights": (bf, (e, i // 64, h, 64))}
    if path.config_class == "TrtllmFp4Config":
        v = 16 if path.weight_format == "NVFP4" else 32
        return {"gemm1_weights": (u8, (e, 2 * i, h // 2)), "gemm1_weights_scale": (f8, (e, 2 * i, h // v)),
                "gemm2_weights": (u8, (e, h, i // 2)), "gemm2_weights_scale": (f8, (e, h, i // v)),
                "output1_scales_scalar": (f32, (e,)), "output1_scales_gate_scalar": (f32, (e,)),
                "output2_scales_scalar": (f32, (e,))}
    if path.weight_format == "DeepSeekFp8":
        return {"gemm1_weights": (f8, (e, 2 * i, h)), "gemm1_weights_scale": (f32, (e, 2 * i // 128, h // 128)),
                "gemm2_weights": (f8, (e, h, i)), "gemm2_weights_scale": (f32, (e, h // 128, i // 128))}
    return {"gemm1_weights": (f8, (e, 2 * i, h)), "gemm1_weights_scale": (u8, (e, 2 * i, h // 32)),
            "gemm2_weights": (f8, (e, h, i)), "gemm2_weights_scale": (u8, (e, h, i // 32))}


def _expected_activation(path, t: int, h: int):
    """(hidden_states, hidden_states_scale) (dtype, shape) as the launcher receives them."""
    if path.activation_format == "BF16":
        return (torch.bfloat16, (t, h)), None
    if path.activation_format == "NVFP4":
        return (torch.uint8, (t, h // 2)), (torch.float8_e4m3fn, (t, h // 16))
    if path.activation_format == "MXFP8" and path.weight_format == "MXFP4":
        return (torch.float8_e4m3fn, (t, h)), (torch.float8_e4m3fn, (t, h // 32))
    if path.activation_format == "MXFP8":
        return (torch.float8_e4m3fn, (t, h)), (torch.uint8, (t, h // 32))
    return (torch.float8_e4m3fn, (t, h)), (torch.float32, (h // 128, t))  # DeepSeek FP8: scales transposed


@pytest.mark.parametrize("arch,quant,act", [c for c in CASES if c[1] != "fp8"],
                         ids=[f"sm{a}-{q}-{x}" for a, q, x in CASES if q != "fp8"])
def test_deepseek_v3_full_size_on_meta_reaches_one_launch(arch, quant, act):
    """DeepSeek-V3 (E=256, k=8, H=7168, I=2048, groups 8/4, scale 2.5) at full size, both routing modes.

    Weights and tokens on ``meta`` (2 x 256 x 2048 x 7168 never exists); logits and bias on CPU (our
    reference router needs values), moved to the activations' device by our activation pack."""
    s, t = DSV3, 4
    g = torch.Generator().manual_seed(0)
    x = torch.empty((t, s.hidden_size), dtype=torch.bfloat16, device="meta")
    logits, bias = torch.randn((t, s.num_experts), generator=g), torch.randn((s.num_experts,), generator=g) * 0.01
    with blackwell(arch) as rec:
        fi = K.flashinfer_namespace()
        path = _plan(quant, act, s, arch, "FromLogits")
        assert _plan(quant, act, s, arch, "PackedPrecomputed") == path
        prep = prepare_layer(fi, path, _meta_layer(s), device=torch.device("meta"))
        for mode in MODES:
            launch, call, out = _launch(rec, fi, prep, mode, x, logits, bias)
            a = launch.args
            assert launch.name == LAUNCH[path.config_class]
            assert a["routing_method_type"] == METHOD_ID["DeepSeekV3"] == 2
            assert (a["num_experts"], a["top_k"], a["n_group"], a["topk_group"]) == (256, 8, 8, 4)
            assert a["routed_scaling_factor"] == 2.5
            assert (a["intermediate_size"], a["local_expert_offset"], a["local_num_experts"]) == (2048, 0, 256)
            assert launch.tactic == [-1, -1]  # the autotuner's fallback tactic (no tuning data)
            assert a["do_finalize"] is True
            assert a["routing_input_mode"] == (0 if mode == "FromLogits" else 1)  # RoutingInputMode
            for name, want in _expected_weights(path, s).items():
                assert launch.spec(name) == want, (name, launch.spec(name))
            hs, hss = _expected_activation(path, t, s.hidden_size)
            assert launch.spec("hidden_states") == hs
            if "hidden_states_scale" in a:
                assert launch.spec("hidden_states_scale") == hss
            assert launch.spec("output") == (torch.bfloat16, (t, s.hidden_size))
            if mode == "FromLogits":
                want_logits = torch.bfloat16 if path.logits_dtype == "bfloat16" else torch.float32
                assert launch.spec("routing_logits") == (want_logits, (t, 256))
                assert launch.spec("routing_bias") == (torch.float32, (256,))
            else:
                assert a["routing_logits"] is None and a["routing_bias"] is None
                ids = launch.routed_ids()
                assert (ids.dtype, tuple(ids.shape)) == (torch.int32, (t, 8))  # id << 16 | bf16 weight bits
            assert out is a["output"]  # do_finalize: MoELayer returns the launch's output buffer


def _assert_packed_routing(packed, call):
    """FlashInfer packs (expert id << 16) | bf16 weight bits (runners.py _pack_prerouted_topk_ids)."""
    assert packed.dtype == torch.int32 and packed.shape == call.topk_ids.shape
    assert torch.equal(packed >> 16, call.topk_ids.to(torch.int32))
    bits = (packed & 0xFFFF).to(torch.int16).view(torch.bfloat16)
    assert torch.equal(bits, call.topk_weights.to(torch.bfloat16))


# ----------------------------------------------------------------------------- values on CPU, E = 8
CPU_H, CPU_I = 2048, 768  # Qwen3-30B-A3B hidden_size / moe_intermediate_size (config.json); E cut to 8, k to 4


def _cpu_shapes(path) -> LayerShapes:
    """Qwen3-30B-A3B's real H/I at E=8, k=4 (k < E: the FP8-block launcher needs E > k), with MiniMax2
    routing (sigmoid + correction bias: the bias must reach the launch) where the path routes it in-kernel,
    else Renormalize (MXFP4's allow-list: DeepSeekV3, Renormalize, RenormalizeNaive)."""
    method = "MiniMax2" if "MiniMax2" in path.fused_methods else "Renormalize"
    # groups given but meaningless outside DeepSeekV3: they must not reach the launch
    return LayerShapes(num_experts=8, top_k=4, hidden_size=CPU_H, intermediate_size=CPU_I, routing_method=method,
                       n_group=4, topk_group=2,
                       routed_scaling_factor=1.0 if method == "MiniMax2" else None, has_bias=method == "MiniMax2")


def _dequant_activation(path, hs, scale, hs_scale_global):
    """The launched activations back to float32, per the layout each launcher reads."""
    from moe_inspect.layer import quantizers as Q

    if path.activation_format == "BF16":
        return hs.float()
    if path.activation_format == "NVFP4":  # global scale 1 (prepare_trtllm_fp4_activations)
        return Q.dequantize_nvfp4(hs, scale, 1.0)
    if path.activation_format == "MXFP8":
        return Q.dequantize_mxfp8(hs, scale.view(torch.uint8))
    if path.activation_format == "DeepSeekFp8":  # scales [H/128, T]: transposed
        return hs.float() * scale.t().repeat_interleave(128, dim=-1)
    return hs.float() / hs_scale_global  # FP8 per-tensor: the global scale multiplies before the cast


def _run_cpu(arch, path, *, t=16, seed=0):
    """Our path at E=8 on CPU through FlashInfer: (launches by mode, calls by mode, weights, x, logits)."""
    from moe_inspect.layer.runner import fp8_activation_scales

    s = _cpu_shapes(path)
    w = random_layer(s, path.quant, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    hs_scale, inter = fp8_activation_scales(path, s.hidden_size, generator=g, device="cpu", torch=torch)
    x = torch.randn((t, s.hidden_size), generator=g).to(torch.bfloat16)
    logits = w.router_logits(x)
    bias = w.router_bias.float() if w.router_bias is not None else None
    out = {}
    with blackwell(arch) as rec:
        fi = K.flashinfer_namespace()
        prep = prepare_layer(fi, path, w, device=torch.device("cpu"), hs_scale=hs_scale, inter_scale=inter)
        for mode in MODES:
            launch, call, _ = _launch(rec, fi, prep, mode, x, logits, bias)
            out[mode] = (launch, call)
    return out, w, x, logits, hs_scale


CPU_CASES = [(100, q, a) for q, a in _trt_paths(100)] + [(103, "fp8", "quant")]


@pytest.mark.parametrize("arch,quant,act", CPU_CASES, ids=[f"sm{a}-{q}-{x}" for a, q, x in CPU_CASES])
def test_values_reach_the_launch_at_e8_on_cpu(arch, quant, act):
    path = K.select_path(quant, arch, quantized_activations=act == "quant")
    runs, w, x, logits, hs_scale = _run_cpu(arch, path)
    s = w.shapes
    for mode, (launch, call) in runs.items():
        a = launch.args
        assert a["routing_method_type"] == METHOD_ID[s.routing_method]
        assert (a["num_experts"], a["top_k"], a["local_num_experts"]) == (8, 4, 8)
        assert a["n_group"] is None and a["topk_group"] is None
        assert launch.tactic == [-1, -1]
        # activations: what the kernel reads is x, quantized in the launcher's layout
        hs = _dequant_activation(path, a["hidden_states"], a.get("hidden_states_scale"), hs_scale)
        rel = float((hs - x.float()).norm() / x.float().norm())
        assert rel <= {"BF16": 0.0, "NVFP4": 0.12}.get(path.activation_format, 0.05), (mode, rel)
        if mode == "FromLogits":
            want = torch.bfloat16 if path.logits_dtype == "bfloat16" else torch.float32
            assert torch.equal(a["routing_logits"], logits.to(want))
            if s.routing_method == "MiniMax2":
                assert torch.equal(a["routing_bias"], w.router_bias.float())
            else:
                assert a["routing_bias"] is None
        else:
            from moe_inspect.reference.routers import route

            ref = route(s.routing_method, logits, top_k=4, bias=w.router_bias, routed_scaling_factor=s.routed_scaling_factor)
            packed = launch.routed_ids()
            assert torch.equal(packed >> 16, ref.topk_ids.to(torch.int32))
            assert torch.equal((packed & 0xFFFF).to(torch.int16).view(torch.bfloat16), ref.topk_weights.to(torch.bfloat16))
    launch = runs["FromLogits"][0]
    w1, w2 = w.bf16_canonical()
    if path.config_class == "TrtllmBf16Config":  # BlockMajorK is a per-expert permutation of our BF16 weights
        for name, ours in (("gemm1_weights", w1), ("gemm2_weights", w2)):
            got = launch.tensor(name).double().flatten(1)
            assert torch.allclose(got.sum(1), ours.double().flatten(1).sum(1), rtol=0, atol=1e-6)
            assert torch.allclose(got.abs().sum(1), ours.double().abs().flatten(1).sum(1), rtol=1e-12)
    if path.weight_format == "DeepSeekFp8":  # 128x128 block scales = amax / 448 of OUR weights, expert by expert
        blocks = w1.float().reshape(8, 2 * s.intermediate_size // 128, 128, s.hidden_size // 128, 128)
        want = blocks.abs().amax(dim=(2, 4)) / 448.0
        got = launch.tensor("gemm1_weights_scale").float()
        assert torch.allclose(got.flatten(1).sort(1).values, want.flatten(1).sort(1).values, rtol=1e-6)


# ----------------------------------------------------------------------------- the bugs issue 14 found
def test_fp8_per_tensor_with_precomputed_routing_passes_the_activation_scale():
    """Bug: the PackedPrecomputed activation pack was built without hidden_states_scale_global, and
    FlashInfer failed with TypeError (fused_moe/prepare.py:957) -> "FlashInfer refused the layer"."""
    s = LayerShapes(num_experts=8, top_k=2, hidden_size=256, intermediate_size=128, routing_method="Default")
    for arch in (100, 103):
        path, mode = plan(RunLayerOptions(quant="fp8"), s, arch)  # Default is not in the FromLogits allow-list
        assert (path.config_class, mode) == ("TrtllmFp8PerTensorConfig", "PackedPrecomputed")
        w = random_layer(s, "fp8")
        x = torch.randn((4, 256)).to(torch.bfloat16)
        with blackwell(arch) as rec:
            fi = K.flashinfer_namespace()
            prep = prepare_layer(fi, path, w, device=torch.device("cpu"), hs_scale=20.0, inter_scale=56.0)
            launch, _, _ = _launch(rec, fi, prep, mode, x, w.router_logits(x), None)
        assert launch.name == "trtllm_fp8_per_tensor_scale_routed_moe"
        assert torch.equal(launch.tensor("hidden_states"), (x.float() * 20.0).to(torch.float8_e4m3fn))


@pytest.mark.parametrize("quant,act", [("mxfp4", "quant"), ("mxfp4", "bf16"), ("nvfp4", "quant")])
def test_gpt_oss_20b_shapes_are_refused_on_sm100_as_flashinfer_does(quant, act):
    """gpt-oss-20b: H = I = 2880 (config.json). FlashInfer's TRT-LLM FP4 preparation needs H and I
    multiples of 128 for MXFP4 (ValueError) and H a multiple of 128 for NVFP4 (a bare AssertionError
    from flashinfer/utils.py:1123); our plan accepted multiples of 64 and let it reach the GPU."""
    from moe_inspect.errors import UnsupportedError

    s = LayerShapes(num_experts=32, top_k=4, hidden_size=2880, intermediate_size=2880, routing_method="Renormalize")
    with pytest.raises(UnsupportedError) as e:
        plan(RunLayerOptions(quant=quant, act=act), s, 100)
    msg = str(e.value)
    assert "\n" not in msg and "--hidden 2880 / --intermediate 2880" in msg and "TrtllmFp4Config" in msg
    assert ("multiple of 128" in msg) or ("multiples of 128" in msg)
    # and FlashInfer's own preparation refuses it too (so the gate is not stricter than FlashInfer)
    path = K.select_path(quant, 100, quantized_activations=act == "quant")
    with blackwell(100):
        fi = K.flashinfer_namespace()
        with pytest.raises((ValueError, AssertionError)):
            prepare_layer(fi, path, _meta_layer(s), device=torch.device("meta"))


def test_fp8_block_needs_more_experts_than_top_k():
    """FlashInfer's FP8-block launcher checks num_experts > top_k in C++ (data/csrc/
    trtllm_fused_moe_kernel_launcher.cu:4278, Fp8BlockScaleLauncher::check_routing): k = E is refused
    by our plan instead of by the GPU. MXFP8 launches through the same launcher."""
    from moe_inspect.errors import UnsupportedError

    s = LayerShapes(num_experts=8, top_k=8, hidden_size=256, intermediate_size=256, routing_method="Renormalize")
    for quant in ("fp8-block", "mxfp8"):
        with pytest.raises(UnsupportedError, match=r"FP8-block launcher needs experts > top_k \(E=8, k=8"):
            plan(RunLayerOptions(quant=quant), s, 100)
    assert plan(RunLayerOptions(quant="nvfp4"), s, 100)[0].config_class == "TrtllmFp4Config"  # k = E is fine there


# ----------------------------------------------------------------------------- planted mistakes
def _small(quant, method="Renormalize", **kw):
    s = LayerShapes(num_experts=8, top_k=2, hidden_size=256, intermediate_size=256, routing_method=method, **kw)
    return s, K.select_path(quant, 100), random_layer(s, quant if quant != "mxfp4" else "bf16")


def _drive(path, w, mode="PackedPrecomputed", *, t=4, tune_max=8192, x_dtype=torch.bfloat16):
    x = torch.randn((t, w.shapes.hidden_size)).to(x_dtype)
    with blackwell(100) as rec:
        fi = K.flashinfer_namespace()
        prep = prepare_layer(fi, path, w, device=torch.device("cpu"), tune_max_num_tokens=tune_max)
        prep.moe(prepare_call(fi, prep, mode, x, w.router_logits(x)).act, prep.pack)
    return rec.only


def test_planted_mistake_wrong_weight_pack_key_is_caught(monkeypatch):
    s, path, w = _small("nvfp4")
    _drive(path, w)  # as written: one launch
    monkeypatch.setattr(K, "make_weight_pack", lambda fi, p, view: _pack(fi, "trtllm_bf16_routed", view))
    with pytest.raises((NotImplementedError, KeyError, ValueError), match="trtllm_fp4_routed|view|pack"):
        _drive(path, w)


def _pack(fi, key, view):
    pack = fi.MoEWeightPack()
    pack.prepare_for(key, view)
    return pack


def test_planted_mistake_token_ceiling_is_caught():
    s, path, w = _small("bf16")
    with pytest.raises(ValueError, match="exceeds tune_max_num_tokens"):
        _drive(path, w, t=8, tune_max=4)


def test_planted_mistake_non_bf16_activations_are_caught():
    s, path, w = _small("nvfp4")  # prepare_trtllm_fp4_activations checks (the BF16 runner leaves it to C++)
    with pytest.raises((TypeError, ValueError), match="bfloat16|dtype"):
        _drive(path, w, x_dtype=torch.float16)


def test_planted_mistake_missing_swiglu_scalars_are_caught(monkeypatch):
    """gpt-oss's SwiGLU(1.702, 1.0, limit) in the config but a view prepared without them."""
    s, path, w = _small("nvfp4", activation="swigluoai", swiglu_limit=7.0)
    _drive(path, w)
    real = K.activation_config
    calls = {"n": 0}

    def only_for_the_config(fi, shapes):  # prepare_weight_view asks second: give it the default SwiGLU
        calls["n"] += 1
        return real(fi, shapes) if calls["n"] == 1 else fi.SwiGLU()

    monkeypatch.setattr(K, "activation_config", only_for_the_config)
    with pytest.raises((ValueError, TypeError), match="gemm1_alpha|activation|SwiGLU"):
        _drive(path, w)


def test_planted_mistake_int64_or_transposed_inputs_are_caught(monkeypatch):
    s, path, w = _small("fp8-block")
    _drive(path, w)
    real = K.make_activation_pack

    def transposed_scales(fi, p, config, x, **kw):  # DeepSeek FP8 scales must be [H/128, T]
        act = real(fi, p, config, x, **kw)
        act.hidden_states_scale = act.hidden_states_scale.t().contiguous()
        return act

    monkeypatch.setattr(K, "make_activation_pack", transposed_scales)
    with pytest.raises((AssertionError, ValueError), match="hidden_states_scale|scale"):
        _drive(path, w)

    def int64_ids(fi, p, config, x, **kw):
        act = real(fi, p, config, x, **kw)
        act.topk_ids = act.topk_ids.long()
        return act

    monkeypatch.setattr(K, "make_activation_pack", int64_ids)
    with pytest.raises((TypeError, ValueError), match="int32|topk_ids"):
        _drive(path, w)


def test_fp8_block_grouped_routing_needs_top_k_below_the_selected_groups_experts():
    """cu:4258: top_k < topk_group * E / n_group (E=64, 8 groups of 8, 1 group kept: 8 experts to pick from)."""
    from moe_inspect.errors import UnsupportedError

    s = LayerShapes(num_experts=64, top_k=8, hidden_size=256, intermediate_size=256, routing_method="DeepSeekV3",
                    n_group=8, topk_group=1, routed_scaling_factor=1.0, has_bias=True)
    with pytest.raises(UnsupportedError, match=r"needs top_k < topk_group·E/n_group = 8 \(k=8;"):
        plan(RunLayerOptions(quant="fp8-block"), s, 100)
    assert plan(RunLayerOptions(quant="fp8-block"), LayerShapes(**{**s.to_dict(), "top_k": 7}), 100)[1] == "FromLogits"


@pytest.mark.parametrize("arch,quant,act", [c for c in CASES if c[1] != "fp8"],
                         ids=[f"sm{a}-{q}-{x}" for a, q, x in CASES if q != "fp8"])
def test_minimax_m25_from_the_catalog_full_size_on_meta(arch, quant, act):
    """MiniMax-M2.5 as run-layer resolves it from the model name (catalog config): E=256, k=8, H=3072, I=1536,
    sigmoid + correction bias = MiniMax2 (RoutingMethodType 7), no groups (config.json; shared/facts)."""
    from moe_inspect import catalog
    from moe_inspect.detect import describe_files
    from moe_inspect.layer.runner import resolve_shapes

    s, _, _ = resolve_shapes(RunLayerOptions(model="MiniMaxAI/MiniMax-M2.5"),
                             describe=lambda m, offline=None: describe_files(catalog.lookup(m)))
    path, mode = plan(RunLayerOptions(quant=quant, act=act), s, arch)
    want_mode = "PackedPrecomputed" if quant == "mxfp4" else "FromLogits"  # MXFP4's allow-list lacks MiniMax2
    assert mode == want_mode
    t = 3
    x = torch.empty((t, 3072), dtype=torch.bfloat16, device="meta")
    logits, bias = torch.randn(t, 256), torch.randn(256) * 0.01
    with blackwell(arch) as rec:
        fi = K.flashinfer_namespace()
        prep = prepare_layer(fi, path, _meta_layer(s), device=torch.device("meta"))
        launch, _, _ = _launch(rec, fi, prep, mode, x, logits, bias)
    a = launch.args
    assert a["routing_method_type"] == 7 and a["n_group"] is None and a["topk_group"] is None
    assert (a["num_experts"], a["top_k"], a["intermediate_size"]) == (256, 8, 1536)
    assert launch.spec("hidden_states")[1][0] == t and launch.spec("output") == (torch.bfloat16, (t, 3072))
    if mode == "FromLogits":
        assert launch.spec("routing_bias") == (torch.float32, (256,))
    for name, want in _expected_weights(path, s).items():
        assert launch.spec(name) == want, name
