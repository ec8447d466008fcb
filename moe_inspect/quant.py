"""Quantization detection for a checkpoint's MoE experts.

``detect_quant(config, hf_quant_config=None, tensors=None) -> QuantInfo`` reads
``config.json``'s ``quantization_config`` (top level, or under ``text_config``),
ModelOpt's ``hf_quant_config.json`` and, when given, the safetensors dtypes of the routed
expert tensors, and names the format in vLLM's terms.

``QuantInfo.method`` is one of a small fixed vocabulary:

    "unquantized"     no quantization (bf16/fp16/fp32 experts)
    "fp8_block"       FP8 E4M3 weights with 2-D block scales (DeepSeek style, [128, 128])
    "fp8_per_tensor"  FP8 E4M3 weights with one scale per tensor (static or dynamic activations)
    "nvfp4"           NVFP4: e2m1 weights, e4m3 scale per 16 elements + fp32 global scale
                      (ModelOpt, compressed-tensors nvfp4-pack-quantized)
    "mxfp4"           MXFP4: e2m1 weights, e8m0 scale per 32 elements (gpt-oss)
    "int4"            4-bit integer weights, bf16 activations (compressed-tensors pack-quantized,
                      GPTQ, AWQ, AutoRound)
    "fp4_mixed"       DeepSeek-V4: FP8 block-quantized non-expert weights, FP4 (e2m1 + e8m0 per
                      32) routed experts; ``expert_format`` says so
    "other"           recognised but outside the above (FP8 per-channel, int8, unknown methods)

``vllm_weight_key`` / ``vllm_activation_key`` are the names of vLLM's ``QuantKey`` constants
(``vllm/model_executor/layers/quantization/utils/quant_utils.py``) that the fused-MoE expert
classes list in ``_supports_quant_scheme`` (vLLM v0.33), e.g.
(kFp8Static128BlockSym, kFp8Dynamic128Sym). An activation key of None means bf16 activations.

Tensor dtypes beat the config where they disagree for DeepSeek-V4 (config says fp8, experts are
FP4); other disagreements are reported as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError
from .spec import QuantInfo, TensorInfo

__all__ = ["METHODS", "detect_quant", "summarize_expert_tensors", "ExpertDtypes"]

METHODS = ("unquantized", "fp8_block", "fp8_per_tensor", "nvfp4", "mxfp4", "int4", "fp4_mixed",
           "other")

# vLLM QuantKey names (vLLM v0.33 quantization/utils/quant_utils.py)
K_FP8_BLOCK_W = "kFp8Static128BlockSym"
K_FP8_BLOCK_A = "kFp8Dynamic128Sym"
K_FP8_TENSOR_STATIC = "kFp8StaticTensorSym"
K_FP8_TENSOR_DYNAMIC = "kFp8DynamicTensorSym"
K_FP8_CHANNEL_W = "kFp8StaticChannelSym"
K_FP8_TOKEN_A = "kFp8DynamicTokenSym"
K_NVFP4_W = "kNvfp4Static"
K_NVFP4_A = "kNvfp4Dynamic"
K_MXFP4_W = "kMxfp4Static"
K_INT8_W = "kInt8Static"
_INT4_KEYS = {  # (group 32?, symmetric?) -> key
    (True, True): "kInt4Static32",
    (True, False): "kInt4Static32Asym",
    (False, True): "kInt4Static",
    (False, False): "kInt4StaticAsym",
}

_FP8_FMTS = {"e4m3": "fp8_e4m3", "float8_e4m3fn": "fp8_e4m3", "e4m3fn": "fp8_e4m3"}
_UNQUANTIZED_DTYPES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32"}
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32",
                 "float": "fp32"}


# --------------------------------------------------------------------------------------------
# tensor evidence
# --------------------------------------------------------------------------------------------
@dataclass
class ExpertDtypes:
    """Dtypes of routed-expert weight and scale tensors, and what they imply."""

    weights: dict[str, str]  # name -> dtype
    scales: dict[str, str]
    kind: str | None  # "fp8" | "fp8_tensor" | "nvfp4" | "fp4_e8m0" | "mxfp4" | "int4" | "bf16" ...

    @property
    def example(self) -> str | None:
        return next(iter(self.weights), None)


_SCALE_SUFFIXES = (".weight_scale_inv", ".weight_scale_2", ".weight_scale", ".weight_global_scale",
                   ".scale", "_scales", ".scales", ".input_scale", ".input_global_scale",
                   ".weight_zero_point", ".qzeros", ".g_idx", ".weight_shape")
_WEIGHT_SUFFIXES = (".weight", ".weight_packed", "_blocks", ".qweight")


def _is_routed_expert(name: str) -> bool:
    """Per-expert (``experts.{e}.w1.weight``) or fused 3-D (``experts.gate_up_proj``) tensors."""
    return ".experts." in name and "shared_expert" not in name


def summarize_expert_tensors(tensors: dict[str, TensorInfo] | None) -> ExpertDtypes | None:
    """Classify the routed experts' storage from safetensors dtypes (None without evidence)."""
    if not tensors:
        return None
    weights: dict[str, str] = {}
    scales: dict[str, str] = {}
    scale_shapes: dict[str, list[int]] = {}
    for name, info in tensors.items():
        if not _is_routed_expert(name):
            continue
        if name.endswith(_SCALE_SUFFIXES):
            if name.endswith((".input_scale", ".input_global_scale", ".weight_zero_point",
                              ".g_idx", ".weight_shape", ".qzeros", ".weight_scale_2",
                              ".weight_global_scale")):
                continue
            scales[name] = info.dtype
            scale_shapes[name] = list(info.shape)
        elif name.endswith(_WEIGHT_SUFFIXES) or name.rsplit(".", 1)[-1] in ("gate_up_proj", "down_proj"):
            weights[name] = info.dtype
    if not weights:
        return None
    wd = set(weights.values())
    sd = set(scales.values())
    kind: str | None
    if wd <= set(_UNQUANTIZED_DTYPES):
        kind = "bf16" if "BF16" in wd else _UNQUANTIZED_DTYPES[sorted(wd)[0]]
    elif wd == {"F8_E4M3"}:
        # per-tensor scales are scalars ([] or [1]); block scales are 2-D
        if scale_shapes and all(len(s) == 0 or s == [1] for s in scale_shapes.values()):
            kind = "fp8_tensor"
        else:
            kind = "fp8"
    elif wd == {"I8"} and sd == {"F8_E8M0"}:
        kind = "fp4_e8m0"  # DeepSeek-V4 experts: packed e2m1 in I8 + e8m0 scales
    elif wd == {"U8"} and sd == {"F8_E4M3"}:
        kind = "nvfp4"
    elif wd == {"U8"} and sd <= {"U8", "F8_E8M0"} and sd:
        kind = "mxfp4"
    elif wd == {"I32"}:
        kind = "int4"
    else:
        kind = "mixed:" + ",".join(sorted(wd)) + ("/" + ",".join(sorted(sd)) if sd else "")
    return ExpertDtypes(weights=weights, scales=scales, kind=kind)


