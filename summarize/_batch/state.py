"""What is out at the provider, kept next to the output so any later run can pick it up.

For `outputs/summaries.jsonl` the directory `outputs/summaries.batches/` holds
`state.json` (every chunk of requests: its ids, file id, batch id, status) and, per
chunk, the items it holds and the request file uploaded, and the provider's
output and error files once downloaded. `state.json` is only ever replaced whole
(temporary file, fsync, rename), so `kill -9` leaves the old or the new one.

A chunk is written to `state.json` before anything is sent, and its key goes into
the batch's metadata, so a crash between "created" and "saved" is recovered by
finding the batch by its key instead of creating a second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .._atomic import replace_file
from .._core.records import Fingerprint
from .._errors import ConfigError, InputError, OutputError
from .._items import Item, Source
from .._jsonl import read_jsonl
from .._prompt import Prompt
from .._usage import Usage

STATE_VERSION = 1
COLLECTED = "collected"  # its answers are in the output files
RELEASED = "released"  # given up (cancelled, lost): its abstracts are free for the next submit
UNSENT = "unsent"
# The provider's statuses after which nothing more will be answered.
FINISHED = frozenset({"completed", "expired", "cancelled", "failed"})
DOWNLOADS = ("output", "errors")
REPAIRED = "repaired"  # the ids a live repair of the chunk has written lines for
CHUNK_FILES = ("items", "requests", *DOWNLOADS, REPAIRED)


class Chunk(BaseModel):
    """One batch's worth of requests, from the moment it is written to its collection."""

    key: str
    created_at: str
    count: int
    ids: list[str]
    attempt: int = 1
    parent: str | None = None
    model: str
    prompt_version: str
    prompt_hash: str
    prompt_file: str
    schema_version: str
    request_hash: str = ""  # `request.request_hash` of the requests sent
    # What the requests were sent with (model, temperature, ...), for re-asks and follow-ups.
    request: dict[str, Any] = {}
    bytes: int = 0
    file_id: str | None = None
    batch_id: str | None = None
    status: str = UNSENT
    completed: int = 0
    failed: int = 0
    batch_failures: int = 0
    note: str | None = None
    # Where the chunk was sent, and a hash of the key that sent it (None: not sent yet).
    endpoint: str | None = None
    key_id: str | None = None

    @property
    def is_open(self) -> bool:
        """Not collected yet: its ids must not be submitted again."""
        return self.status not in {COLLECTED, RELEASED}

    @property
    def at_provider(self) -> bool:
        """Whether the provider holds something of it: an uploaded file or a batch."""
        return self.file_id is not None or self.batch_id is not None

    @property
    def tag(self) -> str:
        """What the batch's metadata carries: the key, and which try of the batch this is."""
        return f"{self.key}.{self.batch_failures}"

    def release(self, note: str) -> None:
        """Give up on the chunk: its abstracts are free for the next submit."""
        self.status, self.note, self.ids = RELEASED, note, []

    @property
    def fingerprint(self) -> Fingerprint:
        """The model and request hash its records are made with."""
        return (self.model, self.request_hash)


class BatchState(BaseModel):
    """Every chunk this output has sent to a Batch API, newest last."""

    version: int = STATE_VERSION
    output: str | None = None
    chunks: list[Chunk] = []

    def open_chunks(self) -> list[Chunk]:
        """Chunks not collected yet."""
        return [chunk for chunk in self.chunks if chunk.is_open]

    def open_ids(self) -> set[str]:
        """Ids that are out at the provider (or about to be sent)."""
        return {item_id for chunk in self.open_chunks() for item_id in chunk.ids}

    def refuse_elsewhere(self, identity: tuple[str, str], path: Path) -> None:
        """Raise `ConfigError` if an open batch was sent to another endpoint or with another key.

        Another endpoint, or OpenAI under another project's key, answers 404 for a
        batch that still runs and bills where it was created.
        """
        endpoint, key = identity
        for chunk in self.open_chunks():
            if not chunk.at_provider or chunk.endpoint is None:
                continue  # not sent yet, or sent before state files named their endpoint
            if (chunk.endpoint, chunk.key_id) == identity:
                continue
            what = f"{chunk.endpoint}" if chunk.endpoint != endpoint else f"key {chunk.key_id}"
            now_at = f"{endpoint}" if chunk.endpoint != endpoint else f"key {key}"
            raise ConfigError(
                f"{path}: batch {chunk.batch_id or chunk.file_id} was sent to {what}, "
                f"not {now_at}; set --base-url / OPENAI_BASE_URL and OPENAI_API_KEY as "
                "they were at submit"
            )


