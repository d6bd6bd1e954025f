"""Readers: turn an input file (or stdin) into `Entry` objects, one per occurrence.

Three formats, chosen by extension (sniffed from the first line for `-`):

    .jsonl / .ndjson    one JSON object a line: title, abstract, optional id
    .csv                a header row naming title, abstract, optional id
    anything else       a "listing": text dumped from a paper-listing web page, a
                        title line followed by its abstract paragraph

A problem with the whole input (missing, a directory, empty, binary, not UTF-8, no
entries at all) raises `InputError`. A problem with one entry is appended to
`problems` and the entry is skipped, so one bad line does not stop a run.
"""

from __future__ import annotations

import contextlib
import csv
import math
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from itertools import chain
from pathlib import Path
from typing import IO, Protocol, TextIO, cast

from ._jsonl import LineFault, parse_line, raw_lines
from .errors import InputError
from .items import Entry, Item, Source, index_items, stream_items

__all__ = ["MAX_LINE_BYTES", "MIN_ABSTRACT_CHARS", "STDIN_PATH", "read_entries"]

STDIN_PATH = "-"
SPOOL_IN_MEMORY = 8 << 20  # standard input beyond this is spooled to a temporary file

# A line longer than this is skipped as a problem instead of read: no abstract is
# this long, and it keeps memory bounded on a file that is one huge line.
MAX_LINE_BYTES = 1 << 20

# In a listing, a line at least this long is an abstract and a shorter one a title.
# The shared pages have titles of at most 176 characters and abstracts of at least 509.
MIN_ABSTRACT_CHARS = 250

# Page furniture in listings: menus and banners between the papers (compared case-folded).
_FURNITURE = frozenset(
    line.casefold()
    for line in (
        "new",
        "Subscribe",
        "Get trending papers in your email inbox!",
        "Get trending papers in your email inbox once a day!",
        "byAK and the research community",
    )
)
_DATE = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(, \d{4})?")
# The page sometimes glues the button text to the next title ("SubscribeUnsupervised ...");
# a lower-case letter after it would be a real word such as "Subscriber", so keep those.
_GLUED_SUBSCRIBE = re.compile(r"Subscribe(?=[^\sa-z])")

_Lines = Iterator[tuple[int, str]]
_Parser = Callable[[_Lines, str, list[InputError]], Iterator[Entry]]


def read_entries(
    path: str, *, problems: list[InputError], stdin: TextIO | None = None
) -> Iterator[Entry]:
    """Yield the entries of `path` (a file, or "-" for `stdin`, default `sys.stdin`).

    A missing file or a directory raises `InputError` at once; problems found while
    reading raise (whole input) or are appended to `problems` (one entry) as iteration
    goes on. Each entry's source is `path` as given and the line where the entry starts.
    """
    if path != STDIN_PATH and Path(path).is_dir():
        raise InputError("is a directory, not a file", path=path)
    if path != STDIN_PATH and not Path(path).exists():
        raise InputError("no such file", path=path)
    return _read(path, problems, stdin)


class _Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class _TextAsBytes:
    """A text stream read as UTF-8 bytes, so every input goes through one decoder."""

    def __init__(self, text: TextIO) -> None:
        self._text = text

    def readline(self, size: int = -1, /) -> bytes:
        # surrogatepass keeps bytes a text stream smuggled in as surrogates undecodable.
        return self._text.readline(size).encode("utf-8", "surrogatepass")


def _read(
    path: str, problems: list[InputError], stdin: TextIO | IO[bytes] | None
) -> Iterator[Entry]:
    known, found = len(problems), 0
    with _open(path, stdin) as stream:
        lines = _numbered_lines(stream, path, problems)
        head = _up_to_first_text(lines)
        if head:
            parse = _PARSERS[_format_of(path, head[-1][1])]
            for entry in parse(chain(head, lines), path, problems):
                found += 1
                yield entry
    if found:
        return
    if len(problems) == known:
        raise InputError("no entries found" if head else "is empty: no text", path=path)
    first = problems[known]
    raise InputError(
        f"no entries found; {len(problems) - known} problem(s), the first at line "
        f"{first.line}: {first.reason}",
        path=path,
    )


