"""Fuzz-suite setup: a deterministic hypothesis profile, an isolated offline HF environment, and a
per-family case count printed at the end of the session.

Run:  python -m pytest -q -m fuzz
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, settings

from . import harness

# Deterministic: derandomize=True makes every run generate the same cases, so the counts printed
# below are reproducible; each test sets max_examples explicitly. Our own SIGALRM bound replaces
# hypothesis' deadline (which is flaky on a loaded 2-core CI runner).
settings.register_profile(
    "moe-fuzz",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)

_T0 = [0.0]


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture(scope="session", autouse=True)
def fuzz_env(tmp_path_factory):
    """Offline, with HF_HOME in a temp dir: no case may reach a network or the user's cache."""
    from huggingface_hub import constants

    home = tmp_path_factory.mktemp("hf_home")
    mp = pytest.MonkeyPatch()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MOE_INSPECT_DEBUG"):
        mp.delenv(var, raising=False)
    mp.setenv("HF_HOME", str(home))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    mp.setattr(constants, "HF_HOME", str(home))
    mp.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    mp.setattr(constants, "HF_HUB_OFFLINE", True)
    mp.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    _T0[0] = time.monotonic()
    yield home
    mp.undo()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not harness.COUNTS:
        return
    tr = terminalreporter
    total = sum(harness.COUNTS.values())
    tr.section("moe-inspect fuzz: generated cases per family")
    for fam in sorted(harness.COUNTS):
        ex = harness.EXITS.get(fam, {})
        hist = ", ".join(f"exit {k}: {v}" for k, v in sorted(ex.items()))
        tr.write_line(f"  {fam:<28} {harness.COUNTS[fam]:>6}   ({hist})")
    tr.write_line(f"  {'TOTAL':<28} {total:>6}   in {time.monotonic() - _T0[0]:.0f} s")