# --------------------------------------------------------------------------------------------
# config helpers
# --------------------------------------------------------------------------------------------
def _find_quant_config(config: dict) -> tuple[dict | None, str]:
    for key in ("quantization_config", "compression_config"):
        if key in config and config[key] is not None:
            return _obj(config[key], f"config.json: {key}"), key
    tc = config.get("text_config")
    if isinstance(tc, dict):
        for key in ("quantization_config", "compression_config"):
            if key in tc and tc[key] is not None:
                return _obj(tc[key], f"config.json: text_config.{key}"), f"text_config.{key}"
    return None, ""


def _obj(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _str(qc: dict, key: str, where: str, default: str | None = None) -> str | None:
    v = qc.get(key, default)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key} must be a string, got {v!r}")
    return v


def _pos_int(qc: dict, key: str, where: str, default: int | None = None) -> int | None:
    v = qc.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConfigError(f"{where}.{key} must be a positive integer, got {v!r}")
    return v


def _block(qc: dict, where: str) -> list[int] | None:
    v = qc.get("weight_block_size")
    if v is None:
        return None
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)):
        raise ConfigError(f"{where}.weight_block_size must be a list of two positive integers, "
                          f"got {v!r}")
    return list(v)


def _act_scheme(qc: dict, where: str) -> str | None:
    v = _str(qc, "activation_scheme", where)
    if v is None:
        return None
    if v not in ("static", "dynamic"):
        raise ConfigError(f"{where}.activation_scheme must be 'static' or 'dynamic', got {v!r}")
    return v


