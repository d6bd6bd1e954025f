"""The provider's Files and Batches API: the only place batch mode talks HTTP.

Reached with the same `openai` client as live calls (any OpenAI-compatible
endpoint that has the Batch API). Control calls are few, so the SDK's own
retries cover their transient faults; what still fails becomes a one-line
`ProviderError`, or a `ConfigError` for a rejected key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import openai
from openai.types import Batch

from .._atomic import AtomicFile
from .._errors import ConfigError, ProviderError
from .._settings import EndpointSettings, endpoint_identity
from .._urls import without_credentials
from .request_lines import BATCH_ENDPOINT

COMPLETION_WINDOW: Final = "24h"
KEY_FIELD = "summarize_key"
OUTPUT_FIELD = "summarize_output"
# The SDK's own retries of the few control calls (upload, retrieve, list, cancel, download);
# `--max-retries` is the budget of resends of one abstract's request, not this.
CONTROL_RETRIES = 2
# How far back to look for a batch created just before a crash.
_FIND_SLACK_S = 600
T = TypeVar("T")


class BatchAPI:
    """Upload request files, create and follow batches, download their answers."""

    def __init__(self, endpoint: EndpointSettings) -> None:
        self._where = without_credentials(endpoint.base_url) or "the OpenAI API"
        self.identity = endpoint_identity(endpoint)
        self._key = endpoint.api_key.get_secret_value() if endpoint.api_key else ""
        self._client = openai.OpenAI(
            api_key=self._key or "unused",
            base_url=endpoint.base_url,
            timeout=endpoint.timeout,
            max_retries=CONTROL_RETRIES,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def upload(self, path: Path) -> str:
        """Upload a request file for batch use; its file id."""
        with path.open("rb") as fh:
            uploaded = self._call("upload", lambda: self._client.files.create(
                file=(path.name, fh), purpose="batch"))  # fmt: skip
        return uploaded.id

    def create(self, file_id: str, key: str, output: Path) -> Batch:
        """Start a batch over an uploaded file, tagged with the chunk's key.

        Sent once: a retry after a lost answer would create a second batch. The
        caller looks for the key (`find`) before it tries again.
        """
        once = self._client.with_options(max_retries=0)
        metadata = {KEY_FIELD: key, OUTPUT_FIELD: output_tag(output)}
        return self._call("create a batch", lambda: once.batches.create(
            input_file_id=file_id, endpoint=BATCH_ENDPOINT, completion_window=COMPLETION_WINDOW,
            metadata=metadata))  # fmt: skip

    def find(self, key: str, since: float) -> Batch | None:
        """The batch tagged with `key`, created at or after `since` (a Unix time), if any."""

        def scan() -> Batch | None:
            for batch in self._client.batches.list(limit=100):
                if (batch.metadata or {}).get(KEY_FIELD) == key:
                    return batch
                if batch.created_at < since - _FIND_SLACK_S:
                    return None
            return None

        return self._call("list batches", scan)

    def cancel(self, batch_id: str) -> Batch:
        """Ask the provider to stop a batch; what it answered so far stays collectable."""
        return self._call(f"cancel batch {batch_id}", lambda: self._client.batches.cancel(batch_id))

    def retrieve(self, batch_id: str) -> Batch:
        """A batch's current status, counts and files."""
        return self._call(f"read batch {batch_id}", lambda: self._client.batches.retrieve(batch_id))

    def download(self, file_id: str, path: Path) -> None:
        """Stream a file's content to `path` (whole, or not at all)."""
        new = AtomicFile(path)

        def fetch() -> None:
            with self._client.files.with_streaming_response.content(file_id) as response:
                for chunk in response.iter_bytes():
                    new.file.write(chunk)

        try:
            self._call(f"download file {file_id}", fetch)
            new.commit()
        finally:
            new.abort()

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except openai.AuthenticationError:
            raise ConfigError(f"{self._where} rejected the API key") from None
        except openai.PermissionDeniedError:
            raise ConfigError(f"{self._where} refused access to the Batch API") from None
        except openai.APIStatusError as exc:
            raise ProviderError(self._scrub(
                f"{self._where}: cannot {what} (HTTP {exc.status_code}: {_message(exc)})"
            ), status=exc.status_code) from None  # fmt: skip
        except openai.APIError as exc:
            raise ProviderError(self._scrub(f"{self._where}: cannot {what} ({exc})")) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(exc).splitlines()[0][:300]


def output_tag(output: Path) -> str:
    """Which output a batch belongs to, as the provider may see it: a hash of its absolute
    path, so batches of two outputs can be told apart without the path (a user's name,
    a project's) leaving the machine."""
    digest = hashlib.sha256(str(output.absolute()).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:16]}"


def kept_hint(exc: ProviderError) -> str:
    """What to add to a 404's message: the state is kept, and how to let the batch go."""
    if exc.status != 404:
        return ""
    return ("; its state is kept: if the batch is really gone, `summarize batch collect "
            "--release-lost` releases its abstracts for the next submit")  # fmt: skip
