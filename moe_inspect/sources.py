"""Model sources for ``detect``: local directory, Hugging Face cache, the Hub, the built-in catalog.

:func:`load_model` tries, in order,

a. a local directory (``model`` exists, or starts with ``.``, ``/`` or ``~``): config.json,
   hf_quant_config.json, model.safetensors.index.json and the headers of every shard;
b. the Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``) for ``model``@``revision``:
   config + index from the snapshot, tensor headers from cached shards or from header JSON
   this module cached on an earlier online run (``$HF_HOME/moe_inspect/headers/``);
c. the Hub (``HF_ENDPOINT``) through huggingface_hub: config.json (+ hf_quant_config.json,
   model.safetensors.index.json) downloaded into the HF cache, then ONLY the safetensors
   headers of the (at most :data:`MAX_HUB_SHARDS`) shards holding the first MoE layer's
   router and expert-0 tensors, read with HTTP range requests (8 bytes, then exactly the
   header: never a byte of weights);
d. the built-in catalog (:func:`moe_inspect.catalog.lookup`).

Each attempt adds one line to ``ref.sources_tried``; the winner is ``ref.source``.
``ref.bytes_read`` counts the bytes fetched over the network (downloaded metadata files +
header range reads); cached files count 0. Nothing here imports torch/transformers or runs
repository code; huggingface_hub is imported lazily.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import (
    CheckpointError,
    ConfigError,
    HubError,
    ModelNotFoundError,
    MoeInspectError,
    OfflineError,
)
from .safetensors_io import (
    HeaderResult,
    header_length,
    parse_header_from_bytes,
    read_local_header_ex,
    tensors_from_json,
    tensors_to_json,
)
from .spec import ModelFiles, ModelRef, TensorInfo

CONFIG_FILE = "config.json"
QUANT_CONFIG_FILE = "hf_quant_config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"

#: Most shards whose headers a Hub lookup reads (router shard + expert-0 shard).
MAX_HUB_SHARDS = 2
#: Metadata JSON files larger than this are refused (real configs are < 100 kB, indexes < 10 MB).
MAX_JSON_BYTES = 64_000_000
#: Format version of the on-disk header cache ($HF_HOME/moe_inspect/headers/...).
HEADER_CACHE_VERSION = 1
#: Extra attempts when a header range read is cut off mid-body.
BODY_RETRIES = 2

Progress = Callable[[str], None] | None


# --------------------------------------------------------------------------- environment
def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (env now, or huggingface_hub's import-time constant)."""
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a declared dependency
        return False
    return bool(constants.is_offline_mode())


def hf_home() -> Path:
    v = os.environ.get("HF_HOME")
    if v:
        return Path(os.path.expandvars(os.path.expanduser(v)))
    from huggingface_hub import constants

    return Path(constants.HF_HOME)


def hub_cache_dir() -> Path:
    """The HF hub cache as huggingface_hub would compute it from the environment *now*."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        v = os.environ.get(var)
        if v:
            return Path(os.path.expandvars(os.path.expanduser(v)))
    if os.environ.get("HF_HOME"):
        return hf_home() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    v = os.environ.get("HF_ENDPOINT")
    if v:
        return v.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def _exists(p: Path) -> bool:
    """``p.exists()`` that answers False for names the OS refuses (too long, NUL byte)."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or (os.sep == "\\" and "\\" in model)