def _unquantized_dtype(config: dict) -> str | None:
    for src in (config, config.get("text_config") if isinstance(config.get("text_config"), dict) else {}):
        for key in ("torch_dtype", "dtype"):
            v = src.get(key)
            if isinstance(v, str):
                return _TORCH_DTYPES.get(v.replace("torch.", ""), v)
    return None


# --------------------------------------------------------------------------------------------
# per-producer parsers: each returns a QuantInfo
# --------------------------------------------------------------------------------------------
def _fp8(qc: dict, where: str, prefix: str, config: dict) -> QuantInfo:
    fmt = _str(qc, "fmt", where)
    block = _block(qc, where)
    act = _act_scheme(qc, where) or "dynamic"
    scale_fmt = _str(qc, "scale_fmt", where)
    prov = [f"config:{prefix}.quant_method=fp8"]
    warnings: list[str] = []
    if fmt is not None:
        prov.append(f"config:{prefix}.fmt={fmt}")
        if fmt not in _FP8_FMTS:
            warnings.append(f"{where}.fmt {fmt!r} is not an e4m3 format vLLM's FP8 MoE supports")
    weight_dtype = _FP8_FMTS.get(fmt or "e4m3", f"fp8_{fmt}")
    expert_dtype = config.get("expert_dtype", qc.get("expert_dtype"))
    if block is not None:
        prov.append(f"config:{prefix}.weight_block_size={block}")
        wkey = K_FP8_BLOCK_W if block == [128, 128] else None
        akey = K_FP8_BLOCK_A if act == "dynamic" else None
        if block != [128, 128]:
            warnings.append(f"block size {block} has no vLLM QuantKey (only [128, 128] does)")
        if act != "dynamic":
            warnings.append("block FP8 with static activations has no vLLM QuantKey")
        info = QuantInfo(method="fp8_block", producer=None,
                         weight_dtype=weight_dtype, activation_scheme=act, block_size=block,
                         scale_fmt=scale_fmt, vllm_weight_key=wkey, vllm_activation_key=akey,
                         provenance=prov, warnings=warnings)
    else:
        akey = K_FP8_TENSOR_STATIC if act == "static" else K_FP8_TENSOR_DYNAMIC
        info = QuantInfo(method="fp8_per_tensor", producer=None, weight_dtype=weight_dtype,
                         activation_scheme=act, scale_fmt=scale_fmt,
                         vllm_weight_key=K_FP8_TENSOR_STATIC, vllm_activation_key=akey,
                         provenance=prov, warnings=warnings)
    if expert_dtype is not None:
        src = "expert_dtype" if "expert_dtype" in config else f"{prefix}.expert_dtype"
        if not isinstance(expert_dtype, str):
            raise ConfigError(f"config.json: {src} must be a string, got {expert_dtype!r}")
        info.provenance.append(f"config:{src}={expert_dtype}")
        if expert_dtype.lower() in ("fp4", "mxfp4", "e2m1"):
            _make_fp4_mixed(info)
    return info


def _make_fp4_mixed(info: QuantInfo) -> None:
    info.method = "fp4_mixed"
    info.producer = "deepseek"
    info.expert_format = "mxfp4"
    info.group_size = 32
    info.vllm_weight_key = K_MXFP4_W
    # vLLM v0.33 models/deepseek_v4/quant_config.py: Mxfp4MoEMethod(..., activation_key=kMxfp8Dynamic);
    # the backend may still run the inputs otherwise (DeepGEMM: FP8 1x128, Marlin/Humming: BF16)
    info.vllm_activation_key = "kMxfp8Dynamic"
    if info.weight_dtype is None:
        info.weight_dtype = "fp8_e4m3"


