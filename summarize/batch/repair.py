"""`collect --repair live`: re-ask at once, through the live runner, what a batch got wrong.

Each abstract continues where its batch left it: the rejected answer and the reason
follow the prompt (`Pending.repair`), its budgets are what the batch left of
`max_reasks` and `max_retries`, and its line counts every token and request, the
batch's and the live ones. The live loop is the one `summarize run` uses
(`live.runner.summarize_items`); only this summarizer is batch's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..errors import SummaryError
from ..items import Item
from ..live.client import Completion, OpenAISummarizer
from ..live.concurrency import REMOTE_CONCURRENCY, Concurrency
from ..live.ratelimit import RateLimiter
from ..live.runner import RunResult, summarize_items
from ..output import Output
from ..prompt import Prompt
from ..records import MadeBy
from ..settings import EndpointSettings, RunSettings
from ..usage import Usage
from .state import Pending, spent_usage


class Continued:
    """A live summarizer for abstracts a batch already tried: their turns, their budgets
    left, and lines carrying what every try spent."""

    def __init__(self, work: Iterable[Pending], endpoint: EndpointSettings, prompt: Prompt,
                 limiter: RateLimiter) -> None:  # fmt: skip
        self._pending = {p.item.id: p for p in work}
        self._endpoint = endpoint
        self._prompt = prompt
        self._limiter = limiter
        self._repairs = {key: list(p.repair) for key, p in self._pending.items()}
        self._callers: dict[tuple[int, int], OpenAISummarizer] = {}
        self.live = Usage()  # what the live requests spent, at the full price
        self.model_name = endpoint.recorded_model

    async def summarize(self, item: Item) -> Completion:
        """The live answer, its line counting the batch's tries too."""
        spent = self._pending[item.id].spent
        before = spent_usage(spent)
        tries = spent.get("attempt", 1)
        try:
            done = await self._caller(spent).summarize(item)
        except SummaryError as error:
            self.live += error.usage
            raise error.carrying(before + error.usage, tries + error.attempts) from None
        self.live += done.usage
        return Completion(done.summary, before + done.usage, tries + done.attempts, done.service_s)

    def _caller(self, spent: dict[str, int]) -> OpenAISummarizer:
        """A live client whose budgets are what this abstract has left."""
        reasks = max(0, self._endpoint.max_reasks - spent.get("reasks", 0))
        resends = spent.get("attempt", 1) - spent.get("reasks", 0)
        retries = max(0, self._endpoint.max_retries - resends)
        if (reasks, retries) not in self._callers:
            budgets = self._endpoint.model_copy(update={"max_reasks": reasks,
                                                        "max_retries": retries})  # fmt: skip
            self._callers[reasks, retries] = OpenAISummarizer(
                budgets, self._prompt, limiter=self._limiter, repairs=self._repairs
            )
        return self._callers[reasks, retries]

    async def aclose(self) -> None:
        """Close every client made."""
        for caller in self._callers.values():
            await caller.aclose()


def repair_live(
    work: list[Pending],
    *,
    settings: RunSettings,
    endpoint: EndpointSettings,
    output: Output,
    made_by: MadeBy,
) -> tuple[RunResult, Usage]:
    """Re-ask `work` live, writing its lines to `output`; the run's counts and what the
    live requests spent."""
    continued = Continued(work, endpoint, made_by.prompt, RateLimiter(settings.rpm, settings.tpm))
    result = RunResult(unique=len(work))
    gate = Concurrency(settings.concurrency or REMOTE_CONCURRENCY)

    async def go() -> RunResult:
        try:
            return await summarize_items((p.item for p in work), count=len(work),
                                         summarizer=continued, output=output, made_by=made_by,
                                         concurrency=gate, result=result)  # fmt: skip
        finally:
            await continued.aclose()

    asyncio.run(go())
    return result, continued.live
