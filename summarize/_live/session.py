"""One live sending, put together: the endpoint, one pacer, one budget, one summarizer.

`send_live` is what `run` and `summarize_rows` share: it starts the embedded model's
server when the plan names one (and stops it, on errors and Ctrl-C too), builds the
run's `Pacer` and `Budget`, asks the endpoint through `OpenAISummarizer` (over the
caller's transport if one is given; or the caller's own summarizer, held to `--rpm` /
`--tpm` by `PacedSummarizer`), and runs the worker pool (`pool.send_items`) until the
items are done, a cap stops it or it is asked to stop (`_core.stop.Stop`). What the
pacer met (pauses, limits learned) is counted into the `RunResult` however it ends.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from .._core.outcome import OnOutcome, RunResult
from .._core.plan import Plan
from .._core.request import prompt_tokens
from .._core.sink import Sink
from .._core.stop import Stop
from .._core.summarizer import Completion, Summarizer
from .._cost import SpendCap
from .._embedded.server import EmbeddedServer
from .._embedded.weights import ModelFile
from .._errors import ConfigError, SummaryError
from .._items import Item
from .._settings import EndpointSettings, RunSettings
from .._tokens import TokenEstimator
from .._usage import Usage
from .budget import Budget
from .client import OpenAISummarizer
from .pacer import Limits, Pacer, Pacing, pacer_for
from .pool import send_items
from .transport import AsyncTransport

# Told, however the sending ends, which endpoint answered and the limits it came to.
OnEnd = Callable[[EndpointSettings, Limits], None]


def send_live(
    items: Iterator[Item],
    count: int,
    settings: RunSettings,
    result: RunResult,
    *,
    sink: Sink,
    plan: Plan,
    summarizer: Summarizer | None = None,
    transport: AsyncTransport | None = None,
    on_start: Callable[[int], None] | None = None,
    on_outcome: OnOutcome | None = None,
    on_end: OnEnd | None = None,
    stop: Stop | None = None,
) -> RunResult:
    """Send `count` items now, writing each line to `sink` and counting into `result`,
    under the run's endpoint, pacing, width and spend caps."""
    if transport is not None and plan.local is not None:
        # The embedded model's server would start for nothing: the transport answers.
        raise ConfigError("a transport stands for an endpoint: set its base_url or api_key")
    pacer = pacer_for(settings, local=plan.local is not None)
    budget = _budget(settings, plan)
    with _frozen_heap(), _endpoint(settings, plan.local) as endpoint:
        if on_start is not None:
            on_start(count)
        caller: Summarizer = summarizer or OpenAISummarizer(
            endpoint, plan.made_by.prompt, pacer=pacer, transport=transport
        )
        if summarizer is not None and (settings.rpm or settings.tpm):
            caller = PacedSummarizer(summarizer, pacer, budget)  # it learns no limit
        try:
            work = send_items(items, count=count, summarizer=caller, sink=sink,
                              made_by=plan.made_by, pacer=pacer, result=result, budget=budget,
                              on_outcome=on_outcome, stop=stop)  # fmt: skip
            return asyncio.run(close_after(caller, work))
        finally:
            _count_pacing(result, pacer)
            if on_end is not None:
                on_end(endpoint, pacer.limits())


def _count_pacing(result: RunResult, pacer: Pacer) -> None:
    """What the pacer met, for the manifest: its pauses, and the limits it learned."""
    result.pauses = pacer.pauses
    result.paused_s = pacer.paused_s
    result.learned = pacer.learned()


def _budget(settings: RunSettings, plan: Plan) -> Budget:
    """The spend caps, with each abstract's expected spend guessed from its request."""
    prompt = plan.made_by.prompt
    estimator = TokenEstimator(settings.endpoint.max_tokens)
    return Budget(
        SpendCap(settings.max_cost, settings.max_tokens_total),
        plan.price,
        guess=lambda item: Usage(prompt_tokens(prompt, item, estimator),
                                 estimator.completion_tokens()),
    )


@contextmanager
def _endpoint(settings: RunSettings, local: ModelFile | None) -> Iterator[EndpointSettings]:
    if local is None:
        yield settings.endpoint
        return
    with EmbeddedServer(local) as server:
        yield server.endpoint(given=settings.endpoint)
        server.check_alive()


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """What exists before the run (modules, schemas, the index) lives through it: kept out
    of the collector's sight, its full passes stop rescanning it (~0.2 ms a record at
    6,000 records, `bench/throughput.py`); handed back afterwards.

    Garbage in cycles is collected first: frozen, it would never be freed, and a process
    that runs again and again (`summarize_rows` per batch) grew by ~2.5 KB a row."""
    if gc.get_freeze_count():  # the caller froze its own heap: theirs to keep and thaw
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def close_after(summarizer: Summarizer, work: Awaitable[RunResult]) -> RunResult:
    """Run `work`, then release the summarizer's connections whatever happened."""
    try:
        return await work
    finally:
        await summarizer.aclose()


class PacedSummarizer:
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
        """Wait for a start slot, then summarise with the wrapped summarizer."""
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
