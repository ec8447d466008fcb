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
* values on CPU with E = 8 at MiniMax-M2.5's real H/I (3072/1536): the launched routing logits,
  bias, packed ids/weights and activations are the ones our code computed.

Expected values come from the model configs (DeepSeek-V3: E=256, k=8, H=7168, I=2048, groups 8/4,
scale 2.5) and from FlashInfer's C++ launcher signature, not from the code under test.
"""

from __future__ import annotations

import time

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
