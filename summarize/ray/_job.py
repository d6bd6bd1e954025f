"""One run on Ray, from settings to a `RunResult`: what `summarize run --engine ray` calls.

The driver reads the inputs (every unique abstract and all its sources), reads the
output folder as one output, and drops the ids already done the same way (the same
model and `request_hash`): a rerun with nothing changed starts no Ray at all and sends
0 requests. The rest goes to Ray Data in blocks of one batch each (so a worker that
dies repays at most its batch), through `SummarizeBatch` actors that take no CPU slot
and share one `Coordinator` actor. The parts in the folder are the output; the
manifest beside the folder takes its spend from the coordinator, requests paid again
after a retry included.

Ray is imported here and only when a run needs it: `import summarize` and the CLI
work without the `ray` extra.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._core.outcome import RunResult
from .._core.plan import Plan, pending_ids, plan
from .._core.records import fingerprint
from .._cost import SpendCap
from .._errors import ConfigError, OutputError, ProviderError, error_line
from .._items import Item, stream_items
from .._manifest import manifest, manifest_path_for, write_manifest
from .._parts import Parts, compact, locked, read_parts, remove_temporaries
from .._readers import Inputs, index_inputs
from .._settings import RunSettings, wants_local
from ._coordinator import Coordinator, Totals
from ._pacer import SILENCE_S
from ._worker import NO_ENDPOINT, SummarizeBatch

# A second batch waits at each actor, so none idles between batches (1.9 s a batch of 61
# at 0.2 s latency with one, 1.7 s with two); a waiting batch has sent nothing, so a
# killed actor still repeats only the batch it was sending.
_QUEUED = {"max_tasks_in_flight_per_actor": 2}
DEFAULT_WORKERS = 2
DEFAULT_BATCH_SIZE = 64
NO_RAY = "--engine ray needs Ray: pip install 'summarize[ray]'"


@dataclass(frozen=True, slots=True)
class RayOptions:
    """Where and how wide: a cluster's address (None: a local Ray started for the run),
    workers (actors), rows per batch, and a local Ray's logical CPUs."""

    address: str | None = None
    workers: int = DEFAULT_WORKERS
    batch_size: int = DEFAULT_BATCH_SIZE
    num_cpus: int | None = None
    silence_s: float = SILENCE_S


def run_on_ray(
    settings: RunSettings,
    options: RayOptions | None = None,
    *,
    on_start: Callable[[int], None] | None = None,
) -> RunResult:
    """Summarise every unique abstract of `settings.inputs` into the folder of parts
    `settings.output`, on Ray; skip what is done there already."""
    options = options or RayOptions()
    if wants_local(settings):
        raise ConfigError(NO_ENDPOINT)
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(NO_RAY)
    folder = settings.output
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file; --engine ray writes a folder of parts there")
    started = time.perf_counter()
    with closing(Inputs(settings.inputs)) as source, locked(folder):
        index, problems = index_inputs(source, strict=settings.strict)
        planned = plan(settings)
        remove_temporaries(folder)
        before = read_parts(folder)
        pending, skipped = pending_ids(index, lambda i: before.is_done(i, planned.wanted),
                                       force=settings.force, limit=settings.limit)  # fmt: skip
        result = RunResult(unique=len(index), skipped=skipped, input_problems=problems)
        if on_start is not None:
            on_start(len(pending))
        if not pending:
            return result
        items = stream_items(source.entries([]), index, wanted=set(pending))
        totals = _pipeline([_row(item) for item in items], settings, options)
        compact(folder)
        _tally(result, read_parts(folder), pending, planned, totals)
        result.elapsed_s = time.perf_counter() - started
        _write_manifest(result, settings, options, planned, totals)
    return result


def _row(item: Item) -> dict[str, Any]:
    sources = [str(source) for source in item.sources]
    return {"id": item.id, "title": item.title, "abstract": item.abstract, "sources": sources}


def _pipeline(rows: list[dict[str, Any]], settings: RunSettings, options: RayOptions) -> Totals:
    """Run `rows` through the actors; what the coordinator counted."""
    ray = _imported()
    own = not ray.is_initialized()
    if own:
        _start_ray(ray, options)
    coordinator = None
    try:
        coordinator = start_coordinator(settings, name=coordinator_name(settings.output))
        _map(ray, rows, settings, options, coordinator)
        totals: Totals = ray.get(coordinator.totals.remote())
    except ray.exceptions.RayError as exc:
        raise ProviderError(f"the Ray job failed: {error_line(exc)}") from exc
    finally:
        if coordinator is not None:
            ray.kill(coordinator)
        if own:
            ray.shutdown()
    return totals


