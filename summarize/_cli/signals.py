"""Ctrl-C and SIGTERM during `summarize run`: stop cleanly, say so at once, exit 130 or 143.

The first signal while abstracts are being sent asks the run to stop (`summarize.Stop`):
no new abstract is taken, those in flight may finish within a grace of a few seconds and
their lines are written, the manifest says `"stopped": "interrupted"`, the summary line is
printed, and the exit code is the shell's for the signal (128 + its number). The second
stops at once: what is in flight gets no line and is asked again by the next run. Before
the sending starts (reading the input, loading the embedded model) nothing is in flight,
so a signal stops at once; a third one, whatever is going on, too.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from .._core.stop import Stop
from .._errors import ExitCode
from .common import fail

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CODES = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}
_GIVE_UP = 3  # the signal that stops waiting for anything


class Stopping:
    """The `Stop` of one run, asked by SIGINT and SIGTERM, and what the user is told."""

    def __init__(self) -> None:
        self.stop = Stop(on_stopping=self._say)
        self.signum: int | None = None

    @property
    def exit_code(self) -> ExitCode:
        """The shell's code for the first signal received (130 if none was)."""
        return _CODES.get(signal.Signals(self.signum or signal.SIGINT), ExitCode.INTERRUPTED)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: ask the run to stop, or stop now if nothing is in flight."""
        self.signum = self.signum or signum
        if not self.stop.started:
            raise KeyboardInterrupt  # nothing sent yet: nothing to wait for
        if self.stop.request() >= _GIVE_UP:
            raise KeyboardInterrupt

    def _say(self, in_flight: int, now: bool) -> None:
        if now:
            click.echo("summarize: stopping now; what is in flight is asked again next run",
                       err=True)  # fmt: skip
        else:
            click.echo(f"summarize: stopping: {in_flight} in flight; Ctrl-C again to stop now",
                       err=True)  # fmt: skip


@contextmanager
def stopping_on_signals() -> Iterator[Stopping]:
    """SIGINT and SIGTERM ask the run to stop while this lasts (see the module doc)."""
    stopping = Stopping()
    previous = {signum: signal.signal(signum, stopping.handle) for signum in _SIGNALS}
    try:
        yield stopping
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to continue", stopping.exit_code)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
