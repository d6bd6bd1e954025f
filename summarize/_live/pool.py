"""The batch: unique items in, one record or one error line out for each.

`summarize_items` is the asynchronous core: a fixed pool of workers pulls items
from one iterator (memory stays flat however long the input), calls a
`Summarizer`, and appends each outcome as soon as it is known. It does not know
which endpoint, local or remote, stands behind the summarizer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .._core.records import ErrorRecord, MadeBy, Record, make_error, make_record
from .._cost import Price
from .._errors import ErrorType, ExitCode, InputError, SummaryError
from .._items import Item
from .._usage import Usage
from .budget import Budget
from .client import Completion, Summarizer
from .pacer import Pacing

MAX_ABSTRACT_CHARS = 20_000


@dataclass(slots=True)
class RunResult:
    """What a run did, for the summary line, the exit code and the caller."""

    unique: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    previous_kept: int = 0  # failed abstracts whose earlier record stays (a failed redo)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    elapsed_s: float = 0.0
    cost_usd: float | None = None
    stopped: str | None = None
    input_problems: list[InputError] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """OK, FAILED (error lines), or STOPPED at a spend cap with work left."""
        if self.failed:
            return ExitCode.FAILED
        return ExitCode.STOPPED if self.stopped else ExitCode.OK

    def count_failure(self, kind: str, *, previous_kept: bool = False) -> None:
        """One more error line of this type; `previous_kept`: beside an earlier record."""
        self.failed += 1
        self.previous_kept += int(previous_kept)
        self.failures[kind] = self.failures.get(kind, 0) + 1

    @property
    def left(self) -> int:
        """Unique abstracts neither done, skipped nor failed (--limit, a spend cap)."""
        return self.unique - self.done - self.skipped - self.failed

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens of every request this run sent."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def requests_per_second(self) -> float:
        """Requests sent per second of wall time."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished item, as the progress display sees it."""

    item: Item
    record: Record | None
    error: ErrorRecord | None
    service_s: float | None = None  # the answered request's own time (`Completion.service_s`)


OnOutcome = Callable[[Outcome], None]


class Sink(Protocol):
    """Where lines go: `output.Output` (the files), or a caller's own (`rows.Lines`)."""

    def write_record(self, record: Record) -> None:
        """Keep one record."""
        ...

    def write_error(self, error: ErrorRecord) -> bool:
        """Keep one error line; whether an earlier record of the id is kept beside it."""
        ...


async def summarize_items(
    items: Iterable[Item],
    *,
    count: int | None = None,
    summarizer: Summarizer,
    output: Sink,
    made_by: MadeBy,
    pacer: Pacing,
    result: RunResult,
    budget: Budget | None = None,
    on_outcome: OnOutcome | None = None,
) -> RunResult:
    """Summarise `items` with at most the pacer's width of abstracts in flight.

    `items` is read lazily, one item per free worker; `count` (if known) saves
    starting more workers than there are items. `budget` lets an abstract be
    sent only while the run stays within its spend caps.
    """
    queue = iter(items)
    budget = budget or Budget()
    if budget.price is not None and result.cost_usd is None:
        result.cost_usd = 0.0
    started = time.perf_counter()

    async def worker() -> None:
        for item in queue:
            await pacer.enter()
            outcome = None
            try:
                outcome = await _send(item, summarizer, made_by, budget)
            finally:
                pacer.leave(None if outcome is None else outcome.service_s)
            if outcome is None:
                result.stopped = budget.stopped
                return
            _record(outcome, output, result, budget.price)
            if on_outcome is not None:
                on_outcome(outcome)

    try:
        async with asyncio.TaskGroup() as group:
            workers = pacer.maximum if count is None else min(pacer.maximum, count)
            for _ in range(workers or 1):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        # Surface the first real error (a ConfigError such as a rejected key).
        raise group_error.exceptions[0] from None
    finally:
        result.elapsed_s = time.perf_counter() - started
    return result


async def _send(item: Item, summarizer: Summarizer, by: MadeBy,
                budget: Budget) -> Outcome | None:  # fmt: skip
    """The outcome of one item, or None if the budget lets no more abstracts be sent."""
    if (rejected := too_long(item)) is not None:
        return Outcome(item, None, make_error(item, rejected, by=by))
    if (ticket := await budget.admit(item)) is None:
        return None
    spent = Usage()
    started = time.perf_counter()
    try:
        done = await summarizer.summarize(item)
    except SummaryError as error:
        spent = error.usage
        return Outcome(item, None, make_error(item, error, by=by))
    else:
        spent = done.usage
        latency = time.perf_counter() - started
        record = make_record(item, done.summary, usage=done.usage, attempts=done.attempts,
                             latency=latency, by=by)  # fmt: skip
        # A summarizer that does not time its own requests is timed here.
        return Outcome(item, record, None, done.service_s or latency)
    finally:
        await budget.settle(ticket, spent)


def too_long(item: Item) -> SummaryError | None:
    """Why an abstract is not sent at all, if it is over the length limit."""
    if len(item.abstract) <= MAX_ABSTRACT_CHARS:
        return None
    return SummaryError(
        f"abstract is {len(item.abstract)} characters, over the limit of "
        f"{MAX_ABSTRACT_CHARS}; not sent",
        error_type=ErrorType.INPUT,
        attempts=0,
    )


def _record(outcome: Outcome, output: Sink, result: RunResult, price: Price | None) -> None:
    line = outcome.record or outcome.error
    if outcome.record is not None:
        output.write_record(outcome.record)
        result.done += 1
    elif outcome.error is not None:
        kept = output.write_error(outcome.error)
        result.count_failure(outcome.error.error_type.value, previous_kept=kept)
    if line is not None:
        result.requests += line.attempts
        result.prompt_tokens += line.prompt_tokens
        result.completion_tokens += line.completion_tokens
        cached = line.cached_tokens if isinstance(line, Record) else 0
        result.cached_tokens += cached
        if price is not None and result.cost_usd is not None:
            result.cost_usd += price.cost(
                prompt=line.prompt_tokens, cached=cached, completion=line.completion_tokens
            )


class Paced:
    """A summarizer of the caller's own, held to `--rpm` / `--tpm` abstract by abstract.

    `OpenAISummarizer` paces each HTTP request itself; a summarizer passed to
    `run(summarizer=...)` is paced here, as one request an abstract.
    """

    def __init__(self, inner: Summarizer, pacer: Pacing, budget: Budget) -> None:
        self._inner = inner
        self._pacer = pacer
        self._budget = budget
        self.model_name = inner.model_name

    async def summarize(self, item: Item) -> Completion:
        """Wait for a rate-limit slot, then summarise with the wrapped summarizer."""
        expected = self._budget.expected(item).tokens
        await self._pacer.acquire(expected)
        try:
            done = await self._inner.summarize(item)
        except SummaryError as error:
            self._pacer.settle(expected, error.usage.total)
            raise
        self._pacer.settle(expected, done.usage.total)
        return done

    async def aclose(self) -> None:
        """Close the wrapped summarizer."""
        await self._inner.aclose()
