"""The one output layer (cli/output.py): flags chosen once, each mode prints what a user expects."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from moe_inspect.cli.app import app
from moe_inspect.cli.output import SECTION, Cell, Column, Output, OutputFormat, fmt_value, output_from_flags
from moe_inspect.errors import BadInputError, debug_enabled

runner = CliRunner()
M = "MiniMaxAI/MiniMax-M2.5"


# ------------------------------------------------------------------------------ flags
@pytest.mark.parametrize("flags", [("--json", "--format", "markdown"), ("--json", "--quiet"),
                                   ("--format", "table", "--json"), ("-q", "--format", "markdown")])
def test_contradictory_flags_exit_2_with_one_line(flags):
    r = runner.invoke(app, ["detect", M, "--offline", *flags])
    assert r.exit_code == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "contradict" in lines[0]


def test_agreeing_flags_are_fine():
    r = runner.invoke(app, ["detect", M, "--offline", "--json", "--format", "json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["routing"]["method"] == "MiniMax2"


def test_unknown_format_is_a_usage_error():
    r = runner.invoke(app, ["detect", M, "--offline", "--format", "yaml"])
    assert r.exit_code == 2


def test_output_from_flags_modes():
    assert output_from_flags().mode == OutputFormat.table
    assert output_from_flags("markdown").is_markdown
    assert output_from_flags(None, True).is_json
    assert output_from_flags(None, False, True).is_quiet
    with pytest.raises(BadInputError):
        output_from_flags("table", True)


# ------------------------------------------------------------------------------ detect in each mode
def test_detect_quiet_prints_only_the_method():
    r = runner.invoke(app, ["detect", M, "--offline", "-q"])
    assert r.exit_code == 0
    assert r.stdout == "MiniMax2\n"


def test_detect_markdown_is_a_pipe_table_with_the_method():
    r = runner.invoke(app, ["detect", "deepseek-ai/DeepSeek-V3", "--offline", "--format", "markdown"])
    assert r.exit_code == 0
    assert "**routing method: DeepSeekV3**" in r.stdout
    assert "| MoE field | value | from |" in r.stdout
    assert "| expert groups | 8 | config:n_group |" in r.stdout
    assert "╭" not in r.stdout  # no Rich boxes in Markdown


# ------------------------------------------------------------------------------ Output methods
ROWS = [{"id": "a/b", "n": 8, "ok": True}, SECTION, {"id": "c|d", "n": None, "ok": Cell("✗", "red")}]
COLS = [Column("model", "id"), Column("E", "n", justify="right"), Column("fits", "ok")]


def test_table_markdown_escapes_pipes_and_right_aligns(capsys):
    Output("markdown").table(ROWS, COLS, title="t", notes=["[1] why"])
    out = capsys.readouterr().out
    assert out.splitlines()[:5] == ["**t**", "", "| model | E | fits |", "|---|---:|---|", "| a/b | 8 | yes |"]
    assert "| c\\|d | — | ✗ |" in out
    assert out.rstrip().endswith("[1] why")


def test_table_quiet_prints_the_id_column(capsys):
    Output("quiet").table(ROWS, COLS)
    assert capsys.readouterr().out == "a/b\nc|d\n"


def test_table_json_prints_json_data_when_given(capsys):
    Output("json").table(ROWS, COLS, json_data={"schema_version": 1, "models": ["a/b"]})
    assert json.loads(capsys.readouterr().out) == {"schema_version": 1, "models": ["a/b"]}
    Output("json").table(ROWS, COLS)
    assert json.loads(capsys.readouterr().out)[1]["ok"] == "✗"


def test_table_human_shows_every_column(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    Output("table").table(ROWS, COLS, title="t")
    out = capsys.readouterr().out
    for text in ("model", "E", "fits", "a/b", "c|d", "yes", "✗", "—"):
        assert text in out


def test_result_and_stderr_messages(capsys):
    o = Output("table")
    o.result("cache cleared", path="/tmp/x", files=3)
    o.warning("slow\nHub")
    o.hint("use --offline")
    c = capsys.readouterr()
    assert c.out.splitlines() == ["✓ cache cleared", "  path: /tmp/x", "  files: 3"]
    assert c.err.splitlines() == ["warning: slow Hub", "hint: use --offline"]
    q = Output("quiet")
    q.result("cache cleared", path="/tmp/x", files=3)
    q.hint("not shown")
    c = capsys.readouterr()
    assert c.out == "/tmp/x\n" and c.err == ""
    Output("json").result("x", ok=False, path="/tmp/x")
    assert json.loads(capsys.readouterr().out) == {"path": "/tmp/x"}


def test_dict_quiet_follows_a_dotted_key(capsys):
    Output("quiet").dict({"routing": {"method": "DeepSeekV3"}}, id_key="routing.method")
    assert capsys.readouterr().out == "DeepSeekV3\n"


def test_print_is_human_only(capsys):
    for mode in ("json", "markdown", "quiet"):
        Output(mode).print("people only")
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------------------ one formatter
@pytest.mark.parametrize("value, text", [
    (None, "—"), (True, "yes"), (False, "no"), (2.5, "2.5"), (1.0, "1"), ([0, 1, 2, 3, 7], "0–3, 7 (5)"),
    ([], "—"), (["a", None], "a, —"), (256, "256"),
])
def test_fmt_value(value, text):
    assert fmt_value(value) == text


def test_fmt_value_placeholder_and_spec():
    assert fmt_value(None, placeholder="–") == "–"
    assert fmt_value(12.345, float_spec=".1f") == "12.3"


# ------------------------------------------------------------------------------ MOE_INSPECT_DEBUG
@pytest.mark.parametrize("value, on", [("", False), ("0", False), ("false", False), ("No", False),
                                       ("1", True), ("yes", True), ("FALSE", False)])
def test_debug_enabled(monkeypatch, value, on):
    monkeypatch.setenv("MOE_INSPECT_DEBUG", value)
    assert debug_enabled() is on


def test_debug_shows_the_traceback_and_default_is_one_line():
    r = runner.invoke(app, ["detect", "no-such-org/no-such-model", "--offline"], env={"MOE_INSPECT_DEBUG": ""})
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(app, ["detect", "no-such-org/no-such-model", "--offline"], env={"MOE_INSPECT_DEBUG": "1"})
    assert r.exception is not None and type(r.exception).__name__ == "OfflineError"
