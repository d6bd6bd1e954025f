"""Readers: turn an input file (or stdin) into `Entry` objects, one per occurrence.

Three formats, chosen by extension (sniffed from the first line for `-`):

    .jsonl / .ndjson    one JSON object a line: title, abstract, optional id
    .csv                a header row naming title, abstract, optional id
    anything else       a "listing": text dumped from a paper-listing web page, a
                        title line followed by its abstract paragraph

A problem with the whole input (missing, a directory, empty, binary, not UTF-8, no
entries at all) raises `InputError`. A problem with one entry is appended to
`problems` and the entry is skipped, so one bad line does not stop a run.

This module supplies the lines (files, standard input spooled for a second read,
decoding, the line cap); `_formats` turns them into entries.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing
from itertools import chain
from pathlib import Path
from typing import IO, Protocol, TextIO, cast

from ._errors import InputError
from ._formats import MIN_ABSTRACT_CHARS, PARSERS, Lines, entry_from_row, format_of
from ._items import Entry, Item, index_items, stream_items
from ._jsonl import raw_lines

__all__ = [
    "MAX_LINE_BYTES",
    "MIN_ABSTRACT_CHARS",
    "STDIN_PATH",
    "entry_from_row",
    "read_entries",
]

STDIN_PATH = "-"
SPOOL_IN_MEMORY = 8 << 20  # standard input beyond this is spooled to a temporary file

# A line longer than this is skipped as a problem instead of read: no abstract is
# this long, and it keeps memory bounded on a file that is one huge line.
MAX_LINE_BYTES = 1 << 20


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
            parse = PARSERS[format_of(path, head[-1][1], sniff=path == STDIN_PATH)]
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


def _up_to_first_text(lines: Lines) -> list[tuple[int, str]]:
    """The lines up to and including the first that is not blank; [] if all are."""
    head: list[tuple[int, str]] = []
    for number, text in lines:
        head.append((number, text))
        if text.strip():
            return head
    return []


def _numbered_lines(stream: _Readable, path: str, problems: list[InputError]) -> Lines:
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
