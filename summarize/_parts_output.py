"""A local run into a folder of parts: `summarize run INPUTS -o OUTDIR` resumes there.

`-o` names an output, and `--engine` only says where the work runs: a folder that
`--engine ray` filled is the same output to a local run, which skips the ids done there
the same way (model and `request_hash`) and adds its own lines as new parts. A nightly
top-up of a few new abstracts into a folder a cluster backfilled needs no Ray.

Lines are kept in memory and written as one part, whole, every `PART_LINES` lines or
`PART_SECONDS` seconds, and at the end. A kill loses at most the lines not yet written
(their abstracts are asked again on the next run, as when a Ray worker dies), never a
line written: there is no appending, so no torn line. At the end the lines later parts
superseded are dropped (`compact`), as after a Ray run. The lock is the one every run
of this output takes, local or on Ray.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from ._core.records import ErrorRecord, Fingerprint, Record
from ._parts import Parts, compact, locked, read_parts, remove_temporaries, write_part

PART_LINES = 64  # Ray's default batch size: a kill repays at most as much as there
PART_SECONDS = 10.0


class PartsOutput:
    """The sink of a local run whose output is a folder of parts (`_run.run`)."""

    def __init__(self, folder: Path, request_hash: str) -> None:
        self.folder = folder
        self._hash = request_hash
        self._parts = Parts()  # read under the lock, in `open`
        self._lines: list[Record | ErrorRecord] = []
        self._since = time.monotonic()
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Lock the folder, remove what killed writers left, and read what is done."""
        self._stack.enter_context(locked(self.folder))
        try:
            remove_temporaries(self.folder)
            self._parts = read_parts(self.folder)
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        """Write the lines still held, drop superseded ones, release the lock."""
        try:
            self._flush()
            compact(self.folder)
        finally:
            self._stack.close()

    def is_done(self, item_id: str, wanted: Fingerprint) -> bool:
        """Whether the folder holds a current record of `item_id` made the same way."""
        return self._parts.is_done(item_id, wanted)

    def write_record(self, record: Record) -> None:
        """Keep one record; written with the next part."""
        self._keep(record)

    def write_error(self, error: ErrorRecord) -> bool:
        """Keep one error line; whether an earlier record of the id is kept beside it."""
        self._keep(error)
        return error.id in self._parts.records

    def _keep(self, line: Record | ErrorRecord) -> None:
        self._lines.append(line)
        if len(self._lines) >= PART_LINES or time.monotonic() - self._since >= PART_SECONDS:
            self._flush()

    def _flush(self) -> None:
        lines, self._lines, self._since = self._lines, [], time.monotonic()
        if lines:
            write_part(self.folder, lines, self._hash)
