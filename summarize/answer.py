"""One answer judged: a validated summary, or why not and whether asking again can help.

Both transports judge a chat completion's JSON body here, with the same Pydantic
models and grounding checks, so a live record and a batch record pass the same
gate. `repair` says what may help: `reask` (send the rejected answer back with
the reason, `prompts/repair.md`), `resend` (the same request again), or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from .errors import ErrorType, SummaryError, error_line
from .items import Item
from .schema import Summary, grounded_in
from .strategy import Question
from .usage import NO_USAGE, Usage

Repair = Literal["reask", "resend"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One answer judged: a valid summary, or why not and whether a repair can help."""

    summary: Summary | None
    error: SummaryError | None = None
    repair: Repair | None = None
    answer: str | None = None
    usage: Usage = NO_USAGE


def judge_completion(body: dict[str, Any], asked: Question, item: Item) -> Verdict:
    """Validate a chat completion's answer to `asked` about `item`."""
    usage = usage_of(body)
    choices = body.get("choices") or []
    if not choices:
        return failed(ErrorType.PROVIDER, "the answer had no choices", "resend", usage=usage)
    choice = choices[0]
    message = choice.get("message") or {}
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        refusal = message.get("refusal") or "content filter"
        return failed(ErrorType.REFUSED, f"the model refused: {refusal}", None, usage=usage)
    text = answer_text(message)
    if choice.get("finish_reason") == "length":
        return failed(ErrorType.TRUNCATED, "the answer was cut off at the token limit",
                      "reask", answer=text, usage=usage)  # fmt: skip
    try:
        with grounded_in(abstract=item.abstract, title=item.title):
            summary = asked.finish(asked.answer_model.model_validate_json(text))
    except ValidationError as exc:
        return failed(ErrorType.VALIDATION, error_line(exc), "reask", answer=text, usage=usage)
    return Verdict(summary, usage=usage)


def answer_text(message: dict[str, Any]) -> str:
    """The answer's JSON: the arguments of the tool call, or the content if there is none."""
    calls = message.get("tool_calls") or []
    if calls:
        return str(calls[0].get("function", {}).get("arguments") or "")
    return str(message.get("content") or "")


def usage_of(body: dict[str, Any]) -> Usage:
    """The tokens a completion reports."""
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


def failed(
    kind: ErrorType,
    message: str,
    repair: Repair | None,
    *,
    answer: str | None = None,
    usage: Usage = NO_USAGE,
) -> Verdict:
    """A verdict against an answer."""
    error = SummaryError(
        message,
        error_type=kind,
        raw_output=answer,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
    )
    return Verdict(None, error, repair, answer, usage)