def _modelopt(algo: str, group_size: int | None, exclude: Any, prov: list[str],
              where: str) -> QuantInfo:
    a = algo.upper()
    warnings: list[str] = []
    if exclude is not None:
        if not isinstance(exclude, list):
            raise ConfigError(f"{where}.exclude_modules must be a list, got {exclude!r}")
        routed = [m for m in exclude if isinstance(m, str) and "experts" in m and "shared" not in m]
        if routed:
            warnings.append(f"ModelOpt excludes expert modules from quantization: {routed[:3]}")
    if a == "NVFP4":
        return QuantInfo(method="nvfp4", producer="modelopt", weight_dtype="nvfp4",
                         activation_scheme="dynamic", group_size=group_size or 16,
                         vllm_weight_key=K_NVFP4_W, vllm_activation_key=K_NVFP4_A,
                         provenance=prov, warnings=warnings)
    if a == "FP8":
        return QuantInfo(method="fp8_per_tensor", producer="modelopt", weight_dtype="fp8_e4m3",
                         activation_scheme="static", vllm_weight_key=K_FP8_TENSOR_STATIC,
                         vllm_activation_key=K_FP8_TENSOR_STATIC, provenance=prov,
                         warnings=warnings)
    if a in ("FP8_PB_WO", "FP8_BLOCK"):
        return QuantInfo(method="fp8_block", producer="modelopt", weight_dtype="fp8_e4m3",
                         activation_scheme="dynamic", block_size=[128, 128],
                         vllm_weight_key=K_FP8_BLOCK_W, vllm_activation_key=K_FP8_BLOCK_A,
                         provenance=prov, warnings=warnings)
    warnings.append(f"ModelOpt quant_algo {algo!r} is not one moe-inspect maps to vLLM keys")
    return QuantInfo(method="other", producer="modelopt", weight_dtype=algo.lower(),
                     provenance=prov, warnings=warnings)


