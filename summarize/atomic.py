"""Files replaced whole: written beside the target, flushed to disk, then renamed.

`kill -9`, a full disk or an error half way leaves the old file or the new one,
never a mix. Every file `summarize` rewrites goes through `AtomicFile`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError


class AtomicFile:
    """A new content for `path`, written to `.NAME.tmp` until `commit` renames it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.tmp")
        self.file = self.temporary.open("wb")

    def commit(self) -> None:
        """Flush to disk, close, and give the file its name."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.temporary.replace(self.path)

    def abort(self) -> None:
        """Close and delete what was written; `path` is left as it was."""
        self.file.close()
        self.temporary.unlink(missing_ok=True)


def replace_file(path: Path, chunks: Iterable[bytes]) -> None:
    """Write `path` whole, or raise `OutputError` and leave it as it was."""
    try:
        new = AtomicFile(path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc
    try:
        new.file.writelines(chunks)
        new.commit()
    except OSError as exc:
        new.abort()
        raise OutputError(f"{path}: cannot write ({exc.strerror}); file left as it was") from exc
    except BaseException:
        new.abort()
        raise
