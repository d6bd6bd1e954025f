"""`summarize batch collect`: finished batches become records.

Every answer is judged by the live path's models and checks (`requests.judge`).
What failed is re-asked in a follow-up batch, re-asked live, or written to the
errors file (`BatchOptions.repair`), within the live run's budgets. A chunk is
marked collected, and its follow-ups saved, in one write of `state.json` after
its records are written: a crash before that write makes the next collect do
the chunk again, skipping the abstracts whose records are already there, and
those a live repair already wrote a line for (its journal, `repair`).

What collect sends, follow-up batches and live re-asks, is held to `max_cost` /
`max_tokens_total` (`caps.Allowance`): an abstract the caps leave unsent keeps
its batch answer's error line, and the next submit sends it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from openai.types import Batch

from .._core.records import MadeBy, make_error, make_record
from .._cost import Price, SpendCap
from .._errors import ConfigError, ExitCode, OutputError, ProviderError, SummaryError
from .._items import Item
from .._output import Output
from .._prompt import Prompt, RepairPrompt, load_prompt, load_repair_prompt
from .._schema import Summary
from .._settings import EndpointSettings, RunSettings
from .._usage import Usage
from .caps import Allowance
from .chunks import resend_failed_batch, send_unsent, update
from .finished import Resolution
from .options import DEFAULT_OPTIONS, BatchOptions, open_api, remote_endpoint
from .provider import BatchAPI, kept_hint
from .state import (
    DOWNLOADS,
    FINISHED,
    BatchState,
    Chunk,
    LostChunk,
    StateDir,
    spent_usage,
)

OnPoll = Callable[[BatchState], None]
Turns = tuple[dict[str, str], ...]


@dataclass(slots=True)
class CollectResult:
    """What `collect` did, for the summary line and the exit code."""

    collected: int = 0
    open: dict[str, int] = field(default_factory=dict)
    done: int = 0
    failed: int = 0
    previous_kept: int = 0  # failed abstracts whose earlier record stays (a failed redo)
    resubmitted: int = 0
    repaired_live: int = 0
    released: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    capped: int = 0  # abstracts a spend cap kept from a follow-up or a live re-ask
    cap_note: str | None = None  # why, the first time
    problems: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """PROVIDER a batch could not be read, sent or was lost; OPEN batches are still
        out; FAILED error lines were written."""
        if self.problems or self.lost:
            return ExitCode.PROVIDER
        if self.open:
            return ExitCode.OPEN
        return ExitCode.FAILED if self.failed else ExitCode.OK

    def count_failure(self, kind: str, *, previous_kept: bool = False) -> None:
        """One more error line of this type; `previous_kept`: beside an earlier record."""
        self.failed += 1
        self.previous_kept += int(previous_kept)
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def spend(self, price: Price | None, usage: Usage, *, discount: float) -> None:
        """Count tokens, and their cost at `discount` times the price (1.0 for live)."""
        self.prompt_tokens += usage.prompt_tokens
        self.cached_tokens += usage.cached_tokens
        self.completion_tokens += usage.completion_tokens
        if price is not None:
            cost = price.cost(prompt=usage.prompt_tokens, cached=usage.cached_tokens,
                              completion=usage.completion_tokens)  # fmt: skip
            self.cost_usd = (self.cost_usd or 0.0) + discount * cost


def collect(
    settings: RunSettings, options: BatchOptions = DEFAULT_OPTIONS, *, on_poll: OnPoll | None = None
) -> CollectResult:
    """Download, validate and merge every finished batch; with `options.wait`, until all are."""
    endpoint = remote_endpoint(settings)
    states = StateDir(settings.output)
    started = time.perf_counter()
    result = CollectResult()
    with Output(settings.output) as output, open_api(endpoint) as api:
        collector = Collector(settings, options, output=output, states=states, api=api,
                               result=result)  # fmt: skip
        state = states.load()
        state.refuse_elsewhere(api.identity, states.path)
        while True:
            result.problems.clear()  # only what still stands after the last poll counts
            stuck = collector.poll(state)
            send_unsent(state, states, api, result.problems, result.lost)
            stuck |= {c.key for c in state.open_chunks() if c.batch_id is None}  # not sent
            if on_poll is not None:
                on_poll(state)
            waiting = [c for c in state.open_chunks() if c.key not in stuck]
            if not options.wait or not waiting:
                break  # with --wait, a batch that fails every poll ends the wait
            time.sleep(options.poll_s)
        for chunk in state.open_chunks():
            result.open[chunk.status] = result.open.get(chunk.status, 0) + 1
    result.elapsed_s = time.perf_counter() - started
    return result


class Collector:
    """Resolves finished batches into records, error lines, live re-asks and follow-ups."""

    def __init__(self, settings: RunSettings, options: BatchOptions, *, output: Output,
                 states: StateDir, api: BatchAPI, result: CollectResult) -> None:  # fmt: skip
        self.settings = settings
        self.options = options
        self.output = output
        self.states = states
        self.api = api
        self.result = result
        self.repair_prompt: RepairPrompt = load_repair_prompt()
        self.allowance = Allowance(SpendCap(settings.max_cost, settings.max_tokens_total))

    def poll(self, state: BatchState) -> set[str]:
        """Refresh every open batch and resolve the finished ones; one bad batch stops none.

        Returns the keys of the chunks that could not be read this time.
        """
        stuck: set[str] = set()
        for chunk in state.open_chunks():
            if chunk.batch_id is None:
                continue
            try:
                batch = self.api.retrieve(chunk.batch_id)
                update(chunk, batch)
                if batch.status in FINISHED:
                    self._finish(state, chunk, batch)
            except ProviderError as exc:
                if exc.status == 404 and self.options.release_lost:
                    self._lose(chunk, str(exc))
                else:
                    self.result.problems.append(f"batch {chunk.batch_id}: {exc}{kept_hint(exc)}")
                    stuck.add(chunk.key)
            except LostChunk as exc:
                self._lose(chunk, str(exc))
            except OutputError as exc:
                # A download cut short, or a file spoiled: fetched again next time.
                self.states.forget(chunk.key, kinds=DOWNLOADS)
                self.result.problems.append(f"batch {chunk.batch_id}: {exc}")
                stuck.add(chunk.key)
            self.states.save(state)
        return stuck

    def _finish(self, state: BatchState, chunk: Chunk, batch: Batch) -> None:
        endpoint = self.settings.endpoint
        if batch.status == "failed" and chunk.batch_failures < endpoint.max_retries:
            # The batch as a whole (often the provider's queue limit), not its requests.
            resend_failed_batch(chunk)
            return
        Resolution(self, chunk, batch).run(state)

    def _lose(self, chunk: Chunk, why: str) -> None:
        left = [i for i in chunk.ids if not self.output.is_done(i, chunk.fingerprint)]
        self.result.released += len(left)
        self.result.lost.append(
            f"batch {chunk.batch_id}: {why}; its {len(left)} abstracts without a record are "
            "released for the next submit"
        )
        chunk.release(f"lost: {why}")
        self.states.forget(chunk.key)

    def prompt(self, chunk: Chunk) -> Prompt:
        """The copy of the prompt file the chunk was written with."""
        try:
            return load_prompt(self.states.root / chunk.prompt_file)
        except ConfigError as exc:
            raise LostChunk(f"its prompt copy is unusable ({exc})") from None

    def endpoint(self, chunk: Chunk) -> EndpointSettings:
        """This collect's endpoint, sending what the chunk's requests were sent with."""
        return self.settings.endpoint.model_copy(update=chunk.request)

    def write_record(self, item: Item, summary: Summary, total: dict[str, int], *, by: MadeBy,
                     latency: float) -> None:  # fmt: skip
        """A record carrying every attempt's tokens, batch and live alike."""
        record = make_record(item, summary, usage=spent_usage(total), attempts=total["attempt"],
                             latency=latency, by=by)  # fmt: skip
        self.output.write_record(record)
        self.result.done += 1

    def write_error(self, item: Item, error: SummaryError, total: dict[str, int], *,
                    by: MadeBy) -> None:  # fmt: skip
        """An error line carrying every attempt's tokens."""
        line = make_error(item, error.carrying(spent_usage(total), total["attempt"]), by=by)
        kept = self.output.write_error(line)
        self.result.count_failure(error.error_type.value, previous_kept=kept)
