"""The Hub source, end to end: real huggingface_hub 2.4 client -> a local fake Hub (tests/hub_server.py)."""

from __future__ import annotations

import importlib.util
import json
import struct

import pytest

from moe_inspect.errors import CheckpointError, ConfigError, HubError, ModelNotFoundError
from moe_inspect.sources import load_model

try:
    from .hub_server import FakeHub, isolate_hf
    from .modelgen import make_model_dir, moe_config, moe_tensors, shard_name, write_raw_safetensors
except ImportError:  # tests/ not a package
    from hub_server import FakeHub, isolate_hf
    from modelgen import make_model_dir, moe_config, moe_tensors, shard_name, write_raw_safetensors


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with FakeHub() as h:
        isolate_hf(monkeypatch, tmp_path / "hf_home", endpoint=h.url)
        yield h


def _header_len(path) -> int:
    with open(path, "rb") as f:
        return struct.unpack("<Q", f.read(8))[0]


def _resolve_gets(hub) -> list:
    return [r for r in hub.log if r.method == "GET" and "/resolve/" in r.path]


# ----------------------------------------------------------------------------- the bounded read
def test_100_shard_repo_reads_config_index_and_at_most_two_headers(hub, tmp_path):
    tensors = moe_tensors(layers=40, experts=16)  # 1.4k tensors over 100 shards
    d = make_model_dir(tmp_path / "src", moe_config(num_hidden_layers=40, n_routed_experts=16), tensors, shards=100)
    hub.add_repo("big/moe", d)

    f = load_model("big/moe")

    assert f.ref.source == "hub" and len(f.ref.revision) == 40
    assert len(f.weight_map) == len(tensors)
    assert f.tensors["model.layers.1.mlp.gate.weight"].shape == [16, 64]
    assert f.tensors["model.layers.1.mlp.experts.0.down_proj.weight"].shape == [64, 32]

    shard_reqs = [r for r in _resolve_gets(hub) + hub.requests(method="GET")
                  if r.filename and r.filename.endswith(".safetensors")]
    shards_read = sorted({r.filename for r in shard_reqs})
    assert 1 <= len(shards_read) <= 2
    full_files = {r.filename for r in hub.requests(method="GET") if r.range is None and r.status == 200}
    assert full_files == {"config.json", "model.safetensors.index.json"}
    # every shard byte range lies inside [0, 8 + N): not a single weight byte was asked for or sent
    header_bytes = 0
    for name in shards_read:
        n = _header_len(d / name)
        header_bytes += 8 + n
        served = [r for r in shard_reqs if r.filename == name and r.status == 206]
        assert sorted(r.range for r in served) == [(0, 7), (8, 8 + n - 1)]
        assert sum(r.body_bytes for r in served) == 8 + n
    # bytes_read = the two metadata files + the headers, exactly
    meta = (d / "config.json").stat().st_size + (d / "model.safetensors.index.json").stat().st_size
    assert f.ref.bytes_read == meta + header_bytes
    assert f.ref.sources_tried[-1].startswith(f"hub: {hub.url} (")

    # a re-run is answered by the cache: no request at all
    hub.clear_log()
    again = load_model("big/moe")
    assert again.ref.source == "cache" and again.ref.bytes_read == 0 and hub.log == []
    assert set(again.tensors) == set(f.tensors)


def test_router_and_experts_in_different_shards(hub, tmp_path):
    tensors = moe_tensors(layers=3)
    shard_of = {k: 0 for k in tensors}
    shard_of["model.layers.1.mlp.gate.weight"] = 3
    shard_of["model.layers.1.mlp.gate.e_score_correction_bias"] = 3
    for k in tensors:
        if ".experts.0." in k:
            shard_of[k] = 5
    d = make_model_dir(tmp_path / "src", moe_config(num_hidden_layers=3), tensors, shards=8, shard_of=shard_of)
    hub.add_repo("org/split", d)
    f = load_model("org/split")
    assert sorted({r.filename for r in _resolve_gets(hub) if r.filename.endswith(".safetensors")}) == [
        shard_name(4, 8), shard_name(6, 8)]
    assert "model.layers.1.mlp.experts.0.up_proj.weight" in f.tensors
    assert "model.layers.1.mlp.gate.e_score_correction_bias" in f.tensors


