"""Client-side pacing (`Pacer`): even spacing under --rpm, and one shared pause after a 429."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from summarize._live.pacer import CATCH_UP, Pacer
from summarize._live.rate import BACK_OFF, PROBE, parse_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Wake at now + seconds; other waiters run meanwhile, as on a real clock."""
        target = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, target)


async def start_times(pacer: Pacer, clock: FakeClock, count: int) -> list[float]:
    starts: list[float] = []
    for _ in range(count):
        await pacer.acquire()
        starts.append(clock.now)
    return starts


async def answered(pacer: Pacer, latency: float) -> None:
    """One abstract in flight for `latency` seconds of its answered request."""
    await pacer.enter()
    pacer.leave(latency)


async def test_requests_are_spaced_evenly_not_burst() -> None:
    clock = FakeClock()
    pacer = Pacer(120, clock=clock, sleep=clock.sleep)
    assert await start_times(pacer, clock, 5) == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


async def test_no_limit_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    assert await start_times(pacer, clock, 100) == [0.0] * 100


async def test_with_no_limit_known_an_adaptive_gate_spaces_its_sends() -> None:
    clock = FakeClock()
    pacer = Pacer(None, width=8, maximum=256, clock=clock, sleep=clock.sleep)
    assert await start_times(pacer, clock, 2) == [0.0, 0.0]  # no latency seen yet
    await answered(pacer, 0.2)  # 8 in flight for 0.2 s: one send every 25 ms keeps them busy
    assert pacer.width == 8
    gap = 0.2 / 8 / CATCH_UP
    starts = await start_times(pacer, clock, 3)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([gap] * 2)


async def test_a_known_limit_paces_instead_of_the_gate() -> None:
    clock = FakeClock()
    pacer = Pacer(120, width=8, maximum=256, clock=clock, sleep=clock.sleep)
    await answered(pacer, 0.01)  # the gate alone would space sends ~0.3 ms apart
    assert await start_times(pacer, clock, 3) == pytest.approx([0.0, 0.5, 1.0])


async def test_a_fixed_gate_asks_for_no_spacing() -> None:
    clock = FakeClock()
    pacer = Pacer(None, width=32, clock=clock, sleep=clock.sleep)
    await answered(pacer, 0.4)
    assert await start_times(pacer, clock, 3) == [0.0, 0.0, 0.0]


async def test_a_pause_holds_back_every_request() -> None:
    clock = FakeClock()
    pacer = Pacer(600, clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    pacer.pause(5.0)
    starts = await start_times(pacer, clock, 3)
    assert starts[0] >= 5.0
    assert starts == pytest.approx([5.0, 5.1, 5.2])
    assert pacer.pauses == 1


async def test_concurrent_waiters_share_the_slots() -> None:
    clock = FakeClock()
    pacer = Pacer(6000, clock=clock, sleep=clock.sleep)  # 10 ms apart
    starts: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        starts.append(clock.now)

    await asyncio.gather(*(one() for _ in range(6)))
    assert sorted(starts) == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04, 0.05])


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


async def test_tokens_are_paced_under_tpm() -> None:
    clock = FakeClock()
    pacer = Pacer(tpm=60_000, clock=clock, sleep=clock.sleep)  # 1,000 tokens/s
    starts = []
    for _ in range(3):
        await pacer.acquire(2_000)
        starts.append(clock.now)
    assert starts == pytest.approx([0.0, 2.0, 4.0])


async def test_reported_usage_corrects_the_token_clock() -> None:
    clock = FakeClock()
    pacer = Pacer(tpm=60_000, clock=clock, sleep=clock.sleep)
    await pacer.acquire(2_000)
    pacer.settle(estimated=2_000, used=500)  # 1.5 s of token time handed back
    await pacer.acquire(1_000)
    assert clock.now == pytest.approx(0.5)


async def test_the_tighter_of_rpm_and_tpm_wins() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, tpm=600_000, clock=clock, sleep=clock.sleep)
    starts = await start_times(pacer, clock, 3)
    assert starts == pytest.approx([0.0, 0.1, 0.2])  # rpm binds: tokens=0 cost nothing


