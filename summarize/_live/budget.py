"""What a run may still spend: the spend caps, checked as each abstract is sent.

An abstract is sent only if what the run has spent, plus what the abstracts in
flight are expected to spend, plus its own expected spend, stays within the
caps. The check is made at the moment of sending, after the concurrency gate,
so a wide gate cannot let a crowd of requests past a cap they were all under
when they queued. An abstract's expected spend is a guess from its own length,
scaled by how far the abstracts finished so far outran their guesses (re-asks,
retries and answer sizes included): the 90th percentile of that ratio over the
last few hundred, so that the abstracts in flight near the cap are rather over-
than underestimated. A run therefore ends within its cap, up to the error of the
estimates of the abstracts in flight when it got close.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .._cost import Price, SpendCap, cost_of
from .._items import Item
from .._tokens import CHARS_PER_TOKEN, FIRST_COMPLETION_GUESS
from .._usage import Usage

# Prompt tokens besides the abstract (instructions, schema) before any answer says.
FIRST_OVERHEAD_GUESS = 1_000


def first_guess(item: Item) -> Usage:
    """What an abstract is expected to use before any answer has said what they use."""
    abstract = math.ceil(len(item.abstract) / CHARS_PER_TOKEN)
    return Usage(abstract + FIRST_OVERHEAD_GUESS, FIRST_COMPLETION_GUESS)


@dataclass(frozen=True, slots=True)
class Ticket:
    """An abstract let through: what it was expected to spend, and the raw guess."""

    tokens: int
    cost: float
    guessed_tokens: int = 0
    guessed_cost: float = 0.0


class Budget:
    """Spend so far and promised to abstracts in flight, held against a `SpendCap`."""

    def __init__(
        self,
        cap: SpendCap | None = None,
        price: Price | None = None,
        *,
        guess: Callable[[Item], Usage] = first_guess,
    ) -> None:
        self.cap = cap or SpendCap()
        self.price = price
        self._guess = guess
        self.spent_tokens = 0
        self.spent_cost = 0.0
        self._tokens_ratio = SpendRatio()
        self._cost_ratio = SpendRatio()
        self._promised_tokens = 0
        self._promised_cost = 0.0
        self._changed: asyncio.Condition | None = None
        self.stopped: str | None = None

    @property
    def capped(self) -> bool:
        """Whether any cap is set."""
        return self.cap.max_cost is not None or self.cap.max_tokens is not None

    def expected(self, item: Item) -> Ticket:
        """What sending `item` is expected to spend: its guess, calibrated by the spend
        of the abstracts finished so far."""
        return self._calibrated(self._guess(item))

    def _calibrated(self, usage: Usage) -> Ticket:
        tokens, cost = usage.total, cost_of(usage, self.price)
        return Ticket(math.ceil(tokens * self._tokens_ratio.factor),
                      cost * self._cost_ratio.factor, tokens, cost)  # fmt: skip

    async def admit(self, item: Item) -> Ticket | None:
        """Let `item` be sent, waiting for abstracts in flight to settle if need be.

        None means a cap would be passed even with nothing in flight: the run stops.
        """
        if self.stopped is not None:
            return None
        if not self.capped:
            return Ticket(0, 0.0)
        if self._changed is None:
            self._changed = asyncio.Condition()
        guess = self._guess(item)
        async with self._changed:
            while True:
                ticket = self._calibrated(guess)
                if (reason := self._over(ticket, promised=False)) is not None:
                    self.stopped = self.stopped or reason
                    self._changed.notify_all()
                    return None
                if self._over(ticket, promised=True) is None:
                    self._promised_tokens += ticket.tokens
                    self._promised_cost += ticket.cost
                    return ticket
                await self._changed.wait()
                if self.stopped is not None:
                    return None

    def _over(self, ticket: Ticket, *, promised: bool) -> str | None:
        tokens = self.spent_tokens + ticket.tokens
        cost = self.spent_cost + ticket.cost
        if promised:
            tokens += self._promised_tokens
            cost += self._promised_cost
        cap = self.cap
        if cap.max_tokens is not None and tokens > cap.max_tokens:
            return (f"token cap: the next abstract (~{ticket.tokens:,} tokens) would pass "
                    f"--max-tokens-total {cap.max_tokens:,}")  # fmt: skip
        if cap.max_cost is not None and cost > cap.max_cost:
            return (f"spend cap: the next abstract (~${ticket.cost:.4f}) would pass "
                    f"--max-cost ${cap.max_cost:g}")  # fmt: skip
        return None

    async def settle(self, ticket: Ticket, spent: Usage) -> None:
        """An abstract let through has finished, having spent `spent`."""
        cost = cost_of(spent, self.price)
        self.spent_tokens += spent.total
        self.spent_cost += cost
        if not self.capped or self._changed is None:
            return
        self._tokens_ratio.add(spent.total, ticket.guessed_tokens)
        self._cost_ratio.add(cost, ticket.guessed_cost)
        async with self._changed:
            self._promised_tokens -= ticket.tokens
            self._promised_cost -= ticket.cost
            self._changed.notify_all()


class SpendRatio:
    """Spent over guessed, per abstract: a high percentile of the recent ones (one
    process's budget here; the Ray coordinator's leases for a cluster)."""

    WINDOW = 256
    PERCENTILE = 0.9
    # Fewer answers than this may raise the guesses, never lower them: the first one
    # back alone would otherwise price the whole crowd let in behind it.
    TRUSTED = 20

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=self.WINDOW)
        self.factor = 1.0

    def add(self, spent: float, guessed: float) -> None:
        """One abstract's spend against its guess."""
        if guessed > 0:
            self._recent.append(spent / guessed)
            self._refresh()

    def extend(self, ratios: Iterable[float]) -> None:
        """Abstracts' spent-over-guessed ratios as workers report them (0: nothing known)."""
        self._recent.extend(r for r in ratios if r > 0)
        if self._recent:
            self._refresh()

    def _refresh(self) -> None:
        ordered = sorted(self._recent)
        factor = ordered[min(len(ordered) - 1, int(len(ordered) * self.PERCENTILE))]
        self.factor = factor if len(ordered) >= self.TRUSTED else max(factor, 1.0)
