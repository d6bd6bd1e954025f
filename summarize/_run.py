"""One run of the batch job, from settings to a `RunResult`: the library entry point.

    >>> from summarize import RunSettings, run
    >>> result = run(RunSettings(inputs=("papers.txt",), limit=3))
    >>> result.done, result.failed

The endpoint is chosen here, at the edge: the configured one, or the embedded
model when no endpoint and no key are configured. Everything downstream sees
only `EndpointSettings` and a `Summarizer`.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ._core.records import Fingerprint, MadeBy
from ._core.request import prompt_tokens, request_hash
from ._cost import Price, PriceTable, SpendCap
from ._embedded.server import EmbeddedServer, local_endpoint
from ._embedded.weights import ModelFile, embedded_model, model_file
from ._errors import ConfigError
from ._items import Item, stream_items
from ._live.budget import Budget
from ._live.client import OpenAISummarizer, Summarizer
from ._live.pacer import pacer_for
from ._live.pool import OnOutcome, Paced, RunResult, Sink, summarize_items
from ._manifest import manifest, manifest_path_for, write_manifest
from ._output import Output
from ._prompt import PROMPT_FOR, Prompt, load_prompt, load_repair_prompt
from ._readers import Inputs, index_inputs
from ._settings import EndpointSettings, RunSettings, wants_local
from ._tokens import TokenEstimator
from ._usage import Usage


def pending_ids(
    index: dict[str, Item], done: Callable[[str], bool], *, force: bool, limit: int | None
) -> tuple[list[str], int]:
    """Ids to summarise (in input order, at most `limit`), and how many were already done."""
    pending = [item_id for item_id in (i.id for i in index.values()) if force or not done(item_id)]
    skipped = len(index) - len(pending)
    return (pending if limit is None else pending[:limit]), skipped


def choose_prompt(settings: RunSettings, *, local: bool) -> Prompt:
    """`--prompt FILE`, or the bundled prompt of `--strategy`, or of the model's kind:
    extractive for a local GGUF (small models pick better than they write),
    abstractive for an endpoint."""
    if settings.prompt is not None:
        prompt = load_prompt(settings.prompt)
        if settings.strategy is not None and prompt.strategy != settings.strategy:
            raise ConfigError(
                f"{settings.prompt}: the prompt's strategy is {prompt.strategy}, "
                f"not --strategy {settings.strategy}"
            )
        return prompt
    strategy = settings.strategy or ("extractive" if local else "abstractive")
    return load_prompt(PROMPT_FOR[strategy])


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will ask, of which model, at what price: decided before any request."""

    made_by: MadeBy
    local: ModelFile | None
    price: Price | None

    @property
    def wanted(self) -> Fingerprint:
        """What a record must have been made with to count as done."""
        return (self.made_by.model, self.made_by.request_hash)


def plan(
    settings: RunSettings, *, summarizer: Summarizer | None = None, dry_run: bool = False
) -> Plan:
    """The prompt, the model (the embedded one if nothing is configured) and its price.

    `dry_run`: write nothing, not even the embedded weights (named by their pinned hash)."""
    local = None if summarizer is not None else _local_model(settings, dry_run=dry_run)
    prompt = choose_prompt(settings, local=summarizer is None and wants_local(settings))
    model_name = _model_name(settings, local, summarizer)
    price = _price(settings, model_name, local=local is not None)
    given = settings.endpoint
    endpoint = given if local is None else local_endpoint(local, given=given)
    asked = request_hash(prompt, endpoint, load_repair_prompt())
    return Plan(MadeBy(model_name, prompt, asked), local, price)


def _local_model(settings: RunSettings, *, dry_run: bool) -> ModelFile | None:
    if not wants_local(settings):
        return None
    if settings.model_file:
        return model_file(settings.model_file, remember=not dry_run)
    return embedded_model(assemble=not dry_run)


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


@contextmanager
def _endpoint(settings: RunSettings, local: ModelFile | None) -> Iterator[EndpointSettings]:
    if local is None:
        yield settings.endpoint
        return
    with EmbeddedServer(local) as server:
        yield server.endpoint(given=settings.endpoint)
        server.check_alive()


def _model_name(settings: RunSettings, local: ModelFile | None,
                summarizer: Summarizer | None) -> str:  # fmt: skip
    if summarizer is not None:
        return summarizer.model_name
    if local is not None:
        return local.label
    return settings.endpoint.recorded_model