def test_single_file_repo_and_quant_config(hub, tmp_path):
    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), hf_quant_config={"producer": {"name": "modelopt"}})
    hub.add_repo("org/one", d)
    f = load_model("org/one", progress=lambda m: None)
    assert f.hf_quant_config == {"producer": {"name": "modelopt"}} and f.weight_map is None
    assert {t.file for t in f.tensors.values()} == {"model.safetensors"}
    n = _header_len(d / "model.safetensors")
    assert hub.body_bytes("model.safetensors") == 8 + n


def test_revision_is_pinned_to_the_commit(hub, tmp_path):
    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), shards=2)
    hub.add_repo("org/rev", d, commit="a" * 40, revisions={"v2": "a" * 40})
    f = load_model("org/rev", revision="v2")
    assert f.ref.revision == "a" * 40
    later = [r for r in hub.log if r.filename != "config.json" and "/resolve/" in r.path]
    assert later and all(r.revision == "a" * 40 for r in later)


def test_server_ignoring_range_is_cut_off(hub, tmp_path):
    t = {"model.layers.0.mlp.gate.weight": ("BF16", [8, 64]),
         "model.layers.0.mlp.experts.0.w1.weight": ("BF16", [4096, 4096])}  # 32 MiB of weights after the header
    d = make_model_dir(tmp_path / "src", moe_config(), t)
    hub.add_repo("org/norange", d)
    hub.fault("/_cdn/*", ignore_range=True)
    f = load_model("org/norange")
    assert "model.layers.0.mlp.gate.weight" in f.tensors
    assert f.ref.bytes_read < 2_000_000  # stopped reading long before the 32 MiB body ended


# ----------------------------------------------------------------------------- errors
def test_repo_not_found(hub):
    with pytest.raises(ModelNotFoundError) as ei:
        load_model("org/missing", use_catalog=False)
    assert "org/missing: repository not found" in ei.value.message and "\n" not in ei.value.message


def test_revision_not_found(hub, tmp_path):
    hub.add_repo("org/m", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    with pytest.raises(ModelNotFoundError, match="revision 'nope' not found"):
        load_model("org/m", revision="nope", use_catalog=False)


@pytest.mark.parametrize("status", [401, 403])
def test_gated_repo(hub, tmp_path, status):
    hub.add_repo("org/gated", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()), gated=status)
    with pytest.raises(HubError) as ei:
        load_model("org/gated", use_catalog=False)
    assert "gated" in ei.value.message and "HF_TOKEN" in ei.value.message and "\n" not in ei.value.message


