"""A finished batch's answers, read from its output and error files, and the verdict on each.

An answer is judged by the same code as a live one (`summarize._core.verdict`); what
is batch's own is reading the provider's files, and the answers a batch can lack
(expired, cancelled, failed as a whole). The request lines are `request_lines`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from .._core.strategy import Question
from .._core.verdict import Verdict, failed, judge_completion
from .._errors import ErrorType, InputError, OutputError
from .._items import Item
from .._jsonl import line_at, read_jsonl

# Request errors that a second try can fix; any other 4xx is the request's own fault.
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_UNANSWERED = frozenset({"batch_expired", "batch_cancelled"})


@dataclass(frozen=True, slots=True)
class Answer:
    """What the provider's output or error file says about one request."""

    custom_id: str
    status_code: int | None
    body: dict[str, Any] | None
    error_code: str | None = None
    error_message: str | None = None


class Answers:
    """A finished batch's answers by `custom_id`, read from its files one at a time.

    Only each id's file and byte offset is held (a chunk may hold 50,000 answers of a
    few kB each); when both files name an id, the output file's answer wins. The files
    stay open until `close()`.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self._at: dict[str, tuple[Path, int]] = {}
        self._open: dict[Path, IO[bytes]] = {}
        for path in paths:  # errors first, output last
            for offset, answer in _lines(path):
                self._at[answer.custom_id] = (path, offset)

    def get(self, custom_id: str) -> Answer | None:
        """The answer about `custom_id`, or None if the batch has none."""
        where = self._at.get(custom_id)
        if where is None:
            return None
        path, offset = where
        try:
            fh = self._open.get(path)
            if fh is None:
                fh = self._open[path] = path.open("rb")
            return _answer(line_at(fh, offset, path=path, expect=dict), path, None)
        except InputError as exc:  # the file changed since it was read
            raise OutputError(f"{exc.path}: not a batch answer line ({exc.reason})") from None
        except OSError as exc:
            raise OutputError(f"{path}: cannot read ({exc.strerror})") from exc

    def close(self) -> None:
        """Close the answer files."""
        for fh in self._open.values():
            fh.close()
        self._open.clear()


def _lines(path: Path) -> Iterator[tuple[int, Answer]]:
    """Each answer line of a file, with its byte offset."""
    try:
        for line in read_jsonl(path, expect=dict):
            yield line.offset, _answer(line.value, path, line.number)
    except InputError as exc:
        if exc.line is None:  # the file, not a line
            raise OutputError(str(exc)) from None
        raise OutputError(f"{path}:{exc.line}: not a batch answer line ({exc.reason})") from None


def _answer(line: dict[str, Any], path: Path, number: int | None) -> Answer:
    if "custom_id" not in line:
        where = f"{path}:{number}" if number is not None else str(path)
        raise OutputError(f"{where}: not a batch answer line (no custom_id)")
    custom_id = str(line["custom_id"])
    response, error = line.get("response") or {}, line.get("error") or {}
    if not isinstance(response, dict) or not isinstance(error, dict):
        # One request's answer is unreadable, not the file: that request is sent again.
        return Answer(custom_id, None, None, "malformed_answer", "the answer line is malformed")
    return Answer(
        custom_id=custom_id,
        status_code=response.get("status_code"),
        body=response.get("body"),
        error_code=error.get("code"),
        error_message=error.get("message"),
    )


def judge(
    answer: Answer | None,
    item: Item,
    asked: Question,
    *,
    batch_status: str,
    batch_error: str | None = None,
) -> Verdict:
    """Validate an answer exactly as a live one is validated, or say what went wrong."""
    if answer is None:
        if batch_error is not None:  # retried as a whole batch already: final
            return failed(ErrorType.PROVIDER, f"the batch failed: {batch_error}", None)
        if batch_status == "completed":
            return failed(ErrorType.PROVIDER, "the completed batch has no answer for it",
                           "resend")  # fmt: skip
        return failed(ErrorType.EXPIRED, f"the batch ended {batch_status} without an answer",
                       "resend")  # fmt: skip
    if answer.error_code is not None and answer.status_code is None:
        kind = ErrorType.EXPIRED if answer.error_code in _UNANSWERED else ErrorType.PROVIDER
        return failed(kind, f"{answer.error_code}: {answer.error_message or ''}".strip(),
                       "resend")  # fmt: skip
    if answer.status_code != 200 or answer.body is None:
        return _http_error(answer)
    verdict = judge_completion(answer.body, asked, item)
    if verdict.repair == "longer":
        # A follow-up batch is written at its chunk's `max_tokens`: the cut-off answer
        # is re-asked, as an invalid one is, within `max_reasks`.
        return replace(verdict, repair="reask")
    return verdict


def _http_error(answer: Answer) -> Verdict:
    # The provider's file says what it says: a status or a body of the wrong type is no crash.
    status = answer.status_code if isinstance(answer.status_code, int) else 0
    body = answer.body if isinstance(answer.body, dict) else {}
    error = body.get("error")
    detail = error.get("message") if isinstance(error, dict) else None
    message = f"HTTP {status}: {detail or 'no message'}"
    if status == 429:
        return failed(ErrorType.RATE_LIMIT, message, "resend")
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    return failed(ErrorType.PROVIDER, message, "resend" if retryable else None)
