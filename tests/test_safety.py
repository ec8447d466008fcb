"""Safety: moe-inspect never runs a repository's code, never reads outside the model directory
through an index, follows symlinks only to regular files (whose contents are validated like any
other), and writes nothing but the HF cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .fuzz.harness import invoke, meter_safetensors_reads
from .hub_server import FakeHub, isolate_hf
from .modelgen import make_model_dir, moe_config, moe_tensors, write_raw_safetensors

ROOT = Path(__file__).resolve().parents[1]
def run(*argv: str, limit: float = 60.0):
    return invoke(list(argv), limit=limit)


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf_home", offline=True)
    return tmp_path / "hf_home"


# ------------------------------------------------------------------------------ remote code
def _remote_code_dir(root: Path, marker: Path) -> Path:
    """A model dir whose config asks for remote code, with .py files that would leave a marker."""
    cfg = moe_config(model_type="evil_moe", architectures=["EvilForCausalLM"],
                     auto_map={"AutoConfig": "configuration_evil.EvilConfig",
                               "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
                     trust_remote_code=True)
    d = make_model_dir(root / "evil", cfg, moe_tensors())
    payload = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"
    for name in ("configuration_evil.py", "modeling_evil.py", "__init__.py", "sitecustomize.py", "config.py",
                 "moe_inspect.py", "transformers.py", "torch.py"):
        (d / name).write_text(payload)
    return d


@pytest.mark.parametrize("cmd", ["detect", "check", "verify"])
def test_repository_code_is_never_imported(tmp_path, hf_home, cmd, monkeypatch):
    if cmd == "verify":
        pytest.importorskip("torch")
    marker = tmp_path / "MARKER"
    d = _remote_code_dir(tmp_path, marker)
    monkeypatch.chdir(d)  # even with the model dir as the working directory
    before = set(sys.modules)
    extra = ["--gpu", "B200"] if cmd == "check" else []
    r = run(cmd, str(d), *extra, "--json")
    assert r.exit_code in (0, 1, 2)
    assert not marker.exists(), f"{cmd} executed a file of the repository"
    new = [m for m in set(sys.modules) - before
           if getattr(sys.modules[m], "__file__", None) and str(d) in str(sys.modules[m].__file__)]
    assert not new, new


def test_real_process_started_inside_the_model_dir_runs_no_repo_file(tmp_path, hf_home):
    """The installed ``moe-inspect`` script, started with the model directory as cwd: a
    moe_inspect.py/transformers.py/torch.py/sitecustomize.py there must not run. (``python -m``
    itself puts the cwd first on sys.path — Python's behaviour, documented in docs/hardening.md.)"""
    script = Path(sys.executable).parent / "moe-inspect"
    if not script.exists():
        pytest.skip("moe-inspect console script not installed")
    marker = tmp_path / "MARKER"
    d = _remote_code_dir(tmp_path, marker)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    p = subprocess.run([str(script), "detect", ".", "--json"], cwd=d, env=env, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert not marker.exists(), "a file of the model directory was executed"


def test_no_trust_remote_code_anywhere_in_the_package():
    hits = []
    for py in (ROOT / "moe_inspect").rglob("*.py"):
        text = py.read_text("utf-8")
        if re.search(r"trust_remote_code\s*=\s*True", text):
            hits.append(str(py))
        if re.search(r"\b(exec|runpy|spec_from_file_location|SourceFileLoader)\b", text):
            hits.append(f"{py}: dynamic code loading")
    assert not hits, hits


# ------------------------------------------------------------------------------ index paths
@pytest.mark.parametrize("bad", ["../outside.safetensors", "/etc/passwd", "sub/../../outside.safetensors",
                                 "..\\outside.safetensors", "..", "C:outside.safetensors", "x\x00y"])
def test_weight_map_must_name_files_inside_the_model_dir(tmp_path, hf_home, bad):
    tensors = moe_tensors(layers=2, experts=4)
    d = make_model_dir(tmp_path / "m", moe_config(num_hidden_layers=2, n_routed_experts=4, n_group=1, topk_group=1),
                       tensors, shards=2)
    outside = write_raw_safetensors(tmp_path / "outside.safetensors", {"secret": {"dtype": "F32", "shape": [1],
                                                                                  "data_offsets": [0, 4]}},
                                    data_size=4)
    idx = d / "model.safetensors.index.json"
    obj = json.loads(idx.read_text())
    router = "model.layers.1.mlp.gate.weight"
    obj["weight_map"][router] = bad
    idx.write_text(json.dumps(obj))
    with meter_safetensors_reads(pytest.MonkeyPatch()) as meter:
        r = run("detect", str(d))
    assert r.exit_code == 2
    assert "is not a plain file name inside the model directory" in r.stderr, r.stderr
    assert meter.bytes.get(os.path.realpath(outside), 0) == 0


# ------------------------------------------------------------------------------ symlinks
def _model(tmp_path: Path) -> Path:
    return make_model_dir(tmp_path / "m", moe_config(), moe_tensors())


def test_symlinked_shard_to_a_regular_file_is_read_and_validated(tmp_path, hf_home):
    d = _model(tmp_path)
    blob = tmp_path / "blobs" / "abc"
    blob.parent.mkdir()
    (d / "model.safetensors").rename(blob)
    (d / "model.safetensors").symlink_to(blob)
    r = run("detect", str(d), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["tensors"]["router_weight"] is not None
    # the target's contents are validated like any other file
    write_raw_safetensors(blob, {"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 999]}}, data_size=8)
    r = run("detect", str(d))
    assert r.exit_code == 2 and "model.safetensors" in r.stderr and "data_offsets" in r.stderr, r.stderr


@pytest.mark.parametrize("target", ["/dev/zero", "dir", "fifo", "dangling", "loop"])
@pytest.mark.parametrize("which", ["model.safetensors", "config.json"])
def test_symlinks_to_non_regular_files_are_refused(tmp_path, hf_home, target, which):
    d = _model(tmp_path)
    link = d / which
    link.unlink()
    if target == "/dev/zero":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        link.symlink_to("/dev/zero")
    elif target == "dir":
        link.symlink_to(tmp_path)
    elif target == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs")
        os.mkfifo(tmp_path / "fifo")  # opening it for reading would block forever
        link.symlink_to(tmp_path / "fifo")
    elif target == "dangling":
        link.symlink_to(tmp_path / "nothing-here")
    else:
        link.symlink_to(link)  # ELOOP
    r = run("detect", str(d), limit=20)
    if which == "model.safetensors" and target in ("dangling", "loop"):
        assert r.exit_code in (0, 2), r.stderr  # as good as missing: no evidence (a warning), or a clear error
        return
    assert r.exit_code == 2, r.stdout
    assert which in r.stderr, r.stderr


# ------------------------------------------------------------------------------ writes
def _tree_state(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[rel] = "dir"
    return out


def test_detect_on_a_local_dir_writes_nothing(tmp_path):
    """A real process with HOME, HF_HOME, XDG_CACHE_HOME, TMPDIR and the cwd in temp dirs: after
    `detect` and `check` on a local directory, none of them (nor the model dir) changed."""
    home, hf, xdg, tmp, cwd = (tmp_path / n for n in ("home", "hf_home", "xdg", "tmp", "cwd"))
    for p in (home, hf, xdg, tmp, cwd):
        p.mkdir()
    d = _model(tmp_path)
    watched = {"home": home, "hf_home": hf, "xdg": xdg, "tmp": tmp, "cwd": cwd, "model": d}
    before = {k: _tree_state(v) for k, v in watched.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "XDG_"))}
    env.update(HOME=str(home), HF_HOME=str(hf), XDG_CACHE_HOME=str(xdg), TMPDIR=str(tmp), PYTHONPATH=str(ROOT),
               PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1")
    cmds = [["detect", str(d), "--json"], ["detect", str(d)], ["check", str(d), "--gpu", "all", "--json"]]
    for argv in cmds:
        p = subprocess.run([sys.executable, "-m", "moe_inspect.cli.app", *argv], cwd=cwd, env=env,
                           capture_output=True, timeout=120)
        assert p.returncode in (0, 1), p.stderr.decode()[-2000:]
    after = {k: _tree_state(v) for k, v in watched.items()}
    for k in watched:
        assert after[k] == before[k], f"{k} changed: {set(after[k]) ^ set(before[k])}"


def test_detect_from_the_hub_writes_only_into_the_hf_cache(tmp_path, monkeypatch):
    src = make_model_dir(tmp_path / "src", moe_config(num_hidden_layers=3), moe_tensors(layers=3), shards=2)
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    with FakeHub() as hub:
        hub.add_repo("org/moe", src)
        isolate_hf(monkeypatch, tmp_path / "hf_home", endpoint=hub.url)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.chdir(cwd)
        before_src, before_top = _tree_state(src), sorted(p.name for p in tmp_path.iterdir() if p.name != "hf_home")
        r = run("detect", "org/moe", "--json")
        assert r.exit_code == 0, r.stderr
    assert _tree_state(home) == {} and _tree_state(cwd) == {}
    assert _tree_state(src) == before_src
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "hf_home") == before_top
    written = _tree_state(tmp_path / "hf_home")
    assert written and all(k.startswith(("hub", "moe_inspect")) for k in written), sorted(written)
