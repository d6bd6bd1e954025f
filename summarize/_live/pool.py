"""The live worker pool: unique items in, one record or one error line out for each.

`send_items` is the asynchronous loop of live mode: a fixed pool of workers pulls items
from one iterator (memory stays flat however long the input), waits for the pacer's
width, asks a `Summarizer`, and writes each outcome to the sink as soon as it is
known. It does not know which endpoint, local or remote, stands behind the summarizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from .._core.limits import too_long
from .._core.outcome import OnOutcome, Outcome, RunResult
from .._core.records import MadeBy, Record, make_error, make_record
from .._core.sink import Sink
from .._core.stop import GRACE_S, INTERRUPTED, Stop
from .._core.summarizer import Summarizer
from .._cost import Price
from .._errors import SummaryError
from .._items import Item
from .._usage import Usage
from .budget import Budget
from .pacer import Pacing

log = logging.getLogger("summarize.pool")
LOGGED_MESSAGE_CHARS = 300  # of a failure's message: its start says what it is about


async def send_items(
    items: Iterable[Item],
    *,
    count: int | None = None,
    summarizer: Summarizer,
    sink: Sink,
    made_by: MadeBy,
    pacer: Pacing,
    result: RunResult,
    budget: Budget | None = None,
    on_outcome: OnOutcome | None = None,
    stop: Stop | None = None,
) -> RunResult:
    """Summarise `items` with at most `pacer`'s width of abstracts in flight.

    `items` is read lazily, one item per free worker; `count` (if known) saves
    starting more workers than there are items. `budget` lets an abstract be
    sent only while the run stays within its spend caps. `on_outcome` hears of each
    abstract whose line is written (if it raises, that is logged and the run goes
    on). `stop` ends the sending early (`_core.stop`)."""
    queue = iter(items)
    budget = budget or Budget()
    crew = _Crew(stop or Stop())
    if budget.price is not None and result.cost_usd is None:
        result.cost_usd = 0.0
    started = time.perf_counter()

    async def worker() -> None:
        while not crew.stop.requested and (item := next(queue, None)) is not None:
            await crew.enter(pacer)
            outcome = None
            try:
                outcome = await _send(item, summarizer, made_by, budget)
            finally:
                crew.leave(pacer, None if outcome is None else outcome.service_s)
            if outcome is None:
                result.stopped = budget.stopped
                return
            _record(outcome, sink, result, budget.price)
            if on_outcome is not None:
                _tell(on_outcome, outcome)

    try:
        workers = pacer.maximum if count is None else min(pacer.maximum, count)
        await crew.run(worker, workers or 1)
    finally:
        result.elapsed_s = time.perf_counter() - started
        if crew.stop.requested:
            result.stopped = INTERRUPTED
    return result


def _tell(on_outcome: OnOutcome, outcome: Outcome) -> None:
    """A hook's failure is the hook's: logged, and the run goes on (as instructor's hooks)."""
    try:
        on_outcome(outcome)
    except Exception:
        log.exception("on_outcome raised for %s; the run goes on", outcome.item.id)


class _Crew:
    """The workers of one sending, and how they stop when asked.

    On a first request to stop, workers waiting for a slot are cancelled (their abstract
    was never sent) and those in flight get `GRACE_S` to finish; on a second, or when
    the grace is over, they are cancelled too. A cancelled abstract has no line."""

    def __init__(self, stop: Stop) -> None:
        self.stop = stop
        self._waiting: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._heard = 0  # the requests to stop seen so far: 1 (finish), 2 (now)
        self._asked = asyncio.Event()
        self._now = asyncio.Event()

    async def enter(self, pacer: Pacing) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            await pacer.enter()
        finally:
            self._waiting.discard(task)
        self._in_flight += 1

    def leave(self, pacer: Pacing, latency: float | None) -> None:
        self._in_flight -= 1
        pacer.leave(latency)

    async def run(self, worker: Callable[[], Coroutine[Any, Any, None]], workers: int) -> None:
        """Run `workers` workers until they end, watching the stop meanwhile."""
        tasks: list[asyncio.Task[None]] = []
        with self.stop.watching(self._woken):
            watch = asyncio.create_task(self._watch(tasks))
            try:
                async with asyncio.TaskGroup() as group:
                    tasks.extend(group.create_task(worker()) for _ in range(workers))
            except BaseExceptionGroup as group_error:
                # Surface the first real error (a ConfigError such as a rejected key).
                raise group_error.exceptions[0] from None
            finally:
                watch.cancel()

    def _woken(self) -> None:
        """A request to stop reached this loop (two may wake it once each, or both at once)."""
        level = 2 if self.stop.now else 1
        if level <= self._heard:
            return
        self._heard = level
        try:
            self.stop.stopping(self._in_flight)
        except Exception:
            log.exception("on_stopping raised; stopping all the same")
        self._asked.set()
        if self.stop.now:
            self._now.set()

    async def _watch(self, tasks: list[asyncio.Task[None]]) -> None:
        await self._asked.wait()
        for task in list(self._waiting):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._now.wait(), GRACE_S)
        left = [task for task in tasks if not task.done()]
        if left:
            log.info("stopping now: %d abstracts in flight get no line", self._in_flight)
        for task in left:
            task.cancel()


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
        return Outcome(item, None, make_error(item, error, by=by), reasks=error.reasks)
    else:
        spent = done.usage
        latency = time.perf_counter() - started
        record = make_record(item, done.summary, usage=done.usage, attempts=done.attempts,
                             latency=latency, by=by)  # fmt: skip
        # A summarizer that does not time its own requests is timed here.
        return Outcome(item, record, None, done.service_s or latency, done.reasks)
    finally:
        await budget.settle(ticket, spent)


def _record(outcome: Outcome, sink: Sink, result: RunResult, price: Price | None) -> None:
    line = outcome.record or outcome.error
    result.count_reasks(outcome.reasks)
    if outcome.record is not None:
        sink.write_record(outcome.record)
        result.done += 1
    elif outcome.error is not None:
        kept = sink.write_error(outcome.error)
        log.info("failed %s: %s: %s", outcome.item.id, outcome.error.error_type.value,
                 outcome.error.message[:LOGGED_MESSAGE_CHARS])  # fmt: skip
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
