"""config.json (+ optional tensor evidence) → :class:`MoESpec`.

``normalize(config, evidence)`` finds the architecture row (``moe_inspect.archs``), reads the keys
that row names, applies the row's forced values and defaults, works out the MoE-layer schedule,
validates every count, and finally lets the safetensors headers confirm or override what the
config says. Every field it sets records where the value came from in ``MoESpec.provenance``
(format documented in ``moe_inspect.spec``).

Validation is strict: counts must be JSON integers (``8.0`` is rejected as a float, and so are
booleans), every failure is a one-line :class:`ConfigError` naming the key and the value.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable

from . import archs
from .archs import ArchRow, Grouped, Rule, Schedule
from .errors import ConfigError, NotMoEError
from .spec import ModelShape, MoESpec, TensorEvidence, TensorInfo

__all__ = ["normalize", "read_shape", "MAX_EXPERTS", "MAX_TOP_K", "MAX_LAYERS", "MAX_WIDTH"]

CONFIG_FILE = "config.json"
MAX_EXPERTS = 1_000_000
MAX_TOP_K = 100_000
MAX_LAYERS = 100_000
MAX_WIDTH = 10_000_000
KNOWN_SCORING = ("softmax", "sigmoid", "sqrtsoftplus", "custom")

_ROUTER_DTYPE_NAMES = {
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "torch.float32": "float32",
    "f32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "torch.bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "torch.float16": "float16",
    "f16": "float16",
}
_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}

_MISSING = object()


# ---------------------------------------------------------------------------------------------
# small, strict readers


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(path: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"{CONFIG_FILE}: {path} = {_short(value)}: {problem}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _count(value: Any, path: str, *, minimum: int = 1, maximum: int = MAX_LAYERS) -> int:
    """A JSON integer count. Booleans, floats (even 8.0), strings and null are rejected."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (integral floats such as 8.0 are rejected too)" if isinstance(value, float) else ""
        raise _bad(path, value, f"expected an integer, got {_type_name(value)}{hint}")
    if value < minimum:
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise _bad(path, value, f"expected a {what} integer")
    if value > maximum:
        raise _bad(path, value, f"absurdly large (limit {maximum:,})")
    return value


def _boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _bad(path, value, f"expected true/false, got {_type_name(value)}")


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(path, value, f"expected a number, got {_type_name(value)}")
    if not math.isfinite(value) or value <= 0:
        raise _bad(path, value, "expected a finite number > 0")
    return float(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, value, f"expected a string, got {_type_name(value)}")
    return value


def _lookup(view: dict, key: str) -> Any:
    """Value at a dotted path, or _MISSING. ``key=value`` tests are handled by callers."""
    node: Any = view
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


# ---------------------------------------------------------------------------------------------


class _Builder:
    """Accumulates values + provenance for one normalize() call."""

    def __init__(self, config: dict, view: dict, prefix: str, row: ArchRow):
        self.config = config
        self.view = view
        self.prefix = prefix
        self.row = row
        self.generic = row is archs.GENERIC
        self.values: dict[str, Any] = {}
        self.provenance: dict[str, str] = {}
        self.guessed: list[str] = []
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.per_layer: dict[str, dict[int, Any]] = {}
        # filled by the section readers, in order
        self.label = "model"
        self.ekey: str | None = None  # expert-count key and raw value
        self.eraw: Any = None
        self.tkey: str | None = None  # top-k key and raw value
        self.traw: Any = None
        self.n_layers: int | None = None
        self.moe_layers: list[int] = []
        self.bias: bool | None = None  # has_correction_bias as the rule resolved it (None: no key)

    # -- bookkeeping ------------------------------------------------------------------------

    def path(self, key: str) -> str:
        return self.prefix + key.split("=", 1)[0]

    def set(self, name: str, value: Any, prov: str, *, identity: bool = False) -> None:
        if self.generic and not identity and not prov.startswith("tensor:"):
            if not prov.startswith("guessed:"):
                prov = "guessed:" + prov
            if name not in self.guessed:
                self.guessed.append(name)
        self.values[name] = value
        self.provenance[name] = prov

    def arch_prov(self) -> str:
        return f"arch:{self.row.family}"

    def default_prov(self, why: str) -> str:
        return f"guessed:{why}" if self.generic else self.arch_prov()

    # -- reading ------------------------------------------------------------------------------

    def per_layer_value(self, name: str, raw: Any, key: str, conv: Callable[[Any, str], Any]) -> Any:
        """Set ``name`` from ``key``: a scalar, or a per-layer list (see :func:`_list_or_scalar`)."""
        value = _list_or_scalar(self, name, raw, self.path(key), self.moe_layers, self.n_layers, conv)
        self.set(name, value, f"config:{self.path(key)}")
        return value

    def first(self, keys: tuple[str, ...]) -> tuple[str | None, Any]:
        """First present, non-null key among ``keys`` -> (key, raw value). Warns when aliases
        that are all present disagree."""
        found: list[tuple[str, Any]] = []
        for key in keys:
            name, _, expected = key.partition("=")
            raw = _lookup(self.view, name)
            if raw is _MISSING or raw is None:
                continue
            if expected:
                raw = raw == expected
            found.append((key, raw))
        if not found:
            return None, None
        key, raw = found[0]
        others = [(k, v) for k, v in found[1:] if v != raw]
        if others and not any(k.partition("=")[2] for k, _ in found):
            listing = ", ".join(f"{self.path(k)}={_short(v)}" for k, v in [found[0]] + others)
            self.warnings.append(f"config aliases disagree ({listing}); using {self.path(key)}")
        return key, raw

    def present(self, key: str) -> bool:
        raw = _lookup(self.view, key.partition("=")[0])
        return raw is not _MISSING and raw is not None

    def rule(self, name: str, rule: Rule, convert: Callable[[Any, str], Any], why_default: str) -> Any:
        """Resolve ``rule`` for field ``name`` and record it. Returns the value (may be None)."""
        if rule.forced is not None:
            ignored = [k for k in rule.keys if self.present(k)]
            for key in ignored:
                raw = _lookup(self.view, key.partition("=")[0])
                if key.partition("=")[2]:
                    continue  # e.g. topk_method=noaux_tc on GLM: consistent, not worth a note
                if convert(raw, self.path(key)) != rule.forced:
                    self.notes.append(
                        f"{self.path(key)}={_short(raw)} is ignored: {self.row.source} hard-codes "
                        f"{name}={rule.forced!r}"
                    )
            self.set(name, rule.forced, self.arch_prov())
            return rule.forced
        key, raw = self.first(rule.keys)
        if key is not None:
            value = convert(raw, self.path(key))
            self.set(name, value, f"config:{self.path(key)}")
            return value
        if rule.default is not None:
            self.set(name, rule.default, self.default_prov(f"{name} defaults to {rule.default!r} ({why_default})"))
            return rule.default
        return None


