"""An output's current lines, whatever its shape: what `report`, `export`, `diff` and
`eval` read.

An output is either a JSONL file (`OUT.jsonl`, its error lines beside it in
`OUT.errors.jsonl`) or a folder of parts (`--engine ray`, `summarize._parts`). Both
read the same way here: one record per id, the error lines that are current (an id with
no record, or a redo that failed after its record), and the records a failed redo kept.
Bad lines follow the one JSONL reader's strict policy: an `InputError` naming the file,
or the part, and the line. Nothing here imports Ray: the CLI reads a folder without the
`ray` extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import InputError, OutputError
from ._jsonl import read_jsonl
from ._output import errors_path_for, failed_after
from ._parts import read_parts
from ._review import REQUIRED, read_json_lines


@dataclass(frozen=True, slots=True)
class Current:
    """The current lines of one output."""

    source: Path
    records: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_redos(self) -> dict[str, dict[str, Any]]:
        """The records a failed redo came after, as their id -> that error line."""
        made = {r["id"] for r in self.records}
        return {str(e["id"]): e for e in self.errors if e.get("id") in made}


def read_current(path: Path) -> Current:
    """The current lines of the output at `path`: a folder of parts, else a JSONL file."""
    if path.is_dir():
        return _folder(path)
    errors_path = errors_path_for(path)
    errors = _read_errors(errors_path) if errors_path.exists() else []
    records = read_json_lines(path)
    made = {r["id"]: r for r in records}
    current = [e for e in errors if e.get("id") not in made or failed_after(made[e["id"]], e)]
    return Current(path, records, current)


def _folder(folder: Path) -> Current:
    parts = read_parts(folder)
    if not parts.files:
        raise InputError("a folder with no parts (part-*.jsonl): not an output", path=folder)
    # In the order they were written in, part by part, as a file's lines are.
    located = sorted(parts.records, key=lambda i: parts.where[i, False])
    for item_id in located:
        if missing := REQUIRED - parts.records[item_id].keys():
            part, number = parts.where[item_id, False]
            raise InputError(f"missing {', '.join(sorted(missing))}", path=part, line=number)
    errors = sorted(parts.errors, key=lambda i: parts.where[i, True])
    return Current(folder, [parts.records[i] for i in located], [parts.errors[i] for i in errors])


def _read_errors(path: Path) -> list[dict[str, Any]]:
    try:
        return [line.value for line in read_jsonl(path, expect=dict)]
    except InputError as exc:
        # The message names the errors file and line already.
        raise OutputError(f"cannot read the errors file: {exc}") from None