# --------------------------------------------------------------------------- JSON files
def _read_json_file(path: Path, *, err: type[MoeInspectError], what: str) -> dict:
    """Read a JSON object from ``path`` (regular file, UTF-8, bounded); one-line errors."""
    where = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise err(f"{where}: no such file") from None
    except OSError as e:
        raise err(f"{where}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise err(f"{where}: not a regular file")
    if st.st_size > MAX_JSON_BYTES:
        raise err(f"{where}: {st.st_size} bytes is too large for a {what}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise err(f"{where}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise err(f"{where}: not UTF-8 text (byte {e.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise err(f"{where}: not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise err(f"{where}: JSON nested too deeply") from None
    except ValueError:  # an integer literal over Python's 4300-digit conversion limit
        raise err(f"{where}: not valid JSON (a number literal is too long)") from None
    if not isinstance(obj, dict):
        raise err(f"{where}: top level is a JSON {_json_type(obj)}, not an object")
    return obj


def _json_type(v: object) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(v), type(v).__name__)


def read_config(path: Path) -> dict:
    return _read_json_file(path, err=ConfigError, what="config")


def _valid_shard_name(name: str) -> bool:
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and not os.path.isabs(name)
        and not re.match(r"^[A-Za-z]:", name)
    )


def read_index(path: Path) -> dict[str, str]:
    """The ``weight_map`` of a safetensors index, validated (plain file names only)."""
    obj = _read_json_file(path, err=CheckpointError, what="safetensors index")
    wm = obj.get("weight_map")
    if not isinstance(wm, dict):
        raise CheckpointError(f"{path}: has no weight_map object")
    for k, v in wm.items():
        if not isinstance(v, str):
            raise CheckpointError(f"{path}: weight_map[{k!r}] is not a file name")
        if not _valid_shard_name(v):
            raise CheckpointError(
                f"{path}: weight_map[{k!r}] = {v!r} is not a plain file name inside the model directory"
            )
    return dict(wm)


def _model_type_arch(config: dict) -> tuple[str | None, str | None]:
    mt = config.get("model_type")
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    return (mt if isinstance(mt, str) else None), arch


# --------------------------------------------------------------------------- first MoE layer
_LAYER_RE = re.compile(r"^(?P<prefix>(?:.*\.)?(?:layers|blocks|h))\.(?P<layer>\d+)\.(?P<rest>.+)$")
_MOE_MODULES = ("mlp", "block_sparse_moe", "ffn", "feed_forward", "moe", "mixer")
# (regex on the part after "layers.N.", group m = the MoE module path) - router-like tensor names,
# REFERENCE.md §4 "Router / bias tensor names".
_ROUTER_PATTERNS: tuple[tuple[re.Pattern, bool], ...] = (
    # (pattern, needs a sibling `experts`)
    (re.compile(r"^(?P<m>(?:.+\.)?(?:" + "|".join(_MOE_MODULES) + r"))\.gate\.weight$"), True),
    (re.compile(r"^(?P<m>.+)\.router\.(?:layer\.)?weight$"), False),  # gpt-oss, Llama-4, DBRX
    (re.compile(r"^(?P<m>.+)\.moe_statics\..+$"), False),  # ERNIE
    (re.compile(r"^(?P<m>.+?)\.(?:gate\.)?e_score_correction_bias$"), False),  # DeepSeek-V3, MiniMax-M2
    (re.compile(r"^(?P<m>.+)\.gate\.(?:bias|expert_bias|tid2eid)$"), False),  # DeepSeek-V4, Ling
)
_DEPRIORITISED = ("mtp", "nextn", "vision", "visual", "audio")


@dataclass
class LayerPlan:
    """Which tensors/shards describe the first MoE layer (from tensor names only)."""

    layer: int
    module: str  # e.g. "model.layers.3.mlp"
    router_tensors: list[str]
    expert0_tensors: list[str]
    files: list[str] = field(default_factory=list)  # shards to read, router shard first
    skipped_files: list[str] = field(default_factory=list)  # needed but over MAX_HUB_SHARDS


def find_first_moe_layer(names, weight_map: dict[str, str] | None = None,
                         max_files: int = MAX_HUB_SHARDS) -> LayerPlan | None:
    """The lowest decoder layer with a router-like tensor, its router/expert-0 tensors and shards.

    MTP / vision layers are only used when no main decoder layer has a router.
    """
    names = list(names)
    with_experts = {n.split(".experts.", 1)[0] for n in names if ".experts." in n}
    candidates: list[tuple[tuple, str, int, str]] = []
    for n in names:
        if ".experts." in n:  # router tensors never live under the experts (the bulk of the names)
            continue
        m = _LAYER_RE.match(n)
        if not m:
            continue
        rest = m.group("rest")
        for pat, needs_experts in _ROUTER_PATTERNS:
            r = pat.match(rest)
            if not r:
                continue
            module = f"{m.group('prefix')}.{m.group('layer')}.{r.group('m')}"
            if needs_experts and module not in with_experts:
                continue
            prefix = m.group("prefix")
            low = prefix.lower()
            rank = (any(d in low for d in _DEPRIORITISED), int(m.group("layer")), prefix)
            candidates.append((rank, module, int(m.group("layer")), n))
            break
    if not candidates:
        return None
    candidates.sort()
    _, module, layer, _ = candidates[0]
    under = [n for n in names if n.startswith(module + ".")]
    experts_pfx = module + ".experts."
    router = [n for n in under if not n.startswith(experts_pfx) and _is_router_like(n[len(module) + 1:])]
    expert0 = []
    for n in under:
        if n.startswith(experts_pfx):
            tail = n[len(experts_pfx):]
            first = tail.split(".", 1)[0]
            if first == "0" or not first.isdigit():
                expert0.append(n)
    plan = LayerPlan(layer=layer, module=module, router_tensors=router, expert0_tensors=expert0)
    if weight_map is not None:
        ordered: list[str] = []
        for group in (router, expert0):
            counts: dict[str, int] = {}
            for n in group:
                f = weight_map.get(n)
                if f is not None:
                    counts[f] = counts.get(f, 0) + 1
            for f in sorted(counts, key=lambda f: (-counts[f], f)):
                if f not in ordered:
                    ordered.append(f)
        plan.files = ordered[:max_files]
        plan.skipped_files = ordered[max_files:]
    return plan


def _is_router_like(rel: str) -> bool:
    """``rel`` is a name relative to the MoE module (e.g. "gate.weight")."""
    return (
        rel.startswith(("gate.", "router.", "moe_statics."))
        or "e_score_correction_bias" in rel
    )


# --------------------------------------------------------------------------- result helpers
@dataclass
class _Run:
    model: str
    revision: str | None
    read_tensors: bool
    progress: Progress
    tried: list[str] = field(default_factory=list)
    bytes_read: int = 0

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)


