"""The embedded model's server: llama.cpp's OpenAI-compatible server on 127.0.0.1.

With no endpoint and no key configured, `summarize run` starts this server on a
free port, points the one client path at it, and stops it afterwards (also on
Ctrl-C and on errors). The server is started through `launch.py`, which has it
killed when this process dies, even by `kill -9`. `local_endpoint` is what the
embedded model is asked with: the settings that suit a small local model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from .._errors import ConfigError
from .._settings import EndpointSettings
from .weights import ModelFile, cache_dir

LAUNCHER = Path(__file__).with_name("launch.py")
# The readiness probe talks to 127.0.0.1 directly: a proxy from the environment
# (HTTP_PROXY with no NO_PROXY) cannot reach this machine's server.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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
        # Shown its own over-long answer, the 1.5B model kept it over the cap in 5 replays of 5;
        # asked again with the faults named, it wrote within the caps (docs/embedded.md).
        reask_with_answer=False,
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
        """Stop the server at once: killed, not terminated. On SIGTERM llama.cpp's server
        first finishes the answer it is computing (seconds to a minute on a small machine)
        for a run that has ended or been interrupted; it keeps nothing worth a clean exit."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
