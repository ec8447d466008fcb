"""Read the flags of a real ``vllm serve`` command line (``check --vllm-args "…"``).

Only what decides the layout, the expert backend and the memory fit is understood; every other
flag is listed back as ignored (never silently dropped). Spellings follow vLLM 0.33.0's
``EngineArgs.add_cli_args`` (vllm/engine/arg_utils.py): long names, their short aliases
(``-tp``, ``-dp``, ``-pp``, ``-pcp``, ``-ep``, ``-q``), ``--flag=value`` and ``--flag value``,
``--no-<flag>`` for booleans (argparse.BooleanOptionalAction, arg_utils.py:386), JSON or dotted
``--eplb-config`` (``--eplb-config '{"num_redundant_experts": 32}'`` or
``--eplb-config.num_redundant_experts 32``), and ``--max-model-len`` with k/m/K/M suffixes
(``human_readable_int_or_auto``, vllm/utils/argparse_utils.py:77).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import BadInputError, close_hint
from .layout import Layout, derive_layout

# value flags: every spelling -> our field name
_VALUE_FLAGS: dict[str, str] = {
    "--model": "model", "--tensor-parallel-size": "tp", "-tp": "tp", "--data-parallel-size": "dp", "-dp": "dp",
    "--pipeline-parallel-size": "pp", "-pp": "pp", "--prefill-context-parallel-size": "pcp", "-pcp": "pcp",
    "--all2all-backend": "all2all_backend", "--moe-backend": "moe_backend", "--quantization": "quantization",
    "-q": "quantization", "--kv-cache-dtype": "kv_cache_dtype", "--max-model-len": "max_model_len",
    "--gpu-memory-utilization": "gpu_memory_utilization", "--revision": "revision", "--eplb-config": "eplb_config",
    "--kernel-config": "kernel_config",
}
# boolean flags (BooleanOptionalAction: --x / --no-x)
_BOOL_FLAGS: dict[str, str] = {"--enable-expert-parallel": "ep_enabled", "-ep": "ep_enabled",
                               "--enable-eplb": "eplb"}
# flags of `vllm serve` that take no value (so the next token is not swallowed as theirs)
_KNOWN_SWITCHES = frozenset({
    "--trust-remote-code", "--enforce-eager", "--disable-log-stats", "--disable-log-requests",
    "--enable-prefix-caching", "--no-enable-prefix-caching", "--enable-chunked-prefill", "--enable-auto-tool-choice",
    "--headless", "--async-scheduling", "--enable-dbo", "--disable-custom-all-reduce", "--enable-lora",
    "--enable-log-requests", "--skip-tokenizer-init", "--data-parallel-hybrid-lb", "-dph",
    "--data-parallel-external-lb", "-dpe", "--enable-elastic-ep", "--enable-ep-weight-filter",
    "--no-enable-ep-weight-filter", "--enable-sleep-mode", "--disable-uvicorn-access-log",
})
# online-quantization spellings of --quantization on an unquantized checkpoint -> our scheme
# (vllm/model_executor/layers/quantization/__init__.py:15-49; vllm/config/quantization.py shorthands)
ONLINE_QUANT: dict[str, str] = {"fp8": "fp8_per_tensor", "fp8_per_tensor": "fp8_per_tensor",
                                "fp8_per_block": "fp8_block", "mxfp8": "mxfp8"}
# vllm/config/cache.py:44-67 CacheDType
KV_CACHE_DTYPES: tuple[str, ...] = (
    "auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla", "nvfp4_ds_mla",
    "turboquant_k8v4", "turboquant_4bit_nc", "turboquant_k3v4_nc", "turboquant_3bit_nc", "octave_k3v4", "octave_k3v3",
    "octave_k3v3_compact", "ultraquant_4bit", "int4_per_token_head", "int8_per_token_head", "fp8_per_token_head",
    "nvfp4", "nvfp4_4over6",
)


def parse_kv_cache_dtype(text: str) -> str:
    v = text.strip().lower()
    if v not in KV_CACHE_DTYPES:
        raise BadInputError(f"--kv-cache-dtype {text}: not a vLLM 0.33.0 KV-cache dtype",
                            hint=close_hint(v, KV_CACHE_DTYPES, otherwise=f"choices: {', '.join(KV_CACHE_DTYPES)}"))
    return v


_PREFIXES = (("vllm", "serve"), ("python", "-m", "vllm.entrypoints.openai.api_server"),
             ("python3", "-m", "vllm.entrypoints.openai.api_server"), ("vllm",))


class VllmArgs(NamedTuple):
    model: str | None = None
    tp: int | None = None
    dp: int | None = None
    pp: int | None = None
    pcp: int | None = None
    ep_enabled: bool | None = None
    eplb: bool | None = None
    num_redundant_experts: int | None = None
    all2all_backend: str | None = None
    moe_backend: str | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    revision: str | None = None
    ignored: tuple[str, ...] = ()

    def given(self) -> dict:
        """The understood flags that were present (field -> value)."""
        return {n: v for n, v in zip(self._fields, self) if n != "ignored" and v is not None}

    def layout(self) -> Layout:
        return derive_layout(tp=self.tp or 1, dp=self.dp or 1, pp=self.pp or 1, pcp=self.pcp or 1,
                             ep_enabled=bool(self.ep_enabled), eplb=bool(self.eplb),
                             num_redundant_experts=self.num_redundant_experts or 0,
                             all2all_backend=self.all2all_backend or "allgather_reducescatter",
                             moe_backend=self.moe_backend)

    def to_dict(self) -> dict:
        return {**self.given(), "ignored": list(self.ignored)}


class DeployFlags(NamedTuple):
    """The raw deployment flags of ``check`` / ``catalog --check`` (None / False = not given)."""

    tp: int | None = None
    dp: int | None = None
    pp: int | None = None
    ep: bool = False
    eplb: bool = False
    num_redundant_experts: int | None = None
    all2all_backend: str | None = None
    moe_backend: str | None = None
    vllm_args: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: str | None = None
    kv_cache_dtype: str | None = None
    parallel: str | None = None  # deprecated

    def layout_given(self) -> bool:
        """Whether the deployment was described at all (then memory decides `starts` too); the deprecated
        --parallel does not count (check maps it itself)."""
        return any(v not in (None, False) for n, v in zip(self._fields, self) if n != "parallel")


def _int(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadInputError(f"--vllm-args {flag} {text}: not an integer") from None


def parse_max_model_len(text: str) -> int | None:
    """vLLM's human_readable_int_or_auto: '32768', '32k' (×1000), '32K' (×1024), '-1'/'auto' -> None."""
    t = text.strip()
    if t == "-1" or t.lower() == "auto":
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])", t)
    if m:
        num, suf = m.groups()
        if suf.islower():
            return int(float(num) * {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}[suf])
        if "." in num:
            raise BadInputError(f"--max-model-len {text}: decimals are not allowed with binary suffixes like {suf}")
        return int(num) * {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[suf]
    try:
        v = int(t)
    except ValueError:
        raise BadInputError(f"--max-model-len {text}: not an integer (32768, 32k, 32K or auto)") from None
    if v < 1:
        raise BadInputError(f"--max-model-len {text}: must be positive")
    return v


def parse_gpu_memory_utilization(text: str | float) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise BadInputError(f"--gpu-memory-utilization {text}: not a number") from None
    if not 0 < v <= 1:  # CacheConfig.gpu_memory_utilization: Field(gt=0, le=1) (config/cache.py)
        raise BadInputError(f"--gpu-memory-utilization {text}: must be in (0, 1]")
    return v


def _json_object(flag: str, text: str) -> dict:
    import json

    try:
        obj = json.loads(text)
    except ValueError as e:  # json.JSONDecodeError
        raise BadInputError(f"--vllm-args {flag}: not valid JSON ({getattr(e, 'msg', e)})") from None
    if not isinstance(obj, dict):
        raise BadInputError(f"--vllm-args {flag}: expected a JSON object")
    return obj


def _strip_prefix(tokens: list[str]) -> list[str]:
    for pre in _PREFIXES:
        if tuple(tokens[:len(pre)]) == pre:
            return tokens[len(pre):]
    return tokens


def _set(out: dict, name: str, flag: str, value: str) -> None:
    if name in ("tp", "dp", "pp", "pcp"):
        out[name] = _int(flag, value)
    elif name == "max_model_len":
        out[name] = parse_max_model_len(value)
    elif name == "gpu_memory_utilization":
        out[name] = parse_gpu_memory_utilization(value)
    elif name == "kv_cache_dtype":
        out[name] = parse_kv_cache_dtype(value)
    elif name == "eplb_config":
        cfg = _json_object(flag, value)
        if "num_redundant_experts" in cfg:
            out["num_redundant_experts"] = _redundant(cfg["num_redundant_experts"])
    elif name == "kernel_config":
        cfg = _json_object(flag, value)
        if cfg.get("moe_backend") is not None:
            out["moe_backend"] = str(cfg["moe_backend"])
    else:
        out[name] = value


def _redundant(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise BadInputError(f"--vllm-args num_redundant_experts {v!r}: not an integer")
    return _int("num_redundant_experts", str(v))


def parse_vllm_args(text: str) -> VllmArgs:
    """One ``vllm serve`` command line (with or without the leading ``vllm serve``) -> VllmArgs."""
    import shlex

    try:
        tokens = shlex.split(text)
    except ValueError as e:
        raise BadInputError(f"--vllm-args: cannot split the command line ({e})") from None
    tokens = _strip_prefix(tokens)
    out: dict = {}
    ignored: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok.startswith("-") or re.fullmatch(r"-\d+(\.\d+)?", tok):
            if "model" not in out:
                out["model"] = tok
            else:
                ignored.append(tok)
            continue
        flag, eq, inline = tok.partition("=")
        if flag.startswith("--eplb-config.") or flag.startswith("--kernel-config."):
            key = flag.split(".", 1)[1].replace("-", "_")
            value = inline if eq else (tokens[i] if i < len(tokens) else "")
            i += 0 if eq else 1
            if key == "num_redundant_experts":
                out["num_redundant_experts"] = _redundant(value)
            elif key == "moe_backend":
                out["moe_backend"] = value
            else:
                ignored.append(f"{flag} {value}".strip())
            continue
        if flag in _BOOL_FLAGS:
            out[_BOOL_FLAGS[flag]] = True if not eq else inline.strip().lower() in ("1", "true", "yes")
            continue
        if flag.startswith("--no-") and "--" + flag[5:] in _BOOL_FLAGS:
            out[_BOOL_FLAGS["--" + flag[5:]]] = False
            continue
        if flag in _VALUE_FLAGS:
            if not eq:
                if i >= len(tokens):
                    raise BadInputError(f"--vllm-args {flag}: expected a value")
                inline = tokens[i]
                i += 1
            _set(out, _VALUE_FLAGS[flag], flag, inline)
            continue
        # an unknown flag: take its value along when one follows (never a flag) so it is not read as MODEL
        if not eq and flag not in _KNOWN_SWITCHES and i < len(tokens) and not tokens[i].startswith("-"):
            ignored.append(f"{flag} {tokens[i]}")
            i += 1
        else:
            ignored.append(tok)
    return VllmArgs(**out, ignored=tuple(ignored))


__all__ = ["DeployFlags", "VllmArgs", "parse_vllm_args", "parse_max_model_len", "parse_gpu_memory_utilization", "parse_kv_cache_dtype",
           "ONLINE_QUANT", "KV_CACHE_DTYPES"]
