"""The output files: OUT.jsonl (records) and OUT.errors.jsonl, kept exact.

Invariants, after every run, whatever killed the one before:
- one current line per abstract id: a record, or an error line saying why its last
  attempt failed; a record that a failed redo (another model, prompt or schema, or
  `--force`) did not replace is kept beside that error line, and the id is asked again
  on the next run (`Output.is_done`); an error line goes once a record replaces it;
- no torn line: a line cut off by `kill -9` is dropped on the next open;
- lines are appended and flushed one at a time; files are only ever rewritten
  whole, to a temporary file then `os.replace`, so a full disk cannot damage
  what was already written;
- one run at a time: an advisory lock that the kernel releases when its owner dies.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from filelock import FileLock, Timeout
from pydantic import BaseModel

from ._atomic import remove_leftovers, replace_file
from ._core.records import ErrorRecord, Fingerprint, Record, fingerprint
from ._errors import InputError, OutputError
from ._jsonl import Line, drop_torn_tail, read_jsonl

WRITE_BUFFER = 1 << 20


def errors_path_for(path: Path) -> Path:
    """`out.jsonl` -> `out.errors.jsonl`."""
    return path.with_name(f"{path.stem}.errors{path.suffix or '.jsonl'}")


def dumps(obj: Any) -> str:
    """Compact JSON on one line, readable Unicode, and no line separators inside."""
    return _one_line(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def _one_line(text: str) -> str:
    """JSON text with U+2028/U+2029 escaped: editors and some readers break lines there."""
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


def encode_line(obj: Any) -> bytes:
    """One JSONL line, newline included, as bytes."""
    return (dumps(obj) + "\n").encode("utf-8")


def encode_model(model: BaseModel) -> bytes:
    """`encode_line` of a model's JSON, serialised by pydantic (a tenth of the CPU)."""
    return (_one_line(model.model_dump_json()) + "\n").encode("utf-8")


class Output:
    """Open, lock, repair and append to the record and error files of one run."""

    def __init__(self, path: Path) -> None:
        if path.is_dir() or not path.name:
            raise OutputError(f"{path}: is a directory, not an output file")
        self.path = path
        self.errors_path = errors_path_for(path)
        # Locked where the records really are: an output reached through a symlink and by
        # its target's own name is one output, and two runs must not both write it.
        real = Path(os.path.realpath(path))
        self._lock = FileLock(str(real.with_name(real.name + ".lock")), timeout=0)
        self._records: IO[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self.done: dict[str, Fingerprint] = {}
        self._shared: dict[Fingerprint, Fingerprint] = {}  # one tuple per way of making
        # Ids whose last attempt failed: no record, or one older than the error, kept.
        self._failed: set[str] = set()
        self._superseded = False  # a line written this run replaces an older one

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
        """Lock, repair a torn tail, drop superseded lines, and load what is done."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise OutputError(
                f"{self.path}: another summarize run is writing this output (lock held)"
            ) from None
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create or lock ({exc.strerror})") from exc
        try:
            for path in (self.path, self.errors_path):
                remove_leftovers(path)  # of a run killed while compacting; we hold the lock
            self._compact()
            self._records = self._append(self.path)
            self._errors = self._append(self.errors_path)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Flush to disk, drop superseded lines, release the lock."""
        for fh in (self._records, self._errors):
            if fh is not None and not fh.closed:
                with contextlib.suppress(OSError):
                    fh.flush()
                    os.fsync(fh.fileno())
                # After a failed write (disk full) bytes may still sit in the buffer;
                # closing drops them and the torn tail is cut off just below.
                with contextlib.suppress(OSError):
                    fh.close()
        self._records = self._errors = None
        try:
            if self._lock.is_locked:
                self._tidy()
        finally:
            if self._lock.is_locked:
                # Removed while still held. A run that opened the file a moment ago and
                # locks it after the release holds a deleted file: filelock >= 3.20.4
                # sees that (st_nlink 0) and lets it go, so no two runs hold one each.
                with contextlib.suppress(OSError):
                    Path(self._lock.lock_file).unlink()
            self._lock.release()

    def is_done(self, item_id: str, wanted: Fingerprint) -> bool:
        """Whether OUT.jsonl holds a record for this id made the same way, and no attempt
        failed since it was made."""
        return self.done.get(item_id) == wanted and item_id not in self._failed

    def write_record(self, record: Record) -> None:
        """Append one record and flush it."""
        self._write(self._records, record)
        self._superseded |= record.id in self.done or record.id in self._failed
        found = fingerprint({"model": record.model, "request_hash": record.request_hash})
        self.done[record.id] = self._shared.setdefault(found, found)
        self._failed.discard(record.id)

    def write_error(self, error: ErrorRecord) -> bool:
        """Append one error line and flush it; whether an earlier record of the id is
        kept beside it (a failed redo loses no record)."""
        self._write(self._errors, error)
        self._superseded |= error.id in self._failed
        self._failed.add(error.id)
        return error.id in self.done

    def _write(self, fh: IO[bytes] | None, line: Record | ErrorRecord) -> None:
        if fh is None:
            raise OutputError(f"{self.path}: output is not open")
        try:
            fh.write(encode_model(line))
            fh.flush()
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror})") from exc

    def _append(self, path: Path) -> IO[bytes]:
        try:
            return path.open("ab", buffering=WRITE_BUFFER)
        except OSError as exc:
            raise OutputError(f"{path}: cannot open for writing ({exc.strerror})") from exc

    def _compact(self, failed: set[str] | None = None) -> None:
        """Keep the last line per id, and an id's error line while its last attempt
        failed: the id has no record, or the error came after it (`failed`, this run's
        own knowledge; at open, `failed_after` on the stamps).

        Memory holds ids, line numbers and fingerprints, never the lines (and the stamps
        of ids with an error line): a file is read once, and again only when lines go.
        """
        errors = _newest_lines(self.errors_path, stamps=None)
        done: dict[str, Fingerprint] = {}
        records = _newest_lines(self.path, fingerprints=done, stamps=errors.stamps.keys())
        if failed is None:
            failed = {
                item_id
                for item_id, stamp in errors.stamps.items()
                if item_id not in done or _stamped_after(stamp, records.stamps[item_id])
            }
        self.done, self._failed, self._superseded = done, failed, False
        if len(records.newest) != records.count:
            _keep_lines(self.path, lambda number, item_id: records.newest[item_id] == number)
        if sum(1 for item_id in errors.newest if item_id in failed) != errors.count:
            _keep_lines(self.errors_path, lambda number, item_id: (
                errors.newest[item_id] == number and item_id in failed))  # fmt: skip

    def _tidy(self) -> None:
        """At close: cut a torn tail, and drop the lines this run superseded, if any."""
        if self._superseded:
            self._compact(self._failed)
            return
        for path in (self.path, self.errors_path):
            if path.exists():
                drop_torn_tail(path)


