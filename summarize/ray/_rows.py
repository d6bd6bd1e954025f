"""A batch as Ray Data hands it over (a pandas DataFrame or a dict of columns), as items.

Rows are checked as JSONL lines are (`summarize._readers.entry_from_row`). A row that is no
entry (no abstract, a title that is no text) does not stop the batch: it becomes an
`input` error line, under its own id or, without one, a hash of the row. Rows with
the same abstract fold into one item. Where a row says where it was read (`sources`,
a list, or `source`), the item keeps that; else its place in the batch (`<rows>:N`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import ErrorType, InputError, SummaryError
from .._items import Entry, Item, Source, collect_items
from .._readers import entry_from_row

ROWS = "<rows>"
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class NamedSource(Source):
    """A source given as text that is not `path:line`: it reads as given."""

    def __str__(self) -> str:
        return self.path


@dataclass(slots=True)
class Unreadable:
    """A row that is no entry: the item its error line is about, and why."""

    item: Item
    error: SummaryError


@dataclass(slots=True)
class Rows:
    """One batch, read: the unique items to send and the rows that cannot be."""

    items: list[Item] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    def ids(self) -> list[str]:
        """Every id that gets a line, in the batch's order."""
        return [item.id for item in self.items] + [bad.item.id for bad in self.unreadable]


def rows_of(batch: Any) -> list[Row]:
    """The rows of a pandas DataFrame or a dict of columns, as plain Python values."""
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):
        records: list[Row] = batch.to_dict("records")
    elif isinstance(batch, Mapping):
        columns = {str(name): list(values) for name, values in batch.items()}
        count = len(next(iter(columns.values()), []))
        records = [{name: values[i] for name, values in columns.items()} for i in range(count)]
    else:
        raise TypeError(f"expected a pandas DataFrame or a dict of columns, got "
                        f"{type(batch).__name__}")  # fmt: skip
    return [{str(k): _plain(v) for k, v in row.items()} for row in records]


def _plain(value: Any) -> Any:
    """None for NaN and pandas' missing values; lists and Python scalars for numpy's."""
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def read_rows(rows: Sequence[Row]) -> Rows:
    """The batch's unique items, with their sources, and its unreadable rows."""
    read = Rows()
    entries: list[Entry] = []
    given: dict[int, list[Source]] = {}
    for number, row in enumerate(rows, 1):
        sources = _sources(row)
        if sources:
            given[number] = sources
        try:
            entries.append(entry_from_row(row, Source(ROWS, number)))
        except InputError as exc:
            read.unreadable.append(_unreadable(row, exc, sources or [Source(ROWS, number)]))
    # An id reused for another abstract is the later row's problem: the id's line is the
    # first abstract's, so the later row is left out (no id gets two lines).
    read.items = collect_items(entries, problems=[])
    for item in read.items:
        item.sources = [s for found in item.sources for s in given.get(found.line, [found])]
    return read


def _sources(row: Row) -> list[Source]:
    value = row.get("sources")
    if value is None:
        value = row.get("source")
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [_source(text) for text in texts if isinstance(text, str) and text]


def _source(text: str) -> Source:
    path, colon, line = text.rpartition(":")
    if colon and path and line.isdigit():
        return Source(path, int(line))
    return NamedSource(text, 0)


def _unreadable(row: Row, error: InputError, sources: list[Source]) -> Unreadable:
    title, abstract = row.get("title"), row.get("abstract")
    item = Item(
        id=_row_id(row),
        title=title if isinstance(title, str) else "",
        abstract=abstract if isinstance(abstract, str) else "",
        sources=sources,
    )
    return Unreadable(item, SummaryError(error.reason, error_type=ErrorType.INPUT, attempts=0))


def _row_id(row: Row) -> str:
    """The row's own id if it is text or a number, else a hash of the whole row."""
    value = row.get("id")
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    text = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
    return "row-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