class Inputs:
    """The input paths, readable as many times as a run needs (standard input is spooled).

    A run reads its input twice: once to index every unique abstract and its sources,
    once to stream the texts to the model, so memory does not grow with the input.
    """

    def __init__(self, paths: Sequence[str], *, stdin: TextIO | None = None) -> None:
        self.paths = tuple(paths)
        self._spool: IO[bytes] | None = None
        if STDIN_PATH in self.paths:
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
            source = _open(STDIN_PATH, stdin)
            with source as stream:
                while line := stream.readline():
                    self._spool.write(line)

    def entries(self, problems: list[InputError]) -> Iterator[Entry]:
        """Every entry of every path, in order; problems as `read_entries` reports them."""
        for path in self.paths:
            if path == STDIN_PATH and self._spool is not None:
                self._spool.seek(0)
                yield from _read(path, problems, self._spool)
            else:
                yield from read_entries(path, problems=problems)

    def close(self) -> None:
        """Drop the spooled standard input."""
        if self._spool is not None:
            self._spool.close()


def _open(
    path: str, stdin: TextIO | IO[bytes] | None
) -> contextlib.AbstractContextManager[_Readable]:
    if stdin is not None and "b" in getattr(stdin, "mode", ""):  # a spool of bytes
        return contextlib.nullcontext(cast("_Readable", stdin))
    if path != STDIN_PATH:
        try:
            return Path(path).open("rb")
        except OSError as exc:
            raise InputError(f"cannot open: {exc.strerror}", path=path) from None
    if stdin is None and hasattr(sys.stdin, "buffer"):
        return contextlib.nullcontext(sys.stdin.buffer)
    text = cast("TextIO", stdin) if stdin is not None else sys.stdin
    return contextlib.nullcontext(_TextAsBytes(text))


def _up_to_first_text(lines: _Lines) -> list[tuple[int, str]]:
    """The lines up to and including the first that is not blank; [] if all are."""
    head: list[tuple[int, str]] = []
    for number, text in lines:
        head.append((number, text))
        if text.strip():
            return head
    return []


def _numbered_lines(stream: _Readable, path: str, problems: list[InputError]) -> _Lines:
    """Decoded lines with their 1-based numbers and line endings, BOM stripped."""
    number = 0
    try:
        for raw in raw_lines(stream.readline, MAX_LINE_BYTES):
            number = raw.number
            if raw.too_long:
                message = f"line longer than {MAX_LINE_BYTES} bytes; skipped"
                problems.append(InputError(message, path=path, line=number))
                continue
            yield number, _decoded(raw.data, path, number)
    except UnicodeDecodeError as exc:  # a text stream that decodes for us
        message = f"not UTF-8 text ({exc.reason})"
        raise InputError(message, path=path, line=number + 1) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path, line=number + 1) from None


def _decoded(chunk: bytes, path: str, number: int) -> str:
    if b"\0" in chunk:
        message = "contains a NUL byte: binary or UTF-16, not UTF-8 text"
        raise InputError(message, path=path, line=number)
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{chunk[exc.start]:02x} at column {exc.start + 1}"
        raise InputError(f"not UTF-8 text ({where})", path=path, line=number) from None
    return text.removeprefix("\ufeff") if number == 1 else text


def _format_of(path: str, first_text: str) -> str:
    if path == STDIN_PATH:
        first = first_text.strip()
        if first.startswith("{"):
            return "jsonl"
        if "abstract" in _header_names(first):
            return "csv"
        return "listing"
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(suffix, "listing")


def _header_names(line: str) -> list[str]:
    try:
        row = next(csv.reader([line]), [])
    except csv.Error:
        return []
    return [name.strip().casefold() for name in row]


def _parse_jsonl(lines: _Lines, path: str, problems: list[InputError]) -> Iterator[Entry]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            yield _jsonl_entry(text, Source(path, number))
        except InputError as problem:
            problems.append(problem)


def _jsonl_entry(text: str, source: Source) -> Entry:
    try:
        value = parse_line(text, expect=dict)
    except LineFault as exc:
        raise _problem(source, exc.reason) from None
    return _entry(value.get("title"), value.get("abstract"), value.get("id"), source)


def _parse_csv(lines: _Lines, path: str, problems: list[InputError]) -> Iterator[Entry]:
    starts: list[int] = []

    def feed() -> Iterator[str]:
        # csv pulls lines only as a row needs them, so the first pull is where it starts.
        for number, text in lines:
            if not starts:
                starts.append(number)
            yield text

    reader = csv.reader(feed(), strict=True)
    columns: dict[str, int] | None = None
    while True:
        starts.clear()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(InputError(f"bad CSV row: {exc}", path=path, line=starts[0]))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            columns = _csv_columns(row, Source(path, starts[0]))
            continue
        try:
            yield _csv_entry(row, columns, Source(path, starts[0]))
        except InputError as problem:
            problems.append(problem)


