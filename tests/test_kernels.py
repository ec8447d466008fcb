"""moe_inspect.kernels: each FlashInfer routing kernel's arch list, limits and build arguments,
checked against the installed FlashInfer 0.7.2.post1 itself (no GPU, nothing compiled)."""

from __future__ import annotations

import inspect
import itertools
import os
import re
from pathlib import Path

import pytest

from moe_inspect.errors import BadInputError
from moe_inspect.kernels import fused_topk_deepseek as ftd
from moe_inspect.kernels import trtllm_routing as tr

flashinfer = pytest.importorskip("flashinfer")
torch = pytest.importorskip("torch")


# ------------------------------------------------------------------------------ fused_topk_deepseek
def test_fused_topk_deepseek_archs_are_flashinfers_list_including_107():
    from flashinfer.fused_moe import fused_routing_dsv3 as m

    assert set(ftd.ARCHS) == set(m._check_dsv3_fused_routing_supported._supported_ccs)
    assert 107 in ftd.ARCHS


def _flashinfer_accepts(e, k, g, tg) -> bool:
    from flashinfer.fused_moe import fused_routing_dsv3 as m

    check = inspect.unwrap(m._check_dsv3_fused_routing_supported)
    s, b = torch.zeros(1, e), torch.zeros(e)
    try:
        return check(s, b, g, tg, k, 1.0, torch.zeros(1, k), torch.zeros(1, k, dtype=torch.int32), False)
    except ValueError:
        return False


@pytest.mark.parametrize("e,k,g,tg", [c for c in itertools.product((64, 160, 256, 384, 512), (1, 4, 8, 9),
                                                                     (1, 4, 8), (1, 2, 4, 8)) if c[3] <= 8])
def test_fused_topk_deepseek_limits_agree_with_flashinfers_own_check(e, k, g, tg):
    """FlashInfer's check plus the two docstring limits it does not enforce (E % G, G <= 32)."""
    ours = ftd.limits_problem(e, k, g, tg) is None
    theirs = _flashinfer_accepts(e, k, g, tg) and (g == 1 or e % g == 0)
    assert ours == theirs, ftd.limits_problem(e, k, g, tg)


def test_fused_topk_deepseek_supported_needs_method_and_arch():
    assert ftd.supported(90, 256, 8, 8, 4)
    assert ftd.supported(107, 256, 8, 8, 4)
    assert not ftd.supported(80, 256, 8, 8, 4)
    assert not ftd.supported(90, 256, 8, 8, 4, method="MiniMax2")
    assert "topk_group * n_group" in ftd.limits_problem(384, 8, 1, 1)  # Kimi-K2: 1 * 1 < 8


# ------------------------------------------------------------------------------ trtllm-gen: build
def _csrc() -> Path:
    from flashinfer.jit import env

    return Path(env.FLASHINFER_CSRC_DIR)


def test_sources_and_defines_are_flashinfers():
    """The nine sources and the -D flags of FlashInfer's own gen_trtllm_gen_routing_module."""
    from flashinfer.jit import fused_moe

    src = inspect.getsource(fused_moe.gen_trtllm_gen_routing_module)
    assert re.findall(r'"(-D[A-Z_0-9]+)"', src) == list(tr.DEFINES)
    named = re.findall(r"\"([a-z0-9_/]*trtllm_fused_moe_routing[a-z0-9_]*\.cu)\"", src)
    assert [Path(s).name for s in tr.SOURCES] == [Path(s).name for s in named]
    for s in tr.SOURCES:
        assert (_csrc() / s).is_file(), s


def _headers(root: Path, *, situglu: bool) -> Path:
    d = root / tr.HEADER_SUBDIR
    d.mkdir(parents=True)
    (d / tr.PROBE_HEADER).write_text("// probe\n")
    acts = "SwiGlu = 0, GeGlu = 1, SiTuGlu = 2, None = 3" if situglu else "SwiGlu = 0, GeGlu = 1, None = 2"
    (d / "GemmGatedActOptions.h").write_text(f"enum class ActType {{ {acts} }};\n")
    return root


