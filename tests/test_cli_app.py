"""Commands are registered explicitly: every command is in --help, and a missing module fails loudly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import typer.main
from typer.testing import CliRunner

from moe_inspect.cli import app as app_module

EXPECTED = ["detect", "check", "verify", "run-layer", "catalog"]


def test_every_command_is_registered_in_help_order():
    group = typer.main.get_command(app_module.app)
    assert list(group.list_commands(None)) == EXPECTED
    r = CliRunner().invoke(app_module.app, ["--help"], env={"COLUMNS": "120"})
    assert r.exit_code == 0
    for name in EXPECTED:
        assert name in r.stdout


def test_a_missing_command_module_fails_at_import(tmp_path):
    # hide moe_inspect.cli.catalog: the app must not start without it (it used to skip it silently)
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "moe_inspect.cli.catalog":
                    raise ModuleNotFoundError("No module named 'moe_inspect.cli.catalog'", name=name)
        sys.meta_path.insert(0, Block())
        import moe_inspect.cli.app
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "catalog" in r.stderr.splitlines()[-1]


def test_no_importlib_loop_left():
    src = open(app_module.__file__).read()
    assert "importlib" not in src and "not there yet" not in src


# usage errors: one line on stderr, exit 2, like every other error (Click printed a boxed panel)
import pytest  # noqa: E402


@pytest.mark.parametrize("argv, needle", [
    (["detect", "MiniMaxAI/MiniMax-M2.5", "--format", "yaml"], "'yaml' is not one of"),
    (["detect"], "Missing argument 'MODEL'"),
    (["verify", "x", "--tokens", "0"], "--tokens"),
    (["detect", "x", "--bogus"], "No such option: --bogus"),
    (["no-such-command"], "No such command"),
])
def test_usage_errors_are_one_line(argv, needle):
    r = CliRunner().invoke(app_module.app, argv, prog_name="moe-inspect")
    assert r.exit_code == 2
    assert r.stdout == ""
    line, = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line and "--help" in line
    assert "╭" not in r.stderr and "Usage:" not in r.stderr


def test_bare_command_still_shows_the_help():
    r = CliRunner().invoke(app_module.app, [], prog_name="moe-inspect")
    assert "Usage: moe-inspect" in r.output and "detect" in r.output


def test_every_command_takes_json():
    # README: "Every command takes `--json`"
    group = typer.main.get_command(app_module.app)
    for name in EXPECTED:
        opts = {o for p in group.commands[name].params for o in p.opts}
        assert "--json" in opts, f"{name} has no --json"


def test_help_at_80_columns_shows_every_option_name_whole():
    """Rich's help panels cut long option names at 80 columns ("--precomputed-rout…",
    "--routed-scaling-f…" in run-layer): every option must be readable whole in every command's help."""
    import os
    import re
    import subprocess
    import sys

    from typer.main import get_command

    from moe_inspect.cli.app import app

    env = dict(os.environ, COLUMNS="80", NO_COLOR="1")
    env.pop("TERMINAL_WIDTH", None)
    for name, cmd in get_command(app).commands.items():
        res = subprocess.run([sys.executable, "-m", "moe_inspect.cli.app", name, "--help"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        for param in cmd.params:
            if param.param_type_name == "option":  # typer 0.28 vendors click: no isinstance
                for opt in [*param.opts, *param.secondary_opts]:
                    if opt.startswith("--"):  # where the option is listed, not where a text mentions it
                        listed = re.compile(r"^[\s│]*(?:-{1,2}[\w-]+(?:, | / ))*" + re.escape(opt) + r"(?=[\s,/]|$)", re.M)
                        assert listed.search(res.stdout), f"{name}: {opt} not shown whole at 80 columns"
