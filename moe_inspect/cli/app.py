"""The `moe-inspect` Typer application, built from an explicit table of commands.

:data:`COMMANDS` names each command and the module that defines it, in help order. ``moe-inspect
NAME ...`` imports only NAME's module (start-up time: the other four modules and their Typer
conversion cost ~10 ms); ``moe-inspect --help``, an unknown command and :data:`app` (what the tests
drive) import every module, so a missing or broken module fails loudly there instead of vanishing
from the CLI."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import typer
from typer.core import TyperGroup

from .. import __version__
from .output import error_line

#: command name -> the module whose ``app`` defines it, in help order
COMMANDS: dict[str, str] = {
    "detect": "moe_inspect.cli.detect",
    "check": "moe_inspect.cli.check",
    "verify": "moe_inspect.cli.verify",
    "run-layer": "moe_inspect.cli.run_layer",
    "catalog": "moe_inspect.cli.catalog",
}


class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value, missing argument) as ONE line on stderr, exit 2,
    like every other error, instead of Click's boxed multi-line panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except typer.Abort:
            error_line("aborted")
            sys.exit(1)
        except Exception as e:
            from typer._click.exceptions import ClickException, NoArgsIsHelpError

            if isinstance(e, NoArgsIsHelpError):  # bare `moe-inspect`: the help, as Click does
                e.show()
                sys.exit(e.exit_code)
            if not isinstance(e, ClickException):
                raise
            where = e.ctx.command_path if getattr(e, "ctx", None) is not None else (prog_name or "moe-inspect")
            error_line(e.format_message(), f"see: {where} --help")
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


HELP = (
    "Inspect Mixture-of-Experts checkpoints before deploying them on vLLM, SGLang or FlashInfer: "
    "the routing method (and its RoutingMethodType id), which expert backends can run it on which "
    "GPU, and one real MoE layer through FlashInfer on the local GPU.\n\n"
    "Exit codes: 0 fine, 1 findings (a failed check, a mismatch), 2 bad input or environment."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moe-inspect {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


def _first_sentence(info) -> str | None:
    text = info.help or (info.callback.__doc__ if info.callback else None)
    if not text:
        return None
    first = " ".join(text.strip().split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".") if ". " in first else first


def command_module(name: str) -> ModuleType:
    """The module defining command ``name`` (imported; an ImportError propagates)."""
    return importlib.import_module(COMMANDS[name])


def build_app(names: tuple[str, ...] | None = None) -> typer.Typer:
    """The application with the commands ``names`` (default: all, in help order)."""
    root = typer.Typer(
        name="moe-inspect",
        cls=_OneLineErrors,
        no_args_is_help=True,
        add_completion=False,
        help=HELP,
        pretty_exceptions_enable=False,
        # Plain (click) help, not Rich panels: at 80 columns Rich's options table cut long option names
        # ("--precomputed-rout…") and words ("$MOE_INSPECT_TRTLLM_HEADE…"); click wraps and never cuts.
        rich_markup_mode=None,
    )
    root.callback()(_root)
    for name in names or tuple(COMMANDS):
        module = command_module(name)
        infos = [i for i in module.app.registered_commands if i.name == name]
        if not infos:
            raise RuntimeError(f"{module.__name__}.app has no {name!r} command")
        for info in infos:
            # the command list shows each command's whole first sentence (click would cut it at the width)
            if info.short_help is None:
                info.short_help = _first_sentence(info)
        root.registered_commands.extend(infos)
    return root


def __getattr__(name: str):
    """``app``: every command (built on first use, then kept)."""
    if name == "app":
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """The console script: only the invoked command's module is imported (see the module docstring)."""
    first = sys.argv[1] if len(sys.argv) > 1 else None
    build_app((first,) if first in COMMANDS else None)()


if __name__ == "__main__":
    main()
