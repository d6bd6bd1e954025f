"""Start slots under per-minute limits: requests and tokens spread evenly, limits learned.

Providers enforce per-minute limits over shorter windows, so a burst of 60
requests in the first second of a minute is throttled even under `--rpm 60`.
`RateSchedule` hands out evenly spaced start slots instead (a GCRA scheduler)
on two clocks at once, one for requests and one for tokens: a request of 2,000
estimated tokens under `--tpm 60000` occupies two seconds of the token clock.

Limits the user did not set are learned: from the `x-ratelimit-limit-*` headers
(per minute, as OpenAI sends them) and, when an endpoint sends none, from the
rate of answers that got through between two 429s (less 3 %), then probed
upwards by 0.02 % an answer. Until a limit is known, sends are spaced as the
pacer asks (`pacer.Pacer`, from its width and latency), so that the burst that
finds the limit is one request, not a width's worth. A 429 pauses every request,
not only the one that got it; under a known limit it lowers the pace (x0.8), and
each answer raises it again by 1 % until it is back at the limit (AIMD).

It is the rate part of `pacer.Pacer`. `summarize.ray` uses it too, behind `Pacing`:
its coordinator learns the cluster's one request limit with one, and each worker's
`ClusterPacer` keeps its share of `--tpm` and its own pauses with another. It logs
(`summarize.rate`, INFO) each pause as it starts and each limit as it is learned.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("summarize.rate")

SECONDS_PER_MINUTE = 60.0
SLOW_DOWN = 0.8
RAMP_UP = 0.01
MIN_PACE = 0.1
HEADROOM = 0.97  # pace a learned limit slightly under it: clocks and networks jitter
BACK_OFF = 0.97  # a limit learned from 429s restarts this far under the rate that got through
PROBE = 0.0002
MIN_ANSWERS = 10  # fewer answers in the window say nothing about the rate
RECENT_WINDOW_S = 10.0

# Seconds between sends while no request limit is known, as the pacer sizes them now.
Spacing = Callable[[], float | None]

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
                       r"(?:(\d+(?:\.\d+)?)ms)?$")  # fmt: skip


def parse_duration(text: str) -> float | None:
    """OpenAI's reset durations (`20ms`, `1.5s`, `6m0s`, `1h2m`) or plain seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


class _Clock:
    """One GCRA schedule: the next free start time, advancing by cost / rate."""

    def __init__(self, per_minute: float | None) -> None:
        self.limit = per_minute
        self.next_free = 0.0

    def seconds_for(self, cost: float, pace: float) -> float:
        if not self.limit:
            return 0.0
        return cost * SECONDS_PER_MINUTE / (self.limit * pace)


