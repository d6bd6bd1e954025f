"""The coordinator: one spend cap, one rate limit and one stop flag for every worker.

A plain class with no Ray in it. `summarize.ray` runs one as an actor (`num_cpus=0`),
and tests drive it directly. An actor runs its methods one at a time, so it holds no
locks. Every call is a round trip of about 2 ms, so nothing here is asked per request:

- **Spend is leased per batch.** Before its first request a batch asks for what its
  abstracts are expected to spend (a guess per abstract, scaled by how far finished
  abstracts outran their guesses). It gets that, or what is left under the cap, and
  sends abstracts only while their expected spend fits its lease; the rest become
  `not_sent` lines. What the lease-holders have spent so far rides on their permit
  calls, and the batch settles at its end: what it did not use goes back. What is
  spent stays counted, also for a batch that dies and is run again (its new lease
  replaces the old one; the old spend stays). So the cluster ends within the cap, up
  to the error of the estimates of the abstracts in flight: within one batch's estimate.
- **Request permits are leased in chunks.** Each is a start time on one schedule
  spaced at the cluster's rate, so two workers' permits interleave instead of
  bursting. The rate is configured (`--rpm`) or learned once for the cluster, from the
  `x-ratelimit-limit-requests` headers and the 429s that workers report (by a
  `RateSchedule`, as a local run's pacer learns). Until a rate is known, permits are
  for "now".
- **A stop flag.** An endpoint that stopped answering, a rejected key, or a cap that
  nothing fits under any more ends the job: every later lease and permit says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .._cost import SpendCap
from .._live.budget import SpendRatio
from .._live.rate import RateSchedule

# Permits a worker asks for at a time: about this many seconds of the cluster's rate.
CHUNK_S = 0.25
MAX_CHUNK = 64
UNPACED_CHUNK = 16  # while no rate is known: permits are for "now", the call is the check


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens, USD and requests: guessed or spent."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    requests: int = 0
    cached_tokens: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
            self.requests + other.requests,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """What one batch may spend (None: no such cap), how to scale its guesses, and
    why nothing may be sent any more, if so."""

    tokens: int | None
    cost: float | None
    factor: float = 1.0
    refused: str | None = None  # why not one abstract may be sent under it

    @property
    def empty(self) -> bool:
        """Whether not one abstract may be sent under it."""
        return self.refused is not None


@dataclass(frozen=True, slots=True)
class News:
    """What a worker learned since its last call: spend per batch, answers, limits, 429s."""

    spent: tuple[tuple[str, Spend], ...] = ()
    ratios: tuple[float, ...] = ()  # spent over guessed tokens, per finished abstract
    answered: int = 0
    limit_rpm: float | None = None  # an `x-ratelimit-limit-requests` header's value
    throttled: tuple[float, ...] = ()  # the wait each 429 asked for, in seconds


@dataclass(frozen=True, slots=True)
class Permits:
    """Start times (`time.time()`) for as many requests, and the cluster's state."""

    slots: tuple[float, ...]
    per_second: float | None  # the cluster's request rate now (None: not known)
    workers: int
    stopped: str | None = None
    paused_until: float = 0.0  # a 429 somewhere: nobody starts a request before this


@dataclass(frozen=True, slots=True)
class Totals:
    """What the whole job spent and met, for the manifest."""

    spent: Spend
    stopped: str | None
    throttled: int
    rpm: float | None
    workers: int
    leases: int
    repeated_batches: int  # leases asked again for a batch that had one: a retry


@dataclass(slots=True)
class _Open:
    """A lease not settled yet: what it was granted and what its batch has spent."""

    granted: Lease
    spent: Spend = field(default_factory=Spend)

    def outstanding(self) -> tuple[int, float]:
        """Tokens and USD the batch may still spend under its lease."""
        tokens = self.granted.tokens or 0
        cost = self.granted.cost or 0.0
        return max(tokens - self.spent.tokens, 0), max(cost - self.spent.cost, 0.0)


