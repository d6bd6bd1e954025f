"""Spend caps in nightly mode: what `submit` and `collect` may send, priced before it is sent.

A batch is paid for when the provider runs it, long after `submit` has returned, so
no answer can stop it the way a live run stops at its cap. `Allowance` holds one
command's `max_cost` / `max_tokens_total` with its own estimate of each request: the
prompt tokens of the request line as built (characters / 4), plus the completion
guess, priced at the Batch API's discount. Requests are let through in order until
the first whose estimate would pass a cap; from then on none is (so the same input
under the same cap sends the same abstracts, and the next command carries on in
order). Live re-asks (`collect --repair live`) are held by the live run's `Budget`
under what the allowance has left, at the live price.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._cost import Price, SpendCap, cost_of
from .._usage import Usage


@dataclass(slots=True)
class Allowance:
    """One command's spend caps, and what it has committed to so far."""

    cap: SpendCap
    tokens: int = 0  # committed: estimated for batches sent, reported for live re-asks
    cost: float = 0.0
    admitted: int = 0
    refused: int = 0
    wanted_tokens: int = 0  # estimated for everything asked about, admitted or not
    wanted_cost: float = 0.0
    stopped: str | None = None  # why the first request was refused
    stopped_by: str | None = None  # the cap that refused it: `--max-cost 0.2`

    @property
    def capped(self) -> bool:
        """Whether any cap is set."""
        return self.cap.max_cost is not None or self.cap.max_tokens is not None

    def admit(self, usage: Usage, price: Price | None) -> bool:
        """Whether a batch request expected to use `usage` may be sent; committed if so.

        Its cost is `price` times the Batch API's discount. Once one is refused, every
        later one is too: what is sent is a prefix of what was asked.
        """
        cost = batch_cost(usage, price)
        self.wanted_tokens += usage.total
        self.wanted_cost += cost
        if self.stopped is None and self.capped:
            self._check(usage.total, cost)
        if self.stopped is not None:
            self.refused += 1
            return False
        self.commit(usage.total, cost)
        self.admitted += 1
        return True

    def commit(self, tokens: int, cost: float) -> None:
        """Count spend made outside `admit` (live re-asks, at the live price)."""
        self.tokens += tokens
        self.cost += cost

    def left(self) -> SpendCap:
        """The caps less what is committed: the budget of what is sent next."""
        cap = self.cap
        return SpendCap(
            None if cap.max_cost is None else max(cap.max_cost - self.cost, 0.0),
            None if cap.max_tokens is None else max(cap.max_tokens - self.tokens, 0),
        )

    def _check(self, tokens: int, cost: float) -> None:
        cap = self.cap
        if cap.max_tokens is not None and self.tokens + tokens > cap.max_tokens:
            self.stopped_by = f"--max-tokens-total {cap.max_tokens:,}"
            self.stopped = (f"token cap: the next request (~{tokens:,} tokens) would pass "
                            f"{self.stopped_by}")  # fmt: skip
        elif cap.max_cost is not None and self.cost + cost > cap.max_cost:
            self.stopped_by = f"--max-cost {cap.max_cost:g}"
            self.stopped = (f"spend cap: the next request (~${cost:.4f} at batch prices) "
                            f"would pass {self.stopped_by}")  # fmt: skip


def batch_cost(usage: Usage, price: Price | None) -> float:
    """USD of `usage` in a batch: the price times the Batch API's discount (0 unpriced)."""
    return 0.0 if price is None else price.batch * cost_of(usage, price)