class RateSchedule:
    """Evenly spaced request slots under rpm and tpm, with a shared pause for 429s."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        learn: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        self._requests = _Clock(rpm)
        self._tokens = _Clock(tpm)
        self._learn_rpm = learn and rpm is None
        self._learn_tpm = learn and tpm is None
        self._pace = 1.0
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0
        self._answers: deque[float] = deque()
        self._answered = 0
        self._last_burst: tuple[float, int] | None = None  # when, and answers by then
        self._probing = False
        self.pauses = 0  # pauses started (one that a later one lengthens counts once)
        self.paused_s = 0.0  # wall time during which requests were held back
        self.learned_from: dict[str, str] = {}  # "requests"/"tokens" -> "headers"/"429s"

    @property
    def rpm(self) -> float | None:
        """The request limit in force, configured or learned (None: unlimited)."""
        return self._requests.limit

    @property
    def tpm(self) -> float | None:
        """The token limit in force, configured or learned (None: unlimited)."""
        return self._tokens.limit

    @property
    def pace(self) -> float:
        """The fraction of the limits currently used (below 1 after a 429)."""
        return self._pace

    def requests_per_second(self) -> float | None:
        """The pace the request limit allows now, for sizing the width."""
        limit = self._requests.limit
        return limit * self._pace / SECONDS_PER_MINUTE if limit else None

    async def acquire(self, tokens: int = 0, *, spacing: Spacing | None = None) -> None:
        """Wait for a slot for one request of about `tokens` tokens; while no request limit
        is known, `spacing()` seconds after the last one (None: at once)."""
        slot = self._book(tokens, spacing)
        now = self._clock()
        while slot > now:
            await self._sleep(slot - now)
            now = self._clock()
            if self._paused_until > slot:
                # A 429 arrived while we slept: queue again, spaced, behind the pause.
                slot = self._book(tokens, spacing)

    def _book(self, tokens: int, spacing: Spacing | None) -> float:
        now = self._clock()
        slot = max(now, self._requests.next_free, self._tokens.next_free, self._paused_until)
        if self._requests.limit or spacing is None:
            gap = self._requests.seconds_for(1, self._pace)
        else:
            gap = spacing() or 0.0
        self._requests.next_free = slot + gap
        self._tokens.next_free = slot + self._tokens.seconds_for(tokens, self._pace)
        return slot

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token clock once a response says what a request really used."""
        self._tokens.next_free += self._tokens.seconds_for(actual - estimated, self._pace)

    def succeeded(self) -> None:
        """One more answer got through: ramp back up towards the limit, or probe above it."""
        now = self._clock()
        self._answers.append(now)
        self._answered += 1
        self._forget(now)
        self._pace = min(1.0, self._pace + RAMP_UP)
        if self._probing and self._requests.limit:
            self._requests.limit *= 1 + PROBE

    def pause(self, seconds: float, why: str = "") -> None:
        """Hold every request back for `seconds` from now (e.g. a 429's Retry-After);
        `why`, for the log."""
        now = self._clock()
        until = now + max(seconds, 0.0)
        if until <= self._paused_until:
            return
        if now >= self._paused_until:
            self.pauses += 1
            log.info("pausing every request for %.2f s: %s", seconds, why or "asked to")
        else:
            log.debug("pause lengthened by %.2f s: %s", until - self._paused_until, why)
        self.paused_s += until - max(now, self._paused_until)
        self._paused_until = until

    def rate_limited(self, retry_after: float, why: str = "") -> None:
        """A 429: pause everyone, slow down, and learn a limit if none is known."""
        now = self._clock()
        first_of_burst = now >= self._paused_until
        self.pause(retry_after, why or "HTTP 429")
        if not first_of_burst:
            return  # the 429s of one burst count once
        if self._learn_rpm and (self._probing or self._requests.limit is None):
            got_through = self._rate_got_through(now)
            if got_through is not None:
                self._probing = True
                self._requests.limit = max(got_through * SECONDS_PER_MINUTE * BACK_OFF, 1.0)
                self.learned_from["requests"] = "429s"
                log.info("learned the request limit from 429s: pacing at %.0f a minute "
                         "(%.0f got through, less %.0f %%)", self._requests.limit,
                         got_through * SECONDS_PER_MINUTE, (1 - BACK_OFF) * 100)  # fmt: skip
            self._last_burst = (now, self._answered)
        else:
            self._pace = max(MIN_PACE, self._pace * SLOW_DOWN)
            log.info("slowing down to %.0f %% of the limits after a 429", self._pace * 100)

    def _rate_got_through(self, now: float) -> float | None:
        """Answers per second the endpoint let through, up to this 429.

        Between two 429s the endpoint's allowance was empty at both ends, so what got
        through in between is its true rate; before the first, a recent window is all
        there is (and a provider's burst allowance inflates it: the next 429 corrects it).
        """
        if self._last_burst is not None:
            since, answered = self._last_burst
            if self._answered - answered >= MIN_ANSWERS and now > since:
                return (self._answered - answered) / (now - since)
        if self._answer_count(now) >= MIN_ANSWERS:
            return self._answer_rate(now)
        return None

    def _forget(self, now: float) -> None:
        while self._answers and self._answers[0] < now - RECENT_WINDOW_S:
            self._answers.popleft()

    def _answer_count(self, now: float) -> int:
        self._forget(now)
        return len(self._answers)

    def _answer_rate(self, now: float) -> float:
        self._forget(now)
        if not self._answers:
            return 0.0
        return len(self._answers) / min(RECENT_WINDOW_S, max(now - self._answers[0], 1.0))

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn limits from `x-ratelimit-*` headers the user did not override."""
        if self._learn_rpm:
            self._learn(self._requests, headers, "requests")
        if self._learn_tpm:
            self._learn(self._tokens, headers, "tokens")

    def _learn(self, clock: _Clock, headers: Mapping[str, str], kind: str) -> None:
        limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
        if limit is None or limit <= 0:
            return
        if clock.limit != limit * HEADROOM:
            log.info("learned the %s limit from headers: %g a minute (pacing at %.0f)",
                     kind, limit, limit * HEADROOM)  # fmt: skip
        clock.limit = limit * HEADROOM
        self.learned_from[kind] = "headers"
        if kind == "requests":
            self._probing = False
        remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
        if remaining is not None and remaining < 1 and reset:
            self.pause(reset, f"no {kind} left until the reset (x-ratelimit-reset-{kind})")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
