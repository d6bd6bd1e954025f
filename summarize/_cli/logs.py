"""Where the package's log lines go from the command line: `--log-level`, `--log-file`.

The library only logs (`logging.getLogger("summarize")`); the command decides where to.
Lines are stamped with the time and the logger (`summarize.rate`, `summarize.client`, ...)
and go to stderr, or are appended to `--log-file`. The default level, WARNING, says
only what went wrong; INFO adds the pauses, learned limits, re-asks and retries, DEBUG
every request. On stderr each line is written to whatever `sys.stderr` is at that
moment: while the progress bar is shown that is rich's proxy, which prints the line
above the bar instead of through it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from .._errors import ConfigError

LEVELS = ("debug", "info", "warning", "error")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

F = TypeVar("F", bound=Callable[..., object])


def log_options(command: F) -> F:
    """`--log-level` and `--log-file`, for a command that sends requests."""
    command = click.option(
        "--log-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Append log lines to this file instead of stderr (the progress stays on stderr).",
    )(command)
    return click.option(
        "--log-level",
        type=click.Choice(LEVELS, case_sensitive=False),
        default="warning",
        show_default=True,
        help="info: pauses, learned limits, re-asks and retries; debug: every request too.",
    )(command)


class _Stderr(logging.Handler):
    """Writes to `sys.stderr` as it is when the line is written (see the module doc)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own policy for a handler that fails
            self.handleError(record)


def logging_from(flags: dict[str, Any]) -> AbstractContextManager[None]:
    """`logging_to` as `log_options` asked, the two flags taken out of `flags`."""
    return logging_to(flags.pop("log_level"), flags.pop("log_file"))


@contextmanager
def logging_to(level: str, path: Path | None) -> Iterator[None]:
    """The package's lines at `level` and above, to `path` (appended) or stderr, while this
    lasts; then the logger is as it was."""
    try:
        handler = logging.FileHandler(path, encoding="utf-8") if path else _Stderr()
    except OSError as exc:
        raise ConfigError(f"--log-file {path}: cannot open ({exc.strerror})") from exc
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    logger = logging.getLogger("summarize")
    before = logger.level
    logger.setLevel(level.upper())
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
        handler.close()