def test_plain_403_without_error_code(hub, tmp_path):
    hub.add_repo("org/m", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    hub.fault("config.json", status=403)
    with pytest.raises(HubError, match="HTTP 403 .*HF_TOKEN"):
        load_model("org/m", use_catalog=False)


def test_500_on_config_after_bounded_retries(hub, tmp_path):
    hub.add_repo("org/m", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    hub.fault("config.json", status=500)
    with pytest.raises(HubError) as ei:
        load_model("org/m", use_catalog=False)
    assert "HTTP 500" in ei.value.message and "config.json" in ei.value.message
    n = len(hub.requests("config.json"))
    assert 2 <= n <= 10  # huggingface_hub retried, boundedly


def test_500_on_shard_header_names_the_file(hub, tmp_path):
    hub.add_repo("org/m", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    hub.fault("model.safetensors", status=503)
    with pytest.raises(HubError, match="model.safetensors: HTTP 503"):
        load_model("org/m", use_catalog=False)


def test_transient_500_is_retried(hub, tmp_path):
    hub.add_repo("org/m", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    hub.fault("model.safetensors", status=502, times=1)
    f = load_model("org/m", use_catalog=False)
    assert f.ref.source == "hub" and f.tensors


def test_timeout_on_header_read(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.2)
    hub.add_repo("org/slow", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    hub.fault("/_cdn/*", delay=0.5)
    with pytest.raises(HubError, match="timed out reading the header of model.safetensors"):
        load_model("org/slow", use_catalog=False)


def test_truncated_header_body(hub, tmp_path):
    hub.add_repo("org/cut", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    hub.fault("/_cdn/*", truncate=100)
    with pytest.raises(HubError) as ei:
        load_model("org/cut", use_catalog=False)
    assert "org/cut/model.safetensors: connection broke" in ei.value.message and "\n" not in ei.value.message


def test_truncated_body_once_is_retried(hub, tmp_path):
    hub.add_repo("org/cut1", make_model_dir(tmp_path / "src", moe_config(), moe_tensors()))
    hub.fault("/_cdn/*", truncate=100, times=2)  # the 8-byte read, then the header read is cut once
    f = load_model("org/cut1", use_catalog=False)
    assert "model.layers.1.mlp.gate.weight" in f.tensors


def test_repo_without_config_json(hub, tmp_path):
    hub.add_repo("org/noconf", {"README.md": "hi"})
    with pytest.raises(ConfigError, match="has no config.json"):
        load_model("org/noconf", use_catalog=False)


def test_hostile_header_on_the_hub(hub, tmp_path):
    d = make_model_dir(tmp_path / "src", moe_config(), {})
    write_raw_safetensors(d / "model.safetensors", "{}", length=200_000_000)
    hub.add_repo("org/evil", d)
    with pytest.raises(CheckpointError, match="org/evil/model.safetensors: safetensors header length"):
        load_model("org/evil", use_catalog=False)
    assert hub.body_bytes("model.safetensors") == 8  # refused after the length prefix


def test_hostile_index_on_the_hub(hub, tmp_path):
    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), shards=2)
    idx = d / "model.safetensors.index.json"
    obj = json.loads(idx.read_text())
    obj["weight_map"]["model.layers.1.mlp.gate.weight"] = "../../../../etc/passwd"
    idx.write_text(json.dumps(obj))
    hub.add_repo("org/evilidx", d)
    with pytest.raises(CheckpointError, match="not a plain file name"):
        load_model("org/evilidx", use_catalog=False)


def test_unreachable_endpoint(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "home")  # closed port
    with pytest.raises(HubError, match="cannot reach http://127.0.0.1:9"):
        load_model("org/anything", use_catalog=False)


def test_gated_repo_in_catalog_falls_back_with_a_warning(hub, tmp_path):
    from moe_inspect import catalog

    model_id = catalog.entries()[0].id
    hub.add_repo(model_id, make_model_dir(tmp_path / "src", moe_config(), moe_tensors()), gated=401)
    f = load_model(model_id)
    assert f.ref.source == "catalog"
    assert "gated" in f.warnings[0] and "using the built-in catalog snapshot of" in f.warnings[0]


def test_index_listing_a_missing_shard_warns(hub, tmp_path):
    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), shards=3)
    wm = json.loads((d / "model.safetensors.index.json").read_text())["weight_map"]
    router_shard = wm["model.layers.1.mlp.gate.weight"]
    (d / router_shard).unlink()
    hub.add_repo("org/holes", d)
    f = load_model("org/holes", use_catalog=False)
    assert f.ref.source == "hub"
    assert any(router_shard in w and "no such file" in w for w in f.warnings)


def test_cached_config_without_headers_fetches_only_the_headers(hub, tmp_path):
    from huggingface_hub import hf_hub_download

    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), shards=3)
    hub.add_repo("org/half", d)
    for fn in ("config.json", "model.safetensors.index.json"):
        hf_hub_download("org/half", fn)
    hub.clear_log()
    f = load_model("org/half")
    assert f.ref.source == "hub" and "model.layers.1.mlp.gate.weight" in f.tensors
    assert "has config.json but not the header(s)" in f.ref.sources_tried[1]
    # metadata files were only re-validated (HEAD), not downloaded again
    assert {r.filename for r in hub.requests(method="GET") if r.range is None} == set()
    shard_bytes = sum(8 + _header_len(d / n) for n in {t.file for t in f.tensors.values()})
    assert f.ref.bytes_read == shard_bytes
