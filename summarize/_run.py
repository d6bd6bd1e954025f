"""`summarize.run`: one run, from settings to a `RunResult`. The library's entry point.

    >>> from summarize import RunSettings, run
    >>> result = run(RunSettings(inputs=("papers.txt",), limit=3))
    >>> result.done, result.failed

Composition only: the inputs are indexed (`_readers`), the plan made (`_core.plan`:
the configured endpoint, or the embedded model when no endpoint and no key are
configured), the output opened (`_output`, or `_parts_output` for a folder of
parts that `--engine ray` wrote), the pending abstracts sent now
(`_live.session`), and the manifest written (`_manifest`). Everything downstream sees
only `EndpointSettings` and a `Summarizer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import TextIO

from ._core.outcome import OnOutcome, RunResult
from ._core.plan import Plan, pending_ids, plan
from ._core.stop import Stop
from ._core.summarizer import Summarizer
from ._items import stream_items
from ._live.pacer import Limits
from ._live.session import send_live
from ._live.transport import AsyncTransport
from ._manifest import manifest, manifest_path_for, write_manifest
from ._output import Output
from ._parts import is_parts_folder
from ._parts_output import PartsOutput
from ._readers import Inputs, index_inputs
from ._settings import EndpointSettings, RunSettings
from ._urls import without_credentials

log = logging.getLogger("summarize.run")


def run(
    settings: RunSettings,
    *,
    on_start: Callable[[int], None] | None = None,
    on_outcome: OnOutcome | None = None,
    on_loading: Callable[[str], None] | None = None,
    summarizer: Summarizer | None = None,
    transport: AsyncTransport | None = None,
    stdin: TextIO | None = None,
    stop: Stop | None = None,
) -> RunResult:
    """Summarise every unique abstract of `settings.inputs` into `settings.output`.

    Abstracts already in the output for the same model, prompt and schema are
    skipped without a request; failed ones are tried again. Pass `summarizer`
    to use your own model caller instead of an OpenAI-compatible endpoint, or
    `transport` to send the endpoint's requests through your own (tests pass a
    `summarize.testing.MockTransport`: no socket is opened).

    Hooks: `on_start(count)` once the abstracts to send are known; `on_outcome(outcome)`
    once per finished abstract, its record or error line written (an `Outcome`); an
    exception a hook raises is logged (`summarize.pool`) and the run goes on. `stop`
    (a `Stop`) lets a signal handler or another thread end the run early.
    """
    log.info("reading %s -> %s", ", ".join(settings.inputs), settings.output)
    with closing(Inputs(settings.inputs, stdin=stdin)) as source:
        index, problems = index_inputs(source, strict=settings.strict)
        planned = plan(settings, summarizer=summarizer)
        with _opened(settings.output, planned) as output:
            pending, skipped = pending_ids(index, lambda i: output.is_done(i, planned.wanted),
                                        force=settings.force, limit=settings.limit)  # fmt: skip
            result = RunResult(unique=len(index), skipped=skipped, input_problems=problems)
            log.info("%d unique abstracts: %d to send to %s, %d done before", len(index),
                     len(pending), _where(planned, settings.endpoint), skipped)  # fmt: skip
            if not pending:
                if on_start is not None:
                    on_start(0)
                return result
            if planned.local is not None and on_loading is not None:
                on_loading(planned.local.path.name)
            items = stream_items(source.entries([]), index, wanted=set(pending))
            written = partial(_write_manifest, settings.output, result, planned)
            return send_live(items, len(pending), settings, result, sink=output, plan=planned,
                             summarizer=summarizer, transport=transport, on_start=on_start,
                             on_outcome=on_outcome, on_end=written, stop=stop)  # fmt: skip


def _opened(path: Path, planned: Plan) -> Output | PartsOutput:
    """The output at `path`: a folder of parts (`--engine ray` made it) or a JSONL file."""
    if is_parts_folder(path):
        return PartsOutput(path, planned.made_by.request_hash)
    return Output(path)


def _where(planned: Plan, endpoint: EndpointSettings) -> str:
    """`gpt-4o-mini at https://api.example.com/v1`, for the log."""
    if planned.local is not None:
        return f"the embedded model ({planned.local.path.name})"
    url = without_credentials(endpoint.base_url) or "the OpenAI API"
    return f"{planned.made_by.model} at {url}"


def _write_manifest(
    output: Path, result: RunResult, planned: Plan, endpoint: EndpointSettings, limits: Limits
) -> None:
    content = manifest(result, made_by=planned.made_by, base_url=endpoint.base_url,
                       price=planned.price, limits=limits)  # fmt: skip
    write_manifest(manifest_path_for(output), content)
