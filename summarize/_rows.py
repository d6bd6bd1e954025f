"""A batch of rows in, one line per unique abstract out: the live core without files.

For callers that keep lines themselves, such as a worker of a distributed map
(with Ray Data, `map_batches(..., batch_format="pandas")` and `df.to_dict("records")`).
It runs its own event loop, so it is called from synchronous code (in a notebook,
from a thread). With no endpoint configured, each call starts the embedded model's
server: configure an endpoint for calls per batch. Each row is
a mapping with `abstract`, and `title` and `id` if known, checked as a JSONL line
is. Duplicates fold as in a run. Every unique abstract comes back as exactly one
line, shaped as in OUT.jsonl or OUT.errors.jsonl (the error lines carry
`error_type`), in first-seen order. The same endpoint choice, pacing, spend caps,
retries and re-asks as `run`; no output file, lock or manifest.

    >>> from summarize import RunSettings, summarize_rows
    >>> lines = summarize_rows([{"title": "T", "abstract": "..."}], RunSettings(inputs=()))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._core.outcome import RunResult
from ._core.plan import plan
from ._core.records import ErrorRecord, Record
from ._core.summarizer import Summarizer
from ._errors import InputError
from ._items import Entry, Item, Source, collect_items
from ._live.session import send_live
from ._live.transport import AsyncTransport
from ._readers import entry_from_row
from ._settings import RunSettings

ROWS = "<rows>"  # the "file" an error about a row names; the line is the row's 1-based number


class Lines:
    """The lines of one batch, kept in memory by id (a `Sink`)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Record | ErrorRecord] = {}

    def write_record(self, record: Record) -> None:
        """Keep one record."""
        self.by_id[record.id] = record

    def write_error(self, error: ErrorRecord) -> bool:
        """Keep one error line; no earlier record is kept (the rows start with none)."""
        self.by_id[error.id] = error
        return False


def summarize_rows(
    rows: Iterable[Mapping[str, Any]],
    settings: RunSettings | None = None,
    *,
    summarizer: Summarizer | None = None,
    transport: AsyncTransport | None = None,
) -> list[dict[str, Any]]:
    """One record or error line (as JSON-ready dicts) per unique abstract of `rows`.

    A row without a usable abstract raises `InputError` naming its number, before any
    request. Abstracts left unsent by a spend cap have no line. `settings.inputs`,
    `output`, `limit` and `force` are not used: the caller decides what to send.
    `summarizer` and `transport` are as in `run`.
    """
    settings = settings or RunSettings(inputs=())
    items = _items(rows)
    lines = Lines()
    if items:
        planned = plan(settings, summarizer=summarizer)
        result = RunResult(unique=len(items))
        send_live(iter(items), len(items), settings, result, sink=lines, plan=planned,
                  summarizer=summarizer, transport=transport)
    return [lines.by_id[item.id].model_dump(mode="json") for item in items
            if item.id in lines.by_id]  # fmt: skip


def _entry(row: object, number: int) -> Entry:
    if not isinstance(row, Mapping):
        raise InputError(f"expected a mapping with 'abstract', got {type(row).__name__}",
                         path=ROWS, line=number)  # fmt: skip
    return entry_from_row(row, Source(ROWS, number))


def _items(rows: Iterable[Mapping[str, Any]]) -> list[Item]:
    entries = [_entry(row, number) for number, row in enumerate(rows, 1)]
    problems: list[InputError] = []
    items = collect_items(entries, problems=problems)
    if problems:
        raise problems[0]  # an id that names two abstracts: the caller's rows disagree
    return items
