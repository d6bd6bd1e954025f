"""Input formats: how the numbered text lines of one input become `Entry` objects.

    jsonl      one JSON object a line: title, abstract, optional id (`summarize._jsonl`)
    csv        a header row naming title, abstract, optional id; quoted fields may span lines
    listing    text dumped from a paper-listing web page: a title line, then its abstract
               paragraph, with the page's menus and dates between them

`_readers` supplies the lines (decoded, numbered, from a file or standard input) and
picks the parser (`format_of`). A problem with one entry is appended to `problems` and
the entry skipped; a problem with the whole input (a CSV header with no 'abstract'
column) raises `InputError`. The field checks (`entry_from_row`) are shared with rows
given in memory.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ._errors import InputError
from ._items import Entry, Source
from ._jsonl import LineFault, parse_line

__all__ = ["MIN_ABSTRACT_CHARS", "PARSERS", "Lines", "Parser", "entry_from_row", "format_of"]

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

Lines = Iterator[tuple[int, str]]
Parser = Callable[[Lines, str, list[InputError]], Iterator[Entry]]


def format_of(path: str, first_text: str, *, sniff: bool) -> str:
    """The format of an input, "jsonl", "csv" or "listing": by `path`'s extension, or
    (`sniff`: standard input, which has none) by its first line of text."""
    if sniff:
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


def _parse_jsonl(lines: Lines, path: str, problems: list[InputError]) -> Iterator[Entry]:
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


def _parse_csv(lines: Lines, path: str, problems: list[InputError]) -> Iterator[Entry]:
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


def _parse_listing(lines: Lines, path: str, problems: list[InputError]) -> Iterator[Entry]:
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


PARSERS: dict[str, Parser] = {"jsonl": _parse_jsonl, "csv": _parse_csv, "listing": _parse_listing}
