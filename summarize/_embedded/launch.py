"""Run a command that dies with the process that started it, without `preexec_fn`.

    python -I launch.py PARENT_PID COMMAND [ARG...]

`subprocess`'s `preexec_fn` runs in the child between fork and exec, where a lock
that another thread of the parent held at the fork (the progress display's) stays
locked forever: Python documents it as unsafe when threads run. This launcher is a
process of its own instead: it asks Linux for SIGKILL when its parent dies
(`PR_SET_PDEATHSIG`, which exec keeps), checks that the parent did not die before
that, and execs the command. SIGKILL, not SIGTERM: on SIGTERM llama.cpp's server
(uvicorn) first finishes the answer it is writing, up to a minute of both cores on a
small machine, for a job that is gone. It is run by path and imports only the standard
library, so starting it costs an interpreter start and nothing of `summarize`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
USAGE = 2
NOT_RUN = 127  # as a shell says of a command it could not run


def main(argv: list[str]) -> int:
    """Tie this process to PARENT_PID's life, then become COMMAND."""
    if len(argv) < 3 or not argv[1].isdigit():
        print("usage: launch.py PARENT_PID COMMAND [ARG...]", file=sys.stderr)
        return USAGE
    parent, command = int(argv[1]), argv[2:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            print(f"prctl: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
            return NOT_RUN
    if os.getppid() != parent:
        return NOT_RUN  # the parent died before the signal was asked for: nobody to serve
    try:
        os.execvp(command[0], command)  # noqa: S606 - the caller's own command, as given
    except OSError as exc:
        print(f"{command[0]}: {exc.strerror}", file=sys.stderr)
    return NOT_RUN


if __name__ == "__main__":
    sys.exit(main(sys.argv))