def _finish(files: ModelFiles, run: _Run, source: str) -> ModelFiles:
    files.ref.source = source
    files.ref.sources_tried = list(run.tried)
    files.ref.bytes_read = run.bytes_read
    if files.ref.model_type is None or files.ref.architecture is None:
        mt, arch = _model_type_arch(files.config)
        files.ref.model_type = files.ref.model_type or mt
        files.ref.architecture = files.ref.architecture or arch
    return files


# --------------------------------------------------------------------------- a. local directory
def load_local_dir(directory: Path, *, model_id: str | None = None, read_tensors: bool = True,
                   progress: Progress = None) -> ModelFiles:
    """Config + every safetensors header of a local model directory."""
    d = directory
    if not (d / CONFIG_FILE).exists():
        raise ConfigError(f"{d}: has no {CONFIG_FILE}")
    config = read_config(d / CONFIG_FILE)
    qcfg = None
    if (d / QUANT_CONFIG_FILE).exists():
        qcfg = _read_json_file(d / QUANT_CONFIG_FILE, err=ConfigError, what="quantization config")
    weight_map = read_index(d / INDEX_FILE) if (d / INDEX_FILE).exists() else None
    mt, arch = _model_type_arch(config)
    ref = ModelRef(id=model_id or str(d), source="local", model_type=mt, architecture=arch,
                   path=str(d.resolve()))
    files = ModelFiles(ref=ref, config=config, hf_quant_config=qcfg, weight_map=weight_map)
    if not read_tensors:
        return files

    if weight_map is not None:
        shard_names = sorted(set(weight_map.values()))
    else:
        shard_names = sorted(p.name for p in d.glob("*.safetensors"))
        if not shard_names:
            files.warnings.append(f"{d}: no *.safetensors files; tensor evidence unavailable")
    missing: list[str] = []
    for name in shard_names:
        p = d / name
        if not _exists(p):
            missing.append(name)
            continue
        if progress:
            progress(f"reading header of {name}")
        files.tensors.update(read_local_header_ex(p, file_name=name).tensors)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        files.warnings.append(f"{d / INDEX_FILE}: {len(missing)} listed shard(s) missing: {shown}")
        plan = find_first_moe_layer(weight_map or {}, weight_map, max_files=10**6)
        if plan is not None:
            lost = [f for f in plan.files if f in missing]
            if lost:
                files.warnings.append(
                    f"{d}: the shard(s) holding the first MoE layer ({plan.module}) are missing: "
                    f"{', '.join(lost)}; tensor evidence is incomplete"
                )
    return files


# --------------------------------------------------------------------------- header cache (JSON)
def _header_cache_path(repo_id: str, commit: str, filename: str) -> Path | None:
    if not re.fullmatch(r"[0-9a-f]{40}", commit or "") or not _valid_shard_name(filename):
        return None
    folder = "models--" + repo_id.replace("/", "--")
    return hf_home() / "moe_inspect" / "headers" / folder / commit / (filename + ".json")


def _load_cached_header(repo_id: str, commit: str, filename: str) -> dict[str, TensorInfo] | None:
    p = _header_cache_path(repo_id, commit, filename)
    if p is None or not p.is_file():
        return None
    try:
        obj = json.loads(p.read_text("utf-8"))
        if not isinstance(obj, dict) or obj.get("version") != HEADER_CACHE_VERSION:
            return None
        return tensors_from_json(obj.get("tensors"), where=str(p), file_name=filename)
    except (OSError, ValueError, CheckpointError):
        return None  # a broken cache entry is just a miss