# ---------------------------------------------------------------------------------------------
# MoE-layer schedules. Each returns (sorted layer indices, provenance).

_Schedule = Callable[["_Builder", int], tuple[list[int], str]]


def _sched_all(b: _Builder, n: int) -> tuple[list[int], str]:
    return list(range(n)), b.default_prov("every decoder layer is a MoE layer")


def _int_list(value: Any, path: str) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise _bad(path, value, f"expected a list of layer indices, got {_type_name(value)}")
    return [_count(v, f"{path}[{i}]", minimum=0) for i, v in enumerate(value)]


def _sched_deepseek(b: _Builder, n: int) -> tuple[list[int], str]:
    used = []
    first_k = 0
    if b.present("first_k_dense_replace"):
        first_k = _count(_lookup(b.view, "first_k_dense_replace"), b.path("first_k_dense_replace"), minimum=0)
        used.append("first_k_dense_replace")
    freq_raw = _lookup(b.view, "moe_layer_freq")
    if freq_raw is not _MISSING and freq_raw is not None:
        used.append("moe_layer_freq")
        path = b.path("moe_layer_freq")
        if isinstance(freq_raw, (list, tuple)):
            flags = [_boolean(v, f"{path}[{i}]") for i, v in enumerate(freq_raw)]
            if len(flags) != n:
                b.warnings.append(f"{path} has {len(flags)} entries but the model has {n} layers")
            layers = [i for i, f in enumerate(flags) if f and i < n]
            return layers, "config:" + ",".join(b.path(k) for k in used)
        freq = _count(freq_raw, path)
    else:
        freq = 1
    layers = [i for i in range(n) if i >= first_k and i % freq == 0]
    if not used:
        return layers, b.default_prov("no first_k_dense_replace: every layer is a MoE layer")
    return layers, "config:" + ",".join(b.path(k) for k in used)


def _sched_qwen(b: _Builder, n: int) -> tuple[list[int], str]:
    used = []
    step = 1
    if b.present("decoder_sparse_step"):
        step = _count(_lookup(b.view, "decoder_sparse_step"), b.path("decoder_sparse_step"))
        used.append("decoder_sparse_step")
    mlp_only: set[int] = set()
    if b.present("mlp_only_layers"):
        mlp_only = set(_int_list(_lookup(b.view, "mlp_only_layers"), b.path("mlp_only_layers")))
        used.append("mlp_only_layers")
    layers = [i for i in range(n) if i not in mlp_only and (i + 1) % step == 0]
    if not used:
        return layers, b.default_prov("no decoder_sparse_step: every layer is a MoE layer")
    return layers, "config:" + ",".join(b.path(k) for k in used)


def _sched_llama4(b: _Builder, n: int) -> tuple[list[int], str]:
    if b.present("moe_layers"):
        layers = _int_list(_lookup(b.view, "moe_layers"), b.path("moe_layers"))
        return sorted(set(layers)), f"config:{b.path('moe_layers')}"
    if b.present("interleave_moe_layer_step"):
        step = _count(_lookup(b.view, "interleave_moe_layer_step"), b.path("interleave_moe_layer_step"), minimum=0)
        layers = [] if step == 0 else [i for i in range(n) if (i + 1) % step == 0]
        return layers, f"config:{b.path('interleave_moe_layer_step')}"
    return _sched_all(b, n)


def _sched_ernie(b: _Builder, n: int) -> tuple[list[int], str]:
    used = []

    def read(key: str, default: int, minimum: int) -> int:
        if not b.present(key):
            return default
        raw = _lookup(b.view, key)
        used.append(key)
        if isinstance(raw, (list, tuple)) and raw:  # ERNIE-VL: [text, vision]
            raw = raw[0]
        return _count(raw, b.path(key), minimum=minimum)

    start = read("moe_layer_start_index", 0, 0)
    end = read("moe_layer_end_index", n - 1, -1)
    if end < 0:
        end = n - 1
    interval = read("moe_layer_interval", 1, 1)
    layers = [i for i in range(n) if (i + 1) % interval == 0 and start <= i <= end]
    if not used:
        return layers, b.default_prov("no moe_layer_* keys: every layer is a MoE layer")
    return layers, "config:" + ",".join(b.path(k) for k in used)


