"""Client-side pacing: requests spread evenly under a per-minute limit.

Providers enforce per-minute limits over shorter windows, so a burst of 60
requests in the first second of a minute is throttled even under `--rpm 60`.
`RateLimiter` hands out evenly spaced start slots instead (a GCRA scheduler),
and `pause()` holds every request back after a 429, not only the one that got it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

SECONDS_PER_MINUTE = 60.0


class RateLimiter:
    """Evenly spaced request slots, with a shared pause for 429s."""

    def __init__(
        self,
        rpm: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rpm is not None and rpm <= 0:
            raise ValueError("rpm must be positive")
        self._interval = SECONDS_PER_MINUTE / rpm if rpm else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._paused_until = 0.0
        self.pauses = 0

    @property
    def rpm(self) -> float | None:
        """The configured requests per minute (None: unlimited)."""
        return SECONDS_PER_MINUTE / self._interval if self._interval else None

    async def acquire(self) -> None:
        """Wait for this request's slot (and for any pause to end)."""
        now = self._clock()
        slot = max(now, self._next_slot, self._paused_until)
        self._next_slot = slot + self._interval
        while slot > now:
            await self._sleep(slot - now)
            now = self._clock()
            if self._paused_until > slot:
                # A 429 arrived while we slept: queue again, spaced, behind the pause.
                slot = max(self._next_slot, self._paused_until)
                self._next_slot = slot + self._interval

    def pause(self, seconds: float) -> None:
        """Hold every request back for `seconds` from now (e.g. a 429's Retry-After)."""
        until = self._clock() + max(seconds, 0.0)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1
