"""run-layer checkpoint formats on CPU: gpt-oss MXFP4 (interleaved gate/up, biases, swigluoai) and
compressed-tensors NVFP4, written with REAL quantized bytes (our quantizers + safetensors' own
``save_file``), read back by ``load_checkpoint_layer`` and checked against the quantizers'
dequantization, transformers' own gpt-oss code (oracle) and the kernel-path refusals."""

from __future__ import annotations

import enum
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from moe_inspect.errors import CheckpointError, UnsupportedError  # noqa: E402
from moe_inspect.layer import kernels as K  # noqa: E402
from moe_inspect.layer import quantizers as Q  # noqa: E402
from moe_inspect.layer.reference import reference_moe  # noqa: E402
from moe_inspect.layer.runner import RunLayerOptions, plan, resolve_shapes  # noqa: E402
from moe_inspect.layer.weights import (  # noqa: E402
    LayerShapes,
    checkpoint_expert_bias,
    load_checkpoint_layer,
    random_layer,
)

E, H, I = 4, 64, 64
PRE = "model.layers.0.mlp"
LIMIT = 7.0


def _shapes(**kw) -> LayerShapes:
    base = dict(num_experts=E, top_k=2, hidden_size=H, intermediate_size=I, routing_method="RenormalizeNaive")
    base.update(kw)
    return LayerShapes(**base)


def _oss_shapes(**kw) -> LayerShapes:
    return _shapes(**{**dict(activation="swigluoai", swiglu_limit=LIMIT, linear_router_bias=True, expert_bias=True),
                      **kw})


def _save(tmp_path, tensors: dict):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / "model.safetensors"))
    return tmp_path


# ----------------------------------------------------------------------------- gpt-oss MXFP4
def _gpt_oss_weights(seed=0):
    """Known float weights: gate rows POSITIVE, up rows NEGATIVE (so an order mix-up shows), biases."""
    g = torch.Generator().manual_seed(seed)
    gate = torch.randn((E, I, H), generator=g).abs() / H ** 0.5 + 0.01
    up = -(torch.randn((E, I, H), generator=g).abs() / H ** 0.5 + 0.01)
    down = torch.randn((E, H, I), generator=g) / I ** 0.5
    b_gate = (torch.randn((E, I), generator=g) * 0.5).to(torch.bfloat16)
    b_up = (torch.randn((E, I), generator=g) * 0.5 - 2.0).to(torch.bfloat16)
    b_down = (torch.randn((E, H), generator=g) * 0.1).to(torch.bfloat16)
    return gate, up, down, b_gate, b_up, b_down


def _interleave(gate, up, dim=1):
    """[E, I, ...] gate and up -> [E, 2I, ...] with gate on even, up on odd rows (gpt-oss)."""
    return torch.stack((gate, up), dim=dim + 1).flatten(dim, dim + 1)


