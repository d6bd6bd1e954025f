"""What the fake model answers: a summary grounded in the abstract of the request,
and the wrong answers the faults ask for."""

from __future__ import annotations

import json
import re
from typing import Any, Final

from pydantic import ValidationError

from .. import _grounding as grounding
from .._schema import SENTENCE_MAX, TITLE_COPY_OVERLAP, Gain, Summary

JSON = dict[str, Any]

DEFAULT_MODEL: Final = "fake-model"
REFUSAL_TEXT: Final = "I'm sorry, but I can't help with that request."
UNGROUNDED_QUOTE: Final = (
    "Our approach decisively outperforms every prior method on all benchmarks we tried."
)
_QUALITATIVE_MAX: Final = 200
_VALUE_MAX: Final = 60
_QUOTE_MAX: Final = 1200
_TOKEN_CHARS: Final = 4

_ABSTRACT_OPEN: Final = "<abstract>\n"
_ABSTRACT_CLOSE: Final = "\n</abstract>"
_PROPOSE = re.compile(r"\bwe\s+(?:propose|introduce|present)\b", re.IGNORECASE)
# A number (as `summarize.grounding` reads them) followed by a unit of improvement.
_GAIN = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"\s*(?:\\?%|\u00d7|\$?\\times\$?|x(?![A-Za-z0-9])|times\b|(?:percentage\s+)?points?\b)"
)
_DIGITS = re.compile(r"\d")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "".join(part for part in parts if isinstance(part, str))
    return ""


def _messages(body: JSON) -> list[JSON]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [message for message in messages if isinstance(message, dict)]


def prompt_parts(body: JSON) -> tuple[str, str]:
    """`(title, abstract)` of a request: from the last user message holding `<abstract>`.

    The abstract runs from the first `<abstract>\\n` to the last `\\n</abstract>`;
    without markers the whole last user message is the abstract. The product's prompt
    sends no title, so the title is always empty.
    """
    users = [_text_of(m.get("content")) for m in _messages(body) if m.get("role") == "user"]
    for text in reversed(users):
        start = text.find(_ABSTRACT_OPEN)
        end = text.rfind(_ABSTRACT_CLOSE)
        if start != -1 and end >= start + len(_ABSTRACT_OPEN):
            return "", text[start + len(_ABSTRACT_OPEN) : end]
    return "", users[-1] if users else ""


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-")


def _copies_title(text: str, title: str) -> bool:
    return bool(title) and (
        grounding.word_overlap(text, title) >= TITLE_COPY_OVERLAP and len(text) <= len(title) * 1.2
    )


def _plain_sentence(source: str, abstract: str, title: str, fallback: str) -> str:
    """A sentence field from an abstract sentence: short, no invented number, not the title."""
    text = " ".join(source.split())
    if _copies_title(text, title):
        text = f"The paper is about the following: {text}"
    text = _shorten(text, SENTENCE_MAX)
    if grounding.unsupported_numbers(text, abstract):
        text = " ".join(_DIGITS.sub("", text).split())
    return text or fallback


def _first_gain(sentences: list[str], abstract: str) -> JSON | None:
    for sentence in sentences:
        if len(sentence) > _QUOTE_MAX:
            continue
        for match in _GAIN.finditer(sentence):
            value = grounding.plain_text(match.group(0))
            if len(value) > _VALUE_MAX:
                continue
            gain = {"metric": "reported metric", "value": value, "quote": sentence}
            try:
                Gain.model_validate(gain, context={"abstract": abstract})
            except ValidationError:
                continue
            return gain
    return None


def grounded_summary(abstract: str, title: str = "") -> JSON:
    """A deterministic `Summary` dict that validates against `abstract` and `title`."""
    sentences = grounding.sentences(abstract)
    if not sentences:
        sentences = ["The abstract is empty."]
    method_source = next(
        (s for s in sentences if _PROPOSE.search(s)),
        sentences[1] if len(sentences) > 1 else sentences[0],
    )
    gain = _first_gain(sentences, abstract)
    summary: JSON = {
        "problem": _plain_sentence(sentences[0], abstract, title, "The problem is not stated."),
        "method": _plain_sentence(method_source, abstract, title, "The method is not stated."),
        "result": _plain_sentence(sentences[-1], abstract, title, "The result is not stated."),
        "claimed_gain": {"gains": [gain] if gain else [], "qualitative": None},
    }
    try:
        Summary.model_validate(summary, context={"abstract": abstract, "title": title})
    except ValidationError:
        summary = {
            "problem": "The abstract describes a research problem.",
            "method": "The authors describe their approach in words only.",
            "result": "The abstract reports an outcome without further detail.",
            "claimed_gain": {"gains": [], "qualitative": None},
        }
    return summary


def default_responder(body: JSON) -> JSON:
    """The arguments of an "ok" answer: `grounded_summary` of the request's abstract."""
    title, abstract = prompt_parts(body)
    return grounded_summary(abstract, title)


def _invented_number(abstract: str) -> str:
    present = grounding.numbers_in(abstract)
    value = 87.3
    while value in present:
        value = round(value + 1.1, 1)
    return f"{value:.1f}"


def _invented_summary(summary: JSON, abstract: str) -> JSON:
    number = _invented_number(abstract)
    quote = f"Our method improves accuracy by {number}% over the strongest prior work."
    return {
        **summary,
        "result": f"The method improves accuracy by {number}% over the strongest baseline.",
        "claimed_gain": {
            "gains": [{"metric": "accuracy", "value": f"{number}%", "quote": quote}],
            "qualitative": None,
        },
    }


def _ungrounded_summary(summary: JSON, abstract: str) -> JSON:
    # A figure the abstract does not state: a quote for a figure one of its sentences
    # states is no fault for the client, which sets that sentence (`answer.repair_quotes`).
    value = f"{_invented_number(abstract)}%"
    gain = {"metric": "reported metric", "value": value, "quote": UNGROUNDED_QUOTE}
    return {**summary, "claimed_gain": {"gains": [gain], "qualitative": None}}


def _tool_name(body: JSON) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        if isinstance(name, str):
            return name
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        name = tools[0].get("function", {}).get("name")
        if isinstance(name, str):
            return name
    return "Summary"


def prompt_tokens(body: JSON) -> int:
    chars = sum(len(_text_of(m.get("content"))) for m in _messages(body))
    extra = sum(len(json.dumps(body[key])) for key in ("tools", "response_format") if key in body)
    return max(1, chars // _TOKEN_CHARS + extra // _TOKEN_CHARS)
