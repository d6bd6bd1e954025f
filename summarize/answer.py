"""One answer judged: a validated summary, or why not and whether asking again can help.

Both transports judge a chat completion's JSON body here, with the same Pydantic
models and grounding checks, so a live record and a batch record pass the same
gate. The body's envelope is read first (`ChatReply`): a body that is no chat
completion (`{"choices": ["oops"]}`, token counts that are not numbers) is
`NotACompletion`, which the live path sends again like a 5xx and a batch resends.
`repair` says what may help: `reask` (send the rejected answer back with the
reason, `prompts/repair.md`), `resend` (the same request again), `longer` (the
same request with more room: the answer was cut off at `max_tokens`), or None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from .errors import ErrorType, SummaryError, error_line
from .items import Item
from .schema import Summary, grounded_in
from .strategy import Question
from .usage import NO_USAGE, Usage

Repair = Literal["reask", "resend", "longer"]
_Count = Annotated[StrictInt, Field(ge=0)] | None


class NotACompletion(Exception):
    """A reply that is no chat completion at all: sent again, like a 5xx."""


class _Envelope(BaseModel):
    # Servers add fields of their own (`logprobs`, `system_fingerprint`, ...): ignored.
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Function(_Envelope):
    name: str | None = None
    # Some servers send the arguments as a JSON object rather than a string: read as is.
    arguments: str | dict[str, Any] | None = None


class _ToolCall(_Envelope):
    function: _Function


class _Message(_Envelope):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    refusal: str | None = None

    def answer_text(self) -> str:
        """The answer's JSON: the arguments of the tool call, or the content if there is none."""
        if self.tool_calls:
            arguments = self.tool_calls[0].function.arguments
            if isinstance(arguments, dict):
                return json.dumps(arguments, ensure_ascii=False)
            return arguments or ""
        return self.content or ""


class _Choice(_Envelope):
    message: _Message
    finish_reason: str | None = None


class _TokenDetails(_Envelope):
    cached_tokens: _Count = None


class _Usage(_Envelope):
    prompt_tokens: _Count = None
    completion_tokens: _Count = None
    total_tokens: _Count = None
    prompt_tokens_details: _TokenDetails | None = None


class ChatReply(_Envelope):
    """The parts of a chat completion's body that are read, checked for their types."""

    choices: list[_Choice]
    usage: _Usage | None = None

    @property
    def tokens(self) -> Usage:
        """The tokens the completion reports (0 for what it leaves out)."""
        usage = self.usage or _Usage()
        details = usage.prompt_tokens_details or _TokenDetails()
        return Usage(
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            cached_tokens=details.cached_tokens or 0,
        )

    @property
    def total_tokens(self) -> int:
        """The total the completion reports, else prompt plus completion tokens."""
        reported = self.usage.total_tokens if self.usage else None
        return reported if reported is not None else self.tokens.total


def read_reply(body: object) -> ChatReply:
    """`body` as a chat completion, or `NotACompletion` saying what is wrong with it."""
    try:
        return ChatReply.model_validate(body)
    except ValidationError as exc:
        raise NotACompletion(f"the reply was no chat completion ({error_line(exc)})") from None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One answer judged: a valid summary, or why not and whether a repair can help."""

    summary: Summary | None
    error: SummaryError | None = None
    repair: Repair | None = None
    answer: str | None = None
    usage: Usage = NO_USAGE


def judge_completion(body: object, asked: Question, item: Item) -> Verdict:
    """Validate a chat completion's JSON body, answering `asked` about `item`.

    A body that is no chat completion is a provider error worth a resend."""
    try:
        reply = read_reply(body)
    except NotACompletion as exc:
        return failed(ErrorType.PROVIDER, str(exc), "resend")
    return judge_reply(reply, asked, item)


def judge_reply(reply: ChatReply, asked: Question, item: Item) -> Verdict:
    """Validate a chat completion's answer to `asked` about `item`."""
    usage = reply.tokens
    if not reply.choices:
        return failed(ErrorType.PROVIDER, "the answer had no choices", "resend", usage=usage)
    choice = reply.choices[0]
    message = choice.message
    if message.refusal or choice.finish_reason == "content_filter":
        refusal = message.refusal or "content filter"
        return failed(ErrorType.REFUSED, f"the model refused: {refusal}", None, usage=usage)
    text = message.answer_text()
    if choice.finish_reason == "length":
        # Not a judged answer: the same question with more room may well be answered.
        return failed(ErrorType.TRUNCATED, "the answer was cut off at the token limit",
                      "longer", answer=text, usage=usage)  # fmt: skip
    try:
        with grounded_in(abstract=item.abstract, title=item.title):
            summary = asked.finish(asked.answer_model.model_validate_json(text))
    except ValidationError as exc:
        return failed(ErrorType.VALIDATION, error_line(exc), "reask", answer=text, usage=usage)
    return Verdict(summary, usage=usage)


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
