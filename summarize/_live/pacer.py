"""One pacer per endpoint: how many abstracts are in flight, and when each request starts.

`Pacer` owns the three things that decide when a request goes out:

- the width: how many abstracts are in flight, fixed by the user or sized from the
  rate. With a known request rate R (configured or learned) and an observed latency
  L, R x L requests in flight keep the limit busy (Little's law); a little more covers
  the latency's spread. An adaptive width opens with one request, whose answer's
  headers may tell the limit, so a run does not open with a burst of 429s; with no
  known rate it then widens to the default;
- the rate: evenly spaced start slots under rpm and tpm, with one pause for every
  request after a 429, and limits learned from headers and from 429s
  (`rate.RateSchedule`);
- the spacing: while no request limit is known, an adaptive width's sends are spaced
  evenly, so that the burst that finds the limit is one request, not a width's worth.

Senders see it through `Pacing`: the pool holds the width for each abstract, the
client takes a start slot for each request and reports what came back, the retry
policy reports 429s and `Retry-After`s. It is small enough that a coordinator shared by
many processes stands behind it: `summarize.ray`'s `ClusterPacer` keeps a `Width` of its
own, sized from its share of the cluster's rate, and takes its start slots from the
coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from .._settings import RunSettings
from .rate import RateSchedule

LOCAL_CONCURRENCY = 1  # llama.cpp's server computes one request at a time
REMOTE_CONCURRENCY = 8  # until a known rate limit and latency size it
MAX_AUTO_CONCURRENCY = 256
LATENCY_SMOOTHING = 0.2
SPREAD = 1.5
# Spaced sends may run this much faster than the width's own rate: enough apart that a
# 429 comes back before the next send, not so far that varying latency holds them back.
CATCH_UP = 4.0

Limits = dict[str, float | int | None]
# The limits no flag gave, as learned: {"rpm": {"limit": 485.0, "from": "headers"}}.
Learned = dict[str, dict[str, float | str]]
# A width sized from a request limit this far from the last one logged is logged at INFO.
NEW_LIMIT = 0.1

log = logging.getLogger("summarize.pacer")


class Pacing(Protocol):
    """What senders ask of the pacing of one endpoint (`Pacer`, in one process)."""

    @property
    def maximum(self) -> int:
        """The most abstracts that may ever be in flight: how many workers to start."""
        ...

    async def enter(self) -> None:
        """Wait until one more abstract may be in flight."""
        ...

    def leave(self, latency: float | None = None) -> None:
        """An abstract is done; `latency`, its answered request's own time, sizes the width."""
        ...

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for the start slot of one request of about `tokens` tokens."""
        ...

    def settle(self, estimated: int, used: int) -> None:
        """A request got its answer, having used `used` tokens (`estimated` were booked)."""
        ...

    def observe(self, headers: Mapping[str, str]) -> None:
        """A reply's headers, whatever its status: limits to learn, a reset to wait for."""
        ...

    def rate_limited(self, wait: float, why: str = "") -> None:
        """A 429: every request waits `wait` seconds, and the pace slows down; `why`, for
        the log."""
        ...

    def pause(self, seconds: float, why: str = "") -> None:
        """Hold every request back for `seconds` (a `Retry-After` on another status)."""
        ...

    def limits(self) -> Limits:
        """The limits in force and the width reached, for the manifest."""
        ...