def _csv_columns(header: list[str], source: Source) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        columns.setdefault(name.strip().casefold(), index)
    if "abstract" not in columns:
        names = ", ".join(repr(name) for name in header[:10])
        raise _problem(source, f"CSV header has no 'abstract' column (found {names})")
    return columns


def _csv_entry(row: list[str], columns: dict[str, int], source: Source) -> Entry:
    def cell(name: str) -> str | None:
        index = columns.get(name)
        return row[index] if index is not None and index < len(row) else None

    return _entry(cell("title"), cell("abstract"), cell("id"), source)


def entry_from_row(row: Mapping[str, object], source: Source) -> Entry:
    """An entry from a mapping with `abstract` (and `title`, `id`), checked as a JSONL line."""
    return _entry(row.get("title"), row.get("abstract"), row.get("id"), source)


def _entry(title: object, abstract: object, id_: object, source: Source) -> Entry:
    """An entry from loosely typed fields, or an InputError saying what is wrong."""
    if title is not None and not isinstance(title, str):
        raise _problem(source, f"'title' must be text, got {type(title).__name__}")
    if not isinstance(abstract, str) or not abstract.strip():
        named = f" (title {_preview(title)})" if title else ""
        kind = "empty" if isinstance(abstract, str) else "missing or not text"
        raise _problem(source, f"'abstract' is {kind}{named}")
    return Entry(
        title=_valid_text(title or "", "title", source),
        abstract=_valid_text(abstract, "abstract", source),
        source=source,
        id=_entry_id(id_, source),
    )


def _valid_text(text: str, field: str, source: Source) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # JSON escapes can spell lone surrogates, which no output file can hold.
        raise _problem(source, f"{field!r} has a lone surrogate, not valid Unicode") from None
    return text.strip()


def _entry_id(value: object, source: Source) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _valid_text(value, "id", source) or None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise _problem(source, f"'id' must be text or a number, got {type(value).__name__}")


def _parse_listing(lines: _Lines, path: str, problems: list[InputError]) -> Iterator[Entry]:
    """Pair each title line with the abstract paragraph after it (blank lines allowed)."""
    title: tuple[Source, str] | None = None
    for number, raw in lines:
        text = _GLUED_SUBSCRIBE.sub("", raw.strip(), count=1)
        if not text or text.casefold() in _FURNITURE or _DATE.fullmatch(text):
            continue
        if len(text) < MIN_ABSTRACT_CHARS:
            if title is not None:
                problems.append(_title_without_abstract(*title))
            title = (Source(path, number), text)
        elif title is None:
            message = f"paragraph with no title line before it: {_preview(text)}"
            problems.append(_problem(Source(path, number), message))
        else:
            yield Entry(title=title[1], abstract=text, source=title[0])
            title = None
    if title is not None:
        problems.append(_title_without_abstract(*title))


def _title_without_abstract(source: Source, title: str) -> InputError:
    return _problem(source, f"title with no abstract after it: {_preview(title)}")


def _problem(source: Source, message: str) -> InputError:
    return InputError(message, path=source.path, line=source.line)


def _preview(text: str, width: int = 60) -> str:
    """A one-line, bounded rendering of text for an error message."""
    return repr(text if len(text) <= width else text[: width - 3] + "...")


_PARSERS: dict[str, _Parser] = {"jsonl": _parse_jsonl, "csv": _parse_csv, "listing": _parse_listing}


def read_items(
    inputs: Sequence[str], *, strict: bool = False, stdin: TextIO | None = None
) -> tuple[list[Item], list[InputError]]:
    """Unique items from every input, all in memory, and the problems skipped on the way.

    `run` does not hold them all: it indexes the input, then streams the texts.
    """
    with closing(Inputs(inputs, stdin=stdin)) as source:
        index, problems = index_inputs(source, strict=strict)
        return list(stream_items(source.entries([]), index)), problems


def index_inputs(source: Inputs, *, strict: bool) -> tuple[dict[str, Item], list[InputError]]:
    """Every unique abstract's id, title and sources (no text), and the problems found."""
    problems: list[InputError] = []
    index = index_items(source.entries(problems), problems=problems)
    if strict and problems:
        raise problems[0]
    if not index:
        raise InputError("no abstracts found", path=", ".join(source.paths))
    return index, problems
