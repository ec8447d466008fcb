"""One output layer for every command: an :class:`Output` chosen once per run.

Usage guide (read this before writing a command's output)
=========================================================

Declare the shared output flags with the decorator from ``cli/options.py`` and take ``out``::

    from .options import output_options
    from .output import Column, Output, handle_errors

    @app.command("mycmd")
    @handle_errors            # outermost: typed errors -> one line + exit code
    @output_options           # adds --format table|json|markdown|quiet, --json, --quiet/-q
    def mycmd(model: ModelArg, out: Output) -> None:
        data = core_answer(...).to_dict()           # the core returns data, never text
        out.dict(data, human=render_human, markdown=render_md, id_key="routing.method")

``--json --format markdown`` (or ``--quiet --json`` ...) exits 2 with one line, in every command,
before any work. Modes and what each method does in them:

===============  ======================  ==============  =====================  ==================
method           table (people, Rich)    json            markdown               quiet
===============  ======================  ==============  =====================  ==================
``dict(d, …)``   ``human(d, out)``       ``d`` indented  ``markdown(d)`` or a   ``d[id_key]`` (a
                 (or key/value table)                    key/value table        dotted path) or —
``table(rows)``  Rich table (columns)    ``json_data``   pipe table             ``id_key`` column
                                         or the rows                            one per line
``result(m,…)``  ``✓ m`` + k: v lines    the keywords    ``✓ m`` + k: v         first value
``print(x)``     Rich renderables        —               —                      —
``warning(m)``   stderr ``warning: m``   stderr          stderr                 stderr
``hint(m)``      stderr ``hint: m``      stderr          stderr                 —
``status()``     spinner on a stderr tty —               —                      —
===============  ======================  ==============  =====================  ==================

* Findings that are part of the answer (a model's warnings, a verdict's notes) belong in the data
  and its human view (stdout); ``warning``/``hint`` are for the run itself (stderr).
* :func:`fmt_value` is THE value formatter (None -> "—", bools yes/no, floats ``:g``, id lists
  as ranges); use it rather than a local ``_fmt``.
* Cells that need a colour in the human table are :class:`Cell` (text + style); markdown, quiet
  and JSON get the plain text.
* Widths: Rich honours ``COLUMNS``; piped output is 80 columns. Snapshot tests render every
  command at 80 and 120 (tests/test_snapshots.py; ``UPDATE_SNAPSHOTS=1`` regenerates).

Errors: every command body runs under :func:`handle_errors`, which turns a
:class:`~moe_inspect.errors.MoeInspectError` into ONE line on stderr and its exit code (2 for bad
input/environment), and any unexpected exception into one line too, exit 2.
``MOE_INSPECT_DEBUG=1`` (parsed once, :func:`moe_inspect.errors.debug_enabled`) re-raises so the
traceback shows.

Lower-level pieces the ``Output`` itself builds on: :func:`console`, :func:`progress`, :func:`error_line`.
"""

from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from enum import Enum
from typing import Any, Callable, Iterator, Mapping, Sequence

import typer

from ..errors import EXIT_BAD_INPUT, BadInputError, MoeInspectError, debug_enabled

__all__ = [
    "OutputFormat", "Output", "Column", "Cell", "SECTION", "fmt_value", "md_cell", "markdown_table", "table_fits",
    "output_from_flags",
    "handle_errors", "debug_enabled", "error_line",
]


class OutputFormat(str, Enum):
    table = "table"        # people: Rich tables and panels (the default)
    json = "json"          # machines: one JSON document on stdout
    markdown = "markdown"  # PR descriptions, issues, docs
    quiet = "quiet"        # only the key answer (if any) and the exit code


PLACEHOLDER = "—"


def fmt_value(v: Any, placeholder: str = PLACEHOLDER, float_spec: str = "g") -> str:
    """The one formatter for a value in a human table: None -> "—", True/False -> yes/no, floats
    with ``float_spec``, lists of ints as ranges ("0–3, 7 (5)"), other lists comma-joined."""
    if v is None:
        return placeholder
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return format(v, float_spec)
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            return _ranges(list(v))
        return ", ".join(fmt_value(i, placeholder, float_spec) for i in v) or placeholder
    return str(v)


