"""--autotune results kept in FlashInfer's cache: which autotune() call each run makes, and what the
output says about tuning (layer/tuning.py)."""

from __future__ import annotations

import contextlib
import json

from moe_inspect.layer import tuning as TU


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, tune_mode, cache=None):
        self.calls.append((tune_mode, cache))
        return contextlib.nullcontext()


def test_cache_file_is_per_flashinfer_version_and_arch(monkeypatch, tmp_path):
    monkeypatch.setenv(TU.ENV_DIR, str(tmp_path))
    assert TU.cache_file("0.7.2.post1", 90) == tmp_path / "flashinfer-0.7.2.post1-sm90.json"
    assert TU.cache_file("0.7.2+cu130", 100).name == "flashinfer-0.7.2_cu130-sm100.json"


def test_autotune_tunes_into_the_cache_file(tmp_path):
    rec, f = _Recorder(), tmp_path / "sub" / "t.json"
    with TU.tune_context(True, f, fi_autotune=rec):
        pass
    assert rec.calls == [(True, str(f))] and f.parent.is_dir()


def test_a_later_run_reuses_the_file_without_tuning(tmp_path):
    rec, f = _Recorder(), tmp_path / "t.json"
    f.write_text(json.dumps({"_metadata": {}, "('moe', 'CuTileBf16Runner', 1, (1024,), ())": [0, 3]}))
    with TU.tune_context(False, f, fi_autotune=rec):
        pass
    assert rec.calls == [(False, str(f))]
    st = TU.tuning_status(False, f, entries_before=TU.cached_entries(f))
    assert st["tuned"] and st["source"] == "cache" and "1 entries from an earlier --autotune" in st["note"]


def test_no_file_and_no_autotune_is_untuned_and_says_so(tmp_path):
    rec, f = _Recorder(), tmp_path / "none.json"
    with TU.tune_context(False, f, fi_autotune=rec):
        pass
    assert rec.calls == []
    st = TU.tuning_status(False, f, entries_before=TU.cached_entries(f))
    assert not st["tuned"] and st["note"].startswith("UNTUNED: FlashInfer default tactics")


def test_unreadable_cache_counts_as_empty(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{not json")
    assert TU.cached_entries(f) == 0
