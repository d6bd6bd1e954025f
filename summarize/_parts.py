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
so that a folder rerun night after night does not grow. Only `part-*.jsonl` files are
parts: anything else in the folder is never read.

Nothing here imports Ray: `--engine ray` writes the parts, and the readers of an output
(`summarize._current`, `validate`, a local run's resume) read them without the extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout

from ._atomic import replace_file
from ._core.records import ErrorRecord, Fingerprint, Record, fingerprint
from ._errors import InputError, OutputError
from ._jsonl import BadLine, Fault, Line, read_jsonl
from ._output import encode_line, encode_model

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
    """A folder of parts read as one output: each id's current lines, and where they are."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)  # current ones only
    files: int = 0
    lines: int = 0  # read, duplicates included
    # (id, is an error line) -> (part, line number) of each current line.
    where: dict[tuple[str, bool], tuple[Path, int]] = field(default_factory=dict)
    bad: list[BadLine] = field(default_factory=list)  # read with bad="skip" only

    def is_done(self, item_id: str, wanted: Fingerprint) -> bool:
        """Whether `item_id` has a record made the same way and no failed attempt after it."""
        record = self.records.get(item_id)
        return record is not None and item_id not in self.errors and fingerprint(record) == wanted

    def ids(self) -> set[str]:
        """Every id with a current line."""
        return self.records.keys() | self.errors.keys()


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One run at a time per output, local or on Ray: the lock a local run takes."""
    real = Path(os.path.realpath(folder))
    lock = FileLock(str(real.with_name(real.name + ".lock")), timeout=0)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise OutputError(f"{folder}: another summarize run is writing this output") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create or lock ({exc.strerror})") from exc
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            Path(lock.lock_file).unlink()
        lock.release()


def part_paths(folder: Path) -> list[Path]:
    """The parts of `folder` (none if it does not exist), by name: only `part-*.jsonl`,
    so that nothing else kept there (a report, a note) is ever read as output."""
    try:
        paths = sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise OutputError(f"{folder}: is a file, not a folder of parts") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot list ({exc.strerror})") from exc
    return [p for p in paths if p.name.startswith(PART_PREFIX) and p.name.endswith(PART_SUFFIX)]


def is_parts_folder(path: Path) -> bool:
    """Whether `path` is a folder holding at least one part (what `--engine ray` wrote)."""
    return path.is_dir() and bool(part_paths(path))


def read_parts(folder: Path, *, bad: Literal["raise", "skip"] = "raise") -> Parts:
    """Every part of `folder` as one output, deduplicated by id (see the module doc).

    `bad` is `read_jsonl`'s policy: "raise" (the first bad line is an `InputError` naming
    its part and line) or "skip" (bad lines go to `Parts.bad`, the rest is read)."""
    found = Parts()
    newest: dict[tuple[str, bool], _Order] = {}
    errors: dict[str, dict[str, Any]] = {}
    for path in part_paths(folder):
        found.files += 1
        for order, line in _lines(path, bad, found.bad):
            found.lines += 1
            key = (str(line["id"]), "error_type" in line)
            if key not in newest or order > newest[key]:
                newest[key] = order
                (errors if key[1] else found.records)[key[0]] = line
                found.where[key] = (path, order[2])
    found.errors = {i: e for i, e in errors.items()
                    if (i, False) not in newest or newest[i, True] > newest[i, False]}  # fmt: skip
    for item_id in errors.keys() - found.errors.keys():
        del found.where[item_id, True]
    return found


def compact(folder: Path) -> int:
    """Drop the lines a later part superseded: a part left with none goes, one with
    some is rewritten whole (keeping its time, which orders lines of equal stamps).
    Only for the holder of the folder's lock, after its workers are done. How many
    lines went."""
    current = set(read_parts(folder).where.values())
    dropped = 0
    for path in part_paths(folder):
        lines = [(order[2], line) for order, line in _lines(path, "raise", [])]
        kept = [line for number, line in lines if (path, number) in current]
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


def _lines(
    path: Path, bad: Literal["raise", "skip"], bad_lines: list[BadLine]
) -> Iterator[tuple[_Order, dict[str, Any]]]:
    """Each good line of one part with its order; bad ones raise or go to `bad_lines`."""
    try:
        written = path.stat().st_mtime_ns
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path=path) from None
    for read in read_jsonl(path, expect=dict, bad="skip"):
        line = read if isinstance(read, BadLine) else _with_id(read, path)
        if isinstance(line, BadLine):
            if bad == "raise":
                raise line.error()
            bad_lines.append(line)
            continue
        yield (str(line.value.get("created_at", "")), written, line.number), line.value


def _with_id(line: Line[dict[str, Any]], path: Path) -> Line[dict[str, Any]] | BadLine:
    if isinstance(line.value.get("id"), str):
        return line
    return BadLine(str(path), line.number, line.offset, Fault.WRONG_TYPE, "line has no string `id`")


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