def _compressed_tensors(qc: dict, where: str, prefix: str) -> QuantInfo:
    groups = qc.get("config_groups")
    if groups is None:
        raise ConfigError(f"{where}.config_groups is missing (compressed-tensors)")
    groups = _obj(groups, f"{where}.config_groups")
    if not groups:
        raise ConfigError(f"{where}.config_groups is empty (compressed-tensors)")
    top_fmt = _str(qc, "format", where)
    schemes = []
    for gname, g in groups.items():
        gw = f"{where}.config_groups.{gname}"
        g = _obj(g, gw)
        w = _obj(g.get("weights") or {}, f"{gw}.weights")
        a = g.get("input_activations")
        a = _obj(a, f"{gw}.input_activations") if a is not None else None
        fmt = _str(g, "format", gw) or top_fmt
        schemes.append((gname, gw, w, a, fmt))
    gname, gw, w, a, fmt = schemes[0]
    warnings: list[str] = []
    distinct = {(s[4], s[2].get("num_bits"), s[2].get("type"), s[2].get("strategy")) for s in schemes}
    if len(distinct) > 1:
        warnings.append(f"{where}.config_groups mix {len(distinct)} schemes; using {gname!r}")
    bits = _pos_int(w, "num_bits", f"{gw}.weights")
    wtype = _str(w, "type", f"{gw}.weights") or "int"
    strategy = _str(w, "strategy", f"{gw}.weights")
    group_size = _pos_int(w, "group_size", f"{gw}.weights")
    sym = w.get("symmetric", True)
    if not isinstance(sym, bool):
        raise ConfigError(f"{gw}.weights.symmetric must be true or false, got {sym!r}")
    dynamic = a.get("dynamic") if a else None
    prov = [f"config:{prefix}.quant_method=compressed-tensors",
            f"config:{prefix}.config_groups.{gname}" + (f" format={fmt}" if fmt else "")]
    common = dict(producer="compressed-tensors", provenance=prov, warnings=warnings)
    fmt_l = (fmt or "").lower()
    if fmt_l == "nvfp4-pack-quantized" or (bits == 4 and wtype == "float" and group_size == 16):
        return QuantInfo(method="nvfp4", weight_dtype="nvfp4", group_size=group_size or 16,
                         activation_scheme="dynamic" if a else None, vllm_weight_key=K_NVFP4_W,
                         vllm_activation_key=K_NVFP4_A if a else None, **common)
    if fmt_l == "mxfp4-pack-quantized" or (bits == 4 and wtype == "float" and group_size == 32):
        return QuantInfo(method="mxfp4", weight_dtype="mxfp4", group_size=32, scale_fmt="ue8m0",
                         vllm_weight_key=K_MXFP4_W, vllm_activation_key=None, **common)
    if bits == 4 and wtype == "int":
        key = _INT4_KEYS[(group_size == 32, sym)]
        if a is not None:
            warnings.append("int4 weights with quantized activations: vLLM key for the "
                            "activations not mapped")
        return QuantInfo(method="int4", weight_dtype="int4", group_size=group_size,
                         activation_scheme=None, vllm_weight_key=key, vllm_activation_key=None,
                         **common)
    if bits == 8 and wtype == "float":
        act_static = a is not None and dynamic is False
        act = None if a is None else ("static" if act_static else "dynamic")
        if strategy == "block":
            bs = w.get("block_structure")
            if bs is not None and (not isinstance(bs, list) or len(bs) != 2):
                raise ConfigError(f"{gw}.weights.block_structure must be a list of two integers, "
                                  f"got {bs!r}")
            bs = list(bs) if bs else [128, 128]
            return QuantInfo(method="fp8_block", weight_dtype="fp8_e4m3", block_size=bs,
                             activation_scheme=act,
                             vllm_weight_key=K_FP8_BLOCK_W if bs == [128, 128] else None,
                             vllm_activation_key=K_FP8_BLOCK_A if a else None, **common)
        if strategy == "channel":
            return QuantInfo(method="other", weight_dtype="fp8_e4m3", activation_scheme=act,
                             vllm_weight_key=K_FP8_CHANNEL_W,
                             vllm_activation_key=K_FP8_TOKEN_A if a else None, **common)
        akey = None
        if a is not None:
            a_strategy = a.get("strategy")
            akey = (K_FP8_TOKEN_A if a_strategy == "token"
                    else K_FP8_TENSOR_STATIC if act_static else K_FP8_TENSOR_DYNAMIC)
        return QuantInfo(method="fp8_per_tensor", weight_dtype="fp8_e4m3", activation_scheme=act,
                         vllm_weight_key=K_FP8_TENSOR_STATIC, vllm_activation_key=akey, **common)
    if bits == 8 and wtype == "int":
        return QuantInfo(method="other", weight_dtype="int8", vllm_weight_key=K_INT8_W, **common)
    warnings.append(f"compressed-tensors scheme {fmt!r} ({bits}-bit {wtype}) is not mapped")
    return QuantInfo(method="other", weight_dtype=f"{wtype}{bits}", **common)


def _int_wna16(qc: dict, where: str, prefix: str, method: str) -> QuantInfo:
    bits = _pos_int(qc, "bits", where) or _pos_int(qc, "w_bit", where)
    if bits is None:
        raise ConfigError(f"{where}.bits is missing ({method})")
    group_size = qc.get("group_size", qc.get("q_group_size"))
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)):
        raise ConfigError(f"{where}.group_size must be an integer, got {group_size!r}")
    if method == "awq":
        sym = not qc.get("zero_point", True)
    else:
        sym = qc.get("sym", True)
        if not isinstance(sym, bool):
            raise ConfigError(f"{where}.sym must be true or false, got {sym!r}")
    prov = [f"config:{prefix}.quant_method={method}", f"config:{prefix}.bits={bits}"]
    if bits == 4:
        return QuantInfo(method="int4", producer=method, weight_dtype="int4",
                         group_size=group_size if group_size and group_size > 0 else None,
                         vllm_weight_key=_INT4_KEYS[(group_size == 32, bool(sym))],
                         vllm_activation_key=None, provenance=prov)
    return QuantInfo(method="other", producer=method, weight_dtype=f"int{bits}",
                     vllm_weight_key=K_INT8_W if bits == 8 else None, provenance=prov,
                     warnings=[f"{bits}-bit {method} is not mapped"])


