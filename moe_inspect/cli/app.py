"""The `moe-inspect` Typer application: each command module is imported by name and added here,
in help order, so a missing or broken module fails at import instead of vanishing from the CLI."""

from __future__ import annotations

import sys
from types import ModuleType

import typer
from typer.core import TyperGroup

from .. import __version__
from . import catalog, check, detect, run_layer, verify
from .output import error_line


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


app = typer.Typer(
    name="moe-inspect",
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    help=(
        "Inspect Mixture-of-Experts checkpoints before deploying them on vLLM, SGLang or FlashInfer: "
        "the routing method (and its RoutingMethodType id), which expert backends can run it on which "
        "GPU, and one real MoE layer through FlashInfer on the local GPU.\n\n"
        "Exit codes: 0 fine, 1 findings (a failed check, a mismatch), 2 bad input or environment."
    ),
    pretty_exceptions_enable=False,
    # Plain (click) help, not Rich panels: at 80 columns Rich's options table cut long option names
    # ("--precomputed-rout…") and words ("$MOE_INSPECT_TRTLLM_HEADE…"); click wraps and never cuts.
    rich_markup_mode=None,
)

# help order
COMMANDS: tuple[ModuleType, ...] = (detect, check, verify, run_layer, catalog)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moe-inspect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


def _add(module: ModuleType) -> None:
    """A Typer app per command module: its command(s), in order (a module without one fails loudly)."""
    sub = module.app
    if not sub.registered_commands:
        raise RuntimeError(f"{module.__name__}.app has no command")
    app.registered_commands.extend(sub.registered_commands)


for _module in COMMANDS:
    _add(_module)


def _first_sentence(info) -> str | None:
    text = info.help or (info.callback.__doc__ if info.callback else None)
    if not text:
        return None
    first = " ".join(text.strip().split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".") if ". " in first else first


# The command list shows each command's whole first sentence (click would cut it at the width).
for _info in app.registered_commands:
    if _info.short_help is None:
        _info.short_help = _first_sentence(_info)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
