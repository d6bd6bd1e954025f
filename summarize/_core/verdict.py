"""One answer judged: a validated summary, or why not and whether asking again can help.

Both transports judge a chat completion's JSON body here, with the same Pydantic
models and grounding checks, so a live record and a batch record pass the same
gate. The body's envelope is read first (`ChatReply`): a body that is no chat
completion (`{"choices": ["oops"]}`, token counts that are not numbers) is
`NotACompletion`, which the live path sends again like a 5xx and a batch resends.
`repair` says what may help: `reask` (send the rejected answer back with the
reason, `prompts/repair.md`), `resend` (the same request again), `longer` (the
same request with more room: the answer was cut off at `max_tokens`), or None.

What is exact is repaired here, without the model (`repair_quotes`): a gain whose
quote fails while exactly one sentence of the abstract states its value's numbers
gets that sentence as its quote, and the summary names the field it set
(`Summary.repaired`). Nothing else is: prose over its cap is re-asked with the cap
and its length, never cut, and a value that several sentences state is re-asked
with the sentences named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from .. import _grounding as grounding
from .._errors import ErrorType, SummaryError, error_line
from .._items import Item
from .._schema import Summary, grounded_in
from .._usage import NO_USAGE, Usage
from .strategy import Question

Repair = Literal["reask", "resend", "longer"]
# A cap in words as well as characters: small models count words, not characters (a
# generous 7 characters a word, spaces included, so that the words fit the characters).
CHARACTERS_PER_WORD = 7
# Of a re-ask's reason, what a log line keeps: its start says what it is about.
LOGGED_FAULT_CHARS = 300
# Lax: `5.0` and `"5"` are counts as some servers write them (a strict check resent,
# and paid for, a good answer up to max_retries times); words and lists are not.
_Count = Annotated[int, Field(ge=0)] | None


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
class Fault:
    """An invalid answer's first fault: its kind, counted per run, and what it says."""

    kind: str  # the field (list positions left out) and pydantic's type: `result: missing`
    text: str  # as the re-ask words it: `claimed_gain.gains.0.quote: the quote ...`


@dataclass(frozen=True, slots=True)
class Verdict:
    """One answer judged: a valid summary, or why not and whether a repair can help."""

    summary: Summary | None
    error: SummaryError | None = None
    repair: Repair | None = None
    answer: str | None = None
    usage: Usage = NO_USAGE
    fault: Fault | None = None  # of an answer that failed validation


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
    with grounded_in(abstract=item.abstract, title=item.title):
        try:
            summary = asked.finish(asked.answer_model.model_validate_json(text))
        except ValidationError as exc:
            repaired = _repaired(text, asked, item)
            if repaired is None:
                invalid = failed(ErrorType.VALIDATION, reasons(exc), "reask", answer=text,
                                 usage=usage)  # fmt: skip
                return replace(invalid, fault=first_fault(exc))
            summary = repaired
    return Verdict(summary, usage=usage)


def _repaired(text: str, asked: Question, item: Item) -> Summary | None:
    """The answer `text` valid once its quotes are repaired (`repair_quotes`), else None.

    A repair that leaves the answer invalid is dropped: the re-ask sends the model's own
    answer back, with every fault it has and the sentence each value is stated in."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    fields = repair_quotes(answer, item.abstract)
    if not fields:
        return None
    try:
        summary = asked.finish(asked.answer_model.model_validate(answer))
    except ValidationError:
        return None
    return summary.with_repaired(fields)


def repair_quotes(answer: Any, abstract: str) -> tuple[str, ...]:
    """Set, in `answer` (an abstractive answer's JSON, as parsed), each failing gain
    quote that the abstract decides; the fields set, by path.

    A quote fails when it is not a sentence (or a clause) of the abstract or does not
    state every number of its value. It is decided when exactly one sentence of the
    abstract states them all (`grounding.sentence_holding`): that sentence, as plain
    text (the form a constrained decoder offers), is the quote. Grounded by
    construction; no other field is touched, and a value no sentence or several
    sentences state is left for the re-ask.
    """
    claimed = answer.get("claimed_gain") if isinstance(answer, dict) else None
    gains = claimed.get("gains") if isinstance(claimed, dict) else None
    if not isinstance(gains, list):
        return ()
    fields: list[str] = []
    for number, gain in enumerate(gains):
        if not isinstance(gain, dict) or not isinstance(gain.get("value"), str):
            continue
        value, quote = grounding.plain_text(gain["value"]), gain.get("quote")
        if isinstance(quote, str) and _holds(abstract, quote, value):
            continue
        sentence = grounding.sentence_holding(abstract, value)
        if sentence is not None:
            gain["quote"] = grounding.plain_text(sentence)
            fields.append(f"claimed_gain.gains[{number}].quote")
    return tuple(fields)


def _holds(abstract: str, quote: str, value: str) -> bool:
    """Whether `quote` passes as the quote of `value` (the check of `schema.Gain`)."""
    in_abstract = grounding.quoted_sentence(abstract, quote) is not None
    return in_abstract and not grounding.unsupported_numbers(value, quote)


def reasons(exc: ValidationError) -> str:
    """Why an answer failed, one line, in terms that say how to fix it: a field over its
    cap names the cap and its length (`error_line` words every other fault)."""
    return "; ".join(_worded(error) for error in exc.errors(include_url=False))


def first_fault(exc: ValidationError) -> Fault:
    """The first fault of an invalid answer, worded as `reasons` words it."""
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in error["loc"] if not isinstance(p, int)) or "answer"
    return Fault(f"{field}: {error['type']}", _worded(error))


def _worded(error: ErrorDetails) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "answer"
    if error["type"] == "string_too_long" and isinstance(error["input"], str):
        cap = (error.get("ctx") or {}).get("max_length")
        length = len(error["input"])
        words = f" (about {cap // CHARACTERS_PER_WORD} words)" if isinstance(cap, int) else ""
        return (f"{where}: {length} characters, over the cap: at most {cap} "
                f"characters{words}; say it in fewer words, one whole sentence")  # fmt: skip
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"


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
