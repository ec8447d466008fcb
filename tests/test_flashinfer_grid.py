"""run-layer's arch/shape tables (moe_inspect/layer/kernels.py) against FlashInfer 0.7.2.post1's own
Python over a grid of (arch, E, k, H, I, groups): ``supported(arch)``, ``MoELayer.__init__`` (runner
check_support), the TRT-LLM weight preparation and ``pack_inputs`` validators, run through the
substitutions of tests/fi_blackwell.py (no GPU).

The rule: our ``plan`` never accepts what FlashInfer's Python refuses, and refuses what FlashInfer's
Python accepts ONLY for a limit FlashInfer checks in C++ (data/csrc/trtllm_fused_moe_kernel_launcher.cu
and the routing runner), each of which is named below with the C++ text that enforces it.
Plus a read-only comparison with check's TRT-LLM rows (moe_inspect/backends.py).
"""

from __future__ import annotations

import itertools
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("flashinfer", reason="flashinfer-python is not installed (pip install -e '.[dev]' installs 0.7.2.post1)")

from moe_inspect.errors import UnsupportedError  # noqa: E402
from moe_inspect.layer import kernels as K  # noqa: E402
from moe_inspect.layer.runner import RunLayerOptions, plan  # noqa: E402
from moe_inspect.layer.weights import LayerShapes, LayerWeights  # noqa: E402

from .fi_blackwell import _launcher_source, blackwell  # noqa: E402

TRT = [p for p in K.PATHS if p.backend == "trtllm"]

#: Our refusals FlashInfer's Python cannot see: (pattern in our message, text of the C++ check that enforces it)
CPP_ONLY = (
    (r"E % 4 == 0 is required by the fused router", "num_experts must be divisible by 4"),
    (r"launcher needs experts > top_k", "num_experts must be greater than top_k"),
    (r"routing tier allows (at most|top_k)", "Routing kernel"),  # per-method tiers: trtllm_fused_moe_routing_runner.cu
    (r"DeepSeekV3 grouped needs|is not divisible into n_group", "topk_group<=4"),
    (r"FP8-block launcher allows top_k <= 8", "max_supported_top_k = args->num_experts <= kNumKimiK2Experts ? 8 : 22"),
    (r"--top-k \d+: FlashInfer MoE takes 1 <= top_k <= min\(32", "only supports top_k<=32 && top_k>0"),
    (r"needs top_k < topk_group·E/n_group", "top_k must be less than total number of experts in selected groups"),
)
#: Our own limit, stricter than anything FlashInfer's Python or launcher checks for these paths: stated,
#: not hidden (issue 14 notes). FlashInfer's api.py:65 MAX_SUPPORTED_TOTAL_EXPERTS = 512 is enforced only
#: with fused shared experts; run-layer keeps it for every layer because no GPU has run E > 512 here.
OURS_ONLY = (r"--experts \d+: FlashInfer MoE takes at most 512 experts",)


def _cpp_only(msg: str) -> bool:
    src = open(_launcher_source()).read()
    for pat, cpp in CPP_ONLY:
        if re.search(pat, msg):
            assert cpp in src, f"the C++ check {cpp!r} behind our refusal {pat!r} is not in {_launcher_source()}"
            return True
    return False


def _meta_weights(s: LayerShapes) -> LayerWeights:
    m = dict(dtype=torch.bfloat16, device="meta")
    return LayerWeights("bf16", s, {"w1": torch.empty((s.num_experts, 2 * s.intermediate_size, s.hidden_size), **m),
                                    "w2": torch.empty((s.num_experts, s.hidden_size, s.intermediate_size), **m)},
                        torch.empty((s.num_experts, s.hidden_size), device="meta"))