def test_build_args_for_sm90a_with_current_headers(tmp_path):
    h = tr.Headers(_headers(tmp_path / "h", situglu=True), "--trtllm-headers", legacy=False)
    args = tr.build_args(90, h, _csrc())
    assert args["extra_cuda_cflags"] == [*tr.DEFINES, "-gencode=arch=compute_90a,code=sm_90a"]
    assert args["extra_cuda_cflags_by_source"] is None  # no TLLM_RUBIN_FEATURES with matching headers
    assert args["extra_include_paths"][-1] == h.include_root
    assert args["sources"][0] == _csrc() / "trtllm_fused_moe_routing_binding.cu"
    assert args["name"] == "moe_inspect_trtllm_routing_sm90a"


def test_older_headers_get_rubin_define_on_the_kernel_runner_sources_only(tmp_path):
    root = _headers(tmp_path / "old", situglu=False)
    h = tr.find_headers(root)
    assert h.legacy and h.origin == "--trtllm-headers"
    args = tr.build_args(90, h, _csrc())
    per = args["extra_cuda_cflags_by_source"]
    assert set(per) == {_csrc() / s for s in tr.KERNEL_RUNNER_SOURCES}
    for flags in per.values():
        # gen_jit_spec drops its default -use_fast_math for per-source flags: it is asked for again
        assert "-DTLLM_RUBIN_FEATURES" in flags and "-use_fast_math" in flags
        assert "-gencode=arch=compute_90a,code=sm_90a" in flags
    assert args["name"].endswith("_legacy_headers")  # a different JIT cache entry than current headers


def test_header_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setattr(tr, "_artifact_cache_roots", lambda: [])
    monkeypatch.setattr(tr, "_cubin_package_root", lambda: None)
    a = _headers(tmp_path / "a", situglu=True)
    b = _headers(tmp_path / "b", situglu=True)
    env = {tr.ENV_HEADERS: str(a), tr.ENV_EXPORT_HEADERS: str(b)}
    assert tr.find_headers(None, env).origin == f"${tr.ENV_HEADERS}"
    assert tr.find_headers(None, {tr.ENV_EXPORT_HEADERS: str(b)}).include_root == b
    assert tr.find_headers(b, env).origin == "--trtllm-headers"
    assert tr.find_headers(None, {}) is None
    with pytest.raises(BadInputError, match="--trtllm-headers .*: no flashinfer/trtllm"):
        tr.find_headers(tmp_path, env)


def test_artifact_cache_layout_is_linked_under_our_cache(tmp_path, monkeypatch):
    """FlashInfer stores the headers as <hash>/include/trtllmGen_bmm_export/: found and linked."""
    raw = tmp_path / "cubins" / "abc" / "include"
    d = raw / "trtllmGen_bmm_export"
    d.mkdir(parents=True)
    (d / tr.PROBE_HEADER).write_text("")
    (d / "GemmGatedActOptions.h").write_text("SiTuGlu")
    monkeypatch.setenv("MOE_INSPECT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tr, "_artifact_cache_roots", lambda: [tmp_path / "cubins", raw])
    h = tr.find_headers(None, {})
    assert h.origin == "flashinfer artifact cache" and not h.legacy
    assert (h.include_root / tr.HEADER_SUBDIR / tr.PROBE_HEADER).is_file()


def test_unavailable_reasons_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tr, "_artifact_cache_roots", lambda: [])
    monkeypatch.setattr(tr, "_cubin_package_root", lambda: None)
    for var in (tr.ENV_HEADERS, tr.ENV_EXPORT_HEADERS, tr.ENV_PREBUILT):
        monkeypatch.delenv(var, raising=False)
    why = tr.unavailable_reason(90)
    assert "--trtllm-headers" in why and tr.ENV_HEADERS in why and "flashinfer-cubin" in why and "\n" not in why
    assert tr.unavailable_reason(100) is None  # FlashInfer's own API
    assert "SM80" in tr.unavailable_reason(80)
    monkeypatch.setenv(tr.ENV_HEADERS, str(_headers(tmp_path / "h", situglu=True)))
    assert tr.unavailable_reason(90) is None
    monkeypatch.setenv(tr.ENV_PREBUILT, str(tmp_path / "missing.so"))
    assert "no such file" in tr.unavailable_reason(90)


