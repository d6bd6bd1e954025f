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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from .client import OpenAISummarizer, Summarizer
from .errors import InputError
from .items import Item, collect_items
from .local import EmbeddedServer, ModelFile, embedded_model, model_file
from .output import Output
from .prompt import DEFAULT_PROMPT, Prompt, load_prompt
from .ratelimit import RateLimiter
from .readers import read_entries
from .runner import OnOutcome, RunResult, pending_items, summarize_items
from .schema import SCHEMA_VERSION
from .settings import EndpointSettings, RunSettings, wants_local

LOCAL_CONCURRENCY = 1  # llama.cpp's server computes one request at a time
REMOTE_CONCURRENCY = 8


def read_items(
    inputs: Sequence[str], *, strict: bool = False, stdin: TextIO | None = None
) -> tuple[list[Item], list[InputError]]:
    """Unique items from every input, and the per-entry problems skipped on the way."""
    problems: list[InputError] = []
    entries = [e for path in inputs for e in read_entries(path, problems=problems, stdin=stdin)]
    items = collect_items(entries, problems=problems)
    if strict and problems:
        raise problems[0]
    if not items:
        raise InputError("no abstracts found", path=", ".join(inputs))
    return items, problems


def _local_model(settings: RunSettings) -> ModelFile | None:
    if not wants_local(settings):
        return None
    return model_file(settings.model_file) if settings.model_file else embedded_model()


@contextmanager
def _endpoint(settings: RunSettings, local: ModelFile | None) -> Iterator[EndpointSettings]:
    if local is None:
        yield settings.endpoint
        return
    with EmbeddedServer(local) as server:
        yield server.endpoint()
        server.check_alive()


def run(
    settings: RunSettings,
    *,
    on_start: Callable[[int], None] | None = None,
    on_outcome: OnOutcome | None = None,
    summarizer: Summarizer | None = None,
    stdin: TextIO | None = None,
) -> RunResult:
    """Summarise every unique abstract of `settings.inputs` into `settings.output`.

    Abstracts already in the output for the same model, prompt and schema are
    skipped without a request; failed ones are tried again. Pass `summarizer`
    to use your own model caller instead of an OpenAI-compatible endpoint.
    """
    prompt = load_prompt(settings.prompt or DEFAULT_PROMPT)
    items, problems = read_items(settings.inputs, strict=settings.strict, stdin=stdin)
    local = None if summarizer is not None else _local_model(settings)
    model_name = (
        summarizer.model_name if summarizer is not None
        else local.label if local is not None
        else settings.endpoint.model_label or settings.endpoint.model
    )  # fmt: skip
    with Output(settings.output) as output:
        pending = pending_items(items, output, (model_name, prompt.hash, SCHEMA_VERSION),
                                force=settings.force)  # fmt: skip
        result = RunResult(
            unique=len(items), skipped=len(items) - len(pending), input_problems=problems
        )
        pending = pending if settings.limit is None else pending[: settings.limit]
        if on_start is not None:
            on_start(len(pending))
        if not pending:
            return result
        with _endpoint(settings, local) as endpoint:
            concurrency = settings.concurrency or (
                LOCAL_CONCURRENCY if local is not None else REMOTE_CONCURRENCY
            )
            caller = summarizer or OpenAISummarizer(
                endpoint, prompt, limiter=RateLimiter(settings.rpm)
            )
            return asyncio.run(
                _summarize(
                    pending,
                    summarizer=caller,
                    output=output,
                    prompt=prompt,
                    concurrency=concurrency,
                    result=result,
                    on_outcome=on_outcome,
                )
            )


async def _summarize(
    items: list[Item],
    *,
    summarizer: Summarizer,
    output: Output,
    prompt: Prompt,
    concurrency: int,
    result: RunResult,
    on_outcome: OnOutcome | None,
) -> RunResult:
    try:
        return await summarize_items(
            items,
            summarizer=summarizer,
            output=output,
            prompt=prompt,
            concurrency=concurrency,
            result=result,
            on_outcome=on_outcome,
        )
    finally:
        await summarizer.aclose()