def _cpu_zero_weights(s: LayerShapes) -> LayerWeights:
    """FP8 per-tensor preparation reads values (amax, scale checks): zeros on CPU (amax 0 -> scale 1)."""
    z = dict(dtype=torch.bfloat16)
    return LayerWeights("bf16", s, {"w1": torch.zeros((s.num_experts, 2 * s.intermediate_size, s.hidden_size), **z),
                                    "w2": torch.zeros((s.num_experts, s.hidden_size, s.intermediate_size), **z)},
                        torch.zeros((s.num_experts, s.hidden_size)))


def flashinfer_accepts(arch: int, path, s: LayerShapes, mode: str) -> str | None:
    """None when FlashInfer's Python takes the layer up to the launch, else its exception."""
    on_cpu = path.config_class == "TrtllmFp8PerTensorConfig"
    dev = torch.device("cpu" if on_cpu else "meta")
    with blackwell(arch) as rec:
        fi = K.flashinfer_namespace()
        try:
            config = K.build_config(fi, path, s)
            view = K.prepare_weight_view(fi, path, _cpu_zero_weights(s) if on_cpu else _meta_weights(s), device=dev,
                                         config=config, hidden_states_scale_global=1.0, intermediate_scale_global=1.0)
            moe = fi.MoELayer(config, device=dev)
            t = 2
            x = torch.empty((t, s.hidden_size), dtype=torch.bfloat16, device=dev)
            ids = torch.arange(t * s.top_k).reshape(t, s.top_k) % s.num_experts
            act = K.make_activation_pack(fi, path, config, x, mode=mode, topk_ids=ids, topk_weights=torch.rand(t, s.top_k),
                                         logits=torch.randn(t, s.num_experts),
                                         bias=torch.zeros(s.num_experts) if s.has_bias else None,
                                         hidden_states_scale_global=1.0)
            moe(act, K.make_weight_pack(fi, path, view))
        except (ValueError, TypeError, RuntimeError, NotImplementedError, AssertionError, KeyError) as e:
            return f"{type(e).__name__}: {e}"
        assert len(rec.launches) == 1
    return None


def ours(arch: int, path, s: LayerShapes, mode: str) -> str | None:
    try:
        got, got_mode = plan(RunLayerOptions(quant=path.quant, backend="trtllm",
                                             act="quant" if path.quantized_activations else "bf16",
                                             precomputed_routing=mode == "PackedPrecomputed"), s, arch)
    except UnsupportedError as e:
        return str(e)
    assert got == path and got_mode == mode
    return None


def _compare(points):
    disagreements = []
    for arch, path, s, mode in points:
        fi_err, our_err = flashinfer_accepts(arch, path, s, mode), ours(arch, path, s, mode)
        if our_err is None and fi_err is not None:
            disagreements.append(f"we accept, FlashInfer refuses: SM{arch} {path.config_class} {path.weight_format} "
                                 f"{s} {mode}: {fi_err[:200]}")
        elif (our_err is not None and fi_err is None and not _cpp_only(our_err)
              and not any(re.search(p, our_err) for p in OURS_ONLY)):
            disagreements.append(f"we refuse, FlashInfer accepts: SM{arch} {path.config_class} {path.weight_format} "
                                 f"{s} {mode}: {our_err}")
    return disagreements


def _s(e=8, k=2, h=256, i=256, method="Renormalize", g=None, tg=None):
    return LayerShapes(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i, routing_method=method, n_group=g,
                       topk_group=tg, routed_scaling_factor=2.5 if method == "DeepSeekV3" else None,
                       has_bias=method == "DeepSeekV3")


# H/I: FP4 scale blocks (16/32), GEMM1 rows (2I % 128), the w2 scale shuffle (H % 128), DeepSeek 128-blocks;
# 2880 = gpt-oss-20b (64 | 2880, 128 does not), 7168 = DeepSeek-V3, 768 = Qwen3-30B-A3B; 192 = 3·64, 96 = 3·32
HS = (192, 256, 2880, 7168)
IS = (96, 192, 768, 2880)