# ------------------------------------------------------------------------------ trtllm-gen: limits
@pytest.mark.parametrize("args,fragment", [
    (("DeepSeekV3", 256, 8, 8, 4), None),  # DeepSeek-V3
    (("DeepSeekV3", 384, 8, 1, 1), None),  # Kimi-K2 (n_group 1)
    (("DeepSeekV3", 256, 9, 8, 4), "top_k (9) must be <= 8"),
    (("DeepSeekV3", 256, 8, 8, 5), "topk_group (5) must be in 1..4"),
    (("DeepSeekV3", 512, 8, 16, 4), "n_group (16) must be <= 8"),
    (("MiniMax2", 256, 8, None, None), None),
    (("Llama4", 16, 2, None, None), "top_k == 1"),
    (("Default", 512, 8, None, None), "no compiled tier"),
    (("RenormalizeNaive", 512, 10, None, None), None),  # Qwen3-Next
    (("DeepseekV4", 256, 6, None, None), "not a FlashInfer RoutingMethodType"),
])
def test_trtllm_routing_supports(args, fragment):
    why = tr.supports(*args)
    assert (why is None) if fragment is None else (fragment in why)


def test_method_ids_are_flashinfers_enum():
    from flashinfer.tllm_enums import RoutingMethodType

    assert tr.METHOD_IDS == {m.name: int(m) for m in RoutingMethodType if m.name != "Unspecified"}


def test_no_torch_or_flashinfer_at_import():
    import subprocess
    import sys

    code = ("import sys, moe_inspect.kernels.trtllm_routing, moe_inspect.kernels.fused_topk_deepseek; "
            "print('torch' in sys.modules, 'flashinfer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)).stdout
    assert out.split() == ["False", "False"]


def test_run_layer_paths_run_only_where_flashinfer_supports_the_config():
    """run-layer's paths (layer/kernels.PATHS + the SM90 CUTLASS row) and check's UNIFIED_CONFIGS read one arch
    table (kernels/unified_api.py); a path may be narrower (MXFP4 W4A16 is off on SM103), never wider."""
    from moe_inspect import backends as B
    from moe_inspect.kernels import unified_api as A
    from moe_inspect.layer import kernels as K
    from moe_inspect.layer.cutlass_sm90 import CUTLASS_SM90_FP8_BLOCK

    for p in (*K.PATHS, CUTLASS_SM90_FP8_BLOCK):
        assert set(p.archs) <= A.archs(p.config_class), p
    for c in B.UNIFIED_CONFIGS:
        if c.name in A.CONFIG_ARCHS:
            assert c.archs == A.archs(c.name), c.name
    # flashinfer-python 0.7.2.post1 fused_moe/api.py:506 _TRTLLM_ROUTED_ARCHS, :522 _CUTILE_BF16_ARCHS, :549
    assert A.archs("TrtllmBf16Config") == {100, 103, 107}
    assert A.archs("CuTileBf16Config") == {89, 90, 120, 121}
    assert A.archs("CutlassFp8BlockConfig") == {90}


def test_unified_api_arch_tuples_are_flashinfers():
    """Each constant of kernels/unified_api.py equals the *_ARCHS tuple of the installed FlashInfer's api.py."""
    fi = pytest.importorskip("flashinfer")
    import ast
    import os

    from moe_inspect.kernels import unified_api as A

    src = open(os.path.join(os.path.dirname(fi.__file__), "fused_moe", "api.py")).read()
    real = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.endswith("_ARCHS"):
            v = node.value
            real[node.targets[0].id] = real[v.id] if isinstance(v, ast.Name) else ast.literal_eval(v)
    ours = {f"_{n}_ARCHS": getattr(A, n) for n in dir(A) if n.isupper() and isinstance(getattr(A, n), tuple)}
    assert ours and all(real[k] == v for k, v in ours.items()), {k: (v, real.get(k)) for k, v in ours.items()}