def _store_cached_header(repo_id: str, commit: str, filename: str, hdr: HeaderResult) -> None:
    p = _header_cache_path(repo_id, commit, filename)
    if p is None:
        return
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": HEADER_CACHE_VERSION, "repo_id": repo_id, "commit": commit,
                                   "file": filename, "header_len": hdr.header_len,
                                   "tensors": tensors_to_json(hdr.tensors)}))
        os.replace(tmp, p)
    except OSError:
        pass  # read-only HF_HOME: the cache is an optimisation only


# --------------------------------------------------------------------------- b. HF cache
@dataclass
class _CacheHit:
    files: ModelFiles
    complete: bool  # tensors found for everything needed (or not needed)
    commit: str
    missing: list[str]


def _cached(repo_id: str, filename: str, revision: str | None, cache_dir: Path):
    from huggingface_hub import try_to_load_from_cache

    try:
        return try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_dir), revision=revision)
    except (ValueError, OSError):
        return None


def _needed_shards(weight_map: dict[str, str] | None) -> tuple[list[str], LayerPlan | None]:
    if weight_map is None:
        return [SINGLE_FILE], None
    plan = find_first_moe_layer(weight_map, weight_map)
    return (plan.files if plan else []), plan


def load_from_cache(repo_id: str, revision: str | None, *, read_tensors: bool = True,
                    progress: Progress = None) -> _CacheHit | None:
    from huggingface_hub import _CACHED_NO_EXIST

    cache_dir = hub_cache_dir()
    cfg_path = _cached(repo_id, CONFIG_FILE, revision, cache_dir)
    if not isinstance(cfg_path, str):
        return None
    snap = Path(cfg_path).parent
    commit = snap.name
    config = read_config(Path(cfg_path))
    q = _cached(repo_id, QUANT_CONFIG_FILE, commit, cache_dir)
    qcfg = _read_json_file(Path(q), err=ConfigError, what="quantization config") if isinstance(q, str) else None
    idx = _cached(repo_id, INDEX_FILE, commit, cache_dir)
    weight_map = read_index(Path(idx)) if isinstance(idx, str) else None
    mt, arch = _model_type_arch(config)
    ref = ModelRef(id=repo_id, source="cache", model_type=mt, architecture=arch, revision=commit, path=str(snap))
    files = ModelFiles(ref=ref, config=config, hf_quant_config=qcfg, weight_map=weight_map)
    if not read_tensors:
        return _CacheHit(files, True, commit, [])
    if idx is None:  # unknown whether there is an index: the Hub would know
        single = _cached(repo_id, SINGLE_FILE, commit, cache_dir)
        if not isinstance(single, str) and _load_cached_header(repo_id, commit, SINGLE_FILE) is None:
            return _CacheHit(files, False, commit, [INDEX_FILE])
    needed, plan = _needed_shards(weight_map)
    if plan is None and weight_map is not None:
        files.warnings.append(f"{repo_id}: no router-like tensor names in {INDEX_FILE}; no headers read")
    missing: list[str] = []
    for name in needed:
        local = _cached(repo_id, name, commit, cache_dir)
        if isinstance(local, str):
            if progress:
                progress(f"reading cached header of {name}")
            files.tensors.update(read_local_header_ex(Path(local), file_name=name).tensors)
            continue
        hdr = _load_cached_header(repo_id, commit, name)
        if hdr is not None:
            files.tensors.update(hdr)
        elif local is _CACHED_NO_EXIST and name == SINGLE_FILE:
            files.warnings.append(f"{repo_id}: no {SINGLE_FILE} or {INDEX_FILE}; tensor evidence unavailable")
        else:
            missing.append(name)
    if plan is not None and plan.skipped_files:
        files.warnings.append(
            f"{repo_id}: the first MoE layer spans {len(plan.files) + len(plan.skipped_files)} shards; "
            f"read {len(plan.files)}"
        )
    return _CacheHit(files, not missing, commit, missing)


# --------------------------------------------------------------------------- c. Hub
class _HubFailure(Exception):
    """A Hub attempt failed; ``error`` is the user-facing error, ``kind`` its category."""

    def __init__(self, error: MoeInspectError, kind: str):
        super().__init__(error.message)
        self.error = error
        self.kind = kind  # "not_found" | "gated" | "unreachable" | "offline" | "missing_config"


def _url_of(exc: BaseException) -> str | None:
    resp = getattr(exc, "response", None)
    try:
        return str(resp.request.url) if resp is not None and resp.request is not None else None
    except Exception:  # noqa: BLE001 - httpx raises if the request is unset
        return None


