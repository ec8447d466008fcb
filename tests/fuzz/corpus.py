"""Generators of hostile configs: hypothesis strategies and mutations of the 22 real catalog configs."""

from __future__ import annotations

import copy
import json
from hypothesis import strategies as st

from moe_inspect import archs, catalog


def _row_keys() -> list[str]:
    keys: set[str] = set()
    for row in archs.all_rows():
        for name in row._fields:
            v = getattr(row, name)
            if isinstance(v, archs.Rule):
                v = v.keys
            if isinstance(v, tuple) and all(isinstance(x, str) for x in v):
                keys.update(k.partition("=")[0] for k in v)
            elif isinstance(v, str) and name.endswith("_key"):
                keys.add(v)
    return sorted(keys)


#: every config key the architecture table reads, plus the MoE-layer schedule keys
SCHEDULE_KEYS = [
    "first_k_dense_replace", "moe_layer_freq", "decoder_sparse_step", "mlp_only_layers", "moe_layers",
    "interleave_moe_layer_step", "moe_layer_start_index", "moe_layer_end_index", "moe_layer_interval",
    "expert_layer_period", "expert_layer_offset", "mlp_layer_types", "hybrid_override_pattern",
    "moe_layers_enum", "num_dense_layers", "zero_expert_num", "zero_expert_type", "swiglu_limit",
    "swiglu_limits", "num_hash_layers", "topk_method", "use_mtp", "num_mtp_modules", "hidden_act",
    "quantization_config", "compression_config", "torch_dtype", "dtype", "expert_dtype",
]
KNOWN_KEYS = sorted(set(_row_keys()) | set(SCHEDULE_KEYS))
MODEL_TYPES = sorted({mt for row in archs.all_rows() for mt in row.model_types})
ARCHITECTURES = sorted({a for row in archs.all_rows() for a in row.architectures})
ENTRIES = catalog.entries()

HOSTILE_INTS = [0, -1, -8, 1, 2, 3, 7, 8, 64, 255, 256, 257, 10**6, 10**6 + 1, 2**31, 2**31 - 1, 2**63 - 1,
                2**63, 2**64, 10**18, 10**100]
HOSTILE_FLOATS = [0.0, -0.0, 8.0, 0.5, -2.5, 1e-300, 1e300, 1e308, float("nan"), float("inf"), float("-inf")]
HOSTILE_STRINGS = ["", "8", "eight", "sigmoid", "softmax", "noaux_tc", "null", "[/]", "[bold]x", "\x00",
                   "\u202e", "é" * 3, "x" * 5000, "../../etc/passwd", "E" * 64, "1,2,3", "-1", "sparse"]


def scalar() -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(HOSTILE_INTS),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.integers(min_value=-4, max_value=300),
        st.sampled_from(HOSTILE_FLOATS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(HOSTILE_STRINGS),
        st.text(max_size=20),
    )


def plausible() -> st.SearchStrategy:
    """Values of the right shape for most keys (so cases get deep into the pipeline)."""
    return st.one_of(
        st.integers(0, 64), st.integers(1, 8), st.booleans(), st.none(),
        st.sampled_from(["softmax", "sigmoid", "sqrtsoftplus", "noaux_tc", "greedy", "group_limited_greedy",
                         "silu", "swiglu", "gelu", "fp32", "bfloat16", "sparse", "dense", "EM*E-M*", "1,2,3"]),
        st.floats(0.1, 10), st.lists(st.integers(0, 8), max_size=6), st.lists(st.booleans(), max_size=6),
    )


def json_value(max_leaves: int = 12) -> st.SearchStrategy:
    return st.recursive(
        scalar(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=6),
            st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)), inner, max_size=5),
        ),
        max_leaves=max_leaves,
    )


