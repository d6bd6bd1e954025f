"""JSONL, read one way: every JSONL file the package reads goes through `read_jsonl`.

Each line is parsed by `jsonlines` and checked against the JSON type the caller
expects (`expect=dict` for records, `str` for a journal of ids). What a bad line does
is the caller's explicit policy:

    read_jsonl(path, expect=dict)              strict: the first bad line raises
                                               `InputError` naming file and line
    read_jsonl(path, expect=dict, bad="skip")  each bad line comes as a `BadLine`, typed
                                               by its `Fault`, to count or report
    line.offset                                every line's byte offset, to read it
                                               again later (`line_at`) or resume after it

Blank lines are passed over and keep their numbers. `torn=True` is for a file that a
writer appends to and may be killed in: a last line with no newline is then a torn
write (`Fault.TORN`), not data, and `drop_torn_tail` cuts it off before the next
append. `max_line_bytes` keeps memory bounded on a file that is one huge line.
`parse_line` is the same check for a line read already (the input readers, whose lines
are shared with CSV and listings); `raw_lines` is the splitter under both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar, overload

import jsonlines

from ._errors import InputError, OutputError

__all__ = [
    "BadLine",
    "Fault",
    "Line",
    "LineFault",
    "RawLine",
    "drop_torn_tail",
    "line_at",
    "parse_line",
    "raw_lines",
    "read_jsonl",
]

T = TypeVar("T")


class Fault(StrEnum):
    """Why a line is not a value of the expected type."""

    TORN = "torn"  # the last line has no newline: a write was cut off (torn=True)
    TOO_LONG = "too_long"  # longer than max_line_bytes; not read
    NOT_UTF8 = "not_utf8"
    MALFORMED = "malformed"  # not JSON
    WRONG_TYPE = "wrong_type"  # JSON, but not the type expected


@dataclass(frozen=True, slots=True)
class Line(Generic[T]):
    """One good line: its 1-based number, the byte offset where it starts, its value."""

    number: int
    offset: int
    value: T


@dataclass(frozen=True, slots=True)
class BadLine:
    """One bad line (policy "skip"): where it is, its fault and a one-line reason."""

    path: str
    number: int
    offset: int
    fault: Fault
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.number}: {self.reason}"

    def error(self) -> InputError:
        """The error policy "raise" raises for this line."""
        return InputError(self.reason, path=self.path, line=self.number)


class LineFault(ValueError):
    """`parse_line`: the line is not a JSON value of the expected type."""

    def __init__(self, fault: Fault, reason: str) -> None:
        super().__init__(reason)
        self.fault = fault
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RawLine:
    """One line as bytes, newline included; `data` is empty for a line too long to read."""

    number: int
    offset: int
    data: bytes
    too_long: bool = False


def raw_lines(readline: Callable[[int], bytes], max_bytes: int | None = None) -> Iterator[RawLine]:
    """The lines `readline(size)` gives, numbered from 1 with their byte offsets.

    A line longer than `max_bytes` is read past a piece at a time and comes as a
    `RawLine` with `too_long` set: no line of that size is ever held in memory.
    """
    number = offset = 0
    while chunk := readline(-1 if max_bytes is None else max_bytes + 1):
        number += 1
        start = offset
        offset += len(chunk)
        if max_bytes is not None and len(chunk) > max_bytes and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = readline(max_bytes)
                offset += len(chunk)
            yield RawLine(number, start, b"", too_long=True)
        else:
            yield RawLine(number, start, chunk)


def parse_line(data: str | bytes, *, expect: type[T]) -> T:
    """The JSON value of one line, if it is of type `expect`; else `LineFault` saying why."""
    try:
        value = jsonlines.Reader((data,), loads=_loads).read(allow_none=True)
    except jsonlines.InvalidLineError as exc:
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            where = f"byte 0x{cause.object[cause.start]:02x} at column {cause.start + 1}"
            raise LineFault(Fault.NOT_UTF8, f"not UTF-8 text ({where})") from None
        if isinstance(cause, json.JSONDecodeError):
            reason = f"malformed JSON: {cause.msg} at column {cause.colno}"
            raise LineFault(Fault.MALFORMED, reason) from None
        raise LineFault(Fault.MALFORMED, f"malformed JSON: {_first_line(cause)}") from None
    if not isinstance(value, expect) or (expect is int and isinstance(value, bool)):
        got = "null" if value is None else type(value).__name__
        reason = f"expected a JSON {_JSON_NAMES.get(expect, expect.__name__)}, got {got}"
        raise LineFault(Fault.WRONG_TYPE, reason)
    return value


_JSON_NAMES: dict[type[Any], str] = {dict: "object", list: "array", str: "string",
                                     int: "integer", float: "number", bool: "boolean"}  # fmt: skip


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except RecursionError as exc:  # jsonlines translates only ValueError
        raise ValueError("nested too deeply") from exc


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:100]


@overload
def read_jsonl(
    path: Path | str,
    *,
    expect: type[T],
    bad: Literal["raise"] = ...,
    torn: bool = ...,
    missing_ok: bool = ...,
    max_line_bytes: int | None = ...,
) -> Iterator[Line[T]]: ...
@overload
def read_jsonl(
    path: Path | str,
    *,
    expect: type[T],
    bad: Literal["skip"],
    torn: bool = ...,
    missing_ok: bool = ...,
    max_line_bytes: int | None = ...,
) -> Iterator[Line[T] | BadLine]: ...
def read_jsonl(
    path: Path | str,
    *,
    expect: type[T],
    bad: Literal["raise", "skip"] = "raise",
    torn: bool = False,
    missing_ok: bool = False,
    max_line_bytes: int | None = None,
) -> Iterator[Line[T]] | Iterator[Line[T] | BadLine]:
    """The lines of `path` as values of type `expect`, read lazily, one line in memory.

    `bad`: "raise" (a bad line is an `InputError` naming file and line) or "skip"
    (yielded as a `BadLine`). `torn`: a last line with no newline is a `Fault.TORN`.
    `missing_ok`: a missing file has no lines (else `InputError`: no such file).
    A file that cannot be read is an `InputError` either way.
    """
    name = str(path)
    try:
        with Path(path).open("rb") as fh:
            for raw in raw_lines(fh.readline, max_line_bytes):
                if not raw.too_long and not raw.data.strip():
                    continue
                found = _judged(raw, name, expect, torn=torn, max_bytes=max_line_bytes)
                if isinstance(found, BadLine) and bad == "raise":
                    raise found.error()
                yield found
    except FileNotFoundError:
        if not missing_ok:
            raise InputError("no such file", path=name) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path=name) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path=name) from None


def _judged(
    raw: RawLine, path: str, expect: type[T], *, torn: bool, max_bytes: int | None
) -> Line[T] | BadLine:
    if raw.too_long:
        reason = f"line longer than {max_bytes} bytes; not read"
        return BadLine(path, raw.number, raw.offset, Fault.TOO_LONG, reason)
    if torn and not raw.data.endswith(b"\n"):
        reason = "torn: the last line has no newline (a write was cut off)"
        return BadLine(path, raw.number, raw.offset, Fault.TORN, reason)
    try:
        return Line(raw.number, raw.offset, parse_line(raw.data, expect=expect))
    except LineFault as exc:
        return BadLine(path, raw.number, raw.offset, exc.fault, exc.reason)


def line_at(fh: IO[bytes], offset: int, *, path: Path | str, expect: type[T]) -> T:
    """The value of the line at `offset` of the open file `fh` (an offset `read_jsonl`
    gave); a bad line is an `InputError` naming the file."""
    fh.seek(offset)
    try:
        return parse_line(fh.readline(), expect=expect)
    except LineFault as exc:
        raise InputError(f"at byte {offset}: {exc.reason}", path=path) from None


def drop_torn_tail(path: Path) -> None:
    """Cut off what follows the last newline of `path`: a write torn by a kill or a full
    disk, which the next append would turn into a whole line that is no JSON."""
    try:
        with path.open("rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            # Walk back to the last newline, a block at a time, never reading the file.
            block = 1 << 16
            end = size
            while end > 0:
                start = max(0, end - block)
                fh.seek(start)
                cut = fh.read(end - start).rfind(b"\n")
                if cut >= 0:
                    fh.truncate(start + cut + 1)
                    return
                end = start
            fh.truncate(0)
    except OSError as exc:
        raise OutputError(f"{path}: cannot repair ({exc.strerror})") from exc
