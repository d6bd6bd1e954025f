"""Chunks: request files cut at the provider's limits, and sending them as batches.

Sending is the step where a crash or a lost response could create one chunk
twice. The chunk is saved as "creating" before the create call, the create is
never retried blindly (the SDK's retries are off for it), and before any new
create the provider is searched for a batch carrying the chunk's key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from openai.types import Batch

from .._atomic import AtomicFile
from .._core.records import SCHEMA_VERSION
from .._core.request import request_hash
from .._errors import OutputError, ProviderError
from .._output import encode_line
from .._prompt import Prompt, load_repair_prompt
from .._settings import EndpointSettings
from .._tokens import TokenEstimator, schema_chars
from .._usage import Usage
from .options import BatchOptions
from .provider import BatchAPI
from .request_lines import request_line
from .state import UNSENT, BatchState, Chunk, LostChunk, Pending, StateDir, new_key, now

log = logging.getLogger("summarize.batch")

CREATING = "creating"
CREATE_TRIES = 3
CREATE_BACKOFF_S = 2.0


def request_settings(endpoint: EndpointSettings) -> dict[str, Any]:
    """What a chunk's requests are sent with, kept so re-asks are sent the same way."""
    return endpoint.model_dump(include={"model", "temperature", "max_tokens", "extra_body",
                                        "constrain_quotes", "reask_with_answer"})  # fmt: skip


class ChunkWriter:
    """Cut pending abstracts into request files at the provider's limits, a chunk at a time."""

    def __init__(self, states: StateDir, *, prompt: Prompt, endpoint: EndpointSettings,
                 model: str, options: BatchOptions) -> None:  # fmt: skip
        self._states = states
        self._prompt = prompt
        self._prompt_file = states.save_prompt(prompt)
        self._endpoint = endpoint
        self._model = model
        self._options = options
        self.estimator = TokenEstimator(endpoint.max_tokens)
        self.request_hash = request_hash(prompt, endpoint, load_repair_prompt())
        self.prompt_tokens = 0

    def write(
        self,
        work: Iterable[Pending],
        *,
        attempt: int,
        parent: str | None = None,
        admit: Callable[[Usage], bool] | None = None,
        refused: Callable[[Pending], None] | None = None,
    ) -> Iterator[Chunk]:
        """Chunks of `work`, each on disk whole; lines stream, so memory stays flat.

        With `admit` (`caps.Allowance.admit`), a request goes in only if its estimate is
        admitted; the work refused is handed to `refused`, and is in no chunk.
        """
        files: ChunkFiles | None = None
        try:
            for pending in work:
                line = request_line(pending.item, prompt=self._prompt, endpoint=self._endpoint,
                                    repair=pending.repair)  # fmt: skip
                raw = encode_line(line)
                body = line["body"]
                tokens = self.estimator.prompt_tokens(body["messages"], schema_chars(body["tools"]))
                guess = Usage(tokens, self.estimator.completion_tokens())
                if admit is not None and not admit(guess):
                    if refused is not None:
                        refused(pending)
                    continue
                self.prompt_tokens += tokens
                if files is not None and not files.fits(len(raw), self._options.max_requests,
                                                        self._options.max_bytes):  # fmt: skip
                    yield self._chunk(files, attempt, parent)
                    files = None
                files = files or ChunkFiles(self._states, new_key())
                spent = {**pending.spent, "attempt": attempt}
                files.add(Pending(pending.item, spent, pending.repair).line(), raw, pending.item.id)
            if files is not None:
                yield self._chunk(files, attempt, parent)
                files = None
        finally:
            if files is not None:
                files.abort()

    def _chunk(self, files: ChunkFiles, attempt: int, parent: str | None) -> Chunk:
        files.finish()
        return Chunk(key=files.key, created_at=now(), count=len(files.ids), ids=files.ids,
                     attempt=attempt, parent=parent, model=self._model,
                     prompt_version=self._prompt.version, prompt_hash=self._prompt.hash,
                     prompt_file=self._prompt_file, schema_version=SCHEMA_VERSION,
                     request_hash=self.request_hash, request=request_settings(self._endpoint),
                     bytes=files.bytes)  # fmt: skip


