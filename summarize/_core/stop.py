"""Stopping a run early: what Ctrl-C and SIGTERM ask of it, and another thread can too.

    stop = Stop()
    threading.Timer(600, stop.request).start()  # or from a signal handler
    result = run(settings, stop=stop)            # result.stopped == "interrupted"

The first `request()` stops the taking of new abstracts: those in flight may finish
within `GRACE_S` and their lines are written, the manifest says `"stopped":
"interrupted"`, and the run returns. The second stops at once: what is still in flight
gets no line, so the next run asks for it again. A transport that sends abstracts
(`summarize._live.pool`) watches the stop while it sends; `request` is safe to call
from a signal handler or any thread, and wakes that transport's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Final

# How long abstracts in flight may take to finish after a first request to stop.
GRACE_S: Final = 5.0
INTERRUPTED: Final = "interrupted"  # what `RunResult.stopped` and the manifest say

# Told, in the sending's event loop, that a stop was asked: how many abstracts are in
# flight, and whether it is the second request (stop now).
OnStopping = Callable[[int, bool], None]


class Stop:
    """A request to stop a run early (see the module doc); one per run."""

    def __init__(self, *, on_stopping: OnStopping | None = None) -> None:
        """`on_stopping(in_flight, now)` is called as the sending sees each request."""
        self.requests = 0
        self._on_stopping = on_stopping
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: Callable[[], None] | None = None
        self.started = False  # has a sending begun to watch it? (before: nothing in flight)

    @property
    def requested(self) -> bool:
        """Whether a stop was asked: no new abstract is taken."""
        return self.requests > 0

    @property
    def now(self) -> bool:
        """Whether it was asked twice: nothing in flight is waited for."""
        return self.requests > 1

    def request(self) -> int:
        """Ask the run to stop (again); how many times it has been asked.

        Only counts and wakes the sending's loop: safe in a signal handler."""
        self.requests += 1
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed a moment ago
                loop.call_soon_threadsafe(wake)
        return self.requests

    def stopping(self, in_flight: int) -> None:
        """Tell the caller that a request was seen, with `in_flight` abstracts in flight."""
        if self._on_stopping is not None:
            self._on_stopping(in_flight, self.now)

    @contextlib.contextmanager
    def watching(self, wake: Callable[[], None]) -> Iterator[None]:
        """While a sending runs in this event loop: each request calls `wake` in it
        (at once for requests made before)."""
        self._loop, self._wake = asyncio.get_running_loop(), wake
        self.started = True
        if self.requests:
            self._loop.call_soon(wake)
        try:
            yield
        finally:
            self._loop = self._wake = None
