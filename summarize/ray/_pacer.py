"""A worker's side of the cluster's pacing: permits from the coordinator, news back to it.

`ClusterPacer` stands where a run's `Pacer` stands, behind the same `Pacing` protocol:
the worker pool holds its width for each abstract, and inside `OpenAISummarizer` each
HTTP attempt first waits for one of the coordinator's permits (a start time on the
cluster's one schedule), fetched in chunks only when a request waits for one, so none
go unused while the worker is idle. What the client learns is not acted on
locally: answers, `x-ratelimit-limit-requests` and 429s are gathered in a `Reporter`
and ride to the coordinator on the next permit call (a 429 at once), which learns the
one limit for every worker. A 429 still pauses this worker's own requests at once.

It also notices an endpoint that stopped answering: no HTTP answer for
`silence_s` while requests keep going out ends the job through the coordinator.
Every later attempt, here and on the other workers, raises `JobStopped`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping

from .._live.pacer import MAX_AUTO_CONCURRENCY, REMOTE_CONCURRENCY, Limits, Width
from .._live.rate import SECONDS_PER_MINUTE, RateSchedule
from ._coordinator import News, Permits, Spend, chunk_for
from ._link import Link

# No HTTP answer for this long, while requests keep being sent: the endpoint has stopped.
SILENCE_S = 30.0
# A permit whose time passed this long ago is not used: it would add to a burst.
STALE_S = 1.0


class JobStopped(Exception):
    """The job has ended (the endpoint stopped answering, a key was rejected, a cap)."""


class Reporter:
    """What a worker has to tell the coordinator, gathered until its next call."""

    def __init__(self) -> None:
        self._spent: dict[str, Spend] = {}
        self._ratios: list[float] = []
        self._answered = 0
        self._limit_rpm: float | None = None
        self._throttled: list[float] = []

    def spent(self, batch: str, spend: Spend, *, ratio: float | None = None) -> None:
        """One abstract of `batch` finished, having spent `spend` (`ratio`: over its guess)."""
        self._spent[batch] = self._spent.get(batch, Spend()) + spend
        if ratio is not None:
            self._ratios.append(ratio)

    def answered(self) -> None:
        """One HTTP request got an answer."""
        self._answered += 1

    def limit(self, rpm: float) -> None:
        """An answer said the endpoint's request limit per minute."""
        self._limit_rpm = rpm

    def throttled(self, wait: float) -> None:
        """A 429 asked for `wait` seconds."""
        self._throttled.append(wait)

    def drain(self, batch: str | None = None) -> News:
        """Everything gathered (for `batch`'s spend only, if given), forgotten here."""
        if batch is None:
            spent, self._spent = tuple(self._spent.items()), {}
        else:
            spent = ((batch, self._spent.pop(batch)),) if batch in self._spent else ()
        news = News(spent, tuple(self._ratios), self._answered, self._limit_rpm,
                    tuple(self._throttled))  # fmt: skip
        self._ratios, self._answered, self._limit_rpm, self._throttled = [], 0, None, []
        return news


