"""The worker: a callable class for `Dataset.map_batches`, one per Ray actor.

Everything that lasts is made once, in `__init__`: the plan (prompt, model, price,
request fingerprint), one event loop on its own thread, one HTTP client and one pacer
(`ClusterPacer`: the worker's width, and start slots from the coordinator). Each batch
then runs on that loop:

1. its rows are read (`_rows`); a row that is no entry becomes an `input` error line;
2. it asks the coordinator for a spend lease for its abstracts' expected spend;
3. it sends what fits under the lease (`summarize._live.pool.send_items`, the same pool
   as a local run: retries, re-asks, caps), reporting spend as abstracts finish;
4. it settles the lease, and every abstract left without a line gets a `not_sent` line
   saying why (the cap, or the job stopped);
5. it writes its part, whole, named from its ids (`_parts`), and returns one row per
   line: `id`, `status` (`ok` or the error type), `line` (the JSON line) and `part`.

No row raises into Ray: a failure of one abstract is its error line, and a failure of
the job (an endpoint that stopped answering, a rejected key) stops the job through the
coordinator, with lines that say so.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from .._core.outcome import Outcome, RunResult
from .._core.plan import plan
from .._core.records import ErrorRecord, Record, make_error
from .._core.request import prompt_tokens
from .._core.summarizer import Completion, Summarizer
from .._cost import Price, SpendCap, cost_of
from .._errors import ConfigError, ErrorType, ProviderError, SummaryError
from .._items import Item
from .._live.budget import Budget
from .._live.client import OpenAISummarizer
from .._live.pool import send_items
from .._parts import part_name, write_part
from .._settings import RunSettings, wants_local
from .._tokens import TokenEstimator
from .._usage import Usage
from ._coordinator import Coordinator, Lease, Spend
from ._link import ActorLink, Link, LocalLink
from ._pacer import SILENCE_S, ClusterPacer, JobStopped, Reporter
from ._rows import Row, read_rows, rows_of

NO_ENDPOINT = (
    "--engine ray needs an endpoint (--base-url or OPENAI_BASE_URL): "
    "the embedded model is not for a cluster"
)
_T = TypeVar("_T")
Line = Record | ErrorRecord


def not_sent(reason: str) -> SummaryError:
    """The error of an abstract that got no answer because the job would not send it."""
    return SummaryError(f"not sent: {reason}", error_type=ErrorType.NOT_SENT, attempts=0)


class SummarizeBatch:
    """A batch of rows in, one line per unique abstract out, for `map_batches`.

        ds.map_batches(SummarizeBatch, fn_constructor_kwargs={"settings": settings,
                       "output": "out.jsonl"}, batch_format="pandas", concurrency=2,
                       num_cpus=0)

    Rows have `abstract`, and `title`, `id` and `sources` if known. `output`: the folder
    each batch writes its part to (None: none; the returned rows carry the lines).
    `coordinator`: a `Coordinator` actor handle shared by the workers (None: this
    worker's own, so caps and limits hold per worker). `workers` splits `--tpm`.
    """

    def __init__(
        self,
        settings: RunSettings,
        *,
        output: str | Path | None = None,
        coordinator: Any = None,
        workers: int = 1,
        summarizer: Summarizer | None = None,
        silence_s: float = SILENCE_S,
    ) -> None:
        if summarizer is None and wants_local(settings):
            raise ConfigError(NO_ENDPOINT)
        self._settings = settings
        self._folder = None if output is None else Path(output)
        self._planned = plan(settings, summarizer=summarizer)
        self._link = _link_to(coordinator, settings)
        self._reporter = Reporter()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        tpm = None if settings.tpm is None else settings.tpm / max(workers, 1)
        self._pacer = _pacer(settings, self._link, self._reporter, self.name, tpm=tpm,
                             silence_s=silence_s)  # fmt: skip
        self._estimator = TokenEstimator(settings.endpoint.max_tokens)
        inner = summarizer or OpenAISummarizer(
            settings.endpoint, self._planned.made_by.prompt, pacer=self._pacer
        )
        self._summarizer = _Guarded(inner, self._pacer)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="summarize-ray-worker")  # fmt: skip
        self._thread.start()
        self._run(self._link.register(self.name, os.getpid()))

    def __call__(self, batch: Any) -> Any:
        """One line per unique abstract of `batch` (a pandas DataFrame or a dict of
        columns), as the same kind of batch: `id`, `status`, `line`, `part`."""
        lines = self._run(self._lines(rows_of(batch)))
        part = None
        if self._folder is not None and lines:
            part = write_part(self._folder, lines, self._planned.made_by.request_hash)
        columns: dict[str, list[str]] = {
            "id": [line.id for line in lines],
            "status": [_status(line) for line in lines],
            "line": [line.model_dump_json() for line in lines],
            "part": ["" if part is None else str(part)] * len(lines),
        }
        return type(batch)(columns) if hasattr(batch, "columns") else columns

    def close(self) -> None:
        """Close the HTTP client and stop the event loop."""
        if not self._loop.is_running():
            return
        self._run(self._summarizer.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def _lines(self, rows: list[Row]) -> list[Line]:
        read = read_rows(rows)
        made_by = self._planned.made_by
        by_id: dict[str, Line] = {}
        for bad in read.unreadable:
            by_id[bad.item.id] = make_error(bad.item, bad.error, by=made_by)
        if read.items:
            batch = part_name(read.ids(), made_by.request_hash)
            await self._send(batch, read.items, by_id)
        return [by_id[item_id] for item_id in dict.fromkeys(read.ids())]

    async def _send(self, batch: str, items: list[Item], by_id: dict[str, Line]) -> None:
        """Lease, send what fits, settle; a `not_sent` line for each abstract left."""
        price = self._planned.price
        guesses = {item.id: self._guess(item) for item in items}
        asked = Spend()
        for guess in guesses.values():
            asked += _spend(guess, price)
        smallest = min(guesses.values(), key=lambda g: g.total)
        lease = await self._link.lease(batch, asked, least=_spend(smallest, price))
        reason = lease.refused
        if not lease.empty:
            reason = await self._summarize(batch, items, guesses, lease, by_id)
        await self._link.settle(batch, self._reporter.drain(batch))
        for item in items:
            if item.id not in by_id:
                left = reason or self._pacer.stopped or "the job ended first"
                by_id[item.id] = make_error(item, not_sent(left), by=self._planned.made_by)

    async def _summarize(
        self,
        batch: str,
        items: list[Item],
        guesses: dict[str, Usage],
        lease: Lease,
        by_id: dict[str, Line],
    ) -> str | None:
        """Send `items` under `lease`; why some were left unsent, if any were."""
        budget = Budget(SpendCap(lease.cost, lease.tokens), self._planned.price,
                        guess=lambda item: _scaled(guesses[item.id], lease.factor))  # fmt: skip
        result = RunResult(unique=len(items))
        try:
            await send_items(
                items,
                count=len(items),
                summarizer=self._summarizer,
                sink=_Kept(by_id),
                made_by=self._planned.made_by,
                pacer=self._pacer,
                result=result,
                budget=budget,
                on_outcome=lambda outcome: self._spent(batch, guesses, outcome),
            )
        except Exception as exc:  # noqa: BLE001 - a row never raises into Ray: lines say why
            return f"internal error: {type(exc).__name__}: {exc}"
        return self._cap_reason() if result.stopped else None

    def _guess(self, item: Item) -> Usage:
        prompt = self._planned.made_by.prompt
        return Usage(prompt_tokens(prompt, item, self._estimator),
                     self._estimator.completion_tokens())  # fmt: skip

    def _spent(self, batch: str, guesses: dict[str, Usage], outcome: Outcome) -> None:
        line = outcome.record or outcome.error
        if line is None or line.attempts == 0:
            return
        cached = line.cached_tokens if isinstance(line, Record) else 0
        usage = Usage(line.prompt_tokens, line.completion_tokens, cached)
        guessed = guesses[outcome.item.id].total
        spend = _spend(usage, self._planned.price, requests=line.attempts)
        self._reporter.spent(batch, spend, ratio=usage.total / guessed if guessed else None)

    def _cap_reason(self) -> str:
        settings = self._settings
        caps = [f"--max-tokens-total {settings.max_tokens_total:,}"] if (
            settings.max_tokens_total) else []  # fmt: skip
        if settings.max_cost is not None:
            caps.append(f"--max-cost ${settings.max_cost:g}")
        return f"spend cap: the cluster's spend came near {' and '.join(caps)}"


class _Kept:
    """The lines of one batch, by id (a `summarize._core.sink.Sink`)."""

    def __init__(self, by_id: dict[str, Line]) -> None:
        self._by_id = by_id

    def write_record(self, record: Record) -> None:
        self._by_id[record.id] = record

    def write_error(self, error: ErrorRecord) -> bool:
        self._by_id[error.id] = error
        return False


class _Guarded:
    """A summarizer that never raises anything but `SummaryError` into the runner.

    An error that ends the job (a rejected key, an endpoint never reached) stops it
    through the coordinator; once stopped, abstracts are not sent."""

    def __init__(self, inner: Summarizer, pacer: ClusterPacer) -> None:
        self._inner = inner
        self._pacer = pacer
        self.model_name = inner.model_name

    async def summarize(self, item: Item) -> Completion:
        if self._pacer.stopped is not None:
            raise not_sent(self._pacer.stopped)
        try:
            return await self._inner.summarize(item)
        except SummaryError:
            raise
        except JobStopped as exc:
            raise not_sent(str(exc)) from None
        except (ConfigError, ProviderError) as exc:
            self._pacer.stop(str(exc))
            raise SummaryError(str(exc), error_type=ErrorType.PROVIDER) from None
        except Exception as exc:  # noqa: BLE001 - a row never raises into Ray: its line says why
            message = f"internal error: {type(exc).__name__}: {exc}"
            raise SummaryError(message, error_type=ErrorType.PROVIDER) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


def _link_to(coordinator: Any, settings: RunSettings) -> Link:
    if coordinator is None:
        cap = SpendCap(settings.max_cost, settings.max_tokens_total)
        return LocalLink(Coordinator(cap, rpm=settings.rpm))
    if isinstance(coordinator, Coordinator):
        return LocalLink(coordinator)
    return ActorLink(coordinator)


def _pacer(settings: RunSettings, link: Link, reporter: Reporter, name: str, *,
           tpm: float | None, silence_s: float) -> ClusterPacer:  # fmt: skip
    """`--concurrency` as given, else a width sized from this worker's share of the
    cluster's rate (as `summarize._live.pacer.pacer_for` sizes a remote run's)."""
    if settings.concurrency is not None:
        return ClusterPacer(link, reporter, name, tpm=tpm, width=settings.concurrency,
                            maximum=None, silence_s=silence_s)  # fmt: skip
    return ClusterPacer(link, reporter, name, tpm=tpm, silence_s=silence_s)


def _status(line: Line) -> str:
    return "ok" if isinstance(line, Record) else line.error_type.value


def _spend(usage: Usage, price: Price | None, *, requests: int = 0) -> Spend:
    return Spend(usage.prompt_tokens, usage.completion_tokens, cost_of(usage, price), requests,
                 usage.cached_tokens)  # fmt: skip


def _scaled(usage: Usage, factor: float) -> Usage:
    if factor == 1.0:
        return usage
    return Usage(round(usage.prompt_tokens * factor), round(usage.completion_tokens * factor))