def _price(settings: RunSettings, model_name: str, *, local: bool) -> Price | None:
    table = PriceTable.load(settings.prices)
    price = (table.with_free(model_name) if local else table).get(model_name)
    if price is None and settings.max_cost is not None:
        raise ConfigError(
            f"--max-cost needs a price for model {model_name!r}: add it with --prices FILE"
        )
    return price


def run(
    settings: RunSettings,
    *,
    on_start: Callable[[int], None] | None = None,
    on_outcome: OnOutcome | None = None,
    on_loading: Callable[[str], None] | None = None,
    summarizer: Summarizer | None = None,
    stdin: TextIO | None = None,
) -> RunResult:
    """Summarise every unique abstract of `settings.inputs` into `settings.output`.

    Abstracts already in the output for the same model, prompt and schema are
    skipped without a request; failed ones are tried again. Pass `summarizer`
    to use your own model caller instead of an OpenAI-compatible endpoint.
    """
    with closing(Inputs(settings.inputs, stdin=stdin)) as source:
        index, problems = index_inputs(source, strict=settings.strict)
        planned = plan(settings, summarizer=summarizer)
        local = planned.local
        with Output(settings.output) as output:
            pending, skipped = pending_ids(index, lambda i: output.is_done(i, planned.wanted),
                                        force=settings.force, limit=settings.limit)  # fmt: skip
            result = RunResult(unique=len(index), skipped=skipped, input_problems=problems)
            if not pending:
                if on_start is not None:
                    on_start(0)
                return result
            if local is not None and on_loading is not None:
                on_loading(local.path.name)
            items = stream_items(source.entries([]), index, wanted=set(pending))
            return run_items(items, len(pending), settings, result, output=output,
                              planned=planned, summarizer=summarizer, on_start=on_start,
                              on_outcome=on_outcome, manifest_for=settings.output)  # fmt: skip


def run_items(
    items: Iterator[Item],
    count: int,
    settings: RunSettings,
    result: RunResult,
    *,
    output: Sink,
    planned: Plan,
    summarizer: Summarizer | None,
    on_start: Callable[[int], None] | None = None,
    on_outcome: OnOutcome | None = None,
    manifest_for: Path | None = None,
) -> RunResult:
    """Summarise `items` into `output` under the run's endpoint, pacing, gate and caps;
    with `manifest_for`, write that output's manifest at the end."""
    made_by, local, price = planned.made_by, planned.local, planned.price
    prompt = made_by.prompt
    pacer = pacer_for(settings, local=local is not None)
    estimator = TokenEstimator(settings.endpoint.max_tokens)
    budget = Budget(
        SpendCap(settings.max_cost, settings.max_tokens_total),
        price,
        guess=lambda item: Usage(prompt_tokens(prompt, item, estimator),
                                 estimator.completion_tokens()),
    )
    with _frozen_heap(), _endpoint(settings, local) as endpoint:
        if on_start is not None:
            on_start(count)
        caller: Summarizer = summarizer or OpenAISummarizer(endpoint, prompt, pacer=pacer)
        if summarizer is not None and (settings.rpm or settings.tpm):
            caller = Paced(summarizer, pacer, budget)  # it learns no limit from headers
        try:
            work = summarize_items(
                items,
                count=count,
                summarizer=caller,
                output=output,
                made_by=made_by,
                pacer=pacer,
                result=result,
                budget=budget,
                on_outcome=on_outcome,
            )
            return asyncio.run(close_after(caller, work))
        finally:
            limits = pacer.limits()
            if manifest_for is not None:
                _write_manifest(manifest_for, result, made_by=made_by, endpoint=endpoint,
                                price=price, limits=limits)  # fmt: skip


def _write_manifest(
    output: Path,
    result: RunResult,
    *,
    made_by: MadeBy,
    endpoint: EndpointSettings,
    price: Price | None,
    limits: dict[str, float | int | None],
) -> None:
    content = manifest(result, made_by=made_by, base_url=endpoint.base_url, price=price,
                       limits=limits)  # fmt: skip
    write_manifest(manifest_path_for(output), content)


async def close_after(summarizer: Summarizer, work: Awaitable[RunResult]) -> RunResult:
    """Run `work`, then release the summarizer's connections whatever happened."""
    try:
        return await work
    finally:
        await summarizer.aclose()
