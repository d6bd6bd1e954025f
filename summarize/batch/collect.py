"""`summarize batch collect`: finished batches become records.

Every answer is judged by the live path's models and checks (`requests.judge`).
What failed is re-asked in a follow-up batch, re-asked live, or written to the
errors file (`BatchOptions.repair`), within the live run's budgets. A chunk is
marked collected, and its follow-ups saved, in one write of `state.json` after
its records are written: a crash before that write makes the next collect do
the chunk again, skipping the abstracts whose records are already there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from openai.types import Batch

from ..answer import Verdict
from ..cost import Price
from ..errors import ConfigError, ExitCode, OutputError, ProviderError, SummaryError
from ..items import Item
from ..output import Output
from ..prompt import Prompt, RepairPrompt, load_prompt, load_repair_prompt
from ..records import MadeBy, make_error, make_record
from ..schema import Summary
from ..settings import EndpointSettings, RunSettings
from ..usage import Usage
from .chunks import ChunkWriter, resend_failed_batch, send_unsent, update
from .options import DEFAULT_OPTIONS, BatchOptions, open_api, price_of, remote_endpoint
from .provider import BatchAPI, kept_hint
from .repair import repair_live
from .requests import Answer, asked_about, judge, read_answers
from .state import (
    COLLECTED,
    DOWNLOADS,
    FINISHED,
    BatchState,
    Chunk,
    LostChunk,
    Pending,
    StateDir,
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
    resubmitted: int = 0
    repaired_live: int = 0
    released: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
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

    def count_failure(self, kind: str) -> None:
        """One more error line of this type."""
        self.failed += 1
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
        collector = _Collector(settings, options, output=output, states=states, api=api,
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


class _Collector:
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
        _Resolution(self, chunk, batch).run(state)

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
        record = make_record(item, summary, usage=_usage(total), attempts=total["attempt"],
                             latency=latency, by=by)  # fmt: skip
        self.output.write_record(record)
        self.result.done += 1

    def write_error(self, item: Item, error: SummaryError, total: dict[str, int], *,
                    by: MadeBy) -> None:  # fmt: skip
        """An error line carrying every attempt's tokens."""
        line = make_error(item, error, by=by, usage=_usage(total), attempts=total["attempt"])
        self.output.write_error(line)
        self.result.count_failure(error.error_type.value)


