"""The `moe-inspect` Typer application. Each command lives in its own module and registers here."""

from __future__ import annotations

import importlib

import typer

from .. import __version__

app = typer.Typer(
    name="moe-inspect",
    no_args_is_help=True,
    add_completion=False,
    help=(
        "Inspect Mixture-of-Experts checkpoints before deploying them on vLLM, SGLang or FlashInfer: "
        "the routing method (and its RoutingMethodType id), which expert backends can run it on which "
        "GPU, and one real MoE layer through FlashInfer on the local GPU.\n\n"
        "Exit codes: 0 fine, 1 findings (a failed check, a mismatch), 2 bad input or environment."
    ),
    pretty_exceptions_enable=False,
)

# command modules, in help order; a module that is not there yet is skipped
COMMANDS = ("detect", "check", "verify", "run_layer", "catalog")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moe-inspect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


for _name in COMMANDS:
    try:
        _mod = importlib.import_module(f"moe_inspect.cli.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"moe_inspect.cli.{_name}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
