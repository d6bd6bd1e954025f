"""Grounding: is a piece of a summary backed by the words of its abstract?

Abstracts come from LaTeX sources, so `50\\%`, `17.5times`, `$\\sim$3x` and
`10^{3}` must compare equal to what a model writes (`50%`, `17.5x`, `~3x`).
Everything here works on text normalised by `plain_text`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ._items import normalize_text

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


# A clause of a sentence starts at its start or after `,` `;` `:` (then a space), an opening
# parenthesis or a dash, and ends at its end or before the same marks (or a closing
# parenthesis). Shorter than this many words, a bounded span is a list item or a bare
# figure ("3x"), not a statement of what was measured.
CLAUSE_MIN_WORDS = 4
_CLAUSE_OPENS = re.compile(r"(?:^|[,;:] |[(\u2013\u2014] ?| - )$")
_CLAUSE_CLOSES = re.compile(r"(?:$|[,;:](?: |$)|[)\u2013\u2014]| - )")


def quoted_sentence(abstract: str, quote: str) -> str | None:
    """The sentence of `abstract` that `quote` is, or holds `quote` as a clause; else None.

    Compared as plain text, ignoring case and the closing period. A clause is a span of
    one sentence bounded by its ends or by `,` `;` `:` parentheses or dashes, of at least
    `CLAUSE_MIN_WORDS` words: "3x" is a fragment, not a quote.
    """
    needle = _bare(quote)
    if not needle:
        return None
    clause = len(needle.split()) >= CLAUSE_MIN_WORDS
    for sentence, bare in _bare_sentences(abstract):
        if needle == bare or (clause and _is_clause(needle, bare)):
            return sentence
    return None


def sentence_holding(abstract: str, value: str) -> str | None:
    """The one sentence of `abstract` that states every number of `value`.

    None when `value` has no number, or when no sentence or several do: only an
    unambiguous sentence can stand as a value's quote.
    """
    wanted = numbers_in(value)
    if not wanted:
        return None
    holding = [s for s, _ in _bare_sentences(abstract) if wanted <= numbers_in(s)]
    return holding[0] if len(holding) == 1 else None


def _bare(text: str) -> str:
    return plain_text(text).casefold().strip(" ,;:").rstrip(" .!?")


# Each gain's quote is looked up in its abstract's sentences, again on every re-ask.
@lru_cache(maxsize=1024)
def _bare_sentences(abstract: str) -> tuple[tuple[str, str], ...]:
    return tuple((s, _bare(s)) for s in sentences(abstract))


def _is_clause(needle: str, sentence: str) -> bool:
    start = sentence.find(needle)
    while start >= 0:
        end = start + len(needle)
        if _CLAUSE_OPENS.search(sentence[:start]) and _CLAUSE_CLOSES.match(sentence[end:]):
            return True
        start = sentence.find(needle, start + 1)
    return False


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
