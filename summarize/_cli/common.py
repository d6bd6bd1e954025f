"""What every command shares: one-line errors, exit codes, the problems shown."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from .._errors import ExitCode, SummarizeError, UsageError

MAX_PROBLEMS_SHOWN = 20
# The signals `interrupt` turned into Ctrl-C: SIGTERM's exit code is 143, not 130.
_TERMINATED: list[int] = []


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM (cron's timeout, `kill`) stops like Ctrl-C: the local server is stopped too.

    Re-raised as SIGINT so that asyncio cancels the run's tasks cleanly; remembered, so
    that the command exits 143 as `run` does.
    """
    _TERMINATED.append(signum)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background (`cmd &` ignores SIGINT): SIGTERM must stop it still.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.raise_signal(signal.SIGINT)


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's mistake (input, config, output) is one line and exit code 2."""
    try:
        yield
    except UsageError as exc:
        fail(str(exc))


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> None:
    click.echo(f"summarize: error: {message}", err=True)
    sys.exit(code)


@contextmanager
def job_errors() -> Iterator[None]:
    """Exit codes for a job: 2 for the user's mistakes, 3 for the provider's, 130 interrupted
    (143 by SIGTERM; an exception that is none of ours is `main`'s: 70)."""
    try:
        yield
    except KeyboardInterrupt:
        code = ExitCode.TERMINATED if _TERMINATED else ExitCode.INTERRUPTED
        fail("interrupted; run the same command again to continue", code)
    except UsageError as exc:
        fail(str(exc))
    except SummarizeError as exc:
        fail(str(exc), ExitCode.PROVIDER)


def show_problems(problems: list[Any]) -> None:
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        click.echo(f"summarize: skipped {problem}", err=True)
    hidden = len(problems) - MAX_PROBLEMS_SHOWN
    if hidden > 0:
        click.echo(f"summarize: … and {hidden} more skipped input problems", err=True)
