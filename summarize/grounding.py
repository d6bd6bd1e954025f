"""Grounding: is a piece of a summary backed by the words of its abstract?

Abstracts come from LaTeX sources, so `50\\%`, `17.5times`, `$\\sim$3x` and
`10^{3}` must compare equal to what a model writes (`50%`, `17.5x`, `~3x`).
Everything here works on text normalised by `plain_text`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .items import normalize_text

_LATEX_ACCENT = re.compile(r"""\\(["'`^~])\{?([A-Za-z])\}?""")
_COMBINING = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303"}
_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+)")
_LATEX_ESCAPE = re.compile(r"\\([%$&#_{}~^,;! ])")
_BRACES_AND_MATH = re.compile(r"[{}$]")
# A number: optional sign, digits with optional thousands separators, optional decimals.
_NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w\d])\.\d+")
_ASCII_DIGIT = re.compile(r"[0-9]")
_NONE: frozenset[float] = frozenset()
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'“])")
# Words whose period ends an abbreviation, not a sentence: "BERT vs. GPT-2", "Child et
# al. (2019)", "e.g. U.S. patents", "Fig. 3". Compared case-folded, without the period.
# Not "etc", "sec" or "ms": they end sentences ("in 5 ms. We ...") as often as not.
ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "vs", "cf", "al", "fig", "figs", "eq", "eqs", "tab", "ref", "refs",
     "vol", "approx", "resp", "w.r.t", "incl", "ca", "dr", "prof", "mr", "jr", "u.s",
     "u.k", "e.u", "ph.d", "viz", "pp", "sect"}
)  # fmt: skip
_LAST_WORD = re.compile(r"(?:^|[\s(\[])([A-Za-z][A-Za-z.]*)\.$")
_WORDS = re.compile(r"\w+")

# Spelled-out LaTeX that stands for a symbol a model would write.
_LATEX_WORDS = {
    "times": "x",
    "sim": "~",
    "approx": "~",
    "pm": "±",
    "le": "<=",
    "leq": "<=",
    "ge": ">=",
    "geq": ">=",
    "times10": "x10",
}


# Sized for the abstracts in flight (at most 256) and their answers' fields; larger,
# the cache holds thousands of abstracts that will never come back.
@lru_cache(maxsize=1024)
def plain_text(text: str) -> str:
    """Normalise Unicode, LaTeX leftovers and white space for comparison."""
    # `Nystr\\"om` is Nyström: a letter and its accent, composed by NFKC below.
    text = _LATEX_ACCENT.sub(lambda m: m.group(2) + _COMBINING[m.group(1)], text)
    text = _LATEX_ESCAPE.sub(r"\1", text)
    text = _LATEX_COMMAND.sub(lambda m: _LATEX_WORDS.get(m.group(1), m.group(1)), text)
    text = _BRACES_AND_MATH.sub("", text)
    # `17.5times` (a command glued to the number) reads as `17.5x`.
    text = re.sub(r"(\d)\s*times\b", r"\1x", text)
    # A stray backslash is markup, never content.
    return normalize_text(text).replace("\u2212", "-").replace("\\", "")


# An abstract's numbers are read once per field checked against it, and again per re-ask.
@lru_cache(maxsize=1024)
def numbers_in(text: str) -> frozenset[float]:
    """Every number written in `text`, as values (`1,000` and `1000.0` are one)."""
    if text.isascii() and _ASCII_DIGIT.search(text) is None:
        return _NONE  # most sentences of a summary: no digit to read (NFKC adds none)
    found: set[float] = set()
    for match in _NUMBER.findall(plain_text(text)):
        cleaned = match.replace(",", "").replace("\u2212", "-").lstrip("+")
        try:
            value = float(cleaned)
        except ValueError:
            continue
        found.add(abs(value))
    return frozenset(found)


def contains_quote(abstract: str, quote: str) -> bool:
    """Whether `quote` occurs in `abstract`, ignoring case, white space and LaTeX."""
    needle = plain_text(quote).casefold().strip(" .")
    return bool(needle) and needle in plain_text(abstract).casefold()


def unsupported_numbers(text: str, source: str) -> frozenset[float]:
    """Numbers in `text` that `source` never writes."""
    return numbers_in(text) - numbers_in(source)


def sentences(text: str) -> list[str]:
    """Split an abstract into sentences, each kept verbatim (only stripped).

    A period after a listed abbreviation ("vs.", "e.g.", "et al.", "U.S.") does not end
    a sentence; one after a lone capital does ("We call it method X. It ...").
    """
    merged: list[str] = []
    for part in _SENTENCE_END.split(text.strip()):
        if not part.strip():
            continue
        if merged and _ends_in_abbreviation(merged[-1]):
            merged[-1] = f"{merged[-1]} {part.strip()}"
        else:
            merged.append(part.strip())
    return merged


def _ends_in_abbreviation(sentence: str) -> bool:
    match = _LAST_WORD.search(sentence)
    if match is None:
        return False
    return match.group(1).casefold() in ABBREVIATIONS


def word_overlap(a: str, b: str) -> float:
    """Share of the words of `a` that also appear in `b` (0..1)."""
    words_a = [w.casefold() for w in _WORDS.findall(a)]
    if not words_a:
        return 0.0
    words_b = {w.casefold() for w in _WORDS.findall(b)}
    return sum(w in words_b for w in words_a) / len(words_a)
