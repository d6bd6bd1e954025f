"""The lines of the output files: what a record holds, and where it is built.

`Record` (OUT.jsonl) and `ErrorRecord` (OUT.errors.jsonl) are built here and
nowhere else, by both transports, from an item, its summary or error, what it
spent (`_usage.Usage`) and what made it (`MadeBy`). `record_json_schema()` exports
the JSON Schema users validate against, from the same models. A record counts
as done for the same model and `request_hash` (`fingerprint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from .._errors import ErrorType, SummaryError
from .._items import Item
from .._prompt import Prompt
from .._schema import ClaimedGain, Strategy, Summary
from .._usage import Usage

SCHEMA_VERSION = "4"
Fingerprint = tuple[str, str]


class Record(BaseModel):
    """One line of OUT.jsonl: a validated summary of one unique abstract."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    abstract: str
    problem: str
    method: str
    result: str
    claimed_gain: ClaimedGain
    model: str
    prompt_version: str
    prompt_hash: str
    schema_version: str
    request_hash: str = Field(
        description=(
            "A hash of everything that decided the answer but the abstract: the rendered "
            "messages, the function tool's JSON, the sampling settings and the re-ask turns. "
            "A record counts as done for the same model and request_hash."
        )
    )
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    attempts: int
    repaired: list[str] = Field(
        default_factory=list,
        description=(
            "The fields set from the abstract rather than by the model, by path (e.g. "
            "`claimed_gain.gains[0].quote`): a gain's quote that failed, replaced by the one "
            "sentence of the abstract that states its value. Empty when the answer passed as "
            "given; absent from lines written before schema version 4."
        ),
    )
    latency_s: float
    created_at: str
    sources: list[str]
    strategy: Strategy = Field(
        default="abstractive",
        description=(
            "How the summary was made: `abstractive`, problem, method and result written by "
            "the model; `extractive`, each of them a sentence of the abstract, verbatim."
        ),
    )
    batch_id: str | None = Field(
        default=None, description="The provider's batch that answered; null for a live answer."
    )


class ErrorRecord(BaseModel):
    """One line of OUT.errors.jsonl: an abstract that failed, and why."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    abstract: str
    error_type: ErrorType
    message: str
    raw_output: str | None
    model: str
    prompt_version: str
    prompt_hash: str
    schema_version: str
    request_hash: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    created_at: str
    sources: list[str]
    strategy: Strategy = "abstractive"
    batch_id: str | None = None


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema of one line of OUT.jsonl, generated from `Record`."""
    schema = Record.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"summarize-record-v{SCHEMA_VERSION}"
    return schema


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Provenance(TypedDict):
    """The fields of a line that say what made it."""

    model: str
    prompt_version: str
    prompt_hash: str
    schema_version: str
    request_hash: str
    strategy: Strategy
    batch_id: str | None


@dataclass(frozen=True, slots=True)
class MadeBy:
    """What made a line: the model, the prompt file, the request's fingerprint and,
    for a batch answer, the batch."""

    model: str
    prompt: Prompt
    request_hash: str
    batch_id: str | None = None

    def fields(self) -> Provenance:
        """The provenance fields of a record or error line."""
        return {
            "model": self.model,
            "prompt_version": self.prompt.version,
            "prompt_hash": self.prompt.hash,
            "schema_version": SCHEMA_VERSION,
            "request_hash": self.request_hash,
            "strategy": self.prompt.strategy,
            "batch_id": self.batch_id,
        }


def make_record(
    item: Item, summary: Summary, *, usage: Usage, attempts: int, latency: float, by: MadeBy
) -> Record:
    """A record line from an item, its validated summary and what it took."""
    return Record(
        id=item.id,
        title=item.title,
        abstract=item.abstract,
        problem=summary.problem,
        method=summary.method,
        result=summary.result,
        claimed_gain=summary.claimed_gain,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        attempts=attempts,
        repaired=list(summary.repaired),
        latency_s=round(latency, 3),
        created_at=_now(),
        sources=[str(source) for source in item.sources],
        **by.fields(),
    )


def make_error(item: Item, error: SummaryError, *, by: MadeBy) -> ErrorRecord:
    """An error line from an item and why it failed."""
    return ErrorRecord(
        id=item.id,
        title=item.title,
        abstract=item.abstract,
        error_type=error.error_type,
        message=error.message,
        raw_output=error.raw_output,
        prompt_tokens=error.prompt_tokens,
        completion_tokens=error.completion_tokens,
        attempts=error.attempts,
        created_at=_now(),
        sources=[str(source) for source in item.sources],
        **by.fields(),
    )


def fingerprint(line: dict[str, Any]) -> Fingerprint:
    """What must match for a record to count as done: the model and the request's hash."""
    return (str(line.get("model")), str(line.get("request_hash")))