def new_key() -> str:
    """A unique chunk key, also put in the batch's metadata."""
    return uuid.uuid4().hex


def now() -> str:
    """UTC, ISO 8601, seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class LostChunk(Exception):
    """A chunk's items file is gone: its abstracts cannot be turned into records."""


class StateDir:
    """The `OUT.batches/` directory of one output file."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.root = output.with_name(f"{output.stem}.batches")
        self.path = self.root / "state.json"

    def load(self) -> BatchState:
        """The saved state; an empty one if nothing was ever submitted."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return BatchState()
        except (OSError, UnicodeDecodeError) as exc:
            raise OutputError(f"{self.path}: cannot read batch state ({exc})") from exc
        try:
            state = BatchState.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise OutputError(f"{self.path}: not a batch state file ({where}: {first['msg']})"
                              ) from None  # fmt: skip
        if state.output not in {None, self.output.name}:
            raise OutputError(
                f"{self.path}: holds the batches of {state.output}, not of {self.output.name}"
            )
        if state.version != STATE_VERSION:
            raise OutputError(
                f"{self.path}: batch state version {state.version} is not {STATE_VERSION}; "
                "collect it with the version that wrote it"
            )
        return state

    def save(self, state: BatchState) -> None:
        """Replace `state.json` whole."""
        state.output = self.output.name
        self._replace(self.path, [state.model_dump_json(indent=1).encode("utf-8")])

    def file(self, key: str, kind: str) -> Path:
        """`<key>.items.jsonl`, `.requests.jsonl`, `.output.jsonl`, `.errors.jsonl` or
        `.repaired.jsonl`."""
        return self.root / f"{key}.{kind}.jsonl"

    def save_prompt(self, prompt: Prompt) -> str:
        """Keep a copy of the prompt file the requests were built with; its name here."""
        name = f"prompt-{prompt.hash}.md"
        copy = self.root / name
        if not copy.exists():
            try:
                raw = prompt.path.read_bytes()
            except OSError as exc:
                raise OutputError(f"{prompt.path}: cannot read ({exc.strerror})") from exc
            self._replace(copy, [raw])
        return name

    def chunk_items(self, key: str) -> Iterator[Pending]:
        """The items a chunk holds, with what earlier attempts spent and the turns they add."""
        path = self.file(key, "items")
        if not path.exists():
            raise LostChunk(f"{path} is missing")
        try:
            for line in read_jsonl(path, expect=dict):
                sources = [_source(text) for text in line.value["sources"]]
                item = Item(line.value["id"], line.value["title"], line.value["abstract"], sources)
                spent = {k: int(line.value.get(k, 0)) for k in _SPENT}
                yield Pending(item, spent, tuple(line.value.get("repair") or ()))
        except InputError as exc:
            raise LostChunk(str(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise LostChunk(f"{path}: cannot read ({exc!r})") from None

    def forget(self, key: str, kinds: Iterable[str] = CHUNK_FILES) -> None:
        """Delete a chunk's files (all of them once collected); `state.json` keeps its summary."""
        for kind in kinds:
            self.file(key, kind).unlink(missing_ok=True)

    def _replace(self, path: Path, chunks: Iterable[bytes]) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.root}: cannot create ({exc.strerror})") from exc
        replace_file(path, chunks)


_SPENT = ("attempt", "reasks", "prompt_tokens", "completion_tokens", "cached_tokens")


def spent_usage(spent: dict[str, int]) -> Usage:
    """The tokens an abstract's tries have spent so far."""
    return Usage(spent.get("prompt_tokens", 0), spent.get("completion_tokens", 0),
                 spent.get("cached_tokens", 0))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Pending:
    """An abstract on its way through batches: what it cost so far, the turns it adds."""

    item: Item
    spent: dict[str, int]
    repair: tuple[dict[str, str], ...] = ()

    def line(self) -> dict[str, object]:
        """Its line in a chunk's items file."""
        item = self.item
        return {"id": item.id, "title": item.title, "abstract": item.abstract,
                "sources": [str(s) for s in item.sources], **self.spent,
                "repair": list(self.repair)}  # fmt: skip


def _source(text: str) -> Source:
    path, _, line = text.rpartition(":")
    return Source(path, int(line)) if path and line.isdigit() else Source(text, 0)