def _sched_jamba(b: _Builder, n: int) -> tuple[list[int], str]:
    if not b.present("expert_layer_period"):
        return _sched_all(b, n)
    period = _count(_lookup(b.view, "expert_layer_period"), b.path("expert_layer_period"))
    offset = 0
    used = ["expert_layer_period"]
    if b.present("expert_layer_offset"):
        offset = _count(_lookup(b.view, "expert_layer_offset"), b.path("expert_layer_offset"), minimum=0)
        used.append("expert_layer_offset")
    layers = [i for i in range(n) if i % period == offset]
    return layers, "config:" + ",".join(b.path(k) for k in used)


def _sched_mlp_layer_types(b: _Builder, n: int) -> tuple[list[int], str]:
    if not b.present("mlp_layer_types"):
        return _sched_deepseek(b, n)
    raw = _lookup(b.view, "mlp_layer_types")
    path = b.path("mlp_layer_types")
    if not isinstance(raw, (list, tuple)):
        raise _bad(path, raw, f"expected a list of 'dense'/'sparse', got {_type_name(raw)}")
    kinds = [_string(v, f"{path}[{i}]") for i, v in enumerate(raw)]
    if len(kinds) != n:
        b.warnings.append(f"{path} has {len(kinds)} entries but the model has {n} layers")
    layers = [i for i, k in enumerate(kinds) if k.lower() in ("sparse", "moe") and i < n]
    return layers, f"config:{path}"


def _sched_nemotron_h(b: _Builder, n: int) -> tuple[list[int], str]:
    if not b.present("hybrid_override_pattern"):
        return _sched_all(b, n)
    path = b.path("hybrid_override_pattern")
    pattern = _string(_lookup(b.view, "hybrid_override_pattern"), path)
    if len(pattern) != n:
        b.warnings.append(f"{path} has {len(pattern)} characters but the model has {n} layers")
    return [i for i, c in enumerate(pattern) if c == "E" and i < n], f"config:{path}"


def _sched_step3(b: _Builder, n: int) -> tuple[list[int], str]:
    if not b.present("moe_layers_enum"):
        return list(range(1, n)), b.default_prov("no moe_layers_enum: layers 1..N-1 are MoE layers")
    path = b.path("moe_layers_enum")
    raw = _lookup(b.view, "moe_layers_enum")
    if isinstance(raw, str):
        try:
            layers = [int(p) for p in raw.replace(" ", "").split(",") if p != ""]
        except ValueError:
            raise _bad(path, raw, "expected comma-separated layer indices") from None
        if any(i < 0 for i in layers):
            raise _bad(path, raw, "layer indices must be >= 0")
    else:
        layers = _int_list(raw, path)
    return sorted(set(layers)), f"config:{path}"


def _sched_dense_prefix(b: _Builder, n: int) -> tuple[list[int], str]:
    if not b.present("num_dense_layers"):
        return _sched_all(b, n)
    k = _count(_lookup(b.view, "num_dense_layers"), b.path("num_dense_layers"), minimum=0)
    return list(range(k, n)), f"config:{b.path('num_dense_layers')}"


def _sched_generic(b: _Builder, n: int) -> tuple[list[int], str]:
    for keys, fn in (
        (("mlp_layer_types",), _sched_mlp_layer_types),
        (("hybrid_override_pattern",), _sched_nemotron_h),
        (("moe_layers", "interleave_moe_layer_step"), _sched_llama4),
        (("moe_layers_enum",), _sched_step3),
        (("first_k_dense_replace", "moe_layer_freq"), _sched_deepseek),
        (("decoder_sparse_step", "mlp_only_layers"), _sched_qwen),
        (("moe_layer_start_index", "moe_layer_end_index", "moe_layer_interval"), _sched_ernie),
        (("expert_layer_period",), _sched_jamba),
        (("num_dense_layers",), _sched_dense_prefix),
    ):
        if any(b.present(k) for k in keys):
            return fn(b, n)
    return _sched_all(b, n)


SCHEDULES: dict[Schedule, _Schedule] = {
    Schedule.ALL: _sched_all,
    Schedule.DEEPSEEK: _sched_deepseek,
    Schedule.QWEN: _sched_qwen,
    Schedule.LLAMA4: _sched_llama4,
    Schedule.ERNIE: _sched_ernie,
    Schedule.JAMBA: _sched_jamba,
    Schedule.MLP_LAYER_TYPES: _sched_mlp_layer_types,
    Schedule.NEMOTRON_H: _sched_nemotron_h,
    Schedule.STEP3: _sched_step3,
    Schedule.DENSE_PREFIX: _sched_dense_prefix,
    Schedule.GENERIC: _sched_generic,
}
assert set(SCHEDULES) == set(Schedule)


# ---------------------------------------------------------------------------------------------
# public entry point


def _moe_view(config: dict) -> tuple[dict, str, str | None]:
    """(dict holding the MoE keys, its dotted prefix, nested model_type)."""
    probe = archs.EXPERTS_KEYS + archs.TOPK_KEYS
    nested_mt = None
    nested: list[tuple[dict, str]] = []
    for nk in archs.NESTED_CONFIG_KEYS:
        sub = config.get(nk)
        if isinstance(sub, dict):
            nested.append((sub, nk + "."))
            if nested_mt is None and isinstance(sub.get("model_type"), str):
                nested_mt = sub["model_type"]
    if any(_lookup(config, k) is not _MISSING for k in probe):
        return config, "", nested_mt
    for sub, prefix in nested:
        if any(_lookup(sub, k) is not _MISSING for k in probe):
            return sub, prefix, nested_mt
    return config, "", nested_mt


