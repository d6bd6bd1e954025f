"""What the nightly commands report: counts for the summary line, and the exit code.

`SubmitResult` (`batch submit`), `CollectResult` (`batch collect`) and `CancelResult`
(`batch cancel`); none needs the provider's SDK, so the CLI shows them without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._cost import Price
from .._errors import ExitCode, InputError
from .._usage import Usage


@dataclass(slots=True)
class SubmitResult:
    """What `submit` sent, and what it left alone."""

    unique: int = 0
    done: int = 0
    out: int = 0
    submitted: int = 0
    rejected: int = 0
    batches: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    cost_usd: float | None = None
    capped: int = 0  # pending abstracts a spend cap left for the next submit
    cap_note: str | None = None  # what the cap let through and left, in one line
    problems: list[str] = field(default_factory=list)
    input_problems: list[InputError] = field(default_factory=list)

    @property
    def left(self) -> int:
        """Unique abstracts neither done, out, sent nor rejected (--limit, a spend cap)."""
        return self.unique - self.done - self.out - self.submitted - self.rejected

    @property
    def exit_code(self) -> ExitCode:
        """PROVIDER a chunk could not be sent (the next call retries), USAGE a spend cap
        lets not one abstract through, FAILED an abstract was rejected as input, STOPPED
        a spend cap left abstracts for the next submit."""
        if self.problems:
            return ExitCode.PROVIDER
        if self.capped and not self.submitted:
            return ExitCode.USAGE  # the same cap refuses the same abstract every night
        if self.rejected:
            return ExitCode.FAILED
        return ExitCode.STOPPED if self.capped else ExitCode.OK


@dataclass(slots=True)
class CollectResult:
    """What `collect` did, for the summary line and the exit code."""

    collected: int = 0
    open: dict[str, int] = field(default_factory=dict)
    done: int = 0
    failed: int = 0
    previous_kept: int = 0  # failed abstracts whose earlier record stays (a failed redo)
    resubmitted: int = 0
    repaired_live: int = 0
    released: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    capped: int = 0  # abstracts a spend cap kept from a follow-up or a live re-ask
    cap_note: str | None = None  # why, the first time
    problems: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """PROVIDER a batch could not be read, sent or was lost; OPEN batches are still
        out; FAILED error lines were written."""
        if self.problems or self.lost:
            return ExitCode.PROVIDER
        if self.open:
            return ExitCode.OPEN
        return ExitCode.FAILED if self.failed else ExitCode.OK

    def count_failure(self, kind: str, *, previous_kept: bool = False) -> None:
        """One more error line of this type; `previous_kept`: beside an earlier record."""
        self.failed += 1
        self.previous_kept += int(previous_kept)
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def spend(self, price: Price | None, usage: Usage, *, discount: float) -> None:
        """Count tokens, and their cost at `discount` times the price (1.0 for live)."""
        self.prompt_tokens += usage.prompt_tokens
        self.cached_tokens += usage.cached_tokens
        self.completion_tokens += usage.completion_tokens
        if price is not None:
            cost = price.cost(prompt=usage.prompt_tokens, cached=usage.cached_tokens,
                              completion=usage.completion_tokens)  # fmt: skip
            self.cost_usd = (self.cost_usd or 0.0) + discount * cost


@dataclass(slots=True)
class CancelResult:
    """What `cancel` stopped, released, and could not reach."""

    cancelled: int = 0
    released: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """PROVIDER if a batch could not be reached, else OK."""
        return ExitCode.PROVIDER if self.problems else ExitCode.OK