class Coordinator:
    """One spend cap, one request rate and one stop flag for every worker of a job."""

    def __init__(
        self,
        cap: SpendCap | None = None,
        *,
        rpm: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cap = cap or SpendCap()
        self._clock = clock
        self._rate = RateSchedule(rpm, None, clock=clock)
        self._spent = Spend()
        self._open: dict[str, _Open] = {}
        self._leased: set[str] = set()
        self._repeated = 0
        self._calibration = SpendRatio()
        self._next_free = 0.0
        self._paused_until = 0.0
        self._throttled = 0
        self.workers: dict[str, int] = {}  # name -> process id (tests kill one by it)
        self.stopped: str | None = None

    # ------------------------------------------------------------------ spend

    def lease(self, batch: str, asked: Spend, *, least: Spend) -> Lease:
        """A lease for `batch`, whose abstracts are guessed to spend `asked` in all and
        `least` for the smallest one (raw guesses: scaled here by the calibration)."""
        if batch in self._leased:
            self._repeated += 1
        self._leased.add(batch)
        self._open.pop(batch, None)  # a batch run again: its old lease ends, its spend stays
        factor = self._calibration.factor
        if self.stopped is not None:
            return Lease(0, 0.0, factor, refused=self.stopped)
        free_tokens, free_cost = self._free()
        tokens = None
        if self.cap.max_tokens is not None:
            tokens = max(min(math.ceil(asked.tokens * factor), free_tokens), 0)
        cost = None
        if self.cap.max_cost is not None:
            cost = max(min(asked.cost * factor, free_cost), 0.0)
        granted = Lease(tokens, cost, factor)
        if (reason := self._too_small(granted, least, factor)) is not None:
            if not self._open:  # nothing in flight can hand budget back: the job is done
                self.stopped = reason
            return Lease(0, 0.0, factor, refused=reason)
        self._open[batch] = _Open(granted)
        return granted

    def settle(self, batch: str, news: News) -> None:
        """`batch` has finished: count its last spend and close its lease."""
        self.tell(news)
        self._open.pop(batch, None)

    def tell(self, news: News) -> None:
        """Take a worker's news: spend, calibration, answers, limits and 429s."""
        for batch, spend in news.spent:
            self._spent += spend
            if (held := self._open.get(batch)) is not None:
                held.spent += spend
        self._calibration.extend(news.ratios)
        for _ in range(news.answered):
            self._rate.succeeded()
        if news.limit_rpm is not None:
            self._rate.observe({"x-ratelimit-limit-requests": str(news.limit_rpm)})
        for wait in news.throttled:
            self._throttled += 1
            self._rate.rate_limited(wait)
            self._paused_until = max(self._paused_until, self._clock() + wait)

    def _free(self) -> tuple[int, float]:
        """Tokens and USD neither spent nor promised to an open lease (may be < 0)."""
        promised = [held.outstanding() for held in self._open.values()]
        tokens = (self.cap.max_tokens or 0) - self._spent.tokens - sum(t for t, _ in promised)
        cost = (self.cap.max_cost or 0.0) - self._spent.cost - sum(c for _, c in promised)
        return tokens, cost

    def _too_small(self, lease: Lease, least: Spend, factor: float) -> str | None:
        """Why not even the smallest abstract fits under `lease`, if it does not."""
        cap = self.cap
        if lease.tokens is not None and lease.tokens < math.ceil(least.tokens * factor):
            return f"token cap: the cluster's spend is at --max-tokens-total {cap.max_tokens:,}"
        if lease.cost is not None and lease.cost < least.cost * factor:
            return f"spend cap: the cluster's spend is at --max-cost ${cap.max_cost:g}"
        return None

    # ------------------------------------------------------------------ pacing

    def permits(self, worker: str, wanted: int, news: News) -> Permits:
        """Up to `wanted` start times for `worker`'s next requests, after taking its news."""
        self.tell(news)
        self.workers.setdefault(worker, 0)
        rate = self._rate.requests_per_second()
        workers, paused = len(self.workers), self._paused_until
        if self.stopped is not None:
            return Permits((), rate, workers, self.stopped, paused)
        start = max(self._clock(), paused)
        if rate is None:
            return Permits((start,) * wanted, None, workers, None, paused)
        start = max(start, self._next_free)
        gap = 1.0 / rate
        self._next_free = start + wanted * gap
        slots = tuple(start + i * gap for i in range(wanted))
        return Permits(slots, rate, workers, None, paused)

    def register(self, worker: str, pid: int) -> None:
        """A worker has started, in process `pid`."""
        self.workers[worker] = pid

    # ------------------------------------------------------------------ the job

    def stop(self, reason: str) -> None:
        """End the job: every later lease and permit carries `reason` (the first one)."""
        self.stopped = self.stopped or reason

    def totals(self) -> Totals:
        """What the job spent and met so far."""
        return Totals(
            spent=self._spent,
            stopped=self.stopped,
            throttled=self._throttled,
            rpm=self._rate.rpm,
            workers=len(self.workers),
            leases=len(self._leased) + self._repeated,
            repeated_batches=self._repeated,
        )

    def pids(self) -> dict[str, int]:
        """The process id of each registered worker."""
        return dict(self.workers)


def chunk_for(per_second: float | None) -> int:
    """How many permits to ask for at once, at the cluster's rate."""
    if per_second is None:
        return UNPACED_CHUNK
    return max(1, min(MAX_CHUNK, round(per_second * CHUNK_S)))
