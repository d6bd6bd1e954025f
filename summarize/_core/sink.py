"""Where a run's lines go: any object that keeps a record and an error line.

`summarize._output.Output` keeps them in OUT.jsonl and OUT.errors.jsonl; `summarize_rows`
keeps them in memory (`_rows.Lines`); a live repair notes each id in a journal too
(`_batch.live_repair.Journaled`).
"""

from __future__ import annotations

from typing import Protocol

from .records import ErrorRecord, Record


class Sink(Protocol):
    """Where lines go: `Output` (the files), or a caller's own (`summarize_rows`)."""

    def write_record(self, record: Record) -> None:
        """Keep one record."""
        ...

    def write_error(self, error: ErrorRecord) -> bool:
        """Keep one error line; whether an earlier record of the id is kept beside it."""
        ...
