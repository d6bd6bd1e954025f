"""`summarize batch submit`: pending abstracts in, batches created at the provider, at once."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import TextIO

from ..errors import ConfigError, ExitCode, InputError
from ..items import Entry, Item, stream_items
from ..job import pending_ids
from ..live.runner import too_long
from ..output import Output
from ..prompt import DEFAULT_PROMPT, load_prompt, load_repair_prompt
from ..readers import Inputs, index_inputs
from ..records import MadeBy, make_error
from ..request import request_hash
from ..settings import RunSettings, endpoint_identity
from .chunks import ChunkWriter, send_unsent
from .options import DEFAULT_OPTIONS, BatchOptions, open_api, price_of, remote_endpoint
from .state import Pending, StateDir


@dataclass(slots=True)
class SubmitResult:
    """What `submit` sent, and what it left alone."""

    unique: int = 0
    done: int = 0
    out: int = 0
    submitted: int = 0
    rejected: int = 0
    batches: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    cost_usd: float | None = None
    problems: list[str] = field(default_factory=list)
    input_problems: list[InputError] = field(default_factory=list)

    @property
    def left(self) -> int:
        """Unique abstracts neither done, out, sent nor rejected (--limit)."""
        return self.unique - self.done - self.out - self.submitted - self.rejected

    @property
    def exit_code(self) -> ExitCode:
        """PROVIDER a chunk could not be sent (the next call retries), FAILED an abstract
        was rejected as input."""
        if self.problems:
            return ExitCode.PROVIDER
        return ExitCode.FAILED if self.rejected else ExitCode.OK


def submit(
    settings: RunSettings, options: BatchOptions = DEFAULT_OPTIONS, *, stdin: TextIO | None = None
) -> SubmitResult:
    """Send every pending abstract of `settings.inputs` to the Batch API; returns at once.

    Abstracts already in the output, or already out in a batch, are not sent again;
    chunks left unsent by an earlier call are sent first.
    """
    endpoint = remote_endpoint(settings)
    prompt = load_prompt(settings.prompt or DEFAULT_PROMPT)
    if prompt.strategy != "abstractive" or settings.strategy not in {None, "abstractive"}:
        raise ConfigError(
            f"{prompt.path}: batch mode asks abstractively; the extractive strategy "
            "is for live runs (summarize run)"
        )
    model = endpoint.recorded_model
    states = StateDir(settings.output)
    with closing(Inputs(settings.inputs, stdin=stdin)) as source, Output(settings.output) as output:
        index, problems = index_inputs(source, strict=settings.strict)
        state = states.load()
        state.refuse_elsewhere(endpoint_identity(endpoint), states.path)
        out = state.open_ids()
        made_by = MadeBy(model, prompt, request_hash(prompt, endpoint, load_repair_prompt()))
        wanted = (model, made_by.request_hash)
        pending, _ = pending_ids(index, lambda i: output.is_done(i, wanted) or i in out,
                                 force=False, limit=settings.limit)  # fmt: skip
        ids = {item.id for item in index.values()}
        result = SubmitResult(unique=len(index), out=len(out & ids), input_problems=problems)
        result.done = sum(1 for i in ids if output.is_done(i, wanted))
        items = _sendable(source.entries([]), index, set(pending), output=output,
                          made_by=made_by, result=result)  # fmt: skip
        writer = ChunkWriter(states, prompt=prompt, endpoint=endpoint, model=model,
                             options=options)  # fmt: skip
        for chunk in writer.write((Pending(item, {}) for item in items), attempt=1):
            state.chunks.append(chunk)
            states.save(state)
            result.submitted += chunk.count
        with open_api(endpoint) as api:
            sent = send_unsent(state, states, api, result.problems, result.problems)
    result.batches = [chunk.batch_id for chunk in sent if chunk.batch_id]
    result.prompt_tokens = writer.prompt_tokens
    price = price_of(settings, model)
    if price is not None:
        completion = writer.estimator.completion_tokens() * result.submitted
        result.cost_usd = price.batch * price.cost(prompt=writer.prompt_tokens, cached=0,
                                                   completion=completion)  # fmt: skip
    return result


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