def _from_tensors(ev: ExpertDtypes, config: dict) -> QuantInfo:
    prov = [f"tensor:{ev.example}"]
    k = ev.kind
    if k in ("bf16", "fp16", "fp32"):
        return QuantInfo(method="unquantized", weight_dtype=k, provenance=prov)
    if k == "fp8":
        return QuantInfo(method="fp8_block", weight_dtype="fp8_e4m3", activation_scheme="dynamic",
                         vllm_weight_key=K_FP8_BLOCK_W, vllm_activation_key=K_FP8_BLOCK_A,
                         block_size=None, provenance=prov)
    if k == "fp8_tensor":
        return QuantInfo(method="fp8_per_tensor", weight_dtype="fp8_e4m3",
                         vllm_weight_key=K_FP8_TENSOR_STATIC, provenance=prov)
    if k == "nvfp4":
        return QuantInfo(method="nvfp4", weight_dtype="nvfp4", group_size=16,
                         vllm_weight_key=K_NVFP4_W, vllm_activation_key=K_NVFP4_A, provenance=prov)
    if k == "mxfp4":
        return QuantInfo(method="mxfp4", weight_dtype="mxfp4", group_size=32, scale_fmt="ue8m0",
                         vllm_weight_key=K_MXFP4_W, provenance=prov)
    if k == "fp4_e8m0":
        info = QuantInfo(method="fp4_mixed", weight_dtype=None, provenance=prov)
        _make_fp4_mixed(info)
        info.weight_dtype = None  # non-expert weights unknown without a config
        return info
    if k == "int4":
        return QuantInfo(method="int4", weight_dtype="int4", vllm_weight_key=_INT4_KEYS[(False, True)],
                         provenance=prov)
    return QuantInfo(method="other", provenance=prov,
                     warnings=[f"expert tensor dtypes {k} match no known format"])


_CONFIG_TO_TENSOR_KIND = {
    "unquantized": {"bf16", "fp16", "fp32"},
    "fp8_block": {"fp8"},
    "fp8_per_tensor": {"fp8_tensor", "fp8"},
    "nvfp4": {"nvfp4"},
    "mxfp4": {"mxfp4", "fp4_e8m0"},
    "int4": {"int4"},
    "fp4_mixed": {"fp4_e8m0", "mxfp4"},
}


def _reconcile(info: QuantInfo, ev: ExpertDtypes | None, config: dict) -> QuantInfo:
    if ev is None or ev.kind is None:
        return info
    info.provenance.append(f"tensor:{ev.example} dtype={ev.weights[ev.example]}")
    expected = _CONFIG_TO_TENSOR_KIND.get(info.method)
    if expected is None or ev.kind in expected:
        return info
    # DeepSeek-V4: trust tensor dtypes over the config
    if info.method == "fp8_block" and ev.kind == "fp4_e8m0":
        info.warnings.append(
            f"config says fp8 but routed expert tensors are FP4 ({ev.example}: "
            f"{ev.weights[ev.example]} + F8_E8M0 scales); trusting tensor dtypes")
        _make_fp4_mixed(info)
        return info
    if info.method == "fp4_mixed" and ev.kind in ("fp8", "fp8_tensor"):
        info.warnings.append(
            f"config says expert_dtype fp4 but routed expert tensors are F8_E4M3 ({ev.example}); "
            "trusting tensor dtypes")
        info.method = "fp8_block" if info.block_size else "fp8_per_tensor"
        info.expert_format = None
        info.group_size = None
        info.vllm_weight_key = K_FP8_BLOCK_W if info.block_size == [128, 128] else (
            None if info.block_size else K_FP8_TENSOR_STATIC)
        info.vllm_activation_key = K_FP8_BLOCK_A if info.block_size else K_FP8_TENSOR_DYNAMIC
        return info
    info.warnings.append(
        f"config says {info.method} but routed expert tensors look like {ev.kind} "
        f"({ev.example}: {ev.weights[ev.example]})")
    return info