class ClusterPacer:
    """A worker's `Pacing`, whose request start slots come from the coordinator.

    Its own `RateSchedule` paces this worker's share of `tpm` and its own 429 pauses,
    and its `Width` is sized from its share of the cluster's rate; the cluster's request
    limit is the coordinator's alone. `width` and `maximum` are a `Width`'s: adaptive
    (as for a remote endpoint in a local run) unless `maximum` is None."""

    def __init__(
        self,
        link: Link,
        reporter: Reporter,
        worker: str,
        *,
        tpm: float | None = None,
        width: int = REMOTE_CONCURRENCY,
        maximum: int | None = MAX_AUTO_CONCURRENCY,
        silence_s: float = SILENCE_S,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._schedule = RateSchedule(None, tpm, learn=False)
        self._width = Width(width, maximum=maximum)
        self._link = link
        self._reporter = reporter
        self._worker = worker
        self._silence_s = silence_s
        self._wall = wall
        self._slots: deque[float] = deque()
        self._waiting = 0
        self._fetch: asyncio.Task[None] | None = None
        self._per_second: float | None = None
        self._workers = 1
        self._last_answer: float | None = None
        self._sent_unanswered = 0
        self._pushes: set[asyncio.Task[None]] = set()
        self.stopped: str | None = None

    @property
    def maximum(self) -> int:
        """The most abstracts this worker may ever have in flight."""
        return self._width.maximum

    @property
    def rpm(self) -> float | None:
        """The cluster's request limit as last heard (None: not known)."""
        return None if self._per_second is None else self._per_second * SECONDS_PER_MINUTE

    def requests_per_second(self) -> float | None:
        """This worker's share of the cluster's rate, for sizing its width."""
        return None if self._per_second is None else self._per_second / self._workers

    async def enter(self) -> None:
        """Wait until one more abstract may be in flight on this worker."""
        await self._width.enter()

    def leave(self, latency: float | None = None) -> None:
        """An abstract is done; `latency` resizes the width, at this worker's share."""
        self._width.leave(latency, self.requests_per_second())

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for this worker's pauses and token share, then for a cluster permit."""
        self._check()
        spacing = self._spacing if self._width.adaptive else None
        await self._schedule.acquire(tokens, spacing=spacing)
        slot = await self._next_slot()
        if (wait := slot - self._wall()) > 0:
            await asyncio.sleep(wait)
        self._check()
        self._sent_unanswered += 1

    def _spacing(self) -> float | None:
        # Sends are spaced only while no cluster rate is known (as in a local run).
        return None if self._per_second is not None else self._width.spacing()

    def settle(self, estimated: int, used: int) -> None:
        """One more answer got through: the token share is corrected, and the
        coordinator counts the answer towards the cluster's rate."""
        self._schedule.settle(estimated, used)
        self._schedule.succeeded()
        self._reporter.answered()

    def observe(self, headers: Mapping[str, str]) -> None:
        """An HTTP answer came (any status): the endpoint answers; pass its limit on."""
        self._last_answer = self._wall()
        self._sent_unanswered = 0
        limit = headers.get("x-ratelimit-limit-requests")
        try:
            rpm = float(limit) if limit is not None else None
        except ValueError:
            rpm = None
        if rpm is not None and rpm > 0:
            self._reporter.limit(rpm)
            if self._per_second is None:
                # Permits held are for "now": the next request fetches paced ones, and
                # its call carries the limit. Held, they would burst past the limit.
                self._slots.clear()

    def rate_limited(self, wait: float, why: str = "") -> None:
        """A 429: this worker pauses now; the coordinator hears of it at once. `why`, for
        the log."""
        self._schedule.pause(wait, why or "HTTP 429")
        self._reporter.throttled(wait)
        self._push()

    def pause(self, seconds: float, why: str = "") -> None:
        """Hold this worker's requests back for `seconds` (a `Retry-After`)."""
        self._schedule.pause(seconds, why)

    def limits(self) -> Limits:
        """The cluster's request limit as heard here, the token share, and the width."""
        return {"rpm": self.rpm, "tpm": self._schedule.tpm, "concurrency": self._width.width,
                "peak_in_flight": self._width.peak}  # fmt: skip

    def stop(self, reason: str) -> None:
        """End the job from this worker: no more requests here, and the coordinator told."""
        self.stopped = self.stopped or reason
        self._push(reason)

    def _check(self) -> None:
        now = self._wall()
        if self._last_answer is None:
            self._last_answer = now
        silent = now - self._last_answer
        if self.stopped is None and self._sent_unanswered and silent >= self._silence_s:
            self.stop(f"the endpoint stopped answering (no answer for {silent:.0f} s)")
        if self.stopped is not None:
            raise JobStopped(self.stopped)

    async def _next_slot(self) -> float:
        self._waiting += 1
        try:
            while True:
                stale = self._wall() - STALE_S
                while self._slots and self._slots[0] < stale:
                    self._slots.popleft()
                if self._slots:
                    return self._slots.popleft()
                if self._fetch is None or self._fetch.done():
                    self._fetch = asyncio.create_task(self._refill())
                await asyncio.shield(self._fetch)
                if self.stopped is not None:
                    raise JobStopped(self.stopped)
        finally:
            self._waiting -= 1

    async def _refill(self) -> None:
        wanted = chunk_for(self._per_second)
        if self._per_second is not None:
            wanted = min(wanted, max(self._waiting, 1))  # unused permits would be lost
        self._take(await self._link.permits(self._worker, wanted, self._reporter.drain()))

    def _take(self, permits: Permits) -> None:
        if permits.per_second is not None and self._per_second is None:
            self._slots.clear()  # unpaced permits, from before the limit was known
        self._per_second, self._workers = permits.per_second, max(permits.workers, 1)
        if permits.stopped is not None:
            self.stopped = self.stopped or permits.stopped
        if (paused := permits.paused_until - self._wall()) > 0:
            self._schedule.pause(paused, "the cluster is paused (the coordinator)")
            while self._slots and self._slots[0] < permits.paused_until:
                self._slots.popleft()
        self._slots.extend(permits.slots)

    def _push(self, reason: str | None = None) -> None:
        """Tell the coordinator now (a 429, a stop), without waiting for the answer."""

        async def push() -> None:
            if reason is not None:
                await self._link.stop(reason)
            self._take(await self._link.permits(self._worker, 0, self._reporter.drain()))

        try:
            task = asyncio.get_running_loop().create_task(push())
        except RuntimeError:
            return  # no loop: called outside a run; the next permit call carries it
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)
