"""Files replaced whole: written beside the target, flushed to disk, then renamed.

`kill -9`, a full disk or an error half way leaves the old file or the new one,
never a mix. Every file `summarize` rewrites goes through `AtomicFile`.

- The temporary file has a random name and is created exclusively (`O_EXCL`), so
  a link planted at a name we might use is never opened, let alone written through.
- A target that is a symlink keeps being one: the file it points to is replaced,
  the temporary beside it, so the rename stays within one filesystem.
- The replaced file keeps its permission bits; a new file gets the umask's, as
  a plain `open` would give it.
- The folder is synced after the rename, so the new name survives a power cut.
- A target that is not a regular file (`/dev/stdout`, a named pipe) cannot be
  replaced; it is written in place, as a plain `open` would.
- A temporary left by a killed writer keeps its random name; whoever holds the
  file's lock removes those with `remove_leftovers`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ._errors import OutputError

# Created with all bits the umask allows, as `open` does; `mkstemp` would give 0600.
_NEW_FILE_MODE = 0o666
_CREATE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)  # fmt: skip
_NAME_TRIES = 100  # as `tempfile.TMP_MAX`: a clash needs 64 random bits to repeat
_RANDOM_PART = re.compile(r"[0-9a-f]{16}")


class AtomicFile:
    """A new content for `path`, written to `.NAME.<random>.tmp` until `commit` renames it.

    `path` may be a symlink: `target` is the file it resolves to, the one replaced.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = Path(os.path.realpath(path))
        self.committed = False
        existing = _stat(self.target)
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            self.temporary: Path | None = None
            self.file: BinaryIO = self.target.open("wb")
            return
        fd, self.temporary = _create_beside(self.target)
        try:
            if existing is not None:
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
            self.file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.temporary.unlink(missing_ok=True)
            raise

    def commit(self) -> None:
        """Flush to disk, close, give the file its name, and sync the folder."""
        self.file.flush()
        if self.temporary is None:
            self.file.close()
            self.committed = True
            return
        os.fsync(self.file.fileno())
        self.file.close()
        self.temporary.replace(self.target)
        self.committed = True
        _sync_folder(self.target.parent)

    def abort(self) -> None:
        """Close and delete what was written; the target is left as it was.

        Does nothing once `commit` has renamed the file.
        """
        if self.committed:
            return
        self.file.close()
        if self.temporary is not None:
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
        if new.committed:
            raise OutputError(
                f"{path}: written, but its folder cannot be synced ({exc.strerror})"
            ) from exc
        raise OutputError(f"{path}: cannot write ({exc.strerror}); file left as it was") from exc
    except BaseException:
        new.abort()
        raise


def remove_leftovers(path: Path) -> None:
    """Delete the temporaries of `path` that a killed writer left behind.

    Only for the holder of `path`'s lock: a temporary being written by another
    process would be deleted too. Names `AtomicFile` did not make are left alone.
    """
    target = Path(os.path.realpath(path))
    try:
        with os.scandir(target.parent) as scan:
            entries = list(scan)
    except OSError:
        return  # best effort: a leftover costs room, not correctness
    for entry in entries:
        if _is_temporary_of(target, entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                Path(entry.path).unlink()


def _is_temporary_of(target: Path, name: str) -> bool:
    prefix, suffix = f".{target.name}.", ".tmp"
    return (
        name.startswith(prefix)
        and name.endswith(suffix)
        and _RANDOM_PART.fullmatch(name[len(prefix) : -len(suffix)]) is not None
    )


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _create_beside(target: Path) -> tuple[int, Path]:
    """A new file with a random name in `target`'s folder, opened for writing."""
    for _ in range(_NAME_TRIES):
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(temporary, _CREATE_FLAGS, _NEW_FILE_MODE), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", str(target.parent))


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; a filesystem that cannot sync folders is let be."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