def _ranges(ids: list[int]) -> str:
    """[0,1,2,3,7] -> '0–3, 7 (5)'."""
    ids = sorted(set(ids))
    parts, start, prev = [], ids[0], ids[0]
    for i in ids[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start}–{prev}" if prev > start else str(start))
        if i is not None:
            start = prev = i
    return f"{', '.join(parts)} ({len(ids)})"


class Cell:
    """A table cell with a style for the human table (plain text everywhere else)."""

    __slots__ = ("text", "style")

    def __init__(self, text: str, style: str | None = None) -> None:
        self.text, self.style = text, style

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Cell({self.text!r}, {self.style!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and (self.text, self.style) == (other.text, other.style)

    def __hash__(self) -> int:
        return hash((self.text, self.style))


SECTION = object()  # a row marker: a rule between row groups in the human table


class Column:
    """One column of :meth:`Output.table`: where its value comes from and how it is shown.

    ``key``: a row key, or a function of the row. ``overflow="fold"`` for the one column that may
    wrap on a narrow terminal; ``style`` styles the whole column in the human table; ``fmt`` turns
    a value into text (default :func:`fmt_value`). (A plain class, not a dataclass: it is built at
    import time of every command, and dataclass creation costs milliseconds of cold start.)
    """

    __slots__ = ("header", "key", "justify", "no_wrap", "min_width", "overflow", "style", "fmt")

    def __init__(self, header: str, key: str | Callable[[Mapping[str, Any]], Any], *, justify: str = "left",
                 no_wrap: bool = False, min_width: int | None = None, overflow: str = "ellipsis",
                 style: str | None = None, fmt: Callable[[Any], str] = fmt_value) -> None:
        self.header, self.key, self.justify, self.no_wrap = header, key, justify, no_wrap
        self.min_width, self.overflow, self.style, self.fmt = min_width, overflow, style, fmt

    def value(self, row: Mapping[str, Any]) -> Any:
        return self.key(row) if callable(self.key) else row.get(self.key)

    def text(self, row: Mapping[str, Any]) -> str:
        v = self.value(row)
        return v.text if isinstance(v, Cell) else self.fmt(v)


_BOXES = {"heavy_head": "HEAVY_HEAD", "simple_head": "SIMPLE_HEAD", "rounded": "ROUNDED", "simple": "SIMPLE",
          "minimal": "MINIMAL"}


def _dotted(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _json_default(o: Any):
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, Cell):
        return o.text
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def table_fits(con, table) -> bool:
    """True when ``table`` prints on ``con`` at its natural width: no cell wrapped, folded or cut.
    Rich squeezes a table that is too wide (cells end in "…"), so renderers that must never lose data
    ask this first and fall back to one block or line per row."""
    from rich.console import Console

    natural = Console(width=1_000_000, highlight=False, soft_wrap=False).measure(table).maximum
    return natural <= con.width


def md_cell(text: str) -> str:
    return " ".join(str(text).replace("\\", "\\\\").replace("|", "\\|").splitlines()) or " "


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    """The lines of a Markdown pipe table of ``rows`` under ``columns`` (what :meth:`Output.table`
    prints in markdown mode), for renderers that put a table inside a larger Markdown answer."""
    lines = ["| " + " | ".join(md_cell(c.header) for c in columns) + " |",
             "|" + "|".join("---:" if c.justify == "right" else "---" for c in columns) + "|"]
    lines += ["| " + " | ".join(md_cell(c.text(r)) for c in columns) + " |" for r in rows]
    return lines


def _write(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    _safe_errors(stream)
    stream.write(text)
    stream.flush()


def _safe_errors(stream) -> None:
    # Text from a hostile checkpoint may hold characters the terminal encoding cannot write (a
    # lone surrogate from a JSON "\ud800" escape, a surrogate-escaped file name): print them
    # escaped instead of dying with UnicodeEncodeError halfway through the table.
    try:
        stream.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError, OSError):
        pass


class Output:
    """The output sink of one command run; its mode is fixed when it is made."""

    def __init__(self, mode: OutputFormat | str = OutputFormat.table) -> None:
        self.mode = OutputFormat(mode)
        self._console = None

    # -- which mode ---------------------------------------------------------------------------
    @property
    def is_human(self) -> bool:
        return self.mode == OutputFormat.table

    @property
    def is_json(self) -> bool:
        return self.mode == OutputFormat.json

    @property
    def is_markdown(self) -> bool:
        return self.mode == OutputFormat.markdown

    @property
    def is_quiet(self) -> bool:
        return self.mode == OutputFormat.quiet

    @property
    def console(self):
        """The Rich console on stdout (human mode's renderer; width from COLUMNS or the terminal)."""
        if self._console is None:
            self._console = _rich_console()
        return self._console

    # -- answers ------------------------------------------------------------------------------
    def dict(
        self,
        data: Mapping[str, Any],
        *,
        human: Callable[[Mapping[str, Any], "Output"], None] | None = None,
        markdown: Callable[[Mapping[str, Any]], str] | None = None,
        id_key: str | None = None,
    ) -> None:
        """One structured answer: JSON as is, a human view, a Markdown view, or one value."""
        if self.is_json:
            _write(json.dumps(data, indent=2, default=_json_default) + "\n")
        elif self.is_quiet:
            if id_key is not None:
                v = _dotted(data, id_key)
                if v is not None:
                    _write(f"{fmt_value(v)}\n")
        elif self.is_markdown:
            _write(markdown(data) if markdown else _kv_markdown(data))
        elif human is not None:
            human(data, self)
        else:
            rows = [{"field": k, "value": v} for k, v in _flatten(data)]
            self.table(rows, [Column("field", "field", style="dim"), Column("value", "value", overflow="fold")],
                       show_header=False, box=None)

    def table(
        self,
        rows: Sequence[Mapping[str, Any] | object],
        columns: Sequence[Column],
        *,
        title: str | None = None,
        id_key: str | None = None,
        json_data: Any = None,
        box: str | None = "heavy_head",
        show_header: bool = True,
        notes: Sequence[str] = (),
    ) -> None:
        """Rows under columns. JSON mode prints ``json_data`` (default: the rows); quiet mode the
        ``id_key`` column (default: the first column) one per line; ``notes`` follow the table in
        the human and Markdown views (numbered footnotes, caveats)."""
        data_rows = [r for r in rows if r is not SECTION]
        if self.is_json:
            _write(json.dumps(data_rows if json_data is None else json_data, indent=2, default=_json_default) + "\n")
            return
        if self.is_quiet:
            col = next((c for c in columns if c.key == id_key), None) if id_key else columns[0]
            for r in data_rows:
                v = col.text(r) if col is not None else fmt_value(_dotted(r, id_key))
                _write(f"{v}\n")
            return
        if self.is_markdown:
            lines = [f"**{title}**", ""] if title else []
            lines += markdown_table(data_rows, columns)
            if notes:
                lines += [""] + [f"{n}  " for n in notes]
            _write("\n".join(lines) + "\n")
            return
        from rich import box as rbox
        from rich.table import Table
        from rich.text import Text

        t = Table(title=title, header_style="bold", pad_edge=False, show_header=show_header,
                  box=getattr(rbox, _BOXES[box]) if box else None)
        for c in columns:
            t.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap, min_width=c.min_width,
                         overflow=c.overflow, style=c.style)
        for r in rows:
            if r is SECTION:
                t.add_section()
                continue
            cells = []
            for c in columns:
                v = c.value(r)
                cells.append(Text(v.text, style=v.style or "") if isinstance(v, Cell) else Text(c.fmt(v)))
            t.add_row(*cells)
        self.console.print(t)
        for n in notes:
            self.console.print(Text(n))

    def result(self, message: str, *, ok: bool = True, **data: Any) -> None:
        """A one-line outcome (``✓``/``✗ message``) with key: value lines; JSON: the keywords."""
        if self.is_json:
            _write(json.dumps(data, indent=2, default=_json_default) + "\n")
        elif self.is_quiet:
            values = [v for v in data.values() if v is not None]
            if values:
                _write(f"{fmt_value(values[0])}\n")
        else:
            mark = "✓" if ok else "✗"
            lines = [f"{mark} {message}"] + [f"  {k}: {fmt_value(v)}" for k, v in data.items() if v is not None]
            if self.is_human:
                from rich.text import Text

                self.console.print(Text(lines[0], style="bold green" if ok else "bold red"))
                for line in lines[1:]:
                    self.console.print(Text(line))
            else:
                _write("\n".join(lines) + "\n")

    def print(self, *renderables: Any) -> None:
        """Rich renderables for the human view only (nothing in json/markdown/quiet)."""
        if self.is_human:
            self.console.print(*renderables)

    # -- about the run (stderr) -----------------------------------------------------------------
    def warning(self, message: str) -> None:
        """A non-fatal problem with the run, on stderr in every mode."""
        _write(f"warning: {_one_line(message)}\n", err=True)

    def hint(self, message: str) -> None:
        """What to try next, on stderr; silent in quiet mode."""
        if not self.is_quiet:
            _write(f"hint: {_one_line(message)}\n", err=True)

    def status(self):
        """Context manager yielding ``update(msg)``: a spinner on a stderr terminal in human mode."""
        return _status_line(self.is_human)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, Mapping):
        for k, v in data.items():
            yield from _flatten(v, f"{prefix}{k}.") if isinstance(v, Mapping) else [(f"{prefix}{k}", v)]
    else:
        yield prefix.rstrip("."), data