def _map_hub_exception(exc: BaseException, *, repo_id: str, revision: str | None, what: str) -> _HubFailure:
    """Translate huggingface_hub/httpx errors into one-line moe-inspect errors."""
    from huggingface_hub import errors as hfe

    try:
        import httpx2 as _httpx
    except ImportError:  # pragma: no cover - older huggingface_hub uses httpx
        import httpx as _httpx  # type: ignore[no-redef]

    endpoint = hub_endpoint()
    # hf_hub_download wraps the HEAD error it got into LocalEntryNotFoundError(... ) from err
    seen = 0
    while isinstance(exc, hfe.LocalEntryNotFoundError) and exc.__cause__ is not None and seen < 5:
        exc = exc.__cause__
        seen += 1
    url = _url_of(exc) or f"{endpoint}/{repo_id}"
    rev = revision or "main"
    if isinstance(exc, hfe.GatedRepoError):
        return _HubFailure(HubError(
            f"{repo_id} is gated ({url}): accept the licence on the Hub and set HF_TOKEN"), "gated")
    if isinstance(exc, hfe.DisabledRepoError):
        return _HubFailure(HubError(f"{repo_id}: access to this repository is disabled on the Hub"), "gated")
    if isinstance(exc, hfe.RevisionNotFoundError):
        return _HubFailure(ModelNotFoundError(f"{repo_id}: revision {rev!r} not found on {endpoint}"), "not_found")
    if isinstance(exc, hfe.RepositoryNotFoundError):
        status = getattr(getattr(exc, "response", None), "status_code", 404)
        return _HubFailure(ModelNotFoundError(
            f"{repo_id}: repository not found on {endpoint} (HTTP {status}; private repos need HF_TOKEN)"),
            "not_found")
    if isinstance(exc, hfe.RemoteEntryNotFoundError):
        return _HubFailure(ConfigError(f"{repo_id}@{rev}: has no {what} on {endpoint}"), "missing_config")
    if isinstance(exc, hfe.OfflineModeIsEnabled):
        return _HubFailure(OfflineError(f"{repo_id}: offline mode (HF_HUB_OFFLINE) blocks {url}"), "offline")
    if isinstance(exc, hfe.HfHubHTTPError) and getattr(exc, "response", None) is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return _HubFailure(HubError(
                f"{url}: HTTP {code} (gated or private: accept the licence on the Hub and set HF_TOKEN)"), "gated")
        if code >= 500 or code in (408, 429):
            return _HubFailure(HubError(f"{url}: HTTP {code} from the Hub (after retries)"), "unreachable")
        return _HubFailure(HubError(f"{url}: HTTP {code} from the Hub"), "unreachable")
    if isinstance(exc, _httpx.TimeoutException):
        return _HubFailure(HubError(f"{url}: timed out reading {what} (after retries)"), "unreachable")
    if isinstance(exc, (_httpx.RemoteProtocolError, _httpx.ReadError)):
        # the server answered, then the connection broke mid-body (reset, truncated download)
        return _HubFailure(HubError(f"{url}: the connection broke while downloading {what} "
                                    f"({type(exc).__name__}, after retries)"), "unreachable")
    if isinstance(exc, (_httpx.TransportError, ConnectionError)):
        return _HubFailure(HubError(f"cannot reach {endpoint} for {repo_id} ({type(exc).__name__})"),
                           "unreachable")
    if isinstance(exc, hfe.FileMetadataError):
        return _HubFailure(HubError(f"{url}: not a Hub-compatible answer ({str(exc).splitlines()[0][:120]})"),
                           "unreachable")
    if isinstance(exc, hfe.LocalEntryNotFoundError):
        return _HubFailure(HubError(f"cannot fetch {what} of {repo_id} from {endpoint}"), "unreachable")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return _HubFailure(HubError(f"{repo_id}: {what}: {first}"), "unreachable")