def peek_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of `path`, read only (no lock, no repair): a bad or torn line is passed
    over, and a missing file has none."""
    try:
        lines = read_jsonl(path, expect=dict, bad="skip", missing_ok=True)
        yield from (line.value for line in lines if isinstance(line, Line))
    except InputError as exc:
        raise OutputError(str(exc)) from None


def failed_after(record: Mapping[str, Any], error: Mapping[str, Any]) -> bool:
    """Whether `error`, a line of the same id, was written after `record`: its last
    attempt failed, and the record is kept but no longer current.

    Stamps are whole seconds; a tie goes to the error, so that a failure is never
    hidden (at worst the abstract is asked once more, its record kept meanwhile)."""
    return _stamped_after(str(error.get("created_at", "")), str(record.get("created_at", "")))


def _stamped_after(error: str, record: str) -> bool:
    # ISO 8601 in UTC, as `records` writes them: text order is time order.
    return error >= record


def failed_redos(path: Path) -> dict[str, dict[str, Any]]:
    """The records of `path` that a failed attempt came after, as their id -> the error
    line beside them in `OUT.errors.jsonl` (read only, like `peek_records`)."""
    errors = {str(e.get("id")): e for e in peek_records(errors_path_for(path))}
    if not errors:
        return {}
    records = {str(r.get("id")): r for r in peek_records(path) if r.get("id") in errors}
    return {i: errors[i] for i, r in records.items() if failed_after(r, errors[i])}


def _read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line; a torn last line is cut off first."""
    if not path.exists():
        return
    drop_torn_tail(path)
    try:
        yield from ((line.number, line.value) for line in read_jsonl(path, expect=dict))
    except InputError as exc:
        raise OutputError(f"{exc}; fix or remove that line" if exc.line else str(exc)) from None


@dataclass(slots=True)
class _Newest:
    """Of one file: each id's newest line number, how many lines, and wanted stamps."""

    newest: dict[str, int] = field(default_factory=dict)
    count: int = 0
    stamps: dict[str, str] = field(default_factory=dict)


def _newest_lines(
    path: Path,
    *,
    fingerprints: dict[str, Fingerprint] | None = None,
    stamps: Collection[str] | None,
) -> _Newest:
    """The number of each id's newest line, and how many lines were read; the
    `created_at` of each id's newest line among `stamps` (None: every id); with
    `fingerprints`, each id's fingerprint too (equal ones shared)."""
    found = _Newest()
    shared: dict[Fingerprint, Fingerprint] = {}
    for number, obj in _read_lines(path):
        found.count += 1
        item_id = obj.get("id")
        if not isinstance(item_id, str):
            raise OutputError(f"{path}:{number}: line has no string `id`")
        found.newest[item_id] = number
        if stamps is None or item_id in stamps:
            found.stamps[item_id] = str(obj.get("created_at", ""))
        if fingerprints is not None:
            made = fingerprint(obj)
            fingerprints[item_id] = shared.setdefault(made, made)
    return found


def _keep_lines(path: Path, keep: Callable[[int, str], bool]) -> None:
    """Rewrite `path` with only the lines `keep(number, id)` accepts, in their order."""
    kept = (encode_line(obj) for number, obj in _read_lines(path) if keep(number, obj["id"]))
    replace_file(path, kept)