# --------------------------------------------------------------------------------------------
def detect_quant(
    config: dict,
    hf_quant_config: dict | None = None,
    tensors: dict[str, TensorInfo] | None = None,
) -> QuantInfo:
    """Name the checkpoint's quantization (see the module docstring for the vocabulary)."""
    if not isinstance(config, dict):
        raise ConfigError(f"config.json must be an object, got {type(config).__name__}")
    ev = summarize_expert_tensors(tensors)
    qc, prefix = _find_quant_config(config)
    hq = _hf_quantization(hf_quant_config)
    if hq is not None and hq.get("quant_algo") is not None:
        info = _from_hf_quant_config(hq, qc)
        _read_ignored(info, hq, ("exclude_modules",), "hf_quant_config:quantization")
        return _reconcile(info, ev, config)
    if qc is None:
        return _without_quant_config(ev, config)
    info = _from_quant_method(qc, prefix, config)
    qm = str(qc.get("quant_method") or "compressed-tensors").lower().replace("_", "-")
    _read_ignored(info, qc, _IGNORE_KEYS.get(qm, ()), f"config:{prefix}")
    return _reconcile(info, ev, config)


#: Keys vLLM v0.33.0 reads for the modules left unquantized, per quant_method (first non-empty
#: wins): fp8.py:162-167 (ignored_layers, else modules_to_not_convert), modelopt.py:342
#: (hf_quant_config.json exclude_modules) and :359 (config.json ignore, else exclude_modules),
#: compressed_tensors.py:254 (ignore). Mxfp4Config.from_config reads nothing (mxfp4.py:67-68).
_IGNORE_KEYS: dict[str, tuple[str, ...]] = {
    "fp8": ("ignored_layers", "modules_to_not_convert"),
    "modelopt": ("ignore", "exclude_modules"),
    "modelopt-fp4": ("ignore", "exclude_modules"),
    "modelopt-nvfp4": ("ignore", "exclude_modules"),
    "compressed-tensors": ("ignore",),
}


def _read_ignored(info: QuantInfo, qc: dict, keys: tuple[str, ...], where: str) -> None:
    """``info.ignored_modules``: the module names vLLM keeps unquantized (with provenance)."""
    for key in keys:
        value = qc.get(key)
        if not value:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}.{key} must be a list of module names, got {str(value)[:60]!r}")
        info.ignored_modules = list(value)
        info.provenance.append(f"{where}.{key} ({len(value)} modules)")
        return


def _hf_quantization(hf_quant_config: dict | None) -> dict | None:
    """The ``quantization`` object of hf_quant_config.json (ModelOpt), validated."""
    if hf_quant_config is None:
        return None
    hf = _obj(hf_quant_config, "hf_quant_config.json")
    inner = hf.get("quantization")
    hq = _obj(inner, "hf_quant_config.json: quantization") if inner is not None else None
    producer = hf.get("producer")
    if producer is not None and not isinstance(producer, dict):
        raise ConfigError(f"hf_quant_config.json: producer must be an object, got {producer!r}")
    return hq


def _from_hf_quant_config(hq: dict, qc: dict | None) -> QuantInfo:
    where = "hf_quant_config.json: quantization"
    algo = _str(hq, "quant_algo", where)
    info = _modelopt(algo, _pos_int(hq, "group_size", where), hq.get("exclude_modules"),
                     [f"hf_quant_config:quantization.quant_algo={algo}"], where)
    qm = qc.get("quant_method") if qc is not None else None
    if isinstance(qm, str) and qm.lower() != "modelopt":
        info.warnings.append(f"config.json quant_method {qm!r} disagrees with "
                             "hf_quant_config.json (modelopt); using hf_quant_config.json")
    return info


