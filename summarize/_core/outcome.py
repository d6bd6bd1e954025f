"""What a run did: its counts, and each abstract's outcome as it finishes.

Every transport that sends abstracts one by one counts into a `RunResult` (the summary
line, the exit code, the manifest) and reports each finished abstract as an `Outcome`
(the progress display, `run(on_outcome=...)`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .._errors import ExitCode, InputError
from .._items import Item
from .records import ErrorRecord, Record
from .stop import INTERRUPTED


@dataclass(slots=True)
class RunResult:
    """What a run did, for the summary line, the exit code and the caller."""

    unique: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    previous_kept: int = 0  # failed abstracts whose earlier record stays (a failed redo)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    elapsed_s: float = 0.0
    cost_usd: float | None = None
    stopped: str | None = None  # a spend cap's reason, or "interrupted" (`_core.stop`)
    input_problems: list[InputError] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    reasks: dict[str, int] = field(default_factory=dict)  # by reason (`Fault.kind`)
    pauses: int = 0  # times every request was held back (429s, resets, Retry-Afters)
    paused_s: float = 0.0  # the wall time they held requests back
    # The limits no flag gave, as learned: {"rpm": {"limit": 485.0, "from": "headers"}}.
    learned: dict[str, dict[str, float | str]] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """INTERRUPTED when asked to stop, FAILED (error lines), or STOPPED at a spend cap
        with work left."""
        if self.stopped == INTERRUPTED:
            return ExitCode.INTERRUPTED
        if self.failed:
            return ExitCode.FAILED
        return ExitCode.STOPPED if self.stopped else ExitCode.OK

    def count_failure(self, kind: str, *, previous_kept: bool = False) -> None:
        """One more error line of this type; `previous_kept`: beside an earlier record."""
        self.failed += 1
        self.previous_kept += int(previous_kept)
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def count_reasks(self, reasons: tuple[str, ...]) -> None:
        """Count an abstract's re-asks, by reason."""
        for reason in reasons:
            self.reasks[reason] = self.reasks.get(reason, 0) + 1

    @property
    def left(self) -> int:
        """Unique abstracts neither done, skipped nor failed (--limit, a spend cap)."""
        return self.unique - self.done - self.skipped - self.failed

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens of every request this run sent."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def requests_per_second(self) -> float:
        """Requests sent per second of wall time."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished abstract: its record or its error line, as written (`run(on_outcome=)`)."""

    item: Item
    record: Record | None
    error: ErrorRecord | None
    service_s: float | None = None  # the answered request's own time (`Completion.service_s`)
    reasks: tuple[str, ...] = ()  # why each re-ask was made (`Completion.reasks`)


OnOutcome = Callable[[Outcome], None]
