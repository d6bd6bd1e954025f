"""One finished batch resolved: each answer judged, and what follows from it.

A valid answer becomes a record; an invalid one is re-asked (in a follow-up
batch, or live with `--repair live`); a request the provider failed or left
unanswered is sent again; what is out of budget, or refused, becomes an error
line, and so does what the spend caps leave unsent (`caps`). Every line counts
what all the abstract's tries spent.
"""

from __future__ import annotations

import logging
from contextlib import closing
from dataclasses import replace
from functools import partial
from pathlib import Path

from openai.types import Batch

from .._core.plan import price_of, priced
from .._core.records import MadeBy
from .._core.verdict import LOGGED_FAULT_CHARS, Verdict
from .._cost import cost_of
from .._errors import SummaryError
from .._prompt import Prompt
from .._usage import Usage
from .answers import Answer, Answers, judge
from .chunks import ChunkWriter
from .context import CollectContext
from .live_repair import journaled_ids, repair_live
from .request_lines import asked_about
from .state import COLLECTED, REPAIRED, BatchState, Chunk, Pending

log = logging.getLogger("summarize.batch")

Turns = tuple[dict[str, str], ...]


class FinishedBatch:
    """One finished batch: each abstract's answer judged, and what follows from it."""

    def __init__(self, context: CollectContext, chunk: Chunk, batch: Batch) -> None:
        self.c = context
        self.chunk = chunk
        self.batch = batch
        self.prompt = context.prompt(chunk)
        self.made_by = MadeBy(chunk.model, _as_written(chunk, self.prompt), chunk.request_hash,
                              batch.id)  # fmt: skip
        self.endpoint = context.endpoint(chunk)
        # --max-cost needs a price only if this collect sends something (a repair).
        sends = context.options.repair != "none"
        self.price = (priced if sends else price_of)(context.settings, chunk.model)
        self.discount = self.price.batch if self.price else 1.0
        self.batch_error = _batch_error(batch)
        self.again: list[Pending] = []
        self.live: list[Pending] = []
        self.why: dict[str, SummaryError] = {}  # what failed, for those sent again

    def resolve(self, state: BatchState) -> None:
        """Write, re-ask or resend each abstract of the chunk; mark it collected."""
        c, chunk = self.c, self.chunk
        journal = c.states.file(chunk.key, REPAIRED)
        repaired = journaled_ids(journal)
        with closing(self._answers()) as answers:
            for pending in c.states.chunk_items(chunk.key):
                item_id = pending.item.id
                if c.output.is_done(item_id, chunk.fingerprint) or item_id in repaired:
                    continue  # written before a crash cut an earlier collect short
                self._judge(pending, answers.get(item_id))
        if self.live:
            self._repair_live(journal)
        endpoint = c.endpoint(chunk)
        writer = ChunkWriter(c.states, prompt=self.prompt, endpoint=endpoint,
                             model=chunk.model, options=c.options)  # fmt: skip
        followups = list(writer.write(
            self.again, attempt=chunk.attempt + 1, parent=chunk.key,
            admit=partial(c.allowance.admit, price=self.price),
            refused=partial(self._capped, what="not resent"),
        ))  # fmt: skip
        chunk.status, chunk.ids = COLLECTED, []
        state.chunks.extend(followups)
        c.states.save(state)
        c.states.forget(chunk.key)
        c.result.collected += 1
        c.result.resubmitted += sum(followup.count for followup in followups)

    def _repair_live(self, journal: Path) -> None:
        c = self.c
        if c.allowance.stopped is not None:  # the caps stopped an earlier send: none now
            for pending in self.live:
                self._capped(pending, what="not re-asked live")
            return
        by = MadeBy(self.chunk.model, self.prompt, self.chunk.request_hash)
        repair = repair_live(self.live, settings=c.settings, endpoint=c.endpoint(self.chunk),
                             output=c.output, made_by=by, cap=c.allowance.left(),
                             price=self.price, journal=journal)  # fmt: skip
        done, live = repair.result, repair.live
        c.allowance.commit(live.total, cost_of(live, self.price))
        c.result.spend(self.price, live, discount=1.0)
        c.result.done += done.done
        c.result.repaired_live += done.done
        for kind, count in done.failures.items():
            for _ in range(count):
                c.result.count_failure(kind)
        c.result.previous_kept += done.previous_kept
        if repair.unsent:
            c.allowance.stopped = c.allowance.stopped or repair.stopped
        for pending in repair.unsent:
            self._capped(pending, what="not re-asked live")

    def _capped(self, pending: Pending, *, what: str) -> None:
        """An abstract the caps leave unsent: its batch answer's error line, saying so."""
        c = self.c
        error = self.why[pending.item.id]
        why = c.allowance.stopped
        capped = SummaryError(f"{error.message}; {what}: {why}; the next submit sends it again",
                              error_type=error.error_type, raw_output=error.raw_output)  # fmt: skip
        c.write_error(pending.item, capped, pending.spent, by=self.made_by)
        c.result.capped += 1
        c.result.cap_note = c.result.cap_note or why

    def _answers(self) -> Answers:
        paths: list[Path] = []
        batch = self.batch
        for kind, file_id in (("errors", batch.error_file_id), ("output", batch.output_file_id)):
            if file_id is None:
                continue
            path = self.c.states.file(self.chunk.key, kind)
            if not path.exists():
                self.c.api.download(file_id, path)
            paths.append(path)  # output last: an answered request wins over an error line
        return Answers(paths)

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
        else:
            assert verdict.error is not None  # a repair is offered for errors only
            self.why[item.id] = verdict.error
            live = self.c.options.repair == "live"
            log.info("%s %s %s: %s", "re-ask" if verdict.repair == "reask" else "resend", item.id,
                     "live" if live else "in a follow-up batch",
                     verdict.error.message[:LOGGED_FAULT_CHARS])  # fmt: skip
            (self.live if live else self.again).append(Pending(item, total, turns))

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
        return tuple(self.c.repair_prompt.messages(
            answer=verdict.answer, error=message, with_answer=self.endpoint.reask_with_answer))


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