def _list_or_scalar(
    b: _Builder, name: str, raw: Any, path: str, moe_layers: list[int], n_layers: int | None,
    conv: Callable[[Any, str], Any],
) -> Any:
    """A scalar, or a per-layer list (Hunyuan moe_topk / moe_intermediate_size). Lists fill
    ``per_layer[name]`` over the MoE layers and return the most common value."""
    if not isinstance(raw, (list, tuple)):
        return conv(raw, path)
    if not raw:
        raise _bad(path, raw, "empty list")
    values = [conv(v, f"{path}[{i}]") for i, v in enumerate(raw)]
    if len(values) == 1:
        return values[0]
    if n_layers is not None and len(values) == n_layers:
        mapping = {i: values[i] for i in moe_layers}
    elif len(values) == len(moe_layers):
        mapping = dict(zip(moe_layers, values))
    else:
        b.warnings.append(
            f"{path} has {len(values)} entries, matching neither the {n_layers} layers nor the "
            f"{len(moe_layers)} MoE layers; using the first value"
        )
        return values[0]
    if not mapping:
        return values[0]
    b.per_layer[name] = mapping
    counts = Counter(mapping[i] for i in sorted(mapping))
    common = counts.most_common(1)[0][0]
    if len(counts) > 1:
        b.notes.append(f"{path} varies per layer ({dict(counts)}); {name} = {common} is the most common value")
    return common


def _scoring(value: Any, path: str) -> str:
    s = _string(value, path).strip().lower()
    return s


def _router_dtype(value: Any, path: str) -> str:
    s = _string(value, path).strip().lower()
    return _ROUTER_DTYPE_NAMES.get(s, s)


def _activation(value: Any, path: str) -> str:
    if isinstance(value, dict) and "name" in value:  # DBRX ffn_act_fn
        value = value["name"]
    s = _string(value, path).strip().lower()
    return {"swiglu": "silu", "silu": "silu", "gelu_pytorch_tanh": "gelu", "gelu_new": "gelu"}.get(s, s)


def normalize(config: dict, evidence: TensorEvidence | None = None) -> tuple[MoESpec, list[str]]:
    """Normalize a config.json dict (and optionally the first MoE layer's tensor evidence) into a
    :class:`MoESpec`. Returns ``(spec, warnings)``.

    Each section reader below (``_SECTIONS``, in order) reads what the architecture row names for
    its fields. Raises :class:`ConfigError` for malformed values and :class:`NotMoEError` for
    dense models.
    """
    b = _identify(config)
    for read in _SECTIONS:
        read(b)
    if evidence is not None:
        _apply_evidence(b, evidence)
    return _build(b), b.warnings


def _identify(config: dict) -> _Builder:
    """model_type / architectures, the dict holding the MoE keys, and the architecture row."""
    if not isinstance(config, dict):
        raise ConfigError(f"{CONFIG_FILE}: expected a JSON object at the top level, got {_type_name(config)}")
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise _bad("model_type", model_type, f"expected a string, got {_type_name(model_type)}")
    architectures = config.get("architectures")
    architecture = None
    if architectures is not None:
        if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
            raise _bad("architectures", architectures, "expected a list of strings")
        architecture = architectures[0] if architectures else None

    view, prefix, nested_mt = _moe_view(config)
    row, how = archs.match_row(model_type, architecture, nested_mt)
    b = _Builder(config, view, prefix, row)
    b.label = model_type or nested_mt or architecture or "model"
    b.set("model_type", model_type or nested_mt or "unknown", "config:model_type" if model_type else
          (f"config:{prefix}model_type" if nested_mt else "default:no model_type key"), identity=True)
    if architecture:
        b.set("architecture", architecture, "config:architectures[0]", identity=True)
    b.set("family", row.family, f"arch:{row.family}", identity=True)
    if how == "architecture" and model_type:
        b.notes.append(f"model_type {model_type!r} is not in the architecture table; matched by "
                       f"architecture {architecture} -> row {row.family}")
    elif how == "nested_model_type":
        b.notes.append(f"matched by {prefix}model_type {nested_mt!r} -> row {row.family}")
    elif how == "generic":
        b.warnings.append(f"{b.label}: unknown MoE architecture (model_type {model_type!r}, architecture "
                          f"{architecture!r}); every MoE field is guessed from generic keys")
    if prefix:
        b.notes.append(f"MoE keys read from nested {prefix.rstrip('.')}")
    return b


