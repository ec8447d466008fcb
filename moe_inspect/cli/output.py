"""One output sink for every command: Rich tables for people, JSON for machines, Markdown for PRs.

Errors: every command body runs under :func:`handle_errors`, which turns a
:class:`~moe_inspect.errors.MoeInspectError` into ONE line on stderr and its exit code (2 for
bad input/environment), and any unexpected exception into one line too, exit 2.
``MOE_INSPECT_DEBUG=1`` re-raises so the traceback shows.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from contextlib import contextmanager
from enum import Enum
from typing import Any, Callable, Iterator

import typer

from ..errors import EXIT_BAD_INPUT, MoeInspectError


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


def debug_enabled() -> bool:
    return os.environ.get("MOE_INSPECT_DEBUG", "").strip() not in ("", "0", "false", "no")


def console(stderr: bool = False):
    from rich.console import Console

    # Text from a hostile checkpoint may hold characters the terminal encoding cannot write (a
    # lone surrogate from a JSON "\ud800" escape, a surrogate-escaped file name): print them
    # escaped instead of dying with UnicodeEncodeError halfway through the table.
    stream = sys.stderr if stderr else sys.stdout
    try:
        stream.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError, OSError):
        pass
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o: Any):
    if isinstance(o, Enum):
        return o.value
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def error_line(message: str, hint: str | None = None) -> None:
    line = f"error: {message}"
    if hint:
        line += f" ({hint})"
    # one line: collapse accidental newlines in upstream messages
    sys.stderr.write(" ".join(line.split()) + "\n")
    sys.stderr.flush()


def handle_errors(fn: Callable) -> Callable:
    """Decorator for command bodies: typed errors → one line + exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except MoeInspectError as e:
            if debug_enabled():
                raise
            error_line(e.message, e.hint)
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(130)
        except Exception as e:  # a bug: still one line, traceback on request
            if debug_enabled():
                raise
            error_line(f"internal error: {type(e).__name__}: {e}", "set MOE_INSPECT_DEBUG=1 for a traceback")
            raise typer.Exit(EXIT_BAD_INPUT)

    return wrapper


@contextmanager
def progress(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A status line on stderr while long work runs (only on a terminal); yields ``update(msg)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda msg: None
        return
    from rich.status import Status

    with Status("working…", console=console(stderr=True)) as status:
        yield lambda msg: status.update(msg)