def _map(ray: Any, rows: list[dict[str, Any]], settings: RunSettings, options: RayOptions,
         coordinator: Any) -> None:  # fmt: skip
    # One block a batch: a task that Ray runs again repeats one batch, not several.
    # (`from_items` starts no task: `from_pandas` took 17 s more on 2 cores.)
    blocks = -(-len(rows) // options.batch_size)
    lines = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        SummarizeBatch,
        fn_constructor_kwargs={
            "settings": settings,
            "output": str(settings.output),
            "coordinator": coordinator,
            "workers": options.workers,
            "silence_s": options.silence_s,
        },
        batch_size=None,
        batch_format="pandas",
        # No more actors than batches: an idle one costs its start-up and holds nothing.
        compute=ray.data.ActorPoolStrategy(size=min(options.workers, blocks), **_QUEUED),
        num_cpus=0,  # I/O-bound: a 2-core machine's CPU slots stay for Ray Data's tasks
    )
    for _ in lines.iter_batches(batch_size=None, batch_format="pandas"):
        pass  # the lines are in the parts; this drives the pipeline to its end


def start_coordinator(settings: RunSettings, *, name: str | None = None) -> Any:
    """A `Coordinator` actor (no CPU slot) holding `settings`' spend caps and `--rpm` for
    every worker it is handed to (`SummarizeBatch(coordinator=...)`)."""
    ray = _imported()
    cap = SpendCap(settings.max_cost, settings.max_tokens_total)
    return ray.remote(Coordinator).options(num_cpus=0, name=name).remote(cap, rpm=settings.rpm)


def coordinator_name(folder: Path) -> str:
    """The name of a run's coordinator actor (`ray.get_actor(name).totals.remote()`
    shows its spend while it runs): one run per output at a time, so one per output."""
    digest = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:12]
    return f"summarize-coordinator-{digest}"


def _imported() -> Any:
    """Ray, with Ray Data: the `ray` extra's, typed loosely on purpose, so that the
    package type-checks whether the extra is installed or not."""
    try:
        importlib.import_module("ray.data")
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError(NO_RAY) from None


def _start_ray(ray: Any, options: RayOptions) -> None:
    ray.data.DataContext.get_current().enable_progress_bars = False
    if options.address is not None:
        ray.init(address=options.address, log_to_driver=False)
        return
    # Logical CPUs are accounting only: more than the cores, so that Ray Data's own
    # tasks never wait for slots (the actors take none).
    cpus = options.num_cpus or max(8, 2 * (os.cpu_count() or 1))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)


def _tally(result: RunResult, parts: Parts, pending: list[str], planned: Plan,
           totals: Totals) -> None:  # fmt: skip
    """The run's counts from the folder (each id once) and its spend from the coordinator."""
    for item_id in pending:
        record, error = parts.records.get(item_id), parts.errors.get(item_id)
        if error is None and record is not None and fingerprint(record) == planned.wanted:
            result.done += 1
        elif error is not None and error.get("error_type") == "not_sent":
            result.stopped = result.stopped or str(error.get("message", ""))
        elif error is not None:
            result.count_failure(str(error.get("error_type")), previous_kept=record is not None)
    spent = totals.spent
    result.stopped = totals.stopped or result.stopped
    result.requests = spent.requests
    result.prompt_tokens, result.completion_tokens = spent.prompt_tokens, spent.completion_tokens
    result.cached_tokens = spent.cached_tokens
    result.cost_usd = None if planned.price is None else spent.cost


def _write_manifest(result: RunResult, settings: RunSettings, options: RayOptions,
                    planned: Plan, totals: Totals) -> None:  # fmt: skip
    limits: dict[str, float | int | None] = {
        "rpm": totals.rpm, "tpm": settings.tpm, "concurrency": settings.concurrency,
        "peak_in_flight": None,
    }  # fmt: skip
    content = manifest(result, made_by=planned.made_by, base_url=settings.endpoint.base_url,
                       price=planned.price, limits=limits)  # fmt: skip
    content["engine"] = {
        "name": "ray",
        "address": options.address,
        "workers": totals.workers,
        "batch_size": options.batch_size,
        "rate_limited": totals.throttled,
        "batches_run_again": totals.repeated_batches,
    }
    write_manifest(manifest_path_for(settings.output), content)
