"""Batch request lines, and the verdict on each answer.

A request line carries the same prompt and the same `Summary` model as a live
call, sent as a strict JSON Schema response format; an answer is validated by the
same Pydantic models and grounding checks. Only the transport differs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import ValidationError

from ..client import error_line
from ..errors import ErrorType, OutputError, SummaryError
from ..items import Item
from ..prompt import Prompt
from ..schema import Summary, grounded_in, strict_json_schema, summary_model_for
from ..settings import EndpointSettings

BATCH_ENDPOINT: Final = "/v1/chat/completions"
# Request errors that a second try can fix; any other 4xx is the request's own fault.
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_UNANSWERED = frozenset({"batch_expired", "batch_cancelled"})

Repair = Literal["reask", "resend"]


def response_format(model: type[Summary] = Summary) -> dict[str, Any]:
    """OpenAI's strict structured-output format for `model`."""
    schema = strict_json_schema(model)
    return {"type": "json_schema", "json_schema": {"name": "Summary", "strict": True,
                                                   "schema": schema}}  # fmt: skip


@cache
def _default_format() -> dict[str, Any]:
    return response_format()


def request_line(
    item: Item,
    *,
    prompt: Prompt,
    endpoint: EndpointSettings,
    repair: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """One line of a batch input file; `custom_id` is the record id."""
    model = summary_model_for(item.abstract) if endpoint.constrain_quotes else None
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [*prompt.messages(title=item.title, abstract=item.abstract), *repair],
        "response_format": response_format(model) if model else _default_format(),
        **endpoint.sampling(),
        **endpoint.extra_body,  # what the SDK's `extra_body` merges into a live request
    }
    return {"custom_id": item.id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}


@dataclass(frozen=True, slots=True)
class Answer:
    """What the provider's output or error file says about one request."""

    custom_id: str
    status_code: int | None
    body: dict[str, Any] | None
    error_code: str | None = None
    error_message: str | None = None


def read_answers(path: Path) -> Iterator[Answer]:
    """The lines of a downloaded output or error file."""
    try:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if raw.strip():
                    yield _answer(raw, path, number)
    except OSError as exc:
        raise OutputError(f"{path}: cannot read ({exc.strerror})") from exc


def _answer(raw: bytes, path: Path, number: int) -> Answer:
    try:
        line = json.loads(raw)
        response = line.get("response") or {}
        error = line.get("error") or {}
        return Answer(
            custom_id=str(line["custom_id"]),
            status_code=response.get("status_code"),
            body=response.get("body"),
            error_code=error.get("code"),
            error_message=error.get("message"),
        )
    except (ValueError, KeyError, AttributeError) as exc:
        raise OutputError(f"{path}:{number}: not a batch answer line ({exc})") from None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one answer cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """One answer judged: a valid summary, or why not and whether a repair can help."""

    summary: Summary | None
    error: SummaryError | None = None
    repair: Repair | None = None
    answer: str | None = None
    usage: Usage = Usage()


def judge(
    answer: Answer | None,
    item: Item,
    *,
    batch_status: str,
    batch_error: str | None = None,
    constrain_quotes: bool = False,
) -> Verdict:
    """Validate an answer exactly as a live one is validated, or say what went wrong."""
    if answer is None:
        if batch_error is not None:  # retried as a whole batch already: final
            return _failed(ErrorType.PROVIDER, f"the batch failed: {batch_error}", None)
        if batch_status == "completed":
            return _failed(ErrorType.PROVIDER, "the completed batch has no answer for it",
                           "resend")  # fmt: skip
        return _failed(ErrorType.EXPIRED, f"the batch ended {batch_status} without an answer",
                       "resend")  # fmt: skip
    if answer.error_code is not None and answer.status_code is None:
        kind = ErrorType.EXPIRED if answer.error_code in _UNANSWERED else ErrorType.PROVIDER
        return _failed(kind, f"{answer.error_code}: {answer.error_message or ''}".strip(),
                       "resend")  # fmt: skip
    if answer.status_code != 200 or answer.body is None:
        return _http_error(answer)
    model = summary_model_for(item.abstract) if constrain_quotes else Summary
    return _judge_completion(answer.body, item, model)


def _http_error(answer: Answer) -> Verdict:
    status = answer.status_code or 0
    body = answer.body or {}
    detail = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
    message = f"HTTP {status}: {detail or 'no message'}"
    if status == 429:
        return _failed(ErrorType.RATE_LIMIT, message, "resend")
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    return _failed(ErrorType.PROVIDER, message, "resend" if retryable else None)


def _judge_completion(body: dict[str, Any], item: Item, model: type[Summary]) -> Verdict:
    usage = _usage(body)
    choices = body.get("choices") or []
    if not choices:
        return _failed(ErrorType.PROVIDER, "the answer had no choices", "resend", usage=usage)
    choice = choices[0]
    message = choice.get("message") or {}
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        refusal = message.get("refusal") or "content filter"
        return _failed(ErrorType.REFUSED, f"the model refused: {refusal}", None, usage=usage)
    text = _text(message)
    if choice.get("finish_reason") == "length":
        return _failed(ErrorType.TRUNCATED, "the answer was cut off at the token limit",
                       "reask", answer=text, usage=usage)  # fmt: skip
    try:
        with grounded_in(abstract=item.abstract, title=item.title):
            summary = model.model_validate_json(text)
    except ValidationError as exc:
        return _failed(ErrorType.VALIDATION, error_line(exc), "reask", answer=text, usage=usage)
    return Verdict(summary, usage=usage)


def _text(message: dict[str, Any]) -> str:
    """The answer's JSON: the content, or the arguments of a tool call."""
    calls = message.get("tool_calls") or []
    if calls:
        return str(calls[0].get("function", {}).get("arguments") or "")
    return str(message.get("content") or "")


def _usage(body: dict[str, Any]) -> Usage:
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


def _failed(
    kind: ErrorType,
    message: str,
    repair: Repair | None,
    *,
    answer: str | None = None,
    usage: Usage = Usage(),
) -> Verdict:
    error = SummaryError(
        message,
        error_type=kind,
        raw_output=answer,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
    )
    return Verdict(None, error, repair, answer, usage)
