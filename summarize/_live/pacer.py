"""How many requests are in flight: fixed by the user, or sized from the limit.

With a known request rate R (configured or learned) and an observed latency L,
R x L requests in flight keep the limit busy (Little's law); a little more
covers the latency's spread. An adaptive gate opens with one request, whose
answer's headers may tell the limit, so a run does not open with a burst of
429s; with no known rate it then widens to the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from types import TracebackType

LOCAL_CONCURRENCY = 1  # llama.cpp's server computes one request at a time
REMOTE_CONCURRENCY = 8  # until a known rate limit and latency size it
MAX_AUTO_CONCURRENCY = 256
LATENCY_SMOOTHING = 0.2
SPREAD = 1.5
# Spaced sends may run this much faster than the gate's own rate: enough apart that a
# 429 comes back before the next send, not so far that varying latency holds them back.
CATCH_UP = 4.0


class Concurrency:
    """An async gate whose width is fixed, or follows rate x latency."""

    def __init__(
        self,
        width: int,
        *,
        maximum: int | None = None,
        rate: Callable[[], float | None] | None = None,
    ) -> None:
        self._rate = rate if maximum else None
        self._default = width
        self.limit = 1 if self._rate is not None else width
        self.maximum = maximum or width
        self._latency: float | None = None
        self._in_flight = 0
        # Waiters in arrival order; a freed slot wakes one, not all (256 workers may wait).
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.peak = 0

    async def __aenter__(self) -> None:
        if self._in_flight >= self.limit or self._waiting:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter  # resolved by `_wake`, which counts this request in
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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to the longest waiters."""
        while self._waiting and self._in_flight < self.limit:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def spacing(self) -> float | None:
        """Seconds between sends that keep an adaptive gate full without bursts.

        Answers that come back together would otherwise go out again together, and
        against a limit no header told, the burst that finds it earns a 429 for each
        request in it, not one."""
        if self._rate is None or self._latency is None:
            return None
        return self._latency / self.limit / CATCH_UP

    def observe(self, latency: float) -> None:
        """One request took `latency` seconds: resize if adaptive."""
        if self._rate is None:
            return
        previous = self._latency if self._latency is not None else latency
        self._latency = previous + LATENCY_SMOOTHING * (latency - previous)
        rate = self._rate()
        wanted = self._default if rate is None else math.ceil(rate * self._latency * SPREAD) + 1
        self.limit = max(1, min(self.maximum, wanted))
        self._wake()