class _Resolution:
    """One finished batch: each abstract's answer judged, and what follows from it."""

    def __init__(self, collector: _Collector, chunk: Chunk, batch: Batch) -> None:
        self.c = collector
        self.chunk = chunk
        self.batch = batch
        self.prompt = collector.prompt(chunk)
        self.made_by = MadeBy(chunk.model, _as_written(chunk, self.prompt), chunk.request_hash,
                              batch.id)  # fmt: skip
        self.endpoint = collector.endpoint(chunk)
        self.price = price_of(collector.settings, chunk.model)
        self.discount = self.price.batch if self.price else 1.0
        self.batch_error = _batch_error(batch)
        self.again: list[Pending] = []
        self.live: list[Pending] = []

    def run(self, state: BatchState) -> None:
        c, chunk = self.c, self.chunk
        answers = self._answers()
        for pending in c.states.read_items(chunk.key):
            if c.output.is_done(pending.item.id, chunk.fingerprint):
                continue  # written before a crash cut an earlier collect short
            self._judge(pending, answers.get(pending.item.id))
        if self.live:
            self._repair_live()
        endpoint = c.endpoint(chunk)
        writer = ChunkWriter(c.states, prompt=self.prompt, endpoint=endpoint,
                             model=chunk.model, options=c.options)  # fmt: skip
        followups = list(writer.write(self.again, attempt=chunk.attempt + 1, parent=chunk.key))
        chunk.status, chunk.ids = COLLECTED, []
        state.chunks.extend(followups)
        c.states.save(state)
        c.states.forget(chunk.key)
        c.result.collected += 1
        c.result.resubmitted += len(self.again)

    def _repair_live(self) -> None:
        c = self.c
        by = MadeBy(self.chunk.model, self.prompt, self.chunk.request_hash)
        done, live = repair_live(self.live, settings=c.settings, endpoint=c.endpoint(self.chunk),
                                 output=c.output, made_by=by)  # fmt: skip
        c.result.spend(self.price, live, discount=1.0)
        c.result.done += done.done
        c.result.repaired_live += done.done
        for kind, count in done.failures.items():
            for _ in range(count):
                c.result.count_failure(kind)

    def _answers(self) -> dict[str, Answer]:
        found: dict[str, Answer] = {}
        batch = self.batch
        for kind, file_id in (("errors", batch.error_file_id), ("output", batch.output_file_id)):
            if file_id is None:
                continue
            path = self.c.states.file(self.chunk.key, kind)
            if not path.exists():
                self.c.api.download(file_id, path)
            # Output lines are read last: an answered request wins over an error line.
            found.update((answer.custom_id, answer) for answer in read_answers(path))
        return found

    def _judge(self, pending: Pending, answer: Answer | None) -> None:
        result, item = self.c.result, pending.item
        asked = asked_about(item, self.prompt, self.endpoint)
        verdict = judge(answer, item, asked, batch_status=self.batch.status,
                        batch_error=self.batch_error)  # fmt: skip
        result.spend(self.price, verdict.usage, discount=self.discount)
        total = _add(pending.spent, verdict.usage)
        turns = self._repair(verdict, total, pending.repair)
        if verdict.summary is None and self.batch.status == "cancelled":
            result.released += 1  # the user stopped spending: the next submit sends it
        elif verdict.summary is not None:
            self.c.write_record(item, verdict.summary, total, by=self.made_by,
                                latency=_batch_seconds(self.batch))  # fmt: skip
        elif turns is None:
            assert verdict.error is not None
            self.c.write_error(item, verdict.error, total, by=self.made_by)
        elif self.c.options.repair == "live":
            self.live.append(Pending(item, total, turns))
        else:
            self.again.append(Pending(item, total, turns))

    def _repair(self, verdict: Verdict, spent: dict[str, int], turns: Turns) -> Turns | None:
        """The turns of another try, or None when none is allowed or left.

        Resends (expired, provider errors) and re-asks (invalid answers) have separate
        budgets, `max_retries` and `max_reasks`, as in a live run.
        """
        if verdict.error is None or verdict.repair is None or self.c.options.repair == "none":
            return None
        endpoint = self.c.settings.endpoint
        if verdict.repair == "resend":
            resends = spent["attempt"] - 1 - spent["reasks"]
            return turns if resends < endpoint.max_retries else None
        if spent["reasks"] >= endpoint.max_reasks or verdict.answer is None:
            return None
        spent["reasks"] += 1
        message = verdict.error.message
        return tuple(self.c.repair_prompt.messages(answer=verdict.answer, error=message))


def _usage(total: dict[str, int]) -> Usage:
    return Usage(total["prompt_tokens"], total["completion_tokens"], total["cached_tokens"])


def _add(spent: dict[str, int], usage: Usage, attempts: int = 0) -> dict[str, int]:
    """What an abstract has cost so far, with one more answer's tokens and requests."""
    return {
        "attempt": spent.get("attempt", 1) + attempts,
        "reasks": spent.get("reasks", 0),
        "prompt_tokens": spent.get("prompt_tokens", 0) + usage.prompt_tokens,
        "completion_tokens": spent.get("completion_tokens", 0) + usage.completion_tokens,
        "cached_tokens": spent.get("cached_tokens", 0) + usage.cached_tokens,
    }


def _as_written(chunk: Chunk, prompt: Prompt) -> Prompt:
    """The prompt's version and hash as the chunk records them."""
    if prompt.hash == chunk.prompt_hash:
        return prompt
    return replace(prompt, version=chunk.prompt_version, hash=chunk.prompt_hash)


def _batch_seconds(batch: Batch) -> float:
    """From the batch's creation to its end, on the provider's clock."""
    ended = batch.completed_at or batch.expired_at or batch.cancelled_at or batch.failed_at
    return float(ended - batch.created_at) if ended else 0.0


def _batch_error(batch: Batch) -> str | None:
    if batch.status != "failed":
        return None
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    if not errors:
        return "no reason given"
    first = errors[0]
    return f"{first.code or 'error'}: {first.message or ''}".strip()
