"""`summarize batch submit`: pending abstracts in, batches created at the provider, at once."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from functools import partial
from typing import TextIO

from .._core.limits import too_long
from .._core.plan import Plan, pending_ids, plan_for_endpoint
from .._core.records import MadeBy, make_error
from .._cost import Price, SpendCap
from .._errors import ConfigError
from .._items import Entry, Item, stream_items
from .._output import Output
from .._prompt import DEFAULT_PROMPT, load_prompt
from .._readers import Inputs, index_inputs
from .._settings import EndpointSettings, RunSettings, endpoint_identity
from .caps import Allowance
from .chunks import ChunkWriter, send_unsent
from .options import DEFAULT_OPTIONS, BatchOptions, open_api, remote_endpoint
from .results import SubmitResult
from .state import Pending, StateDir


def submit(
    settings: RunSettings, options: BatchOptions = DEFAULT_OPTIONS, *, stdin: TextIO | None = None
) -> SubmitResult:
    """Send every pending abstract of `settings.inputs` to the Batch API; returns at once.

    Abstracts already in the output, or already out in a batch, are not sent again;
    chunks left unsent by an earlier call are sent first. Under `max_cost` /
    `max_tokens_total`, abstracts go in input order while their batch-priced estimate
    fits (`caps.Allowance`); the rest stay pending for the next submit.
    """
    endpoint = remote_endpoint(settings)
    planned = _plan(settings, endpoint)
    allowance = Allowance(SpendCap(settings.max_cost, settings.max_tokens_total))
    states = StateDir(settings.output)
    with closing(Inputs(settings.inputs, stdin=stdin)) as source, Output(settings.output) as output:
        index, problems = index_inputs(source, strict=settings.strict)
        state = states.load()
        state.refuse_elsewhere(endpoint_identity(endpoint), states.path)
        out = state.open_ids()
        wanted = planned.wanted
        pending, _ = pending_ids(index, lambda i: output.is_done(i, wanted) or i in out,
                                 force=False, limit=settings.limit)  # fmt: skip
        ids = {item.id for item in index.values()}
        result = SubmitResult(unique=len(index), out=len(out & ids), input_problems=problems)
        result.done = sum(1 for i in ids if output.is_done(i, wanted))
        items = _sendable(source.entries([]), index, set(pending), output=output,
                          made_by=planned.made_by, result=result)  # fmt: skip
        writer = ChunkWriter(states, prompt=planned.made_by.prompt, endpoint=endpoint,
                             model=planned.made_by.model, options=options)  # fmt: skip
        work = (Pending(item, {}) for item in items)
        admit = partial(allowance.admit, price=planned.price)
        for chunk in writer.write(work, attempt=1, admit=admit):
            state.chunks.append(chunk)
            states.save(state)
            result.submitted += chunk.count
        with open_api(endpoint) as api:
            sent = send_unsent(state, states, api, result.problems, result.problems)
    result.batches = [chunk.batch_id for chunk in sent if chunk.batch_id]
    _estimated(result, writer, allowance, planned.price)
    return result


def _plan(settings: RunSettings, endpoint: EndpointSettings) -> Plan:
    """The plan of a submit: the abstractive prompt, asked of the configured endpoint."""
    prompt = load_prompt(settings.prompt or DEFAULT_PROMPT)
    if prompt.strategy != "abstractive" or settings.strategy not in {None, "abstractive"}:
        raise ConfigError(
            f"{prompt.path}: batch mode asks abstractively; the extractive strategy "
            "is for live runs (summarize run)"
        )
    return plan_for_endpoint(settings, prompt, endpoint)


def _estimated(
    result: SubmitResult, writer: ChunkWriter, allowance: Allowance, price: Price | None
) -> None:
    """What was sent is expected to use and cost, and what the caps held back."""
    result.prompt_tokens = writer.prompt_tokens
    result.capped, result.cap_note = allowance.refused, _cap_note(allowance)
    if price is not None:
        completion = writer.estimator.completion_tokens() * result.submitted
        result.cost_usd = price.batch * price.cost(prompt=writer.prompt_tokens, cached=0,
                                                   completion=completion)  # fmt: skip


def _sendable(
    entries: Iterable[Entry],
    index: dict[str, Item],
    wanted: set[str],
    *,
    output: Output,
    made_by: MadeBy,
    result: SubmitResult,
) -> Iterator[Item]:
    """The pending items; an abstract too long to send becomes an `input` error line now."""
    for item in stream_items(entries, index, wanted=wanted):
        if (error := too_long(item)) is None:
            yield item
            continue
        output.write_error(make_error(item, error, by=made_by))
        result.rejected += 1


def _cap_note(allowance: Allowance) -> str | None:
    """`1,000 abstracts would cost ~$0.42 at batch prices; --max-cost 0.2 allows 470:
    submitting 470, 530 left for the next submit`, or None if the cap left none."""
    if allowance.stopped_by is None:
        return None
    asked = allowance.admitted + allowance.refused
    if allowance.stopped_by.startswith("--max-tokens-total"):
        wanted = f"use ~{allowance.wanted_tokens:,} tokens"
    else:
        wanted = f"cost ~${allowance.wanted_cost:.4f} at batch prices"
    if not allowance.admitted:
        return (f"{asked:,} pending abstracts would {wanted}; {allowance.stopped_by} allows "
                "not even the first: nothing submitted; raise the cap")  # fmt: skip
    return (f"{asked:,} pending abstracts would {wanted}; {allowance.stopped_by} allows "
            f"{allowance.admitted:,}: submitting {allowance.admitted:,}, "
            f"{allowance.refused:,} left for the next submit")  # fmt: skip
