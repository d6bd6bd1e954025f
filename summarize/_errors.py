"""The errors `summarize` raises, one tree.

    SummarizeError                  anything this package raises on purpose
    ├── UsageError                  the user must change something (exit code 2)
    │   ├── InputError              a file or line of input is bad; names file and line
    │   ├── ConfigError             a setting, flag or config file is bad
    │   └── OutputError             the output cannot be written, or is locked
    ├── ProviderError               the endpoint never answered, the Batch API failed (exit code 3)
    └── SummaryError                one abstract could not be summarised (exit code 1)
                                    carries error_type, attempts and the last raw output

`SummaryError.error_type` is one of `ErrorType`: the value written to the errors file.
Third-party exceptions (aiohttp, openai) are translated into these where they are
caught: `_live.retries` for live calls, `_batch.provider` for the Batch API. An
exception that is none of these is a bug: the CLI exits with `ExitCode.INTERNAL` (70).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from pathlib import Path

from pydantic import ValidationError

from ._usage import Usage


class ErrorType(StrEnum):
    """Why an abstract ended in the errors file instead of the records file."""

    VALIDATION = "validation"
    TRUNCATED = "truncated"
    REFUSED = "refused"
    RATE_LIMIT = "rate_limit"
    PROVIDER = "provider"
    EXPIRED = "expired"
    INPUT = "input"
    NOT_SENT = "not_sent"  # never answered: a cluster's spend cap, or its job stopped first


class ExitCode(IntEnum):
    """What a command's exit status tells cron, the same for every command."""

    OK = 0
    FAILED = 1  # error lines were written (`diff`: changes; `validate`: problems)
    USAGE = 2  # bad input, configuration or output: one line on stderr
    PROVIDER = 3  # the endpoint never answered, or the Batch API failed
    STOPPED = 4  # a spend cap stopped the run with abstracts left
    OPEN = 5  # `batch collect`: batches still open at the provider
    INTERNAL = 70  # a bug: an exception no layer expected (sysexits' EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2, the shell's convention
    TERMINATED = 143  # SIGTERM (cron's timeout, systemd, `kill`): 128 + 15


class SummarizeError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(SummarizeError):
    """Something the user must fix: bad input, configuration or output path."""


class InputError(UsageError):
    """A file or one line of it cannot be read as input."""

    def __init__(self, message: str, *, path: Path | str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(UsageError):
    """A setting, flag, environment variable or config file is invalid."""


class OutputError(UsageError):
    """The output file cannot be opened, written or locked."""


class ProviderError(SummarizeError):
    """The provider failed a call that is not one abstract's (the Batch API's files, batches)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SummaryError(SummarizeError):
    """One abstract failed after the last attempt; the run goes on without it."""

    def __init__(
        self,
        message: str,
        *,
        error_type: ErrorType,
        attempts: int = 1,
        raw_output: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        reasks: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.attempts = attempts
        self.raw_output = raw_output
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.reasks = reasks  # why each re-ask was made, as `Completion.reasks`

    @property
    def usage(self) -> Usage:
        """The tokens the failed tries spent."""
        return Usage(self.prompt_tokens, self.completion_tokens)

    def carrying(
        self,
        usage: Usage,
        attempts: int,
        *,
        raw_output: str | None = None,
        reasks: tuple[str, ...] = (),
    ) -> SummaryError:
        """The same failure, counting `usage`, `attempts` and `reasks`: every try of the
        abstract."""
        return SummaryError(self.message, error_type=self.error_type, attempts=attempts,
                            raw_output=self.raw_output or raw_output,
                            prompt_tokens=usage.prompt_tokens,
                            completion_tokens=usage.completion_tokens,
                            reasks=self.reasks + reasks)  # fmt: skip


def error_line(exc: BaseException) -> str:
    """One line saying why: every field a validation error names, or the first line."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: "
            f"{str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        )
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
