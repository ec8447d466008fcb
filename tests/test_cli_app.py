"""Commands are registered explicitly: every command is in --help, and a missing module fails loudly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
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


_HIDE_CATALOG = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "moe_inspect.cli.catalog":
                raise ModuleNotFoundError("No module named 'moe_inspect.cli.catalog'", name=name)
    sys.meta_path.insert(0, Block())
""")


@pytest.mark.parametrize("argv", [["--help"], ["catalog"], []])
def test_a_missing_command_module_fails_loudly(argv):
    # hide moe_inspect.cli.catalog: the help and the command itself must fail (it used to be skipped silently)
    code = _HIDE_CATALOG + f"sys.argv = ['moe-inspect', *{argv!r}]\nfrom moe_inspect.cli.app import main\nmain()\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0
    assert "No module named 'moe_inspect.cli.catalog'" in r.stderr.splitlines()[-1]


def test_the_test_app_has_every_command_even_if_one_module_is_missing_it_fails():
    r = subprocess.run([sys.executable, "-c", _HIDE_CATALOG + "from moe_inspect.cli.app import app\n"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "catalog" in r.stderr.splitlines()[-1]


def test_a_command_imports_only_its_own_module():
    code = ("import sys\nsys.argv = ['moe-inspect', 'detect', 'MiniMaxAI/MiniMax-M2.5', '--offline', '--json']\n"
            "from moe_inspect.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "others = sorted(m for m in sys.modules if m.startswith('moe_inspect.cli.') and m.split('.')[-1] in "
            "('check', 'verify', 'run_layer', 'catalog'))\n"
            "print('OTHERS', others, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert '"routing_method"' in r.stdout or "MiniMax" in r.stdout
    assert "OTHERS []" in r.stderr


def test_the_command_table_is_explicit():
    # no loop that swallows an ImportError (the old importlib loop skipped a missing module silently)
    src = open(app_module.__file__).read()
    assert "except ImportError" not in src and "not there yet" not in src
    assert list(app_module.COMMANDS) == EXPECTED


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
