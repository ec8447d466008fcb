"""Model sources: local directories, the HF cache, the catalog, and bad inputs (no network)."""

from __future__ import annotations

import json
import importlib.util

import pytest

from moe_inspect.errors import CheckpointError, ConfigError, ModelNotFoundError, OfflineError
from moe_inspect.sources import find_first_moe_layer, load_model

try:
    from .hub_server import FakeHub, isolate_hf
    from .modelgen import make_model_dir, moe_config, moe_tensors, write_raw_safetensors
except ImportError:  # tests/ not a package
    from hub_server import FakeHub, isolate_hf
    from modelgen import make_model_dir, moe_config, moe_tensors, write_raw_safetensors


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty, isolated HF_HOME with an unreachable endpoint."""
    home = tmp_path / "hf_home"
    isolate_hf(monkeypatch, home)
    return home


# ----------------------------------------------------------------------------- local directories
def test_local_single_file(tmp_path, hf_home):
    d = make_model_dir(tmp_path / "m", moe_config(), moe_tensors())
    f = load_model(str(d))
    assert f.ref.source == "local" and f.ref.path == str(d.resolve())
    assert f.ref.model_type == "deepseek_v3" and f.ref.architecture == "DeepseekV3ForCausalLM"
    assert f.ref.bytes_read == 0 and f.ref.sources_tried == [f"local: {d}"]
    assert f.config["n_routed_experts"] == 8 and f.weight_map is None
    assert f.tensors["model.layers.1.mlp.gate.weight"].shape == [8, 64]
    assert f.tensors["model.layers.1.mlp.gate.weight"].file == "model.safetensors"
    assert f.warnings == []


def test_local_sharded_with_quant_config(tmp_path, hf_home):
    tensors = moe_tensors()
    d = make_model_dir(tmp_path / "m", moe_config(), tensors, shards=3,
                       hf_quant_config={"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4"}})
    f = load_model(str(d))
    assert f.hf_quant_config["quantization"]["quant_algo"] == "NVFP4"
    assert set(f.tensors) == set(tensors) and set(f.weight_map) == set(tensors)
    assert {t.file for t in f.tensors.values()} == {f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)}


def test_relative_path_and_progress(tmp_path, hf_home, monkeypatch):
    make_model_dir(tmp_path / "m", moe_config(), moe_tensors())
    monkeypatch.chdir(tmp_path)
    seen: list[str] = []
    f = load_model("./m", progress=seen.append)
    assert f.ref.source == "local" and any("model.safetensors" in s for s in seen)


def test_read_tensors_false_reads_config_only(tmp_path, hf_home):
    d = make_model_dir(tmp_path / "m", moe_config(), moe_tensors())
    (d / "model.safetensors").write_bytes(b"garbage")  # never opened
    f = load_model(str(d), read_tensors=False)
    assert f.tensors == {} and f.config["model_type"] == "deepseek_v3"


def test_missing_shard_is_a_warning_naming_the_router_shard(tmp_path, hf_home):
    tensors = moe_tensors()
    d = make_model_dir(tmp_path / "m", moe_config(), tensors, shards=4)
    wm = json.loads((d / "model.safetensors.index.json").read_text())["weight_map"]
    router_shard = wm["model.layers.1.mlp.gate.weight"]
    (d / router_shard).unlink()
    f = load_model(str(d))
    assert "model.layers.1.mlp.gate.weight" not in f.tensors
    assert f.tensors  # tensors of the other shards are still there
    assert any("missing" in w and router_shard in w for w in f.warnings)
    assert any("first MoE layer" in w for w in f.warnings)


# ----------------------------------------------------------------------------- bad inputs
def test_no_such_directory(tmp_path, hf_home):
    with pytest.raises(ModelNotFoundError, match="no such directory"):
        load_model(str(tmp_path / "nope"))


def test_no_config_json(tmp_path, hf_home):
    (tmp_path / "m").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        load_model(str(tmp_path / "m"))


@pytest.mark.parametrize(
    "content, expect",
    [
        (b"{\"model_type\": ", "not valid JSON"),
        (b"[1, 2, 3]", "top level is a JSON array, not an object"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"null", "JSON null"),
    ],
)
def test_bad_config_json(tmp_path, hf_home, content, expect):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_bytes(content)
    with pytest.raises(ConfigError) as ei:
        load_model(str(d))
    assert expect in ei.value.message and str(d / "config.json") in ei.value.message
    assert "\n" not in ei.value.message


@pytest.mark.parametrize("bad", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors", "..", ""])
def test_index_paths_must_stay_inside(tmp_path, hf_home, bad):
    d = make_model_dir(tmp_path / "m", moe_config(), moe_tensors(), shards=2)
    idx = d / "model.safetensors.index.json"
    obj = json.loads(idx.read_text())
    obj["weight_map"]["model.norm.weight"] = bad
    idx.write_text(json.dumps(obj))
    with pytest.raises(CheckpointError, match="not a plain file name"):
        load_model(str(d))


def test_index_without_weight_map(tmp_path, hf_home):
    d = make_model_dir(tmp_path / "m", moe_config(), moe_tensors(), shards=2)
    (d / "model.safetensors.index.json").write_text('{"metadata": {}}')
    with pytest.raises(CheckpointError, match="no weight_map"):
        load_model(str(d))


def test_hostile_shard_header(tmp_path, hf_home):
    d = make_model_dir(tmp_path / "m", moe_config(), {})
    write_raw_safetensors(d / "model.safetensors", "{}", length=1 << 40)
    with pytest.raises(CheckpointError, match="model.safetensors: safetensors header length"):
        load_model(str(d))


def test_invalid_repo_id_is_not_found(hf_home):
    with pytest.raises(ModelNotFoundError, match="not a valid Hub repo id"):
        load_model("not//a repo", use_catalog=False)


# ----------------------------------------------------------------------------- first MoE layer
@pytest.mark.parametrize(
    "names, layer, module",
    [
        (["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.gate.weight",
          "model.layers.1.mlp.experts.0.up_proj.weight", "model.layers.2.mlp.gate.weight",
          "model.layers.2.mlp.experts.0.up_proj.weight"], 1, "model.layers.1.mlp"),
        (["model.layers.0.block_sparse_moe.gate.weight", "model.layers.0.block_sparse_moe.experts.0.w1.weight",
          "model.layers.0.block_sparse_moe.e_score_correction_bias"], 0, "model.layers.0.block_sparse_moe"),
        (["layers.3.ffn.gate.bias", "layers.3.ffn.gate.weight", "layers.2.ffn.w1.weight"], 3, "layers.3.ffn"),
        (["model.layers.5.mlp.router.weight", "model.layers.5.mlp.router.bias",
          "model.layers.5.mlp.experts.gate_up_proj_blocks"], 5, "model.layers.5.mlp"),
        (["model.layers.2.mlp.moe_statics.e_score_correction_bias", "model.layers.2.mlp.gate.weight"], 2,
         "model.layers.2.mlp"),
        # a dense MLP's gate_proj / a gate without experts is not a router
        (["model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.gate.weight"], None, None),
        # MTP layers only count when the decoder has no router
        (["model.mtp.layers.0.mlp.gate.weight", "model.mtp.layers.0.mlp.experts.0.w1.weight",
          "model.layers.4.mlp.gate.weight", "model.layers.4.mlp.experts.0.w1.weight"], 4, "model.layers.4.mlp"),
    ],
)
def test_find_first_moe_layer(names, layer, module):
    plan = find_first_moe_layer(names)
    if layer is None:
        assert plan is None
    else:
        assert (plan.layer, plan.module) == (layer, module)


def test_plan_reads_router_shard_first_and_at_most_two():
    wm = {
        "model.layers.3.mlp.experts.0.gate_proj.weight": "b.safetensors",
        "model.layers.3.mlp.experts.0.down_proj.weight": "c.safetensors",
        "model.layers.3.mlp.experts.0.up_proj.weight": "c.safetensors",
        "model.layers.3.mlp.gate.weight": "a.safetensors",
        "model.layers.3.mlp.experts.1.gate_proj.weight": "d.safetensors",
    }
    plan = find_first_moe_layer(wm, wm)
    assert plan.files == ["a.safetensors", "c.safetensors"] and plan.skipped_files == ["b.safetensors"]
    assert "model.layers.3.mlp.experts.1.gate_proj.weight" not in plan.expert0_tensors


# ----------------------------------------------------------------------------- cache + offline
def _populate_cache(tmp_path, monkeypatch, home, repo="org/moe", shards=3):
    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), shards=shards)
    with FakeHub() as hub:
        hub.add_repo(repo, d)
        isolate_hf(monkeypatch, home, endpoint=hub.url)
        online = load_model(repo)
    assert online.ref.source == "hub"
    return online


def test_cache_after_download_works_offline(tmp_path, monkeypatch):
    home = tmp_path / "home"
    online = _populate_cache(tmp_path, monkeypatch, home)
    isolate_hf(monkeypatch, home, offline=True)  # server gone, HF_HUB_OFFLINE=1
    f = load_model("org/moe")
    assert f.ref.source == "cache" and f.ref.bytes_read == 0
    assert f.ref.revision == online.ref.revision and len(f.ref.revision) == 40
    assert f.config == online.config and f.weight_map == online.weight_map
    assert set(f.tensors) == set(online.tensors) and "model.layers.1.mlp.gate.weight" in f.tensors
    assert f.ref.sources_tried[-1].startswith("cache: org/moe@")
    # the headers came from the JSON header cache, written only under $HF_HOME/moe_inspect
    assert list((home / "moe_inspect" / "headers").rglob("*.safetensors.json"))


def test_cache_with_real_cached_shards_and_explicit_revision(tmp_path, monkeypatch):
    from huggingface_hub import hf_hub_download

    home = tmp_path / "home"
    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), shards=1)
    with FakeHub() as hub:
        hub.add_repo("org/one", d, revisions={"v1": "1" * 40}, commit="1" * 40)
        isolate_hf(monkeypatch, home, endpoint=hub.url)
        for fn in ("config.json", "model.safetensors"):
            hf_hub_download("org/one", fn, revision="v1")
    isolate_hf(monkeypatch, home, offline=True)
    f = load_model("org/one", revision="v1")
    assert f.ref.source == "cache" and f.ref.revision == "1" * 40
    assert "model.layers.1.mlp.gate.weight" in f.tensors
    # an unknown revision is not in the cache
    with pytest.raises(OfflineError):
        load_model("org/one", revision="v2", use_catalog=False)


def test_cache_config_without_headers_offline_warns(tmp_path, monkeypatch):
    from huggingface_hub import hf_hub_download

    home = tmp_path / "home"
    d = make_model_dir(tmp_path / "src", moe_config(), moe_tensors(), shards=2)
    with FakeHub() as hub:
        hub.add_repo("org/part", d)
        isolate_hf(monkeypatch, home, endpoint=hub.url)
        for fn in ("config.json", "model.safetensors.index.json"):
            hf_hub_download("org/part", fn)
    isolate_hf(monkeypatch, home, offline=True)
    f = load_model("org/part")
    assert f.ref.source == "cache" and f.tensors == {} and f.weight_map
    assert any(w.startswith("offline: tensor headers of") for w in f.warnings)


def test_offline_with_nothing_cached(hf_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as ei:
        load_model("org/never-seen", use_catalog=False)
    assert "offline and not in the HF cache" in ei.value.message and "\n" not in ei.value.message
    assert ei.value.hint == "tried local, cache, hub, catalog"


def test_offline_parameter_skips_the_hub(hf_home):
    with pytest.raises(OfflineError):
        load_model("org/never-seen", offline=True, use_catalog=False)


# ----------------------------------------------------------------------------- catalog
def test_catalog_answers_offline_with_a_warning(hf_home):
    from moe_inspect import catalog

    entries = catalog.entries()
    assert len(entries) == 22  # ../shared/facts/models.json: 22 verified models
    model_id = entries[0].id
    f = load_model(model_id, offline=True)
    assert f.ref.source == "catalog"
    assert f.warnings[0].startswith("offline: using the built-in catalog snapshot of ")
    assert f.ref.sources_tried[-1].startswith("catalog: snapshot of")
    assert "hub: skipped (offline)" in f.ref.sources_tried
    with pytest.raises(OfflineError):
        load_model(model_id, offline=True, use_catalog=False)


def test_catalog_answers_when_hub_unreachable(hf_home):
    from moe_inspect import catalog

    model_id = catalog.entries()[0].id
    f = load_model(model_id)  # endpoint is a closed port
    assert f.ref.source == "catalog"
    assert f.warnings[0].startswith("offline: using the built-in catalog snapshot") and "cannot reach" in f.warnings[0]
    assert any(t.startswith("hub: cannot reach") for t in f.ref.sources_tried)
