"""`summarize batch collect`: finished batches become records.

Every answer is judged by the live path's models and checks (`answers.judge`).
What failed is re-asked in a follow-up batch, re-asked live, or written to the
errors file (`BatchOptions.repair`), within the live run's budgets. A chunk is
marked collected, and its follow-ups saved, in one write of `state.json` after
its records are written: a crash before that write makes the next collect do
the chunk again, skipping the abstracts whose records are already there, and
those a live repair already wrote a line for (its journal, `live_repair`).

What collect sends, follow-up batches and live re-asks, is held to `max_cost` /
`max_tokens_total` (`caps.Allowance`): an abstract the caps leave unsent keeps
its batch answer's error line, and the next submit sends it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from openai.types import Batch

from .._errors import OutputError, ProviderError
from .._output import Output
from .._settings import RunSettings
from .chunks import resend_failed_batch, send_unsent, update
from .context import CollectContext
from .finished import FinishedBatch
from .options import DEFAULT_OPTIONS, BatchOptions, open_api, remote_endpoint
from .provider import kept_hint
from .results import CollectResult
from .state import DOWNLOADS, FINISHED, BatchState, Chunk, LostChunk, StateDir

OnPoll = Callable[[BatchState], None]


def collect(
    settings: RunSettings, options: BatchOptions = DEFAULT_OPTIONS, *, on_poll: OnPoll | None = None
) -> CollectResult:
    """Download, validate and merge every finished batch; with `options.wait`, until all are."""
    endpoint = remote_endpoint(settings)
    states = StateDir(settings.output)
    started = time.perf_counter()
    result = CollectResult()
    with Output(settings.output) as output, open_api(endpoint) as api:
        context = CollectContext(settings, options, output=output, states=states, api=api,
                                 result=result)  # fmt: skip
        state = states.load()
        state.refuse_elsewhere(api.identity, states.path)
        while True:
            result.problems.clear()  # only what still stands after the last poll counts
            stuck = _poll(context, state)
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


def _poll(c: CollectContext, state: BatchState) -> set[str]:
    """Refresh every open batch and resolve the finished ones; one bad batch stops none.

    Returns the keys of the chunks that could not be read this time.
    """
    stuck: set[str] = set()
    for chunk in state.open_chunks():
        if chunk.batch_id is None:
            continue
        try:
            batch = c.api.retrieve(chunk.batch_id)
            update(chunk, batch)
            if batch.status in FINISHED:
                _finish(c, state, chunk, batch)
        except ProviderError as exc:
            if exc.status == 404 and c.options.release_lost:
                _lose(c, chunk, str(exc))
            else:
                c.result.problems.append(f"batch {chunk.batch_id}: {exc}{kept_hint(exc)}")
                stuck.add(chunk.key)
        except LostChunk as exc:
            _lose(c, chunk, str(exc))
        except OutputError as exc:
            # A download cut short, or a file spoiled: fetched again next time.
            c.states.forget(chunk.key, kinds=DOWNLOADS)
            c.result.problems.append(f"batch {chunk.batch_id}: {exc}")
            stuck.add(chunk.key)
        c.states.save(state)
    return stuck


def _finish(c: CollectContext, state: BatchState, chunk: Chunk, batch: Batch) -> None:
    endpoint = c.settings.endpoint
    if batch.status == "failed" and chunk.batch_failures < endpoint.max_retries:
        # The batch as a whole (often the provider's queue limit), not its requests.
        resend_failed_batch(chunk)
        return
    FinishedBatch(c, chunk, batch).resolve(state)


def _lose(c: CollectContext, chunk: Chunk, why: str) -> None:
    left = [i for i in chunk.ids if not c.output.is_done(i, chunk.fingerprint)]
    c.result.released += len(left)
    c.result.lost.append(
        f"batch {chunk.batch_id}: {why}; its {len(left)} abstracts without a record are "
        "released for the next submit"
    )
    chunk.release(f"lost: {why}")
    c.states.forget(chunk.key)
