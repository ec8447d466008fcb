"""The `moe-inspect` Typer application: each command module is imported by name and added here,
in help order, so a missing or broken module fails at import instead of vanishing from the CLI."""

from __future__ import annotations

from types import ModuleType

import typer

from .. import __version__
from . import catalog, check, detect, run_layer, verify

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
    sub = getattr(module, "app", None)
    if isinstance(sub, typer.Typer):  # a Typer app per command module: its command(s), in order
        if not sub.registered_commands:
            raise RuntimeError(f"{module.__name__}.app has no command")
        app.registered_commands.extend(sub.registered_commands)
    else:  # modules still on the older register(app) hook
        module.register(app)


for _module in COMMANDS:
    _add(_module)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
