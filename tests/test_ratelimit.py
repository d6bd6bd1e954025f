"""Client-side pacing: even spacing under --rpm, and one shared pause after a 429."""

from __future__ import annotations

import asyncio

import pytest

from summarize.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def start_times(limiter: RateLimiter, clock: FakeClock, count: int) -> list[float]:
    starts: list[float] = []
    for _ in range(count):
        await limiter.acquire()
        starts.append(clock.now)
    return starts


async def test_requests_are_spaced_evenly_not_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(120, clock=clock, sleep=clock.sleep)
    assert await start_times(limiter, clock, 5) == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


async def test_no_limit_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    assert await start_times(limiter, clock, 100) == [0.0] * 100


async def test_a_pause_holds_back_every_request() -> None:
    clock = FakeClock()
    limiter = RateLimiter(600, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    limiter.pause(5.0)
    starts = await start_times(limiter, clock, 3)
    assert starts[0] >= 5.0
    assert starts == pytest.approx([5.0, 5.1, 5.2])
    assert limiter.pauses == 1


async def test_concurrent_waiters_share_the_slots() -> None:
    limiter = RateLimiter(6000)  # 10 ms apart, real clock
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(loop.time())

    await asyncio.gather(*(one() for _ in range(6)))
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert min(gaps) > 0.005


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
