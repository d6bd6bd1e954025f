"""`collect --repair live`: re-ask at once, through the live pool, what a batch got wrong.

The one module of batch mode that reaches live mode (`.ci/structure.py` holds it so).

Each abstract continues where its batch left it: the rejected answer and the reason
follow the prompt (`Pending.repair`), its budgets are what the batch left of
`max_reasks` and `max_retries`, and its line counts every token and request, the
batch's and the live ones. The live loop is the one `summarize run` uses
(`_live.pool.send_items`), under the live run's `Budget` for what the
collect's spend caps have left, priced at the live price (`LiveBudget`).

Each line's id goes into the chunk's journal (`OUT.batches/<key>.repaired.jsonl`)
once the line is written, so that a collect killed before it saved the state does
not re-ask, and pay for, those abstracts again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .._core.outcome import RunResult
from .._core.records import ErrorRecord, MadeBy, Record
from .._core.summarizer import Completion
from .._cost import Price, SpendCap
from .._errors import InputError, OutputError, SummaryError
from .._items import Item
from .._jsonl import Line, drop_torn_tail, read_jsonl
from .._live.budget import Budget, Ticket
from .._live.client import OpenAISummarizer
from .._live.pacer import REMOTE_CONCURRENCY, Pacer, Pacing
from .._live.pool import send_items
from .._output import Output, encode_line
from .._prompt import Prompt
from .._settings import EndpointSettings, RunSettings
from .._tokens import TokenEstimator, schema_chars
from .._usage import NO_USAGE, Usage
from .request_lines import request_line
from .state import Pending, spent_usage


class LiveRepairSummarizer:
    """A live summarizer for abstracts a batch already tried: their turns, their budgets
    left, and lines carrying what every try spent."""

    def __init__(self, work: Iterable[Pending], endpoint: EndpointSettings, prompt: Prompt,
                 pacer: Pacing) -> None:  # fmt: skip
        self._pending = {p.item.id: p for p in work}
        self._endpoint = endpoint
        self._prompt = prompt
        self._pacer = pacer
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
                budgets, self._prompt, pacer=self._pacer, repairs=self._repairs
            )
        return self._callers[reasks, retries]

    async def aclose(self) -> None:
        """Close every client made."""
        for caller in self._callers.values():
            await caller.aclose()


@dataclass(frozen=True, slots=True)
class _Carried(Ticket):
    """A ticket that knows what the abstract's batch tries spent before it went live."""

    before: Usage = NO_USAGE


class LiveBudget(Budget):
    """The live run's budget over the live requests alone.

    A continued abstract's usage counts its batch tries too (its line must); those were
    spent at the provider before this collect, so the caps see only what is spent live.
    """

    def __init__(self, cap: SpendCap, price: Price | None, work: dict[str, Pending], *,
                 endpoint: EndpointSettings, prompt: Prompt) -> None:  # fmt: skip
        self._work = work
        self._endpoint = endpoint
        self._prompt = prompt
        self._estimator = TokenEstimator(endpoint.max_tokens)
        super().__init__(cap, price, guess=self._request_guess)

    def _request_guess(self, item: Item) -> Usage:
        """The estimate of the re-ask as it is sent: the prompt, the rejected answer, why."""
        line = request_line(item, prompt=self._prompt, endpoint=self._endpoint,
                            repair=self._work[item.id].repair)  # fmt: skip
        body = line["body"]
        tokens = self._estimator.prompt_tokens(body["messages"], schema_chars(body["tools"]))
        return Usage(tokens, self._estimator.completion_tokens())

    async def admit(self, item: Item) -> Ticket | None:
        """Let `item` be re-asked if the caps allow it (`Budget.admit`)."""
        ticket = await super().admit(item)
        if ticket is None:
            return None
        before = spent_usage(self._work[item.id].spent)
        return _Carried(ticket.tokens, ticket.cost, ticket.guessed_tokens, ticket.guessed_cost,
                        before)  # fmt: skip

    async def settle(self, ticket: Ticket, spent: Usage) -> None:
        """The abstract is done: count what its live requests spent."""
        before = ticket.before if isinstance(ticket, _Carried) else NO_USAGE
        live = Usage(max(spent.prompt_tokens - before.prompt_tokens, 0),
                     max(spent.completion_tokens - before.completion_tokens, 0),
                     max(spent.cached_tokens - before.cached_tokens, 0))  # fmt: skip
        await super().settle(ticket, live)


class Journaled:
    """The output, with each line's id noted in the chunk's journal once it is written."""

    def __init__(self, output: Output, journal: Path) -> None:
        self._output = output
        self._path = journal
        self.written: set[str] = set()
        # A line torn by a full disk or a kill is cut first: appended to, it would become
        # a whole line that is no id.
        if journal.exists():
            drop_torn_tail(journal)
        try:
            self._journal: IO[bytes] = journal.open("ab")
        except OSError as exc:
            raise OutputError(f"{journal}: cannot open for writing ({exc.strerror})") from exc

    def write_record(self, record: Record) -> None:
        """Write the record, then note it."""
        self._output.write_record(record)
        self._note(record.id)

    def write_error(self, error: ErrorRecord) -> bool:
        """Write the error line, then note it; whether an earlier record is kept beside it."""
        kept = self._output.write_error(error)
        self._note(error.id)
        return kept

    def _note(self, item_id: str) -> None:
        # After the line, never before: a kill in between re-asks one abstract rather
        # than leaving it with no line.
        try:
            self._journal.write(encode_line(item_id))
            self._journal.flush()
        except OSError as exc:
            raise OutputError(f"{self._path}: cannot write ({exc.strerror})") from exc
        self.written.add(item_id)

    def close(self) -> None:
        """Close the journal."""
        self._journal.close()


def journaled_ids(journal: Path) -> set[str]:
    """The ids an earlier live repair of the chunk wrote lines for (a torn last one aside)."""
    # A line that is no id (torn, then appended to) costs at most one re-ask.
    try:
        lines = read_jsonl(journal, expect=str, bad="skip", torn=True, missing_ok=True)
        return {line.value for line in lines if isinstance(line, Line)}
    except InputError as exc:
        raise OutputError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class LiveRepair:
    """What a live repair did: its counts, what its requests spent, what the caps left."""

    result: RunResult
    live: Usage
    unsent: list[Pending]
    stopped: str | None


def repair_live(
    work: list[Pending],
    *,
    settings: RunSettings,
    endpoint: EndpointSettings,
    output: Output,
    made_by: MadeBy,
    cap: SpendCap,
    price: Price | None,
    journal: Path,
) -> LiveRepair:
    """Re-ask `work` live under `cap` (at `price`), writing its lines to `output`; what
    the caps left unsent has no line."""
    pacer = Pacer(settings.rpm, settings.tpm, width=settings.concurrency or REMOTE_CONCURRENCY)
    continued = LiveRepairSummarizer(work, endpoint, made_by.prompt, pacer)
    result = RunResult(unique=len(work))
    budget = LiveBudget(cap, price, {p.item.id: p for p in work}, endpoint=endpoint,
                        prompt=made_by.prompt)  # fmt: skip
    sink = Journaled(output, journal)

    async def go() -> RunResult:
        try:
            return await send_items((p.item for p in work), count=len(work),
                                    summarizer=continued, sink=sink, made_by=made_by,
                                    pacer=pacer, result=result, budget=budget)  # fmt: skip
        finally:
            await continued.aclose()

    try:
        asyncio.run(go())
    finally:
        sink.close()
    unsent = [p for p in work if p.item.id not in sink.written]
    return LiveRepair(result, continued.live, unsent, budget.stopped)