def _count_key(b: _Builder, keys: tuple[str, ...], generic_keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """The row's key for a count, else a generic alias (with a warning that the row does not read it)."""
    key, raw = b.first(keys)
    if key is None and keys != generic_keys:
        key, raw = b.first(generic_keys)
        if key is not None:
            b.warnings.append(f"{b.row.family} reads {'/'.join(keys)} but the config has {b.path(key)}")
    return key, raw


def _read_moe_keys(b: _Builder) -> None:
    """Is it a MoE at all: the expert-count and top-k keys (values are read later)."""
    row, view = b.row, b.view
    if row.moe_enable_key and b.present(row.moe_enable_key):
        if not _boolean(_lookup(view, row.moe_enable_key), b.path(row.moe_enable_key)):
            raise NotMoEError(f"{b.label}: {b.path(row.moe_enable_key)} is false: this is a dense model")
    b.ekey, b.eraw = _count_key(b, row.experts, archs.EXPERTS_KEYS)
    b.tkey, b.traw = _count_key(b, row.top_k, archs.TOPK_KEYS)
    if b.ekey is None:
        nulls = [k for k in archs.EXPERTS_KEYS if _lookup(view, k) is None]
        if nulls and b.tkey is not None:
            raise _bad(b.path(nulls[0]), None, "expected a positive integer number of experts, got null")
        if b.tkey is not None:
            raise ConfigError(f"{CONFIG_FILE}: {b.path(b.tkey)} is set but no expert count "
                              "(num_experts/n_routed_experts/num_local_experts…) is present")
        raise NotMoEError(f"{b.label}: no Mixture-of-Experts keys (num_experts/n_routed_experts/"
                          "num_local_experts…): this looks like a dense model")
    if b.tkey is None:
        nulls = [k for k in row.top_k + archs.TOPK_KEYS if _lookup(view, k) is None]
        if nulls:
            raise _bad(b.path(nulls[0]), None, "expected a positive integer top-k, got null")
        raise ConfigError(f"{CONFIG_FILE}: {b.path(b.ekey)} is set but no top-k key "
                          "(num_experts_per_tok/moe_k/moe_topk…) is present")


def _read_layers(b: _Builder) -> None:
    """num_hidden_layers and the MoE-layer schedule the row names."""
    lkey, lraw = b.first(b.row.layers)
    if lkey is not None:
        b.n_layers = _count(lraw, b.path(lkey), maximum=MAX_LAYERS)
        b.set("num_hidden_layers", b.n_layers, f"config:{b.path(lkey)}")
    elif b.row.schedule in (Schedule.NEMOTRON_H, Schedule.GENERIC) and b.present("hybrid_override_pattern"):
        pattern = _string(_lookup(b.view, "hybrid_override_pattern"), b.path("hybrid_override_pattern"))
        b.n_layers = len(pattern)
        b.set("num_hidden_layers", b.n_layers, f"config:{b.path('hybrid_override_pattern')}")
    n_layers = b.n_layers
    if n_layers is None:
        b.warnings.append(f"{b.label}: no num_hidden_layers/num_layers/n_layers key; MoE layers unknown")
        return
    moe_layers, prov = SCHEDULES[b.row.schedule](b, n_layers)
    bad = [i for i in moe_layers if i >= n_layers]
    if bad:
        b.warnings.append(f"MoE layer indices {bad} are >= num_hidden_layers={n_layers}; dropped")
        moe_layers = [i for i in moe_layers if i < n_layers]
    b.moe_layers = moe_layers
    b.set("moe_layers", moe_layers, prov)
    if not moe_layers:
        raise NotMoEError(f"{b.label}: the MoE layer schedule ({prov}) selects none of the {n_layers} layers")


def _read_experts_top_k(b: _Builder) -> None:
    """Expert count, top-k (scalars or per-layer lists), zero experts; top-k <= experts."""
    num_experts = b.per_layer_value("num_experts", b.eraw, b.ekey, lambda v, p: _count(v, p, maximum=MAX_EXPERTS))
    top_k = b.per_layer_value("top_k", b.traw, b.tkey, lambda v, p: _count(v, p, maximum=MAX_TOP_K))
    zero_num = 0
    if b.present("zero_expert_num"):
        zero_num = _count(_lookup(b.view, "zero_expert_num"), b.path("zero_expert_num"), minimum=0,
                          maximum=MAX_EXPERTS)
        b.set("zero_expert_num", zero_num, f"config:{b.path('zero_expert_num')}")
    if b.present("zero_expert_type"):
        b.set("zero_expert_type", _string(_lookup(b.view, "zero_expert_type"), b.path("zero_expert_type")),
              f"config:{b.path('zero_expert_type')}")
    for i, k in b.per_layer.get("top_k", {}).items():
        if k > num_experts + zero_num:
            raise _bad(f"{b.path(b.tkey)}[{i}]", k, f"top-k exceeds the number of experts ({num_experts})")
    if top_k > num_experts + zero_num:
        raise _bad(b.path(b.tkey), b.traw,
                   f"top-k {top_k} exceeds the number of experts ({b.path(b.ekey)}={num_experts})")


def _read_scoring(b: _Builder) -> None:
    """Scoring function, custom routing, correction bias, renormalization, scaling, topk_method."""
    row = b.row
    scoring = b.rule("scoring_func", row.scoring, _scoring, "no scoring key")
    if scoring not in KNOWN_SCORING:
        b.warnings.append(f"unknown scoring function {scoring!r} ({b.provenance['scoring_func']})")
    for when, name in row.custom_routing_if:
        if scoring == when:
            b.set("custom_routing", name, b.provenance["scoring_func"])
    if "custom_routing" not in b.values:
        b.rule("custom_routing", row.custom_routing, _string, "no custom routing")
    b.bias = b.rule("has_correction_bias", row.bias, _boolean, "no bias key")
    b.rule("renormalize", row.renormalize, _boolean, "no renormalize key")
    if row.renormalize_only_for and scoring != row.renormalize_only_for and b.values.get("renormalize"):
        b.set("renormalize", False, b.arch_prov())
        b.notes.append(f"{row.family}: renormalization applies only to {row.renormalize_only_for} scoring")
    if "renormalize" not in b.values:  # unreachable with the current table; keep the field honest
        b.set("renormalize", True, b.default_prov("no renormalize key"))
    if row.pnorm_key and b.present(row.pnorm_key):
        p = _lookup(b.view, row.pnorm_key)
        if p not in (1, 1.0):
            b.notes.append(f"DBRX normalizes the top-k weights with p-norm p={_short(p)}; vLLM divides by the sum")
    b.rule("routed_scaling_factor", row.scaling, _number, "no scaling key")
    if row.topk_method:
        key, raw = b.first(row.topk_method)
        if key is not None:
            method = _string(raw, b.path(key))
            b.set("topk_method", method, f"config:{b.path(key)}")
            if method == "group_limited_greedy":
                b.notes.append("topk_method group_limited_greedy: group-limited SOFTMAX (group score = max); "
                               "no FlashInfer method implements it and vLLM labels it Default, ignoring the groups")


def _group_value(b: _Builder, name: str, rule: Rule) -> tuple[int | None, str]:
    if rule.forced is not None:
        b.set(name, rule.forced, b.arch_prov())
        return rule.forced, name
    key, raw = b.first(rule.keys)
    if key is None:
        return None, name
    value = _count(raw, b.path(key), maximum=MAX_EXPERTS)
    b.set(name, value, f"config:{b.path(key)}")
    return value, b.path(key)


def _read_groups(b: _Builder) -> None:
    """Grouped top-k: whether the row asks for it, n_group / topk_group and their consistency."""
    row = b.row
    if row.grouped is Grouped.NEVER:
        present = [k for k in row.n_group.keys + row.topk_group.keys if b.present(k)]
        if present:
            b.notes.append(f"{', '.join(b.path(k) for k in present)} ignored: {row.family} does not use grouped top-k")
        b.set("use_grouped_topk", False, b.default_prov("architecture never asks for grouped top-k"))
    else:
        num_experts = b.values["num_experts"]
        n_group, n_path = _group_value(b, "n_group", row.n_group)
        topk_group, t_path = _group_value(b, "topk_group", row.topk_group)
        if n_group is not None and num_experts % n_group != 0:
            raise _bad(n_path, n_group, f"does not divide the number of experts ({num_experts})")
        if n_group is not None and topk_group is not None and topk_group > n_group:
            raise _bad(t_path, topk_group, f"exceeds n_group ({n_group})")
        if row.grouped is Grouped.ALWAYS:
            b.set("use_grouped_topk", True, b.arch_prov())
        else:
            both = n_group is not None and topk_group is not None
            prov = (f"config:{n_path},{t_path}" if both
                    else b.default_prov("grouped top-k only when n_group and topk_group are both set"))
            b.set("use_grouped_topk", both, prov)
    b.rule("linear_router_bias", row.linear_router_bias, _boolean, "no linear router bias")
    b.rule("router_dtype", row.router_dtype, _router_dtype, "router dtype")


def _read_shapes(b: _Builder) -> None:
    """Hidden size, expert width, shared experts and their width."""
    row = b.row
    hkey, hraw = b.first(row.hidden)
    if hkey is not None:
        b.set("hidden_size", _count(hraw, b.path(hkey), maximum=MAX_WIDTH), f"config:{b.path(hkey)}")
    wkey, wraw = b.first(row.expert_width)
    if wkey is not None:
        b.per_layer_value("moe_intermediate_size", wraw, wkey, lambda v, p: _count(v, p, maximum=MAX_WIDTH))
    shared = 0
    if row.shared_count_forced is not None:
        shared = row.shared_count_forced
        b.set("num_shared_experts", shared, b.arch_prov())
    else:
        ckey, craw = b.first(row.shared_count)
        if ckey is not None:
            shared = b.per_layer_value("num_shared_experts", craw, ckey,
                                       lambda v, p: _count(v, p, minimum=0, maximum=MAX_EXPERTS))
    skey, sraw = b.first(row.shared_width)
    if skey is not None:
        swidth = _count(sraw, b.path(skey), minimum=0, maximum=MAX_WIDTH)
        if swidth > 0:
            b.set("shared_expert_intermediate_size", swidth, f"config:{b.path(skey)}")
            if "num_shared_experts" not in b.values:
                shared = 1
                b.set("num_shared_experts", 1, f"config:{b.path(skey)}")
        elif "num_shared_experts" not in b.values:
            b.set("num_shared_experts", 0, f"config:{b.path(skey)}")
    if shared > 0 and "shared_expert_intermediate_size" not in b.values and "moe_intermediate_size" in b.values:
        b.set("shared_expert_intermediate_size", b.values["moe_intermediate_size"],
              b.default_prov("each shared expert is as wide as a routed expert")
              if not b.generic else "guessed:each shared expert is as wide as a routed expert")


def _read_activation(b: _Builder) -> None:
    """Activation and the SwiGLU clamp (one value, or per layer)."""
    b.rule("activation", b.row.activation, _activation, "silu (SwiGLU) unless the config says otherwise")
    if b.present("swiglu_limit"):
        b.set("swiglu_limit", _number(_lookup(b.view, "swiglu_limit"), b.path("swiglu_limit")),
              f"config:{b.path('swiglu_limit')}")
    elif b.present("swiglu_limits"):
        raw = _lookup(b.view, "swiglu_limits")
        path = b.path("swiglu_limits")
        if isinstance(raw, (list, tuple)):
            limits = {i: raw[i] for i in b.moe_layers if i < len(raw) and raw[i] not in (None, 0)}
            if limits:
                for i, v in limits.items():
                    _number(v, f"{path}[{i}]")
                b.per_layer["swiglu_limit"] = {i: float(v) for i, v in limits.items()}
                common = Counter(limits.values()).most_common(1)[0][0]
                b.set("swiglu_limit", float(common), f"config:{path}")


def _read_hash_layers(b: _Builder) -> None:
    """Hash-routed layers: num_hash_layers, else the row's mlp_layer_types entry or default."""
    row = b.row
    if b.present("num_hash_layers"):
        hashes = _count(_lookup(b.view, "num_hash_layers"), b.path("num_hash_layers"), minimum=0)
        if hashes:
            b.set("num_hash_layers", hashes, f"config:{b.path('num_hash_layers')}")
        return
    if row.hash_layer_type is None:
        return
    types = _lookup(b.view, "mlp_layer_types") if b.present("mlp_layer_types") else None
    if isinstance(types, list):
        hashes = sum(1 for t in types if t == row.hash_layer_type)
        if hashes:
            b.set("num_hash_layers", hashes, f"config:{b.path('mlp_layer_types')}")
    elif row.hash_layers_default is not None:
        b.set("num_hash_layers", row.hash_layers_default, f"{b.arch_prov()} ({row.hash_layers_source})")


def _read_mtp(b: _Builder) -> None:
    """MTP layers (listed after the decoder layers); the row's notes; final consistency."""
    row = b.row
    mkey, mraw = b.first(row.mtp)
    if mkey is not None and b.n_layers is not None:
        enabled = True
        if row.mtp_enable_key and b.present(row.mtp_enable_key) and mkey == "num_mtp_modules":
            enabled = _boolean(_lookup(b.view, row.mtp_enable_key), b.path(row.mtp_enable_key))
        n_mtp = _count(mraw, b.path(mkey), minimum=0, maximum=MAX_LAYERS)
        if enabled and n_mtp:
            b.set("mtp_layers", list(range(b.n_layers, b.n_layers + n_mtp)), f"config:{b.path(mkey)}")
    b.notes.extend(row.notes)
    top_k = b.values["top_k"]
    if b.values.get("custom_routing") == "llama4" and top_k != 1:
        b.warnings.append(f"Llama-4 routing is top-1 but {b.path(b.tkey)}={top_k}")
    if b.bias is None:
        b.set("has_correction_bias", False, b.default_prov("no bias key"))


_SECTIONS: tuple[Callable[[_Builder], None], ...] = (
    _read_moe_keys, _read_layers, _read_experts_top_k, _read_scoring, _read_groups, _read_shapes,
    _read_activation, _read_hash_layers, _read_mtp,
)


# ---------------------------------------------------------------------------------------------
# tensor evidence


def _dtype_name(info: TensorInfo) -> str | None:
    if not info.dtype or info.dtype == "?":
        return None
    return _SAFETENSORS_DTYPES.get(info.dtype.upper(), info.dtype.lower())


def _expert_width(ev: TensorEvidence, hidden: int | None) -> tuple[int, str] | None:
    """Per-expert intermediate size from expert-0 (or fused) tensor shapes."""
    for t in ev.experts:
        if not t.shape:
            continue
        leaf = t.name.rsplit(".", 2)
        tail = ".".join(leaf[-2:])
        # per-expert 2-D weights: out dim of gate/up/w1/w3 is the expert width
        if len(t.shape) == 2 and tail in ("gate_proj.weight", "up_proj.weight", "w1.weight", "w3.weight"):
            return t.shape[0], t.name
    for t in ev.experts:
        if not t.shape:
            continue
        last = t.name.rsplit(".", 1)[-1]
        if last in ("gate_up_proj", "gate_up_proj_blocks") and len(t.shape) >= 3:
            a, c = t.shape[1], t.shape[2]
            if last == "gate_up_proj_blocks":  # gpt-oss MXFP4 [E, 2I, blocks, 16]
                return a // 2, t.name
            if hidden is not None and c == hidden:
                return a // 2, t.name  # [E, 2I, H] (Qwen3.5, transformers)
            if hidden is not None and a == hidden:
                return c // 2, t.name  # [E, H, 2I] (Llama-4)
            return a // 2, t.name
    return None


def _apply_evidence(b: _Builder, ev: TensorEvidence) -> None:
    where = f"layer {ev.layer}" if ev.layer is not None else "the first MoE layer"
    if ev.router_weight is None:
        b.notes.append("tensor evidence: no router weight found in the checkpoint headers")
        return
    rw = ev.router_weight
    num_experts = b.values["num_experts"]
    zero = b.values.get("zero_expert_num", 0)

    dtype = _dtype_name(rw)
    if dtype is not None:
        if "router_dtype" not in b.values:
            b.set("router_dtype", dtype, f"tensor:{rw.name}")
        elif b.values["router_dtype"] != dtype:
            b.notes.append(f"router weight {rw.name} is stored as {rw.dtype}; router logits are computed in "
                           f"{b.values['router_dtype']} ({b.provenance['router_dtype']})")

    if len(rw.shape) == 2:
        e_t, h_t = rw.shape
        if e_t != num_experts + zero:
            expect = f"{num_experts}" + (f" + {zero} zero experts" if zero else "")
            b.warnings.append(f"router weight {rw.name} has {e_t} rows but the config says {expect} experts "
                              f"({b.provenance['num_experts']})")
        hidden = b.values.get("hidden_size")
        if hidden is None:
            b.set("hidden_size", h_t, f"tensor:{rw.name}")
        elif h_t != hidden:
            b.warnings.append(f"router weight {rw.name} has {h_t} columns but hidden_size is {hidden} "
                              f"({b.provenance['hidden_size']})")

    # correction bias
    cfg_bias = bool(b.values.get("has_correction_bias"))
    if ev.router_bias is not None:
        if not cfg_bias:
            b.warnings.append(
                f"checkpoint has a correction-bias tensor {ev.router_bias.name} but the config says no bias "
                f"({b.provenance.get('has_correction_bias')}); using the tensor"
            )
            b.set("has_correction_bias", True, f"tensor:{ev.router_bias.name}")
        elif b.provenance.get("has_correction_bias", "").startswith("arch:"):
            b.notes.append(f"correction bias (no config key; hard-coded by {b.row.family}) confirmed by "
                           f"{ev.router_bias.name}")
        if ev.router_bias.shape:
            numel = math.prod(ev.router_bias.shape)
            if numel != num_experts + zero:
                b.warnings.append(f"correction bias {ev.router_bias.name} has {numel} entries, expected "
                                  f"{num_experts + zero}")
    elif cfg_bias:
        b.warnings.append(f"config says the router has a correction bias ({b.provenance['has_correction_bias']}) "
                          f"but {where} has no correction-bias tensor")

    # linear router bias (gpt-oss)
    if ev.linear_bias is not None and not b.values.get("linear_router_bias"):
        b.warnings.append(f"checkpoint has a linear router bias {ev.linear_bias.name} the architecture does not "
                          "declare; it is added to the logits")
        b.set("linear_router_bias", True, f"tensor:{ev.linear_bias.name}")
    elif ev.linear_bias is None and b.values.get("linear_router_bias"):
        b.warnings.append(f"{b.row.family} expects a linear router bias but {where} has none")

    if ev.hash_table is not None and not b.values.get("num_hash_layers"):
        b.warnings.append(f"checkpoint has a hash-routing table {ev.hash_table.name} but the config has no "
                          "num_hash_layers")

    hidden = b.values.get("hidden_size")
    found = _expert_width(ev, hidden)
    if found is not None:
        width, name = found
        cfg_width = b.values.get("moe_intermediate_size")
        if cfg_width is None:
            b.set("moe_intermediate_size", width, f"tensor:{name}")
        else:
            per = b.per_layer.get("moe_intermediate_size", {})
            expected = per.get(ev.layer, cfg_width) if ev.layer is not None else cfg_width
            if width != expected:
                b.warnings.append(f"expert tensor {name} implies an expert width of {width} but the config says "
                                  f"{expected} ({b.provenance['moe_intermediate_size']})")


def _build(b: _Builder) -> MoESpec:
    v = b.values
    spec = MoESpec(
        model_type=v["model_type"],
        architecture=v.get("architecture"),
        family=v["family"],
        num_experts=v["num_experts"],
        top_k=v["top_k"],
        scoring_func=v["scoring_func"],
        has_correction_bias=bool(v["has_correction_bias"]),
        renormalize=bool(v["renormalize"]),
    )
    optional = (
        "routed_scaling_factor", "n_group", "topk_group", "use_grouped_topk", "topk_method", "custom_routing",
        "zero_expert_num", "zero_expert_type", "num_hash_layers", "linear_router_bias", "router_dtype",
        "hidden_size", "moe_intermediate_size", "num_shared_experts", "shared_expert_intermediate_size",
        "activation", "swiglu_limit", "num_hidden_layers", "moe_layers", "mtp_layers",
    )
    for name in optional:
        if name in v and v[name] is not None:
            setattr(spec, name, v[name])
    spec.per_layer = b.per_layer
    spec.provenance = {k: p for k, p in b.provenance.items() if v.get(k) is not None}
    spec.guessed = [g for g in b.guessed if g in spec.provenance]
    spec.notes = b.notes
    return spec


# ---------------------------------------------------------------------------------------------
# non-MoE shapes

#: ModelShape field -> config keys (first present, non-null wins; dotted into the MoE view).
_SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "num_attention_heads": ("num_attention_heads", "n_heads", "num_heads"),
    "num_key_value_heads": ("num_key_value_heads", "attn_config.kv_n_heads", "num_kv_heads"),
    "head_dim": ("head_dim",),
    "q_lora_rank": ("q_lora_rank",),
    "kv_lora_rank": ("kv_lora_rank",),
    "qk_nope_head_dim": ("qk_nope_head_dim",),
    "qk_rope_head_dim": ("qk_rope_head_dim",),
    "v_head_dim": ("v_head_dim",),
}