@st.composite
def random_config(draw) -> dict:
    """A config built from the keys moe-inspect reads, with hostile values."""
    cfg: dict = {}
    if draw(st.booleans()):
        cfg["model_type"] = draw(st.one_of(st.sampled_from(MODEL_TYPES), scalar()))
    if draw(st.integers(0, 3)):
        cfg["architectures"] = draw(st.one_of(
            st.lists(st.sampled_from(ARCHITECTURES), min_size=1, max_size=2), json_value(3)))
    # a plausible MoE core most of the time, so cases get past "not a MoE" and into the checks
    if draw(st.integers(0, 4)):
        sane = draw(st.integers(0, 2)) > 0  # two thirds: a valid core, hostility elsewhere
        experts = draw(st.integers(1, 300) if sane else st.one_of(
            st.integers(-2, 300), scalar(), st.lists(st.integers(-1, 64), max_size=8)))
        cfg[draw(st.sampled_from(archs.EXPERTS_KEYS)).split(".")[0]] = experts
        cfg[draw(st.sampled_from(archs.TOPK_KEYS)).split(".")[0]] = draw(
            st.integers(1, experts if isinstance(experts, int) and experts > 0 else 8) if sane else st.one_of(
                st.integers(-2, 300), scalar(), st.lists(st.integers(-1, 64), max_size=8)))
        cfg[draw(st.sampled_from(archs.LAYERS_KEYS))] = draw(
            st.integers(1, 80) if sane else st.one_of(st.integers(-1, 80), scalar()))
    extra = draw(st.lists(st.sampled_from(KNOWN_KEYS), max_size=10, unique=True))
    for k in extra:
        cfg[k] = draw(st.one_of(plausible(), plausible(), json_value(6)))
    if draw(st.integers(0, 5)) == 0:
        nk = draw(st.sampled_from(archs.NESTED_CONFIG_KEYS))
        cfg = {nk: cfg, **({"model_type": draw(st.sampled_from(MODEL_TYPES))} if draw(st.booleans()) else {})}
    return cfg


# ------------------------------------------------------------------------------------ mutations
def _paths(obj, prefix=()) -> list[tuple]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            if isinstance(v, (dict, list)) and len(prefix) < 3:
                out.extend(_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            out.append(prefix + (i,))
            if isinstance(v, (dict, list)) and len(prefix) < 3:
                out.extend(_paths(v, prefix + (i,)))
    return out


def _get_parent(obj, path):
    for p in path[:-1]:
        obj = obj[p]
    return obj


def _moe_dict(cfg: dict) -> dict:
    """The dict holding the MoE keys (the config or a nested text_config)."""
    for nk in archs.NESTED_CONFIG_KEYS:
        sub = cfg.get(nk)
        if isinstance(sub, dict) and any(k in sub for k in archs.EXPERTS_KEYS):
            return sub
    return cfg


def _first(d: dict, keys) -> str | None:
    return next((k for k in keys if k in d), None)


MUTATIONS = ("delete", "null", "wrong_type", "huge", "negative", "zero", "random", "topk_gt_experts",
             "ngroup_not_dividing", "deep_nest", "enormous_list", "new_key", "retype_model_type",
             "top_level_swap", "float_count")


@st.composite
def mutated_config(draw) -> tuple[str, dict, list[str]]:
    """(catalog id, mutated config, applied mutation names)."""
    e = draw(st.sampled_from(ENTRIES))
    cfg = copy.deepcopy(e.config)
    applied = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(MUTATIONS))
        applied.append(op)
        paths = _paths(cfg)
        moe = _moe_dict(cfg)
        if op in ("delete", "null", "wrong_type", "huge", "negative", "zero", "random", "float_count") and paths:
            path = draw(st.sampled_from(paths))
            parent = _get_parent(cfg, path)
            key = path[-1]
            if op == "delete":
                del parent[key]
            else:
                parent[key] = {
                    "null": None,
                    "wrong_type": draw(st.sampled_from(["8", [8], {"v": 8}, True, 8.0, "sigmoid", []])),
                    "huge": draw(st.sampled_from([2**63, 10**100, 10**7, 1e308, 2**31])),
                    "negative": draw(st.sampled_from([-1, -8, -(2**63), -0.5])),
                    "zero": draw(st.sampled_from([0, 0.0, "", [], {}])),
                    "random": draw(json_value(8)),
                    "float_count": 8.0,
                }[op]
        elif op == "topk_gt_experts":
            ek, tk = _first(moe, archs.EXPERTS_KEYS), _first(moe, archs.TOPK_KEYS)
            if ek and tk and isinstance(moe[ek], int) and not isinstance(moe[ek], bool):
                moe[tk] = moe[ek] + draw(st.integers(1, 5))
        elif op == "ngroup_not_dividing":
            ek = _first(moe, archs.EXPERTS_KEYS)
            if ek and isinstance(moe[ek], int) and not isinstance(moe[ek], bool):
                n = moe[ek]
                bad = [g for g in (3, 5, 7, 9, 11, 13, n + 1, 2 * n) if g > 0 and n % g]
                moe[draw(st.sampled_from(archs.NGROUP_KEYS))] = draw(st.sampled_from(bad or [n + 1]))
                moe["topk_group"] = draw(st.sampled_from([1, 4, 1000, 0, -1]))
        elif op == "deep_nest" and paths:
            path = draw(st.sampled_from(paths))
            parent = _get_parent(cfg, path)
            v = parent[path[-1]]
            for _ in range(draw(st.sampled_from([5, 50, 400]))):
                v = [v] if draw(st.booleans()) else {"x": v}
            parent[path[-1]] = v
        elif op == "enormous_list":
            key = draw(st.sampled_from(["moe_topk", "moe_intermediate_size", "moe_layer_freq", "mlp_only_layers",
                                        "moe_layers", "swiglu_limits", "mlp_layer_types", "num_experts"]))
            n = draw(st.sampled_from([0, 1, 2, 1000, 100_000]))
            val = draw(st.sampled_from([1, 0, True, "sparse", 8]))
            moe[key] = [val] * n
        elif op == "new_key":
            moe[draw(st.sampled_from(KNOWN_KEYS))] = draw(json_value(6))
        elif op == "retype_model_type":
            cfg["model_type"] = draw(st.one_of(st.sampled_from(MODEL_TYPES), scalar()))
        elif op == "top_level_swap":
            k = draw(st.sampled_from(list(archs.NESTED_CONFIG_KEYS)))
            cfg = {k: cfg} if draw(st.booleans()) else {**cfg, k: copy.deepcopy(cfg)}
    return e.id, cfg, applied