class Width:
    """How many abstracts may be in flight: a fixed width, or one sized from rate x latency.

    The rate is its owner's to tell (`leave`): a `Pacer`'s own schedule, or a cluster's."""

    def __init__(self, width: int = 1, *, maximum: int | None = None) -> None:
        """`width` abstracts in flight; with `maximum`, adaptive: from one up to `maximum`,
        `width` while no rate is known."""
        self.adaptive = maximum is not None
        self._default = width
        self.width = 1 if self.adaptive else width
        self.maximum = maximum or width
        self._latency: float | None = None
        self._in_flight = 0
        # Waiters in arrival order; a freed slot wakes one, not all (256 workers may wait).
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.peak = 0

    @property
    def latency(self) -> float | None:
        """The smoothed latency of answered requests (None: none answered yet)."""
        return self._latency

    async def enter(self) -> None:
        """Wait, in arrival order, until one more abstract may be in flight."""
        if self._in_flight >= self.width or self._waiting:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter  # resolved by `_wake`, which counts this abstract in
            except asyncio.CancelledError:
                if waiter.cancelled():
                    with contextlib.suppress(ValueError):  # `_wake` may have dropped it
                        self._waiting.remove(waiter)
                else:  # granted a slot and cancelled at once: give it back
                    self._in_flight -= 1
                    self._wake()
                raise
        else:
            self._in_flight += 1
        self.peak = max(self.peak, self._in_flight)

    def leave(self, latency: float | None, rate: float | None) -> None:
        """An abstract is done; its answered request's `latency` and the requests per
        second allowed now (`rate`, None: not known) resize an adaptive width."""
        self._in_flight -= 1
        if latency is not None and self.adaptive:
            previous = self._latency if self._latency is not None else latency
            self._latency = previous + LATENCY_SMOOTHING * (latency - previous)
            wanted = (self._default if rate is None
                      else math.ceil(rate * self._latency * SPREAD) + 1)  # fmt: skip
            self.width = max(1, min(self.maximum, wanted))
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to the longest waiters."""
        while self._waiting and self._in_flight < self.width:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def spacing(self) -> float | None:
        """Seconds between sends that keep an adaptive width full without bursts.

        Answers that come back together would otherwise go out again together, and
        against a limit no header told, the burst that finds it earns a 429 for each
        request in it, not one."""
        if self._latency is None:
            return None
        return self._latency / self.width / CATCH_UP


class Pacer:
    """The width, rate and spacing of one endpoint's requests (see the module doc)."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        width: int = 1,
        maximum: int | None = None,
        learn: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`width` abstracts in flight; with `maximum`, adaptive: from one up to `maximum`,
        `width` while no rate is known. `learn`: learn the limits not given."""
        self._rate = RateSchedule(rpm, tpm, learn=learn, clock=clock, sleep=sleep)
        self._width = Width(width, maximum=maximum)
        self._sized_for: float | None = None  # the request limit of the last width logged

    @property
    def maximum(self) -> int:
        """The most abstracts that may ever be in flight."""
        return self._width.maximum

    @property
    def width(self) -> int:
        """How many abstracts may be in flight now."""
        return self._width.width

    @property
    def peak(self) -> int:
        """The most abstracts that were in flight at once."""
        return self._width.peak

    @property
    def rpm(self) -> float | None:
        """The request limit in force, configured or learned (None: unlimited)."""
        return self._rate.rpm

    @property
    def tpm(self) -> float | None:
        """The token limit in force, configured or learned (None: unlimited)."""
        return self._rate.tpm

    @property
    def pace(self) -> float:
        """The fraction of the limits currently used (below 1 after a 429)."""
        return self._rate.pace

    @property
    def pauses(self) -> int:
        """How many times every request was held back (429s, resets, `Retry-After`s)."""
        return self._rate.pauses

    @property
    def paused_s(self) -> float:
        """The wall time during which every request was held back."""
        return self._rate.paused_s

    def learned(self) -> Learned:
        """The limits in force that no flag gave, and where they were learned."""
        found: Learned = {}
        for name, kind, limit in (("rpm", "requests", self.rpm), ("tpm", "tokens", self.tpm)):
            source = self._rate.learned_from.get(kind)
            if source is not None and limit is not None:
                found[name] = {"limit": round(limit, 3), "from": source}
        return found

    async def enter(self) -> None:
        """Wait, in arrival order, until one more abstract may be in flight."""
        await self._width.enter()

    def leave(self, latency: float | None = None) -> None:
        """An abstract is done; its answered request's `latency` resizes an adaptive width."""
        before = self._width.width
        self._width.leave(latency, self._rate.requests_per_second())
        if self._width.width != before:
            self._log_width(before, self._width.width)

    def _log_width(self, before: int, width: int) -> None:
        """At INFO when a newly known request limit sized it, else (latency) at DEBUG."""
        limit, last = self._rate.rpm, self._sized_for
        new = limit is not None and (last is None or abs(limit - last) > NEW_LIMIT * last)
        if new:
            self._sized_for = limit
        log.log(logging.INFO if new else logging.DEBUG,
                "width %d -> %d abstracts in flight (request limit %s, latency %.2f s)",
                before, width, "unknown" if limit is None else f"{limit:.0f}/min",
                self._width.latency or 0.0)  # fmt: skip

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for the start slot of one request of about `tokens` tokens."""
        spacing = self._width.spacing if self._width.adaptive else None
        await self._rate.acquire(tokens, spacing=spacing)

    def settle(self, estimated: int, used: int) -> None:
        """Correct the token clock by what the request used, and ramp the pace back up."""
        self._rate.settle(estimated, used)
        self._rate.succeeded()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn limits from `x-ratelimit-*` headers the user did not override."""
        self._rate.observe(headers)

    def rate_limited(self, wait: float, why: str = "") -> None:
        """A 429: pause everyone, slow down, and learn a limit if none is known."""
        self._rate.rate_limited(wait, why)

    def pause(self, seconds: float, why: str = "") -> None:
        """Hold every request back for `seconds` from now."""
        self._rate.pause(seconds, why)

    def limits(self) -> Limits:
        """The limits in force and the width reached, for the manifest."""
        return {"rpm": self.rpm, "tpm": self.tpm, "concurrency": self.width,
                "peak_in_flight": self.peak}  # fmt: skip


def pacer_for(settings: RunSettings, *, local: bool) -> Pacer:
    """A run's pacer: `--concurrency` as given, one at a time for the embedded model, else
    adaptive; under `--rpm` / `--tpm`, and learning the limits not given."""
    if settings.concurrency is not None:
        return Pacer(settings.rpm, settings.tpm, width=settings.concurrency)
    if local:
        return Pacer(settings.rpm, settings.tpm, width=LOCAL_CONCURRENCY)
    return Pacer(settings.rpm, settings.tpm, width=REMOTE_CONCURRENCY,
                 maximum=MAX_AUTO_CONCURRENCY)  # fmt: skip