class ChunkFiles:
    """The items and request files of one chunk as it is written: whole on `finish`, or none."""

    def __init__(self, states: StateDir, key: str) -> None:
        self.key = key
        self.ids: list[str] = []
        self.bytes = 0
        self._final = [states.file(key, "items"), states.file(key, "requests")]
        self._files: list[AtomicFile] = []
        try:
            states.root.mkdir(parents=True, exist_ok=True)
            self._files = [AtomicFile(path) for path in self._final]
        except OSError as exc:
            self.abort()
            raise OutputError(f"{states.root}: cannot write ({exc.strerror})") from exc

    def fits(self, size: int, max_requests: int, max_bytes: int) -> bool:
        """Whether one more request of `size` bytes stays within the limits."""
        return len(self.ids) < max_requests and self.bytes + size <= max_bytes

    def add(self, item: dict[str, object], request: bytes, item_id: str) -> None:
        """Append one item and its request line."""
        try:
            self._files[0].file.write(encode_line(item))
            self._files[1].file.write(request)
        except OSError as exc:
            raise OutputError(f"{self._final[1]}: cannot write ({exc.strerror})") from exc
        self.ids.append(item_id)
        self.bytes += len(request)

    def finish(self) -> None:
        """Flush both files to disk and give them their names."""
        try:
            for new in self._files:
                new.commit()
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self._final[1]}: cannot write ({exc.strerror})") from exc

    def abort(self) -> None:
        """Close and delete what was written."""
        for new in self._files:
            new.abort()


def send_unsent(
    state: BatchState, states: StateDir, api: BatchAPI, problems: list[str], lost: list[str]
) -> list[Chunk]:
    """Upload and create every open chunk without a batch; the ones that now have one.

    A chunk that cannot be sent now is noted in `problems` and left for the next call;
    one whose request file is gone is released and noted in `lost`. The others go on.
    """
    sent: list[Chunk] = []
    for chunk in state.open_chunks():
        if chunk.batch_id is not None:
            continue
        try:
            _send(chunk, state, states, api)
        except (ProviderError, OutputError) as exc:
            problems.append(f"{chunk.count} abstracts not sent yet (chunk {chunk.key[:8]}): {exc}")
            continue
        except LostChunk as exc:
            chunk.release(f"lost: {exc}")
            states.save(state)
            states.forget(chunk.key)
            lost.append(f"{exc}; its {chunk.count} abstracts are released for the next submit")
            continue
        sent.append(chunk)
    return sent


def _send(chunk: Chunk, state: BatchState, states: StateDir, api: BatchAPI) -> None:
    if chunk.file_id is None:
        requests = states.file(chunk.key, "requests")
        if not requests.exists():
            raise LostChunk(f"{requests} is missing")
        chunk.endpoint, chunk.key_id = api.identity
        chunk.file_id = api.upload(requests)
        states.save(state)
    for attempt in range(CREATE_TRIES):
        batch = None
        if chunk.status == CREATING:  # an earlier create may have worked after all
            batch = api.find(chunk.tag, since=timestamp(chunk.created_at))
        if batch is None:
            chunk.status = CREATING
            states.save(state)
            try:
                batch = api.create(chunk.file_id, chunk.tag, states.output)
            except ProviderError:
                if attempt == CREATE_TRIES - 1:
                    raise
                time.sleep(CREATE_BACKOFF_S * 2**attempt)
                continue
        update(chunk, batch)
        states.save(state)
        return


def resend_failed_batch(chunk: Chunk) -> None:
    """A batch that failed as a whole is created again from the same file, as it was."""
    log.info("batch %s failed as a whole: created again from the same file (%d requests)",
             chunk.batch_id, chunk.count)  # fmt: skip
    chunk.batch_id = None
    chunk.status = UNSENT
    chunk.completed = chunk.failed = 0
    chunk.batch_failures += 1


def timestamp(iso: str) -> float:
    """A state file's ISO time as a Unix time."""
    return datetime.fromisoformat(iso).timestamp()


def update(chunk: Chunk, batch: Batch) -> None:
    """Copy a batch's id, status and counts into its chunk."""
    if (chunk.batch_id, chunk.status) != (batch.id, batch.status):
        log.info("batch %s: %s (%d requests)", batch.id, batch.status, chunk.count)
    chunk.batch_id = batch.id
    chunk.status = batch.status
    counts = batch.request_counts
    if counts is not None:
        chunk.completed, chunk.failed = counts.completed, counts.failed