# ------------------------------------------------------------------------------------ raw bytes
def dump(cfg) -> bytes:
    return json.dumps(cfg, allow_nan=True).encode()


@st.composite
def config_bytes(draw) -> tuple[str, bytes]:
    """(kind, bytes) of config.json files that are broken below the JSON-object level."""
    e = draw(st.sampled_from(ENTRIES))
    good = json.dumps(e.config).encode()
    kind = draw(st.sampled_from([
        "binary", "truncated", "invalid_utf8", "bom", "utf16", "duplicate_key", "huge_int_literal",
        "deep_array", "deep_object", "top_level_array", "top_level_scalar", "nan_literals", "empty",
        "trailing_garbage", "control_chars", "lone_surrogate_escape",
    ]))
    if kind == "binary":
        data = draw(st.binary(max_size=200))
    elif kind == "truncated":
        data = good[: draw(st.integers(0, max(0, len(good) - 1)))]
    elif kind == "invalid_utf8":
        i = draw(st.integers(0, len(good)))
        data = good[:i] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"])) + good[i:]
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + good
    elif kind == "utf16":
        data = json.dumps(e.config).encode("utf-16")
    elif kind == "duplicate_key":
        moe = _moe_dict(e.config)
        key = draw(st.sampled_from(list(moe) or ["model_type"]))
        val = json.dumps(draw(scalar()), allow_nan=True)
        inject = f'"{key}": {val}, '.encode()
        if moe is e.config:
            data = b"{" + inject + good[1:] if draw(st.booleans()) else good[:-1] + b", " + inject[:-2] + b"}"
        else:
            data = good[:-1] + b", " + inject[:-2] + b"}"
    elif kind == "huge_int_literal":
        moe = _moe_dict(e.config)
        key = draw(st.sampled_from(list(moe) or ["hidden_size"]))
        digits = draw(st.sampled_from([20, 400, 4301, 5000, 100_000]))
        lit = ("-" if draw(st.booleans()) else "") + "9" * digits
        data = good[:-1] + f', "{key}": {lit}}}'.encode()
    elif kind == "deep_array":
        depth = draw(st.sampled_from([100, 1000, 100_000]))
        data = good[:-1] + b', "num_experts": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    elif kind == "deep_object":
        depth = draw(st.sampled_from([100, 1000, 100_000]))
        data = b'{"a":' * depth + b"1" + b"}" * depth
    elif kind == "top_level_array":
        data = b"[" + good + b"]"
    elif kind == "top_level_scalar":
        data = draw(st.sampled_from([b"null", b"1", b'"config"', b"true", b"NaN"]))
    elif kind == "nan_literals":
        moe = _moe_dict(e.config)
        key = draw(st.sampled_from(list(moe) or ["routed_scaling_factor"]))
        data = good[:-1] + f', "{key}": {draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))}}}'.encode()
    elif kind == "empty":
        data = draw(st.sampled_from([b"", b" ", b"\n\n", b"{}", b"{ }"]))
    elif kind == "trailing_garbage":
        data = good + draw(st.sampled_from([b"}", b"x", b"\x00", b"{}", b"\n,"]))
    elif kind == "control_chars":
        data = good[:-1] + b', "model_type": "a\x01b\x1bc"}'
    else:  # "lone_surrogate_escape": valid JSON, a string Python cannot encode to UTF-8
        data = good[:-1] + b', "model_type": "\\ud800"}'
    return kind, data