def test_hidden_and_intermediate_gates_agree_with_flashinfer():
    points = [(100, p, _s(e=4, h=h, i=i), "PackedPrecomputed") for p in TRT
              for h, i in itertools.product(HS, IS)
              if p.quant != "fp8" or (h <= 3072 and i <= 1536)]  # FP8 per-tensor runs on CPU (reads values)
    assert len(points) >= 100
    assert _compare(points) == []


# E, k and DeepSeek groups (H = I = 128: every path takes it); FromLogits where the path routes the method.
# FlashInfer's Python sees E and k in MoEConfig / MoELayer / pack_inputs the same way on SM100 and SM103.
EKG = ((8, 2, "Renormalize", None, None), (8, 8, "Renormalize", None, None), (10, 2, "Renormalize", None, None),
       (64, 32, "Renormalize", None, None), (64, 33, "Renormalize", None, None), (640, 8, "Renormalize", None, None),
       (256, 8, "DeepSeekV3", 8, 4), (256, 8, "DeepSeekV3", 16, 4), (64, 32, "DeepSeekV3", 8, 4),
       (256, 16, "DeepSeekV3", 8, 4), (64, 8, "DeepSeekV3", 8, 1), (256, 8, "MiniMax2", None, None), (128, 1, "Llama4", None, None),
       (256, 1, "Llama4", None, None), (256, 16, "Default", None, None))


def test_experts_top_k_and_groups_agree_with_flashinfer():
    points = []
    for p in TRT:
        for e, k, m, g, tg in EKG:
            if p.quant == "fp8" and e > 64:  # FP8 per-tensor prepares on CPU (it reads values): ~1 s per point
                continue
            mode = "FromLogits" if m in p.fused_methods else "PackedPrecomputed"
            points.append((100, p, _s(e=e, k=k, h=128, i=128, method=m, g=g, tg=tg), mode))
    assert _compare(points) == []


@pytest.mark.parametrize("arch", (80, 89, 90, 100, 103, 107, 110, 120, 121))
def test_arch_table_agrees_with_flashinfer_supported_and_moelayer(arch):
    """Our TRT-LLM rows run on ``arch`` iff the config's supported(arch) holds AND MoELayer builds a runner
    (MXFP4 x BF16 is refused on SM103 by the runner, not by supported())."""
    import flashinfer.fused_moe.api as api

    for p in TRT:
        assert (arch in p.archs) == (ours_select(p, arch)), (p.config_class, arch)
        cls = getattr(api, p.config_class)
        fi_ok = cls.supported(arch)
        if fi_ok and arch in (100, 103):  # MoELayer's runner checks run under the substitutions there only
            fi_ok = flashinfer_accepts(arch, p, _s(), "PackedPrecomputed") is None
        assert (arch in p.archs) == fi_ok, (p.config_class, p.weight_format, p.activation_format, arch)


def ours_select(p, arch) -> bool:
    try:
        return K.select_path(p.quant, arch, backend="trtllm", quantized_activations=p.quantized_activations) == p
    except UnsupportedError:
        return False


def test_our_routing_tables_match_checks_trtllm_rows():
    """run-layer's in-kernel routing allow-lists equal check's monolithic rows (moe_inspect/backends.py);
    the routing tiers themselves have one home (moe_inspect/kernels/trtllm_moe_limits.py)."""
    from moe_inspect import backends as B

    mono = {b.key: b for b in B.BACKENDS if b.key.startswith("trtllm_") and b.key.endswith("_mono")}
    want = {"bf16": "trtllm_bf16_mono", "fp8-block": "trtllm_fp8_block_mono", "fp8": "trtllm_fp8_tensor_mono",
            "nvfp4": "trtllm_nvfp4_mono", "mxfp4": "trtllm_mxfp4_mono", "mxfp8": "trtllm_mxfp8_mono"}
    for p in TRT:
        assert set(p.fused_methods) == set(mono[want[p.quant]].routing_methods), p.quant