def _preflight(repo_id: str, revision: str | None) -> None:
    """One HEAD of config.json without retries, so an unreachable endpoint fails fast.

    hf_hub_download retries connection errors with backoff (1+2+4+8+8 s in huggingface_hub 2.4)
    before giving up, which an air-gapped machine without HF_HUB_OFFLINE would pay on every
    run. Refused connections / DNS failures end here; 5xx and timeouts are left to
    hf_hub_download's bounded retries; any HTTP error (404, gated) is raised as is.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    try:
        import httpx2 as _httpx
    except ImportError:  # pragma: no cover
        import httpx as _httpx  # type: ignore[no-redef]
    from huggingface_hub import errors as hfe

    url = hf_hub_url(repo_id, CONFIG_FILE, revision=revision, endpoint=hub_endpoint())
    try:
        get_hf_file_metadata(url, timeout=constants.HF_HUB_ETAG_TIMEOUT, endpoint=hub_endpoint(),
                             retry_on_errors=False)
    except _httpx.ConnectError:
        raise
    except (_httpx.TimeoutException, _httpx.TransportError, hfe.FileMetadataError):
        return  # let hf_hub_download retry
    except hfe.HfHubHTTPError as e:
        if e.response is not None and (e.response.status_code >= 500 or e.response.status_code in (408, 429)):
            return
        raise


def _hub_download(repo_id: str, filename: str, revision: str | None, run: _Run, *, optional: bool) -> str | None:
    """hf_hub_download into the HF cache; counts the file size when it was not cached before."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub import errors as hfe

    cache_dir = hub_cache_dir()
    before = _cached(repo_id, filename, revision, cache_dir)
    run.say(f"downloading {filename}")
    try:
        path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=str(cache_dir),
                               endpoint=hub_endpoint(), etag_timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except hfe.RemoteEntryNotFoundError:
        if optional:
            return None
        raise
    if not (isinstance(before, str) and os.path.samefile(before, path)):
        try:
            run.bytes_read += os.path.getsize(path)
        except OSError:
            pass
    return path


def _range_get(url: str, start: int, end: int, headers: dict, *, where: str) -> tuple[bytes, int | None, int]:
    """GET bytes [start, end] (inclusive) of ``url``, reading at most that many body bytes.

    Returns ``(data, total_file_size or None, bytes_received)``. Uses huggingface_hub's session
    and bounded retries (``http_stream_backoff``: 5xx/429/timeouts while connecting); a body cut
    short is retried :data:`BODY_RETRIES` times here (huggingface_hub's stream helper cannot retry
    errors raised while the caller consumes the body). A server ignoring Range is cut off.
    """
    try:
        import httpx2 as _httpx
    except ImportError:  # pragma: no cover - older huggingface_hub uses httpx
        import httpx as _httpx  # type: ignore[no-redef]

    received_total = 0
    for attempt in range(BODY_RETRIES + 1):
        data, total, received, body_error = _range_get_once(url, start, end, headers, where=where, httpx=_httpx)
        received_total += received
        if body_error is None:
            return data, total, received_total
    raise HubError(f"{where}: connection broke while reading bytes {start}-{end} ({body_error})")