def _gpt_oss_ckpt(tmp_path, seed=0):
    gate, up, down, b_gate, b_up, b_down = _gpt_oss_weights(seed)
    gu_packed, gu_scales = Q.quantize_mxfp4(_interleave(gate, up))  # [E, 2I, H/2], [E, 2I, H/32]
    dn_packed, dn_scales = Q.quantize_mxfp4(down)
    g = torch.Generator().manual_seed(seed + 100)
    t = {
        f"{PRE}.experts.gate_up_proj_blocks": gu_packed.reshape(E, 2 * I, H // 32, 16),
        f"{PRE}.experts.gate_up_proj_scales": gu_scales,
        f"{PRE}.experts.gate_up_proj_bias": _interleave(b_gate, b_up),
        f"{PRE}.experts.down_proj_blocks": dn_packed.reshape(E, H, I // 32, 16),
        f"{PRE}.experts.down_proj_scales": dn_scales,
        f"{PRE}.experts.down_proj_bias": b_down,
        f"{PRE}.router.weight": (torch.randn((E, H), generator=g) / H ** 0.5).to(torch.bfloat16),
        f"{PRE}.router.bias": (torch.randn((E,), generator=g) * 0.1).to(torch.bfloat16),
    }
    stored = dict(gu=(gu_packed, gu_scales), dn=(dn_packed, dn_scales), b_gate=b_gate, b_up=b_up, b_down=b_down)
    return _save(tmp_path, t), t, stored


def test_gpt_oss_mxfp4_is_used_as_stored_with_up_rows_first(tmp_path):
    root, t, stored = _gpt_oss_ckpt(tmp_path)
    w = load_checkpoint_layer(root, _oss_shapes(), "mxfp4", layer=0)
    packed, scales = stored["gu"]
    assert w.tensors["w1"].dtype == torch.uint8 and w.tensors["w1"].shape == (E, 2 * I, H // 2)
    # bytes untouched, odd (up) rows first, then even (gate) rows
    assert torch.equal(w.tensors["w1"][:, :I], packed[:, 1::2]) and torch.equal(w.tensors["w1"][:, I:], packed[:, 0::2])
    assert torch.equal(w.tensors["w1_scale"][:, :I], scales[:, 1::2])
    assert torch.equal(w.tensors["w2"], stored["dn"][0]) and torch.equal(w.tensors["w2_scale"], stored["dn"][1])
    full = Q.dequantize_mxfp4(packed, scales)  # the quantizer's own dequantization, interleaved
    for e in range(E):
        w1, w2 = w.dequant_expert(e)
        assert torch.equal(w1[:I], full[e, 1::2]) and torch.equal(w1[I:], full[e, 0::2])
        assert torch.equal(w2, Q.dequantize_mxfp4(*stored["dn"])[e])
        assert bool((w1[:I] <= 0).all()) and bool((w1[I:] >= 0).all())  # up (negative) first, gate after
    assert any("gpt-oss MXFP4" in n and "used as stored" in n for n in w.notes)


def test_gpt_oss_biases_are_reordered_like_w1_and_router_bias_is_read(tmp_path):
    root, t, stored = _gpt_oss_ckpt(tmp_path)
    w = load_checkpoint_layer(root, _oss_shapes(), "mxfp4", layer=0)
    assert torch.equal(w.tensors["w1_bias"][:, :I], stored["b_up"])
    assert torch.equal(w.tensors["w1_bias"][:, I:], stored["b_gate"])
    assert torch.equal(w.tensors["w2_bias"], stored["b_down"])
    b1, b2 = w.expert_bias(3)
    assert b1.dtype == torch.float32 and torch.equal(b1[I:], stored["b_gate"][3].float())
    x = torch.randn(3, H)
    want = x @ t[f"{PRE}.router.weight"].float().t() + t[f"{PRE}.router.bias"].float()
    assert torch.allclose(w.router_logits(x), want)


@pytest.mark.parametrize("quant", ["bf16", "nvfp4"])
def test_gpt_oss_mxfp4_requantized_from_its_exact_dequantization(tmp_path, quant):
    root, _, stored = _gpt_oss_ckpt(tmp_path)
    w = load_checkpoint_layer(root, _oss_shapes(), quant, layer=0)
    full = Q.dequantize_mxfp4(*stored["gu"])
    w1, _ = w.dequant_expert(1)
    want = torch.cat((full[1, 1::2], full[1, 0::2]))
    if quant == "bf16":  # E2M1 x 2^k is exact in BF16
        assert torch.equal(w1, want)
    else:
        assert float((w1 - want).norm() / want.norm()) < 0.12
    assert any(f"quantized to {quant}" in n for n in w.notes)


def test_gpt_oss_bf16_fused_gate_up_is_deinterleaved(tmp_path):
    gate, up, down, b_gate, b_up, b_down = _gpt_oss_weights()
    bf = lambda v: v.to(torch.bfloat16)  # noqa: E731
    t = {  # transformers' GptOssExperts parameter layout: x @ W, [E, H, 2I] interleaved columns, [E, I, H]
        f"{PRE}.experts.gate_up_proj": bf(_interleave(gate, up).transpose(1, 2)),
        f"{PRE}.experts.gate_up_proj_bias": _interleave(b_gate, b_up),
        f"{PRE}.experts.down_proj": bf(down.transpose(1, 2)),
        f"{PRE}.experts.down_proj_bias": b_down,
        f"{PRE}.router.weight": torch.zeros(E, H), f"{PRE}.router.bias": torch.zeros(E),
    }
    w = load_checkpoint_layer(_save(tmp_path, t), _oss_shapes(), "bf16", layer=0)
    assert torch.equal(w.tensors["w1"][2, :I], bf(up[2])) and torch.equal(w.tensors["w1"][2, I:], bf(gate[2]))
    assert torch.equal(w.tensors["w2"][2], bf(down[2]))
    assert torch.equal(w.tensors["w1_bias"][:, :I], b_up)
    assert any("interleaved" in n for n in w.notes)


def test_gpt_oss_block_shape_mismatch_is_named(tmp_path):
    root, t, _ = _gpt_oss_ckpt(tmp_path)
    with pytest.raises(CheckpointError, match=r"gate_up_proj_blocks: shape \[4, 128, 2, 16\] is not \[4, 192, 2, 16\]"):
        load_checkpoint_layer(root, _oss_shapes(intermediate_size=96), "bf16", layer=0)


def test_expert_bias_probe_reads_headers_only(tmp_path):
    oss = tmp_path / "a"
    oss.mkdir()
    root, _, _ = _gpt_oss_ckpt(oss)
    assert checkpoint_expert_bias(root, 0) is True
    plain = tmp_path / "b"
    plain.mkdir()
    _save(plain, {f"{PRE}.experts.{e}.{p}.weight": torch.zeros(I, H, dtype=torch.bfloat16)
                  for e in range(E) for p in ("gate_proj", "up_proj", "down_proj")})
    assert checkpoint_expert_bias(plain, 0) is False


# ----------------------------------------------------------------------------- oracle: transformers
@pytest.mark.oracle
def test_gpt_oss_blocks_match_transformers_dequantization(tmp_path):
    mx = pytest.importorskip("transformers.integrations.mxfp4")
    root, t, _ = _gpt_oss_ckpt(tmp_path)
    w = load_checkpoint_layer(root, _oss_shapes(), "mxfp4", layer=0)
    gu = mx.convert_moe_packed_tensors(t[f"{PRE}.experts.gate_up_proj_blocks"], t[f"{PRE}.experts.gate_up_proj_scales"],
                                       dtype=torch.float32)  # [E, H, 2I], transformers' own x @ W layout
    dn = mx.convert_moe_packed_tensors(t[f"{PRE}.experts.down_proj_blocks"], t[f"{PRE}.experts.down_proj_scales"],
                                       dtype=torch.float32)  # [E, I, H]
    for e in range(E):
        w1, w2 = w.dequant_expert(e)
        assert torch.equal(w1[:I], gu[e][:, 1::2].t()) and torch.equal(w1[I:], gu[e][:, ::2].t())
        assert torch.equal(w2, dn[e].t())


@pytest.mark.oracle
def test_swigluoai_reference_matches_transformers_gpt_oss_experts(tmp_path):
    pytest.importorskip("transformers")
    from transformers import GptOssConfig
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts

    root, t, _ = _gpt_oss_ckpt(tmp_path)
    w = load_checkpoint_layer(root, _oss_shapes(), "mxfp4", layer=0)
    cfg = GptOssConfig(hidden_size=H, intermediate_size=I, num_local_experts=E, num_experts_per_tok=2,
                       swiglu_limit=LIMIT)
    experts = GptOssExperts(cfg).float()
    with torch.no_grad():
        experts.gate_up_proj.copy_(convert_moe_packed_tensors(
            t[f"{PRE}.experts.gate_up_proj_blocks"], t[f"{PRE}.experts.gate_up_proj_scales"], dtype=torch.float32))
        experts.down_proj.copy_(convert_moe_packed_tensors(
            t[f"{PRE}.experts.down_proj_blocks"], t[f"{PRE}.experts.down_proj_scales"], dtype=torch.float32))
        experts.gate_up_proj_bias.copy_(t[f"{PRE}.experts.gate_up_proj_bias"].float())
        experts.down_proj_bias.copy_(t[f"{PRE}.experts.down_proj_bias"].float())
    g = torch.Generator().manual_seed(5)
    x = torch.randn((16, H), generator=g) * 6  # gate/up pre-activations well past ±7: the clamps matter
    ids = torch.stack([torch.randperm(E, generator=g)[:2] for _ in range(16)])
    wts = torch.softmax(torch.randn((16, 2), generator=g), dim=-1)
    with torch.no_grad():
        want = experts(x, router_indices=ids, routing_weights=wts)
    got = reference_moe(x, ids, wts, w)
    assert float((got - want).norm() / want.norm()) <= 1e-5
    h = x @ w.dequant_expert(0)[0].t()
    assert bool((h.abs() > LIMIT).any())
    unclamped = reference_moe(x, ids, wts, load_checkpoint_layer(root, _oss_shapes(swiglu_limit=1e9), "mxfp4", layer=0))
    assert float((unclamped - want).norm() / want.norm()) > 1e-2  # so the clamp was exercised


def test_silu_reference_is_unchanged_by_the_activation_table():
    w = random_layer(_shapes(), "bf16", seed=2)
    x = torch.randn(4, H)
    ids = torch.tensor([[0, 1], [1, 2], [3, 0], [2, 3]])
    wts = torch.rand(4, 2)
    out = reference_moe(x, ids, wts, w)
    w1, w2 = w.dequant_expert(0)
    h = x[0] @ w1.t()
    y = (torch.nn.functional.silu(h[I:]) * h[:I]) @ w2.t()
    w1b, w2b = w.dequant_expert(1)
    hb = x[0] @ w1b.t()
    yb = (torch.nn.functional.silu(hb[I:]) * hb[:I]) @ w2b.t()
    assert torch.allclose(out[0], wts[0, 0] * y + wts[0, 1] * yb, atol=1e-5)


# ----------------------------------------------------------------------------- compressed-tensors NVFP4
def _ct_ckpt(tmp_path, *, pow2: bool, names=("gate_proj", "up_proj", "down_proj"), prefix=PRE):
    """Per-expert compressed-tensors NVFP4 tensors; ``pow2`` makes every ModelOpt global a power of two."""
    g = torch.Generator().manual_seed(3)
    t = {f"{prefix}.gate.weight": torch.zeros(E, H)}
    stored = {}
    for e in range(E):
        for j, (proj, shape) in enumerate(zip(names, ((I, H), (I, H), (H, I)))):
            wf = torch.randn(shape, generator=g) * (1 + j)
            if pow2:  # amax = 6 * 448 * 2^-k exactly -> weight_scale_2 = 2^-k, its reciprocal exact
                wf = wf / wf.abs().max() * (6 * 448 * 2.0 ** -(8 + j + e))
            p, s, g2 = Q.quantize_nvfp4(wf)
            base = f"{prefix}.experts.{e}.{proj}"
            t[base + ".weight_packed"], t[base + ".weight_scale"] = p, s
            t[base + ".weight_global_scale"] = (1.0 / g2).reshape(1)  # compressed-tensors stores the divisor
            t[base + ".input_global_scale"] = torch.tensor([1.0])
            stored[(e, proj)] = (p, s, g2)
    return _save(tmp_path, t), t, stored


def test_compressed_tensors_nvfp4_is_read_as_modelopt_with_the_global_scale_inverted(tmp_path):
    root, t, stored = _ct_ckpt(tmp_path, pow2=True)
    w = load_checkpoint_layer(root, _shapes(), "nvfp4", layer=0)
    up_p, up_s, up_g = stored[(2, "up_proj")]
    assert torch.equal(w.tensors["w1"][2, :I], up_p) and torch.equal(w.tensors["w1"][2, I:], stored[(2, "gate_proj")][0])
    assert torch.equal(w.tensors["w1_global"][2], torch.stack((up_g, stored[(2, "gate_proj")][2])))
    assert w.tensors["w2_global"].shape == (E,)
    for e in range(E):  # exactly the quantizer's dequantization
        w1, w2 = w.dequant_expert(e)
        assert torch.equal(w1[:I], Q.dequantize_nvfp4(*stored[(e, "up_proj")]))
        assert torch.equal(w1[I:], Q.dequantize_nvfp4(*stored[(e, "gate_proj")]))
        assert torch.equal(w2, Q.dequantize_nvfp4(*stored[(e, "down_proj")]))
    assert any("compressed-tensors" in n and "used as stored" in n for n in w.notes)


def test_compressed_tensors_nvfp4_matches_its_own_divide_convention(tmp_path):
    root, t, _ = _ct_ckpt(tmp_path, pow2=False)
    w = load_checkpoint_layer(root, _shapes(), "nvfp4", layer=0)
    base = f"{PRE}.experts.1.down_proj"
    # compressed-tensors: w = e2m1 * weight_scale / weight_global_scale
    ct = (Q.e2m1_decode(Q.unpack_fp4(t[base + ".weight_packed"]))
          * t[base + ".weight_scale"].float().repeat_interleave(16, -1) / t[base + ".weight_global_scale"])
    assert torch.allclose(w.dequant_expert(1)[1], ct, rtol=1e-6, atol=0)


def test_compressed_tensors_nvfp4_w1_w3_w2_names_and_requantization(tmp_path):
    pre = "model.layers.0.block_sparse_moe"
    root, _, stored = _ct_ckpt(tmp_path, pow2=True, names=("w1", "w3", "w2"), prefix=pre)
    w = load_checkpoint_layer(root, _shapes(), "bf16", layer=0)
    w1, _ = w.dequant_expert(0)
    assert torch.equal(w1[I:], Q.dequantize_nvfp4(*stored[(0, "w1")]).to(torch.bfloat16).float())  # w1 = gate
    assert any("compressed-tensors" in n and "quantized to bf16" in n for n in w.notes)


# ----------------------------------------------------------------------------- kernel paths
@pytest.mark.parametrize("quant,arch,cls", [("mxfp4", 90, "CuTileMxfp4Bf16Config"), ("mxfp4", 100, "TrtllmFp4Config"),
                                            ("bf16", 90, "CuTileBf16Config"), ("nvfp4", 100, "TrtllmFp4Config")])
def test_gpt_oss_checkpoint_layers_are_refused_on_every_path(quant, arch, cls):
    with pytest.raises(UnsupportedError) as e:
        plan(RunLayerOptions(quant=quant), _oss_shapes(), arch)
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 2
    assert msg.startswith(f"expert GEMM biases (gate_up_proj_bias/down_proj_bias): {cls} takes none")


def test_weights_with_biases_are_refused_even_when_the_shapes_missed_them(tmp_path):
    root, _, _ = _gpt_oss_ckpt(tmp_path)
    s = _oss_shapes(expert_bias=False)
    w = load_checkpoint_layer(root, s, "mxfp4", layer=0)
    with pytest.raises(UnsupportedError, match="expert GEMM biases"):
        K.prepare_weight_view(_fake_fi(), K.select_path("mxfp4", 90), w, device="cpu")


def test_swigluoai_without_biases_runs_where_swiglu_scalars_reach_the_kernel():
    s = _oss_shapes(expert_bias=False)
    assert plan(RunLayerOptions(quant="mxfp4"), s, 90)[0].config_class == "CuTileMxfp4Bf16Config"
    s = _oss_shapes(expert_bias=False, hidden_size=128, intermediate_size=128)  # TRT-LLM MXFP4: multiples of 128
    assert plan(RunLayerOptions(quant="mxfp4"), s, 100)[0].config_class == "TrtllmFp4Config"
    with pytest.raises(UnsupportedError, match=r"activation swigluoai = SwiGLU\(alpha=1.702, beta=1.0, limit=7.0\): "
                                               r"TrtllmFp8PerTensorConfig only runs the default SwiGLU"):
        plan(RunLayerOptions(quant="fp8"), s, 100)


def _fake_fi():
    calls = []

    class Rec:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs
            self.__dict__.update(kwargs)
            calls.append((type(self).__name__, args, kwargs))

    def backend(name):
        def prepare_weights(*args, **kwargs):
            calls.append((name + ".prepare_weights", args, kwargs))
            return {}

        return type(name, (Rec,), {"prepare_weights": staticmethod(prepare_weights)})

    ns = SimpleNamespace(
        calls=calls,
        QuantFormat=enum.Enum("QuantFormat", "BF16 FP8PerTensor DeepSeekFp8 MXFP8 NVFP4 MXFP4"),
        RoutingMethodType=enum.IntEnum("RoutingMethodType", "Default Renormalize RenormalizeNaive"),
    )
    for n in ("MoEConfig", "RoutingConfig", "QuantConfig", "ExpertConfig", "BackendOptions", "ExecutionConfig", "SwiGLU"):
        setattr(ns, n, type(n, (Rec,), {}))
    for p in K.PATHS:
        setattr(ns, p.config_class, backend(p.config_class))
    return ns


@pytest.mark.parametrize("arch,cls", [(90, "CuTileMxfp4Bf16Config")])
def test_swigluoai_is_wired_to_flashinfer_swiglu_alpha_beta_limit(arch, cls):
    """cuTile (recording stand-in; the TRT-LLM paths: the real-FlashInfer test below)."""
    fi = _fake_fi()
    s = _oss_shapes(expert_bias=False)
    path = K.select_path("mxfp4", arch)
    cfg = K.build_config(fi, path, s)
    act = cfg.kwargs["activation"]
    assert type(act).__name__ == "SwiGLU" and act.kwargs == dict(alpha=1.702, beta=1.0, limit=7.0)
    K.prepare_weight_view(fi, path, random_layer(s, "mxfp4"), device="cpu", config=cfg)
    _, _, kw = [c for c in fi.calls if c[0] == f"{cls}.prepare_weights"][-1]
    assert kw["activation"].kwargs == dict(alpha=1.702, beta=1.0, limit=7.0)  # TRT-LLM views carry gemm1_alpha & co
    # the default SwiGLU keeps its plain arguments
    K.build_config(fi, path, _shapes())
    assert [c for c in fi.calls if c[0] == "SwiGLU"][-1][2] == {}


@pytest.mark.parametrize("arch,act", [(100, "quant"), (100, "bf16"), (103, "quant")])
def test_swigluoai_reaches_the_trtllm_fp4_launch_as_gemm1_alpha_beta_clamp(arch, act):
    """Through FlashInfer's real TRT-LLM code (tests/fi_blackwell.py): per-expert SwiGLU scalars in the launch."""
    pytest.importorskip("flashinfer", reason="flashinfer-python is not installed (pip install -e '.[dev]')")
    from moe_inspect.layer.runner import prepare_call, prepare_layer

    from .fi_blackwell import blackwell

    s = _oss_shapes(expert_bias=False, hidden_size=128, intermediate_size=128, top_k=2)
    path, mode = plan(RunLayerOptions(quant="mxfp4", act=act, precomputed_routing=True), s, arch)
    w = random_layer(s, "mxfp4")
    x = torch.randn(3, 128).to(torch.bfloat16)
    with blackwell(arch) as rec:
        fi = K.flashinfer_namespace()
        prep = prepare_layer(fi, path, w, device=torch.device("cpu"))
        prep.moe(prepare_call(fi, prep, mode, x, w.router_logits(x)).act, prep.pack)
    a = rec.only.args
    for name, want in (("gemm1_alpha", 1.702), ("gemm1_beta", 1.0), ("gemm1_clamp_limit", LIMIT)):
        assert a[name].dtype == torch.float32 and tuple(a[name].shape) == (E,), name
        assert torch.allclose(a[name], torch.full((E,), want)), name


def test_swigluoai_needs_its_limit():
    with pytest.raises(UnsupportedError, match="without a positive swiglu_limit"):
        K.check_layer_support(K.select_path("bf16", 90), _shapes(activation="swigluoai"))
    w = random_layer(_shapes(activation="swigluoai"), "bf16")
    with pytest.raises(UnsupportedError, match="swiglu_limit"):
        reference_moe(torch.randn(2, H), torch.tensor([[0, 1], [1, 2]]), torch.rand(2, 2), w)


# ----------------------------------------------------------------------------- shapes / random weights
def test_gpt_oss_shapes_carry_limit_and_router_bias():
    from moe_inspect import catalog
    from moe_inspect.detect import describe_files

    s, _, layer = resolve_shapes(RunLayerOptions(model="openai/gpt-oss-20b"),
                                 describe=lambda m, offline=None: describe_files(catalog.lookup(m)))
    assert (s.activation, s.swiglu_limit, s.linear_router_bias, s.expert_bias, s.has_bias) == \
        ("swigluoai", 7.0, True, False, False)
    assert (s.num_experts, s.top_k, s.hidden_size, s.intermediate_size, layer) == (32, 4, 2880, 2880, 0)


def test_random_biases_are_drawn_after_everything_else():
    plain = random_layer(_shapes(), "bf16", seed=4)
    oss = random_layer(_oss_shapes(), "bf16", seed=4)
    assert torch.equal(plain.tensors["w1"], oss.tensors["w1"]) and torch.equal(plain.router_weight, oss.router_weight)
    assert oss.tensors["w1_bias"].shape == (E, 2 * I) and oss.tensors["w2_bias"].shape == (E, H)
    assert oss.router_logit_bias.shape == (E,) and plain.router_logit_bias is None