def read_shape(config: dict, spec: MoESpec) -> ModelShape:
    """Attention, vocabulary and dense-MLP shapes of the model whose MoE ``spec`` describes."""
    view, prefix, _ = _moe_view(config)
    shape = ModelShape()
    for name, keys in _SHAPE_KEYS.items():
        for key in keys:
            raw = _lookup(view, key)
            if raw is _MISSING or raw is None:
                continue
            setattr(shape, name, _count(raw, prefix + key, maximum=MAX_WIDTH))
            shape.provenance[name] = f"config:{prefix}{key}"
            break
    heads, kv = shape.num_attention_heads, shape.num_key_value_heads
    if shape.head_dim is None and heads and spec.hidden_size:
        shape.head_dim = spec.hidden_size // heads
        shape.provenance["head_dim"] = "derived:hidden_size / num_attention_heads"
    if shape.kv_lora_rank is not None:
        shape.attention, shape.provenance["attention"] = "mla", f"config:{prefix}kv_lora_rank"
    elif heads:
        shape.attention = "gqa" if kv is not None and kv < heads else "mha"
        shape.provenance["attention"] = "derived:num_key_value_heads vs num_attention_heads"
    dense = _lookup(view, "intermediate_size")
    # unless intermediate_size is the routed experts' width (Mixtral, MiniMax): then no dense MLP
    is_expert_width = spec.provenance.get("moe_intermediate_size") == f"config:{prefix}intermediate_size"
    if dense is not _MISSING and dense is not None and not is_expert_width:
        shape.dense_intermediate_size = _count(dense, prefix + "intermediate_size", maximum=MAX_WIDTH)
        shape.provenance["dense_intermediate_size"] = f"config:{prefix}intermediate_size"
    return shape
