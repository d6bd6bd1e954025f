"""What a person sees: a progress bar on a terminal, and one summary line at the end."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from .._batch.results import CollectResult, SubmitResult
    from .._batch.state import BatchState, Chunk
    from .._core.outcome import Outcome, RunResult
    from .._estimate import Estimate


class _Bar:
    """A rich progress bar on stderr, shown between `with` and its end when there is one."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task: TaskID | None = None

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
        self._finish()
        if self._progress is not None:
            self._progress.stop()

    def _finish(self) -> None:
        """What a display stops besides its bar."""


class ProgressDisplay(_Bar):
    """What a run shows on stderr while it works.

    On a terminal: a spinner while the model loads, then a bar of abstracts. Elsewhere
    (cron, CI): one line when the model starts loading, one when the work starts, then
    one a minute (`every` seconds) with the counts, so a log shows the job is alive.
    """

    def __init__(self, *, enabled: bool, every: float = 60.0) -> None:
        self._console = Console(stderr=True)
        super().__init__(
            Progress(
                SpinnerColumn(),
                TextColumn("[bold]summarize"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            if enabled
            else None
        )
        self._every = every
        self._done = 0
        self._failed = 0
        self._total = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def _finish(self) -> None:
        self._stop.set()  # no minute line after the summary line

    def loading(self, model: str) -> None:
        """The model is loading: no bar yet, since nothing can finish before it answers."""
        if self._progress is not None:
            self._task = self._progress.add_task(f"loading model {model}…", total=None)
        else:
            self._line(f"loading model {model}…")

    def start(self, total: int) -> None:
        """Show a bar for `total` pending abstracts."""
        self._total = total
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task("0 failed", total=total)
            return
        self._line(f"{total} abstract{'' if total == 1 else 's'} to summarize")
        if total and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def advance(self, outcome: Outcome) -> None:
        """One more abstract finished, as a record or an error."""
        self._done += 1
        if outcome.error is not None:
            self._failed += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, description=f"{self._failed} failed")

    def _tick(self) -> None:
        while not self._stop.wait(self._every):
            self._line(f"{self._done}/{self._total} finished, {self._failed} failed")

    def _line(self, text: str) -> None:
        elapsed = int(time.monotonic() - self._started)
        self._console.print(f"summarize: [{elapsed // 60}m{elapsed % 60:02d}s] {text}",
                            highlight=False, soft_wrap=True, markup=False)  # fmt: skip


class WaitDisplay(_Bar):
    """While `batch collect --wait` polls: a bar of answered requests on a terminal, else
    one line on stderr whenever an open batch changes (cron mails stay short)."""

    def __init__(self, *, terminal: bool) -> None:
        self._console = Console(stderr=True)
        self._last = ""
        bar = Progress(
            TextColumn("[bold]batches"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        super().__init__(bar if terminal else None)

    def __call__(self, state: BatchState) -> None:
        """Show the open batches after one poll."""
        chunks = state.open_chunks()
        answered = sum(c.completed + c.failed for c in chunks)
        total = sum(c.count for c in chunks)
        statuses = ", ".join(sorted({c.status for c in chunks}))
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task("", total=None)
            self._progress.update(self._task, total=total or None, completed=answered,
                                  description=f"{len(chunks)} open: {statuses}")  # fmt: skip
            return
        line = f"{_batches(len(chunks))} open ({statuses}): {answered}/{total} answered"
        if chunks and line != self._last:
            self._console.print(f"summarize: {line}", highlight=False, soft_wrap=True)
            self._last = line


def _failed(failed: int, failures: dict[str, int], errors: Path) -> str:
    """`16 failed (10 validation, 6 provider; see OUT.errors.jsonl)`."""
    if not failed:
        return "0 failed"
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(failures.items()))
    return f"{failed} failed ({kinds}; see {errors})"


def _kept(failed: int, kept: int) -> str:
    """`, previous records kept` after the failures, when a failed redo kept records."""
    if not kept:
        return ""
    return ", previous records kept" if kept == failed else f", {kept} previous records kept"


def summary_line(result: RunResult, output: Path, errors: Path) -> str:
    """`666 abstracts: 600 done, 50 skipped, 16 failed (…) | tokens …, $0.12 | 12.3s | …`."""
    failed = _failed(result.failed, result.failures, errors)
    failed += _kept(result.failed, result.previous_kept)
    if result.left > 0:
        failed += f", {result.left} left ({result.stopped or '--limit'})"
    cost = "" if result.cost_usd is None else f", ${result.cost_usd:.4f}"
    return (
        f"{plural(result.unique, 'abstract')}: {result.done} done, {result.skipped} skipped, "
        f"{failed}"
        f" | tokens {result.prompt_tokens} in ({result.cached_tokens} cached),"
        f" {result.completion_tokens} out{cost} | {result.elapsed_s:.1f}s"
        f" | {result.requests_per_second:.2f} req/s -> {output}"
    )


def estimate_line(guess: Estimate) -> str:
    """`dry run: 666 of 666 abstracts to send to gpt-4o-mini, ~… tokens, ~$0.07; nothing sent`."""
    cost = "no price for this model" if guess.cost_usd is None else f"~${guess.cost_usd:.4f}"
    return (
        f"dry run: {guess.pending} of {plural(guess.unique, 'abstract')} to send to {guess.model},"
        f" ~{guess.prompt_tokens} prompt + ~{guess.completion_tokens} completion tokens"
        f" (completion: {guess.completion_basis}), {cost}; nothing sent"
        + (f"; {guess.note}" if guess.note else "")
    )


def submit_line(result: SubmitResult, output: Path) -> str:
    """`666 abstracts: 666 submitted in 1 batch (batch_…), 0 done, 0 out | ~… tokens, ~$0.07`."""
    count = len(result.batches)
    ids = f" ({', '.join(result.batches)})" if result.batches else ""
    extra = f", {result.rejected} rejected as input" if result.rejected else ""
    if result.left > 0:
        extra += f", {result.left} left ({'a spend cap' if result.capped else '--limit'})"
    cost = "" if result.cost_usd is None else f", ~${result.cost_usd:.4f} at batch price"
    return (
        f"{plural(result.unique, 'abstract')}: {result.submitted} submitted in "
        f"{_batches(count)}{ids}, "
        f"{result.done} already done, "
        f"{result.out} already in a batch{extra} | ~{result.prompt_tokens} prompt tokens{cost}"
        f" -> {output}; collect with: summarize batch collect -o {output}"
    )


def collect_line(result: CollectResult, output: Path, errors: Path) -> str:
    """`2 batches collected: 660 done, 6 resubmitted, 0 failed | … | 1 batch open (in_progress)`."""
    failed = _failed(result.failed, result.failures, errors)
    failed += _kept(result.failed, result.previous_kept)
    live = f" ({result.repaired_live} re-asked live)" if result.repaired_live else ""
    if result.released:
        live += f", {result.released} released (submit again to send them)"
    cost = "" if result.cost_usd is None else f", ${result.cost_usd:.4f} (batch price)"
    still = sum(result.open.values())
    pending = ", ".join(f"{n} {status}" for status, n in sorted(result.open.items()))
    tail = f" | {_batches(still)} still open ({pending})" if still else ""
    return (
        f"{_batches(result.collected)} collected: "
        f"{result.done} done{live}, {result.resubmitted} resubmitted, {failed}"
        f" | tokens {result.prompt_tokens} in ({result.cached_tokens} cached),"
        f" {result.completion_tokens} out{cost} | {result.elapsed_s:.1f}s -> {output}{tail}"
    )


def status_lines(rows: list[Chunk], collected: int) -> list[str]:
    """One line per open batch, then a total."""
    lines = [
        f"{row.batch_id or '(not sent yet)'}  {row.status:<11} {row.completed + row.failed}/"
        f"{row.count} answered, {row.failed} failed  attempt {row.attempt}  "
        f"submitted {row.created_at}"
        for row in rows
    ]
    pending = sum(row.count for row in rows)
    lines.append(f"{_batches(len(rows))} open holding {pending} abstracts; {collected} collected")
    return lines


def plural(count: int, noun: str) -> str:
    """`1 abstract`, `2 abstracts`, `1 batch`, `3 batches`."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}es" if noun.endswith(("ch", "s", "x")) else f"{count} {noun}s"


def _batches(count: int) -> str:
    return plural(count, "batch")