def _kv_markdown(data: Mapping[str, Any]) -> str:
    lines = ["| field | value |", "|---|---|"]
    lines += [f"| {md_cell(k)} | {md_cell(fmt_value(v))} |" for k, v in _flatten(data)]
    return "\n".join(lines) + "\n"


def output_from_flags(fmt: OutputFormat | str | None = None, json_flag: bool = False, quiet: bool = False) -> Output:
    """The Output for ``--format``/``--json``/``--quiet``; contradictory flags -> BadInputError (exit 2)."""
    chosen: list[tuple[str, OutputFormat]] = []
    if fmt is not None:
        chosen.append((f"--format {OutputFormat(fmt).value}", OutputFormat(fmt)))
    if json_flag:
        chosen.append(("--json", OutputFormat.json))
    if quiet:
        chosen.append(("--quiet", OutputFormat.quiet))
    modes = {m for _, m in chosen}
    if len(modes) > 1:
        raise BadInputError(f"{' and '.join(f for f, _ in chosen)} contradict each other; give one output format")
    return Output(modes.pop() if modes else OutputFormat.table)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def error_line(message: str, hint: str | None = None) -> None:
    line = f"error: {message}"
    if hint:
        line += f" ({hint})"
    # one line: collapse accidental newlines in upstream messages
    _write(_one_line(line) + "\n", err=True)


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


# --------------------------------------------------------------------------------------------
# Rich plumbing behind Output.console and Output.status
# --------------------------------------------------------------------------------------------
def _rich_console(stderr: bool = False):
    """A Rich console on stdout (or stderr) that cannot fail on an unencodable character."""
    from rich.console import Console

    _safe_errors(sys.stderr if stderr else sys.stdout)
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


@contextmanager
def _status_line(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A status line on stderr while long work runs (only on a terminal); yields ``update(msg)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda msg: None
        return
    from rich.status import Status

    with Status("working…", console=_rich_console(stderr=True)) as status:
        yield lambda msg: status.update(msg)
