"""Options shared by several commands: one definition each, so help texts stay the same.

The output flags (``--format``, ``--json``, ``--quiet``) are declared once, by
:func:`output_options` (as sqlite-utils' ``output_options``): decorate a command with it and take
an ``out: Output`` parameter instead of declaring the flags yourself.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Callable, Optional

import typer

from .output import Output, OutputFormat, output_from_flags

ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="Hub id (org/name), local directory, or catalog name.")]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Hub revision (branch, tag or commit).")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Never contact the Hub (also HF_HUB_OFFLINE=1).")]
NoCatalogOpt = Annotated[bool, typer.Option("--no-catalog", help="Do not fall back to the built-in catalog.")]
VllmVersionOpt = Annotated[Optional[str], typer.Option(
    "--vllm-version", help="vLLM release whose routing ids to use: 0.17.0 … 0.33.0 (default 0.33.0; "
                           "each read from its wheel), or a PR key: pre-39141, 39141, 44347.")]
FlashinferVersionOpt = Annotated[Optional[str], typer.Option(
    "--flashinfer-version", help="FlashInfer version whose RoutingMethodType ids to use: 0.6.7 … 0.7.2.post1 (default).")]

# -- output flags (used through output_options) ------------------------------------------------
FormatOpt = Annotated[Optional[OutputFormat], typer.Option(
    "--format", case_sensitive=False, metavar="<fmt>",
    help="Output: table (people, default), json, markdown (PRs, issues) or quiet (only the answer).")]
OutputJsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (same as --format json).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only the answer and the exit code (same as --format quiet).")]


_OUTPUT_PARAMS = (
    inspect.Parameter("output_format", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=FormatOpt),
    inspect.Parameter("output_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=OutputJsonOpt),
    inspect.Parameter("output_quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOpt),
)


def output_options(fn: Callable) -> Callable:
    """Add ``--format/--json/--quiet`` to a command and pass it ``out: Output`` chosen from them.

    The command declares a parameter named ``out`` (any position); Typer never sees it.
    Contradictory flags raise BadInputError before the command body runs (exit 2, one line, when
    the command is wrapped in ``handle_errors``).
    """
    sig = inspect.signature(fn, eval_str=True)
    if "out" not in sig.parameters:
        raise TypeError(f"{fn.__name__}: @output_options needs an `out: Output` parameter")
    params = [p for name, p in sig.parameters.items() if name != "out"]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
              else p for p in params]

    @functools.wraps(fn)
    def wrapper(*args, output_format=None, output_json=False, output_quiet=False, **kwargs):
        out = output_from_flags(output_format, output_json, output_quiet)
        return fn(*args, out=out, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*params, *_OUTPUT_PARAMS])
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    if sig.return_annotation is not inspect.Signature.empty:
        wrapper.__annotations__["return"] = sig.return_annotation
    del wrapper.__wrapped__  # Typer must read the new signature, not the function's own
    return wrapper


__all__ = [
    "ModelArg", "RevisionOpt", "OfflineOpt", "NoCatalogOpt", "VllmVersionOpt", "FlashinferVersionOpt",
    "FormatOpt", "OutputJsonOpt", "QuietOpt", "output_options", "Output", "OutputFormat",
]