def _range_get_once(url, start, end, headers, *, where, httpx):
    from huggingface_hub import constants
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    want = end - start + 1
    hdrs = {**headers, "Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
    chunks: list[bytes] = []
    got = 0
    received = 0
    body_error: str | None = None
    total: int | None = None
    with http_stream_backoff("GET", url, headers=hdrs, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as resp:
        hf_raise_for_status(resp)
        skip = 0
        cr = resp.headers.get("Content-Range")
        if resp.status_code == 206 and cr:
            m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", cr)
            if not m or int(m.group(1)) != start:
                raise HubError(f"{where}: bad Content-Range {cr!r} for bytes={start}-{end}")
            total = int(m.group(3)) if m.group(3) != "*" else None
        elif resp.status_code == 200:
            skip = start  # the server ignored Range: the body starts at byte 0
            cl = resp.headers.get("Content-Length")
            total = int(cl) if cl and cl.isdigit() else None
        else:
            raise HubError(f"{where}: unexpected HTTP {resp.status_code} for a range request")
        try:
            for chunk in resp.iter_raw(1 << 16):
                received += len(chunk)
                if skip:
                    drop = min(skip, len(chunk))
                    chunk = chunk[drop:]
                    skip -= drop
                if chunk:
                    chunks.append(chunk[: want - got])
                    got += len(chunks[-1])
                if got >= want:
                    break  # leaving the context closes the stream: no more bytes are read
        except (httpx.TransportError, httpx.StreamError) as e:
            # must not propagate inside http_stream_backoff's context (it would try to retry and
            # fail with "generator didn't stop after throw()")
            body_error = str(e) or type(e).__name__
    return b"".join(chunks), total, received, body_error


def _hub_read_header(repo_id: str, commit: str, filename: str, run: _Run) -> HeaderResult:
    """Read only the safetensors header of ``filename`` @ ``commit`` with two range requests."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo_id, filename, revision=commit, endpoint=hub_endpoint())
    headers = build_hf_headers()
    where = f"{repo_id}/{filename}"
    run.say(f"reading header of {filename}")
    prefix, total, rcv = _range_get(url, 0, 7, headers, where=where)
    run.bytes_read += rcv
    n = header_length(prefix, where=where, file_size=total)
    body, total2, rcv = _range_get(url, 8, 8 + n - 1, headers, where=where)
    run.bytes_read += rcv
    if len(body) != n:
        raise CheckpointError(f"{where}: got {len(body)} of the {n} header bytes (truncated response)")
    hdr = parse_header_from_bytes(prefix + body, where=where, file_size=total or total2, file_name=filename)
    hdr.bytes_read = 8 + n
    return hdr


def load_from_hub(repo_id: str, revision: str | None, run: _Run) -> ModelFiles:
    """Config/index from the Hub (into the HF cache) + headers of the first-MoE-layer shards."""
    try:
        _preflight(repo_id, revision)
        cfg_path = _hub_download(repo_id, CONFIG_FILE, revision, run, optional=False)
    except MoeInspectError:
        raise
    except Exception as e:  # noqa: BLE001 - mapped to one line below
        raise _map_hub_exception(e, repo_id=repo_id, revision=revision, what=CONFIG_FILE) from None
    snap = Path(cfg_path).parent
    commit = snap.name if re.fullmatch(r"[0-9a-f]{40}", snap.name) else (revision or "main")
    config = read_config(Path(cfg_path))
    try:
        q = _hub_download(repo_id, QUANT_CONFIG_FILE, commit, run, optional=True)
        idx = _hub_download(repo_id, INDEX_FILE, commit, run, optional=True)
    except Exception as e:  # noqa: BLE001
        what = "metadata files"
        raise _map_hub_exception(e, repo_id=repo_id, revision=commit, what=what) from None
    qcfg = _read_json_file(Path(q), err=ConfigError, what="quantization config") if q else None
    weight_map = read_index(Path(idx)) if idx else None
    mt, arch = _model_type_arch(config)
    ref = ModelRef(id=repo_id, source="hub", model_type=mt, architecture=arch, revision=commit, path=str(snap))
    files = ModelFiles(ref=ref, config=config, hf_quant_config=qcfg, weight_map=weight_map)
    if not run.read_tensors:
        return files

    needed, plan = _needed_shards(weight_map)
    if plan is None and weight_map is not None:
        files.warnings.append(f"{repo_id}: no router-like tensor names in {INDEX_FILE}; no headers read")
    if plan is not None and plan.skipped_files:
        files.warnings.append(
            f"{repo_id}: the first MoE layer spans {len(plan.files) + len(plan.skipped_files)} shards; "
            f"read {len(plan.files)}"
        )
    cache_dir = hub_cache_dir()
    for name in needed:
        local = _cached(repo_id, name, commit, cache_dir)
        if isinstance(local, str):
            files.tensors.update(read_local_header_ex(Path(local), file_name=name).tensors)
            continue
        hdr_cached = _load_cached_header(repo_id, commit, name)
        if hdr_cached is not None:
            files.tensors.update(hdr_cached)
            continue
        try:
            hdr = _hub_read_header(repo_id, commit, name, run)
        except MoeInspectError:
            raise
        except Exception as e:  # noqa: BLE001
            from huggingface_hub import errors as hfe

            if isinstance(e, hfe.RemoteEntryNotFoundError):
                if name == SINGLE_FILE and weight_map is None:
                    files.warnings.append(
                        f"{repo_id}: no {SINGLE_FILE} or {INDEX_FILE}; tensor evidence unavailable")
                    continue
                files.warnings.append(
                    f"{repo_id}@{commit[:12]}: {INDEX_FILE} lists {name} but the Hub has no such file; "
                    "tensor evidence is incomplete")
                continue
            raise _map_hub_exception(e, repo_id=repo_id, revision=commit, what=f"the header of {name}") from None
        files.tensors.update(hdr.tensors)
        _store_cached_header(repo_id, commit, name, hdr)
    return files


# --------------------------------------------------------------------------- d. catalog
def _catalog_lookup(model: str) -> tuple[ModelFiles | None, str]:
    try:
        from . import catalog
    except ImportError:
        return None, "catalog: not available"
    try:
        files = catalog.lookup(model)
    except MoeInspectError:
        raise
    if files is None:
        return None, "catalog: not in the built-in catalog"
    return files, f"catalog: snapshot of {files.ref.snapshot_date or 'unknown date'}"


# --------------------------------------------------------------------------- entry point
def load_model(
    model: str,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    use_catalog: bool = True,
    read_tensors: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ModelFiles:
    """Find ``model`` in a local directory, the HF cache, the Hub or the built-in catalog.

    Raises ConfigError / CheckpointError for broken files, ModelNotFoundError when no source
    has the model, HubError for gated/failing Hub access, OfflineError when offline with
    nothing cached and nothing in the catalog.
    """
    if not isinstance(model, str) or not model.strip():
        raise ModelNotFoundError("empty model name: give a local directory or a Hub repo id")
    model = model.strip()
    run = _Run(model, revision, read_tensors, progress)

    # a. local directory
    p = Path(os.path.expanduser(model))
    if _exists(p) or _looks_like_path(model):
        if not _exists(p):
            raise ModelNotFoundError(f"{model}: no such directory")
        if not p.is_dir():
            raise ModelNotFoundError(f"{model}: not a directory (give the model directory that holds config.json)")
        run.say(f"reading local directory {p}")
        files = load_local_dir(p, model_id=model, read_tensors=read_tensors, progress=progress)
        run.tried.append(f"local: {p}")
        if revision is not None:
            files.warnings.append(f"--revision {revision} ignored: {model} is a local directory")
        return _finish(files, run, "local")
    run.tried.append("local: no such directory")

    is_offline = hub_offline() if offline is None else bool(offline)
    hub_failure: _HubFailure | None = None
    cache_hit: _CacheHit | None = None
    valid_repo = True
    # offline with no cache folder for this repo: neither the cache nor the Hub can answer, and
    # huggingface_hub (about 0.1 s to import) is not needed to find that out
    repo_folder = hub_cache_dir() / ("models--" + model.replace("/", "--"))
    skip_hf = is_offline and not repo_folder.is_dir()
    if skip_hf:
        run.tried.append(f"cache: {model} not in {hub_cache_dir()}")
        run.tried.append("hub: skipped (offline)")
    else:
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(model)
        except HFValidationError:
            valid_repo = False
            run.tried.append("cache/hub: not a valid Hub repo id")

    if valid_repo and not skip_hf:
        # b. HF cache
        run.say(f"looking for {model} in the HF cache")
        cache_hit = load_from_cache(model, revision, read_tensors=read_tensors, progress=progress)
        rev_txt = revision or "main"
        if cache_hit is None:
            run.tried.append(f"cache: {model}@{rev_txt} not in {hub_cache_dir()}")
        elif cache_hit.complete:
            run.tried.append(f"cache: {model}@{cache_hit.commit[:12]}")
            return _finish(cache_hit.files, run, "cache")
        else:
            run.tried.append(
                f"cache: {model}@{cache_hit.commit[:12]} has config.json but not the header(s) of "
                f"{', '.join(cache_hit.missing)}"
            )

        # c. Hub
        if is_offline:
            run.tried.append("hub: skipped (offline)")
        else:
            run.say(f"asking {hub_endpoint()} for {model}")
            try:
                files = load_from_hub(model, revision, run)
                n_hdr = len({t.file for t in files.tensors.values()})
                run.tried.append(f"hub: {hub_endpoint()} ({n_hdr} header(s), {run.bytes_read} bytes)")
                return _finish(files, run, "hub")
            except _HubFailure as f:
                hub_failure = f
                run.tried.append(f"hub: {f.error.message}")
                if f.kind == "missing_config":
                    raise f.error from None

        # b'. an incomplete cache entry is still the user's real config
        if cache_hit is not None:
            why = "offline" if is_offline else "Hub unreachable"
            cache_hit.files.warnings.append(
                f"{why}: tensor headers of {', '.join(cache_hit.missing)} are not cached for "
                f"{model}@{cache_hit.commit[:12]}; tensor evidence is incomplete"
            )
            return _finish(cache_hit.files, run, "cache")

    # d. catalog
    if use_catalog:
        files, line = _catalog_lookup(model)
        run.tried.append(line)
        if files is not None:
            date = files.ref.snapshot_date or "unknown date"
            snap = f"using the built-in catalog snapshot of {date}"
            if is_offline:
                files.warnings.insert(0, f"offline: {snap}; the repository may have changed since")
            elif hub_failure is not None and hub_failure.kind in ("unreachable", "offline"):
                files.warnings.insert(0, f"offline: {snap} ({hub_failure.error.message})")
            elif hub_failure is not None:
                files.warnings.insert(0, f"{hub_failure.error.message}; {snap}")
            else:
                files.warnings.insert(0, f"not a Hub repo id: {snap}")
            return _finish(files, run, "catalog")
    else:
        run.tried.append("catalog: disabled")

    tried = "; ".join(run.tried)
    if hub_failure is not None and hub_failure.kind in ("gated", "not_found", "unreachable"):
        err = hub_failure.error
        raise type(err)(err.message, hint=f"tried {tried}")
    if valid_repo and (is_offline or (hub_failure is not None and hub_failure.kind == "offline")):
        raise OfflineError(f"{model}: offline and nothing usable was found (tried {tried})")
    raise ModelNotFoundError(f"{model}: not found (tried {tried})")