def test_limits_are_learned_from_openai_headers() -> None:
    pacer = Pacer()
    pacer.observe({"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "200000"})
    assert pacer.rpm == pytest.approx(500 * 0.97)
    assert pacer.tpm == pytest.approx(200_000 * 0.97)


def test_a_limit_the_user_set_is_not_overridden_by_headers() -> None:
    pacer = Pacer(rpm=100)
    pacer.observe({"x-ratelimit-limit-requests": "500"})
    assert pacer.rpm == 100


async def test_no_remaining_requests_pauses_until_the_reset() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    pacer.observe(
        {
            "x-ratelimit-limit-requests": "60000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1.5s",
        }
    )
    await pacer.acquire()
    assert clock.now == pytest.approx(1.5)


async def test_a_429_slows_everyone_down_then_the_pace_ramps_back_up() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, clock=clock, sleep=clock.sleep)
    pacer.rate_limited(1.0)
    assert pacer.pace == pytest.approx(0.8)
    starts = await start_times(pacer, clock, 2)
    assert starts[0] == pytest.approx(1.0)
    assert starts[1] - starts[0] == pytest.approx(0.1 / 0.8)
    for _ in range(30):
        pacer.settle(0, 0)
    assert pacer.pace == 1.0


async def test_429s_of_one_burst_slow_down_once() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.rate_limited(1.0)
    assert pacer.pace == pytest.approx(0.8)


async def test_with_no_limit_known_a_429_learns_the_rate_that_got_through() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    for _ in range(50):  # 10 answers per second for 5 seconds
        await pacer.acquire()
        pacer.settle(0, 0)
        clock.now += 0.1
    pacer.rate_limited(1.0)
    assert pacer.rpm == pytest.approx(600 * BACK_OFF, rel=0.03)
    for _ in range(100):  # then probes upwards, slowly
        pacer.settle(0, 0)
    assert pacer.rpm == pytest.approx(600 * BACK_OFF * (1 + PROBE) ** 100, rel=0.03)


async def test_the_rate_between_two_429s_corrects_one_inflated_by_a_burst_allowance() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    for _ in range(40):  # a burst allowance lets 40 through in the first second...
        pacer.settle(0, 0)
        clock.now += 1 / 40
    pacer.rate_limited(1.0)
    assert pacer.rpm == pytest.approx(40 * 60 * BACK_OFF, rel=0.01)  # ...and looks like 40/s
    clock.now += 1.0  # the pause
    for _ in range(90):  # then the true rate: 10 per second
        pacer.settle(0, 0)
        clock.now += 0.1
    pacer.rate_limited(1.0)
    # 90 answers in the 10 s since the last 429 (its pause included): 9 per second.
    assert pacer.rpm == pytest.approx(9 * 60 * BACK_OFF, rel=0.01)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20ms", 0.02), ("1.5s", 1.5), ("6m0s", 360.0), ("1h2m", 3720.0), ("2", 2.0), ("x", None)],
)
def test_reset_durations_parse_like_openai_writes_them(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


async def test_a_429_with_too_few_answers_to_judge_only_pauses() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    pacer.settle(0, 0)
    pacer.rate_limited(0.5)
    assert pacer.rpm is None
    await pacer.acquire()
    assert clock.now == pytest.approx(0.5)


async def test_a_pause_that_another_lengthens_counts_once_and_for_its_whole_time() -> None:
    clock = FakeClock()
    pacer = Pacer(600, clock=clock, sleep=clock.sleep)
    pacer.rate_limited(1.0, "HTTP 429")
    clock.now = 0.5
    pacer.rate_limited(1.0, "HTTP 429")  # the same burst: 0.5 s more
    clock.now = 0.7
    pacer.pause(0.2)  # within the pause: nothing more
    clock.now = 5.0
    pacer.pause(2.0, "HTTP 503, Retry-After 2 s")
    assert (pacer.pauses, pacer.paused_s) == (2, pytest.approx(3.5))


def test_limits_learned_say_where_from_and_configured_ones_are_not_learned() -> None:
    pacer = Pacer(tpm=90_000)
    pacer.observe({"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "200000"})
    assert pacer.learned() == {"rpm": {"limit": 485.0, "from": "headers"}}


async def test_a_limit_learned_from_429s_says_so() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    for _ in range(50):
        pacer.settle(0, 0)
        clock.now += 0.1
    pacer.rate_limited(1.0)
    assert pacer.learned()["rpm"]["from"] == "429s"


def test_pauses_and_learned_limits_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="summarize")
    pacer = Pacer()
    headers = {"x-ratelimit-limit-requests": "500"}
    for _ in range(3):  # every answer carries the headers: the limit is news once
        pacer.observe(headers)
    pacer.rate_limited(2.0, "HTTP 429, Retry-After 2 s")
    pacer.rate_limited(2.0, "HTTP 429, Retry-After 2 s")  # the same burst
    said = [r.getMessage() for r in caplog.records if r.name == "summarize.rate"]
    assert said == [
        "learned the requests limit from headers: 500 a minute (pacing at 485)",
        "pausing every request for 2.00 s: HTTP 429, Retry-After 2 s",
        "slowing down to 80 % of the limits after a 429",
    ]
