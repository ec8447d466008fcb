"""Table rows whose fields are several look-alike strings/enums are written with keywords only, so a
swapped column cannot hide (issue 12: SGLangRow once had eight positional "yes"/"no"/"config" strings).
The rows are NamedTuples (cheap to define at start-up), which do not enforce this themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import moe_inspect

PKG = Path(moe_inspect.__file__).parent


@pytest.mark.parametrize("module, row", [("routing.py", "SGLangRow"), ("archs.py", "ArchRow")])
def test_rows_are_written_with_keywords(module, row):
    tree = ast.parse((PKG / module).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == row]
    assert len(calls) >= 10  # the table really is there
    positional = [n.lineno for n in calls if n.args]
    assert positional == [], f"{module}: {row}(...) with positional arguments at lines {positional}"
