"""Figures: the numbers of an abstract that could state a gain, found before any model call.

A gain is an improvement stated with a figure, and most are written the same few
ways: a relative unit (`50%`, `3.3x`, `40 times`, `5-fold`) or a difference after
"by" (`by 0.4/0.6 BLEU`). A percentage is also how absolute scores are written
("reaches 78.5% accuracy"), so one counts only in a sentence that compares
("faster", "reduces", "than", "outperforms", ...). The extractive strategy offers
only these figures to a small model, which then chooses among them: what it may pick
is in the abstract by construction. Work on text normalised by
`grounding.plain_text`, so `50\\%` and `40times` read as `50%` and `40x`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import grounding

# Figures offered at most, a letter each: each costs prompt tokens, and a gain list holds four.
MAX_FIGURES = 10
_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_RELATIVE = re.compile(
    rf"(?<![\w.,/-])({_NUM}(?:\s*(?:-|to|/)\s*{_NUM})?\s*(?:%|x\b|\u00d7|times\b|-fold\b|\s?fold\b))"
)
_DIFFERENCE = re.compile(
    rf"\b(?:by|gain of|improvement of|increase of|reduction of|speedup of)\s+"
    rf"(?:up to\s+|over\s+|almost\s+|nearly\s+|about\s+|around\s+)?"
    rf"({_NUM}(?:/{_NUM})?(?:\s+[A-Z][A-Za-z]*)?)"
)
_CONTEXT_WORDS = 4
_COMPARES = re.compile(
    r"\b(?:faster|speed\w*|improv\w*|reduc\w*|fewer|less|more|higher|lower|better|"
    r"outperform\w*|gains?|sav\w+|cuts?|boost\w*|increas\w*|decreas\w*|than|compared|"
    r"relative|accelerat\w*|smaller|larger|drops?|over)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure as the abstract writes it (plain text), in sentence `sentence` (1-based)."""

    sentence: int
    text: str
    label: str


def figures(sentences: list[str], *, max_quote: int) -> list[Figure]:
    """The candidate gain figures of `sentences`, in reading order, at most one per text."""
    found: list[Figure] = []
    for number, sentence in enumerate(sentences, 1):
        if len(sentence) > max_quote:
            continue  # a gain's quote is the whole sentence: too long to be one
        plain = grounding.plain_text(sentence)
        compares = _COMPARES.search(plain) is not None
        seen: list[str] = []
        for pattern in (_RELATIVE, _DIFFERENCE):
            for match in pattern.finditer(plain):
                text = match.group(1).strip()
                if any(text in other for other in seen) or len(found) == MAX_FIGURES:
                    continue
                if text.endswith("%") and not compares:
                    continue
                seen.append(text)
                found.append(Figure(number, text, chr(ord("A") + len(found))))
    return found


def context(sentence: str, text: str, *, limit: int = 120) -> str:
    """The figure with the words around it in its sentence: what it measures, verbatim."""
    plain = grounding.plain_text(sentence)
    start = plain.find(text)
    if start < 0:
        return text
    end = start + len(text)
    before = [m.start() for m in re.finditer(r"\S+", plain[:start])][-_CONTEXT_WORDS:]
    after = [m.end() for m in re.finditer(r"\S+", plain[end:])][:_CONTEXT_WORDS]
    words = plain[before[0] if before else start : end + (after[-1] if after else 0)]
    words = words.strip(" ,;:.")
    return words if len(words) <= limit else text
