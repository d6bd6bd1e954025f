"""An output folder of parts: written once per batch, read as one output.

Each batch writes one part, `OUT/part-<hash>.jsonl`, whole (`summarize._atomic.replace_file`: a
temporary file, then a rename), holding one line per id of the batch: a record, or an
error line (`error_type`). The name is a hash of the request's fingerprint and the
batch's sorted ids, so a batch that Ray runs again overwrites its own part instead of
adding one: output is exactly-once by id even though requests are at-least-once.

`read_parts` reads the folder as one output: for each id, its newest record and its
newest error line, the error current only when it came after the record (as beside
`OUT.jsonl`, a failed redo keeps its record). Newest means the later `created_at`, then
the later-written part. After a run, `compact` drops the lines later parts superseded,
so that a folder rerun night after night does not grow.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonlines

from .._atomic import replace_file
from .._core.records import ErrorRecord, Fingerprint, Record, fingerprint
from .._errors import OutputError
from .._output import encode_line, encode_model

PART_PREFIX = "part-"
PART_SUFFIX = ".jsonl"
_HASH_CHARS = 16

_Order = tuple[str, int, int]  # created_at, the part's mtime in ns, the line's number


def part_name(ids: Iterable[str], request_hash: str) -> str:
    """`part-<16 hex>.jsonl`: the same ids asked the same way always get the same name."""
    digest = hashlib.sha256(request_hash.encode())
    for item_id in sorted(set(ids)):
        digest.update(b"\0" + item_id.encode())
    return f"{PART_PREFIX}{digest.hexdigest()[:_HASH_CHARS]}{PART_SUFFIX}"


def write_part(folder: Path, lines: Sequence[Record | ErrorRecord], request_hash: str) -> Path:
    """Write the lines of one batch as its part, whole; the path written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror})") from exc
    path = folder / part_name((line.id for line in lines), request_hash)
    replace_file(path, (encode_model(line) for line in lines))
    return path


@dataclass(slots=True)
class Parts:
    """A folder of parts read as one output: each id's current lines."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)  # current ones only
    files: int = 0
    lines: int = 0  # read, duplicates included

    def is_done(self, item_id: str, wanted: Fingerprint) -> bool:
        """Whether `item_id` has a record made the same way and no failed attempt after it."""
        record = self.records.get(item_id)
        return record is not None and item_id not in self.errors and fingerprint(record) == wanted

    def ids(self) -> set[str]:
        """Every id with a current line."""
        return self.records.keys() | self.errors.keys()


def part_paths(folder: Path) -> list[Path]:
    """The parts of `folder` (none if it does not exist), by name."""
    try:
        paths = sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OutputError(f"{folder}: cannot list ({exc.strerror})") from exc
    return [p for p in paths if p.name.startswith(PART_PREFIX) and p.name.endswith(PART_SUFFIX)]


def read_parts(folder: Path) -> Parts:
    """Every part of `folder` as one output, deduplicated by id (see the module doc)."""
    return _scan(folder)[0]


def _scan(folder: Path) -> tuple[Parts, set[tuple[str, int]]]:
    """The folder as one output, and where its current lines are (part, line number)."""
    found = Parts()
    newest_record: dict[str, _Order] = {}
    newest_error: dict[str, _Order] = {}
    errors: dict[str, dict[str, Any]] = {}
    where: dict[tuple[str, bool], tuple[str, int]] = {}
    for path in part_paths(folder):
        found.files += 1
        for order, line in _lines(path):
            found.lines += 1
            item_id, failed = str(line["id"]), "error_type" in line
            kept, newest = (errors, newest_error) if failed else (found.records, newest_record)
            if item_id not in newest or order > newest[item_id]:
                newest[item_id], kept[item_id] = order, line
                where[item_id, failed] = (path.name, order[2])
    found.errors = {i: e for i, e in errors.items()
                    if i not in newest_record or newest_error[i] > newest_record[i]}  # fmt: skip
    current = {where[i, False] for i in found.records} | {where[i, True] for i in found.errors}
    return found, current


def compact(folder: Path) -> int:
    """Drop the lines a later part superseded: a part left with none goes, one with
    some is rewritten whole (keeping its time, which orders lines of equal stamps).
    Only for the holder of the folder's lock, after its workers are done. How many
    lines went."""
    _, current = _scan(folder)
    dropped = 0
    for path in part_paths(folder):
        lines = [(order[2], line) for order, line in _lines(path)]
        kept = [line for number, line in lines if (path.name, number) in current]
        if len(kept) == len(lines):
            continue
        dropped += len(lines) - len(kept)
        try:
            if not kept:
                path.unlink()
                continue
            written = path.stat().st_mtime_ns
            replace_file(path, (encode_line(line) for line in kept))
            os.utime(path, ns=(written, written))
        except OSError as exc:
            raise OutputError(f"{path}: cannot rewrite ({exc.strerror})") from exc
    return dropped


def _lines(path: Path) -> Iterator[tuple[_Order, dict[str, Any]]]:
    try:
        written = path.stat().st_mtime_ns
        with path.open("rb") as fh:
            reader = jsonlines.Reader(fh).iter(type=dict, skip_empty=True)
            for number, line in enumerate(reader, 1):
                if not isinstance(line.get("id"), str):
                    raise OutputError(f"{path}:{number}: line has no string `id`")
                yield (str(line.get("created_at", "")), written, number), line
    except jsonlines.InvalidLineError as exc:
        raise OutputError(f"{path}:{exc.lineno}: not a JSON object (a part is written "
                          "whole: was it edited?)") from None  # fmt: skip
    except OSError as exc:
        raise OutputError(f"{path}: cannot read ({exc.strerror})") from exc


def remove_temporaries(folder: Path) -> int:
    """Delete the temporaries that killed writers left in `folder` (`.part-….tmp`); only
    for the holder of the folder's lock, before workers start. How many went."""
    removed = 0
    try:
        paths = list(folder.iterdir())
    except OSError:
        return 0  # best effort: a leftover costs room, not correctness
    for path in paths:
        if path.name.startswith(f".{PART_PREFIX}") and path.name.endswith(".tmp"):
            try:
                path.unlink()
            except OSError:
                continue
            removed += 1
    return removed
