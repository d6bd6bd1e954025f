"""What a person sees: a progress bar on a terminal, and one summary line at the end."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .job import Estimate
from .runner import Outcome, RunResult


class ProgressDisplay:
    """A rich progress bar on stderr; silent when stderr is not a terminal (cron, CI)."""

    def __init__(self, *, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._failed = 0
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]summarize"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, total: int) -> None:
        """Show a bar for `total` pending abstracts."""
        if self._progress is not None:
            self._task = self._progress.add_task("run", total=total, failed=0)

    def advance(self, outcome: Outcome) -> None:
        """One more abstract finished, as a record or an error."""
        if outcome.error is not None:
            self._failed += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, failed=self._failed)


def summary_line(result: RunResult, output: Path, errors: Path) -> str:
    """`666 abstracts: 600 done, 50 skipped, 16 failed (…) | tokens …, $0.12 | 12.3s | …`."""
    failed = f"{result.failed} failed"
    if result.failed:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.failures.items()))
        failed += f" ({kinds}; see {errors})"
    if result.left > 0:
        failed += f", {result.left} left ({result.stopped or '--limit'})"
    cost = "" if result.cost_usd is None else f", ${result.cost_usd:.4f}"
    return (
        f"{result.unique} abstracts: {result.done} done, {result.skipped} skipped, {failed}"
        f" | tokens {result.prompt_tokens} in ({result.cached_tokens} cached),"
        f" {result.completion_tokens} out{cost} | {result.elapsed_s:.1f}s"
        f" | {result.requests_per_second:.2f} req/s -> {output}"
    )


def estimate_line(guess: Estimate) -> str:
    """`dry run: 666 of 666 abstracts to send to gpt-4o-mini, ~… tokens, ~$0.07; nothing sent`."""
    cost = "no price for this model" if guess.cost_usd is None else f"~${guess.cost_usd:.4f}"
    return (
        f"dry run: {guess.pending} of {guess.unique} abstracts to send to {guess.model},"
        f" ~{guess.prompt_tokens} prompt + ~{guess.completion_tokens} completion tokens"
        f" (completion: {guess.completion_basis}), {cost}; nothing sent"
    )