def _without_quant_config(ev, config: dict) -> QuantInfo:
    """No quantization config: unquantized, unless the expert tensors say otherwise."""
    if ev is not None and ev.kind not in ("bf16", "fp16", "fp32"):
        info = _from_tensors(ev, config)
        info.warnings.append("config.json has no quantization_config; format read from "
                             "expert tensor dtypes")
        return info
    dtype = (ev.kind if ev is not None else None) or _unquantized_dtype(config)
    prov = [f"tensor:{ev.example}"] if ev is not None else ["config:no quantization_config"]
    return QuantInfo(method="unquantized", weight_dtype=dtype, provenance=prov)


def _modelopt_in_config(qc: dict, where: str, prefix: str, qm: str, config: dict) -> QuantInfo:
    inner = qc.get("quantization")
    src = _obj(inner, f"{where}.quantization") if inner is not None else qc
    algo = _str(src, "quant_algo", where)
    if algo is None:
        raise ConfigError(f"{where}.quant_algo is missing (modelopt)")
    return _modelopt(algo, _pos_int(src, "group_size", where), src.get("exclude_modules", src.get("ignore")),
                     [f"config:{prefix}.quant_method=modelopt", f"config:{prefix}.quant_algo={algo}"], where)


def _modelopt_fp4(qc: dict, where: str, prefix: str, qm: str, config: dict) -> QuantInfo:
    return _modelopt("NVFP4", _pos_int(qc, "group_size", where), qc.get("exclude_modules"),
                     [f"config:{prefix}.quant_method={qm}"], where)


def _mxfp4(qc: dict, where: str, prefix: str, qm: str, config: dict) -> QuantInfo:
    return QuantInfo(method="mxfp4", producer="openai" if config.get("model_type") == "gpt_oss" else None,
                     weight_dtype="mxfp4", group_size=32, scale_fmt="ue8m0",
                     vllm_weight_key=K_MXFP4_W, vllm_activation_key=None,
                     provenance=[f"config:{prefix}.quant_method=mxfp4"])


def _int_wna16_method(base: str):
    return lambda qc, where, prefix, qm, config: _int_wna16(qc, where, prefix, base)


#: quant_method (lower case, "_" as "-") -> reader(qc, where, prefix, quant_method, config)
_QUANT_METHODS: dict[str, Callable[[dict, str, str, str, dict], QuantInfo]] = {
    "fp8": lambda qc, where, prefix, qm, config: _fp8(qc, where, prefix, config),
    "modelopt": _modelopt_in_config,
    "modelopt-fp4": _modelopt_fp4,
    "modelopt-nvfp4": _modelopt_fp4,
    "compressed-tensors": lambda qc, where, prefix, qm, config: _compressed_tensors(qc, where, prefix),
    "mxfp4": _mxfp4,
    **{m: _int_wna16_method({"gptq-marlin": "gptq", "awq-marlin": "awq", "autoround": "auto-round"}.get(m, m))
       for m in ("gptq", "gptq-marlin", "auto-round", "autoround", "awq", "awq-marlin")},
}


def _from_quant_method(qc: dict, prefix: str, config: dict) -> QuantInfo:
    """``quantization_config.quant_method`` (compressed-tensors when only config_groups is set)."""
    where = f"config.json: {prefix}"
    qm = _str(qc, "quant_method", where)
    if qm is None:
        if "config_groups" not in qc:
            raise ConfigError(f"{where}.quant_method is missing")
        qm = "compressed-tensors"
    reader = _QUANT_METHODS.get(qm.lower().replace("_", "-"))
    if reader is None:
        return QuantInfo(method="other", producer=qm, provenance=[f"config:{prefix}.quant_method={qm}"],
                         warnings=[f"quant_method {qm!r} is not one moe-inspect recognises"])
    return reader(qc, where, prefix, qm, config)
