"""`FakeSummarizer`: a `Summarizer` that answers from memory, for the live pool's logic."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from .._core.summarizer import Completion
from .._errors import ErrorType, SummaryError
from .._items import Item
from .._schema import ClaimedGain, Summary
from .._usage import Usage


def plain_summary(item: Item) -> Summary:
    """A fixed summary naming the item, built without validation (nothing is checked)."""
    return Summary.model_construct(
        problem=f"The problem of {item.id}.",
        method="The authors propose a method.",
        result="The method works.",
        claimed_gain=ClaimedGain.model_construct(gains=[], qualitative=None),
    )


@dataclass(frozen=True, slots=True)
class FakeAnswer:
    """One abstract's fate: a summary (or `plain_summary`), or an error of `error` type."""

    summary: Summary | None = None
    error: str | None = None  # an ErrorType value: "validation", "provider", ...
    latency: float = 0.0
    prompt_tokens: int = 400
    completion_tokens: int = 100
    attempts: int = 1


@dataclass(slots=True)
class FakeSummarizer:
    """An in-memory `Summarizer`: queued answers, then `default` for every other abstract."""

    answers: Iterable[FakeAnswer] = ()
    default: FakeAnswer = field(default_factory=FakeAnswer)
    model_name: str = "fake-model"
    calls: list[str] = field(default_factory=list)  # item ids, in the order they were sent
    in_flight: int = 0
    peak_in_flight: int = 0
    closed: bool = False
    _queue: deque[FakeAnswer] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = deque(self.answers)

    async def summarize(self, item: Item) -> Completion:
        """The next answer, after its latency."""
        answer = self._queue.popleft() if self._queue else self.default
        self.calls.append(item.id)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(answer.latency)
        finally:
            self.in_flight -= 1
        if answer.error is not None:
            raise SummaryError(
                f"fake {answer.error} error",
                error_type=ErrorType(answer.error),
                attempts=answer.attempts,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
            )
        usage = Usage(answer.prompt_tokens, answer.completion_tokens)
        return Completion(answer.summary or plain_summary(item), usage, answer.attempts)

    async def aclose(self) -> None:
        """Nothing to release; remembered for tests."""
        self.closed = True
