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

from . import _grounding as grounding

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
_PHRASE_WORDS = 7
_CLAUSE_BREAK = re.compile(r"[;:()]|,(?!\d)")
_CLAUSE_BREAK_OUTSIDE = re.compile(r"[;:]|,(?!\d)")
_UNIT = re.compile(r"\d\s+([A-Za-z][A-Za-z-]*)$")  # "0.4/0.6 BLEU", not "40 times"
# Figures joined to the one named: "24.8% and 27% cost" measure the same thing.
_JOINED = re.compile(rf"^(?:\s*(?:,|and|or)\s*{_NUM}\S*)+")
# Where a phrase after a figure ends: another clause, a comparison, a condition.
_STOP = re.compile(
    r"and|or|while|which|when|whereas|compared|than|with|without|using|by|but|vs|versus|"
    r"respectively|thereby|thus|making|resulting|enabling|allowing|"
    r"is|are|was|were|be|been|has|have|can|could|would|will"
)
_FUNCTION_WORD = re.compile(
    r"the|a|an|of|at|for|on|in|to|from|into|its|their|our|up|over|about|nearly|almost|"
    r"only|just|around|as|than"
)
_ARTICLE = re.compile(r"^(?:(?:that|the|a|an|its|their|our|this|these)\s+)+", re.IGNORECASE)
_QUALIFIER = r"(?:up to\s+|over\s+|almost\s+|nearly\s+|about\s+|around\s+)?"
# The figure named by the noun before it: "an absolute improvement up to 52.5%".
_NAMED = re.compile(
    r"(?P<what>(?:[\w-]+\s+){0,2}(?:improvements?|gains?|reductions?|speed-?ups?|increases?|"
    rf"decreases?|savings?|boosts?))\s+(?:of\s+)?{_QUALIFIER}$",
    re.IGNORECASE,
)
# "model size can be reduced by over 50%": the subject of a passive verb.
_PASSIVE = re.compile(
    r"(?:^|\bthat\s+|,\s*)(?P<what>(?:[\w-]+\s+){0,3}?[\w-]+)\s+(?:can be|is|are|was|were)\s+"
    rf"(?:\w+ly\s+)?(?:reduced|improved|increased|cut|decreased|accelerated|lowered|shortened)"
    rf"\s+by\s+{_QUALIFIER}$",
    re.IGNORECASE,
)
# The object of the verb a figure after "by" changes: "reduces the KV memory by up to 2.55x".
_CHANGED = re.compile(
    r"\b(?:reduc|improv|increas|decreas|cut|boost|lower|rais|accelerat|speed\w*\s+up|"
    r"scal\w*\s+up|shrink|compress|sav|enhanc|shorten|lift|bring\w*\s+down)\w*\s+"
    rf"(?P<what>(?:(?!\bby\b)[^,;:()]){{3,80}}?)\s+by\s+{_QUALIFIER}"
    rf"(?:{_NUM}\S*\s*(?:,|and|or)\s*)*$",
    re.IGNORECASE,
)
# A second difference joined to one after "by": "by 0.4/0.6 BLEU ... and 5.6/3.0 PPL".
_JOINED_DIFFERENCE = re.compile(rf"\band\s+({_NUM}(?:/{_NUM})?\s+[A-Z][A-Za-z]*)")
_ONE = re.compile(r"1(?:\.0+)?\s*(?:x|times|-fold|\u00d7)")
_SCORE = re.compile(
    r"\s*(?:top-\d\s+)?(?:accuracy|mAP|F1|score)\b(?!\s+(?:improvement|gain|increase|boost))",
    re.IGNORECASE,
)
_BY = re.compile(r"\bby\s+(?:up to\s+)?$")
# The level of what is compared against, stated after it: "the state-of-the-art of 43%".
_BASELINE_LEVEL = re.compile(
    r"\b(?:state[- ]of[- ]the[- ]art|SOTA|baselines?|previous(?: best)?|prior(?: best)?)\b"
    rf"(?:(?!speed|improv|gain|reduc|boost|increas)[^,;()]){{0,40}}?\b(?:of|at)\s+{_QUALIFIER}$",
    re.IGNORECASE,
)
# A fall in quality written after a figure: what the gain costs.
_COST_AFTER = re.compile(
    r"\s*(?:(?:accuracy|performance|quality)\s+(?:drop|loss|degradation)|"
    r"(?:drop|loss|degradation)\s+(?:in|of)\s+(?:\w+\s+)?(?:accuracy|performance|quality))\b",
    re.IGNORECASE,
)
_OVERHEAD = re.compile(r"\boverheads?\b", re.IGNORECASE)
_LOWERS = re.compile(r"\b(?:reduc|lower|cut|decreas|minimi|sav|eliminat)\w*", re.IGNORECASE)
_COMPARES = re.compile(
    r"\b(?:faster|speed\w*|improv\w*|reduc\w*|fewer|less|more|higher|lower|better|"
    r"outperform\w*|gains?|sav\w+|cuts?|boost\w*|increas\w*|decreas\w*|than|compared|"
    r"relative|accelerat\w*|smaller|larger|drops?|rises?|over)\b",
    re.IGNORECASE,
)

# How large a figure is, written just before it: not a comparison.
_AMOUNT = re.compile(r"\b(?:(?:more|less|fewer) than|over)\s+$", re.IGNORECASE)
_CUE_WORDS_AFTER = 5


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure as the abstract writes it (plain text), in sentence `sentence` (1-based)."""

    sentence: int
    text: str
    label: str


def figures(sentences: list[str], *, max_quote: int, start: int = 1) -> list[Figure]:
    """The candidate gain figures of `sentences`, in reading order, at most one per text.

    Sentences before number `start` are background (what others reached, what a field
    hopes for): their figures are not the paper's gain.
    """
    found: list[Figure] = []
    for number, sentence in enumerate(sentences, 1):
        if len(sentence) > max_quote or number < start:
            continue  # a gain's quote is the whole sentence: too long to be one
        plain = grounding.plain_text(sentence)
        seen: list[str] = []
        patterns = [_RELATIVE, _DIFFERENCE]
        if _DIFFERENCE.search(plain):
            patterns.append(_JOINED_DIFFERENCE)
        for pattern in patterns:
            for match in pattern.finditer(plain):
                text = match.group(1).strip()
                if any(text in other for other in seen) or len(found) == MAX_FIGURES:
                    continue
                if (text.endswith("%") and not _compares(plain, match)) or _reported(
                    plain, match, text
                ):
                    continue
                seen.append(text)
                found.append(Figure(number, text, chr(ord("A") + len(found))))
    return found


def _compares(plain: str, match: re.Match[str]) -> bool:
    """Whether a percentage is read as a change: a comparison before it in its sentence
    ("reduces ... 90%"), or in the words right after it ("50% faster"). "More than" or
    "over" just before a figure is how large it is, not a comparison ("more than 99.9% of
    values"), and a cue far after it is about something else ("98.5% of the samples,
    which ... quality improvements")."""
    before = _AMOUNT.sub("", plain[: match.start(1)])
    # Figures joined to this one share the words after the last ("5%, 5% and 10% rise").
    rest = _JOINED.sub("", plain[match.end(1) :], count=1)
    after = " ".join(rest.split()[:_CUE_WORDS_AFTER])
    return bool(_COMPARES.search(before) or _COMPARES.search(after))


def _reported(plain: str, match: re.Match[str], text: str) -> bool:
    """Whether a figure reports a level or a cost, not a gain: "1x" (no change), a figure
    alone in parentheses ("accuracy (35.8%)"), a percentage that is a score ("87.3% top-1
    accuracy", but not "by 2.0% accuracy" or "2% accuracy improvements"), the score of
    what is beaten ("outperforming the state-of-the-art of 43%"), a price paid ("a 2.4%
    performance drop", "the overhead ... is a 1.05x increase", but not "cuts the overhead
    by 3x")."""
    before, after = plain[: match.start(1)], plain[match.end(1) :]
    if _ONE.fullmatch(text):
        return True
    if before.rstrip().endswith("(") and after.lstrip().startswith(")"):
        return True
    if (text.endswith("%") and _BASELINE_LEVEL.search(before)) or _COST_AFTER.match(after):
        return True
    if _OVERHEAD.search(before) and not _BY.search(before) and not _LOWERS.search(before):
        return True
    return text.endswith("%") and bool(_SCORE.match(after)) and not _BY.search(before)


def metric(sentence: str, text: str, *, limit: int = 120) -> str:
    """What the figure `text` measures, in the words of its sentence: a whole phrase,
    never a window cut mid-phrase.

    Tried in order: the unit written with the figure and the phrase after it
    ("0.4/0.6 BLEU on IWSLT14/WMT14" -> "BLEU on IWSLT14/WMT14"); the noun that names it
    ("an absolute improvement up to 52.5%"); the phrase after the figure ("3.3x higher
    throughput for BERT-Large pre-training"); the subject or object of the verb
    the figure changes ("reduces the communication volume by up to 5x" -> "communication
    volume", "model size can be reduced by 50%"); else the clause that holds it.
    Figures joined by "and" share what follows them ("24.8% and 27% cost").
    """
    plain = grounding.plain_text(sentence)
    start = plain.find(text)
    if start < 0:
        return text
    unit = written.group(1) if (written := _UNIT.search(text)) else ""
    before = plain[:start]
    rest = _JOINED.sub("", plain[start + len(text) :], count=1)
    after = _phrase(rest)
    named = _NAMED.search(before)
    changed = _CHANGED.search(before) or _PASSIVE.search(before)
    if unit:
        found = f"{unit} {after}" if after else unit
    elif named is not None:
        found = _ARTICLE.sub("", named.group("what"))
    elif after and not _FUNCTION_WORD.fullmatch(after.split()[0].casefold()):
        found = after
    elif changed is not None:
        found = " ".join((_ARTICLE.sub("", changed.group("what")), after)).strip()
    else:
        found = after or _clause(plain, start, start + len(text))
    return found if len(found) <= limit else text


def _phrase(rest: str) -> str:
    """The words that follow a figure, up to the end of their phrase."""
    words: list[str] = []
    for match in re.finditer(r"\S+", rest):
        word = match.group(0)
        bare = word.strip(",;:.()").casefold()
        if _STOP.fullmatch(bare) or word.startswith("(") or (not words and word[0].isdigit()):
            break  # another clause, an aside, another figure
        words.append(word.rstrip(",;:.)"))
        if word[-1] in ",;:.)(" or len(words) == _PHRASE_WORDS:
            break
    while words and _FUNCTION_WORD.fullmatch(words[-1].casefold()):
        words.pop()
    if words and words[0].casefold() == "of":
        words.pop(0)  # "saves 98% of compute costs"
    return " ".join(words)


def _clause(plain: str, start: int, end: int) -> str:
    """The piece of `plain` between punctuation that holds the figure at `start:end` (a
    comma inside a number, as in `10,000`, is not punctuation; a figure alone in
    parentheses is read with the clause around them)."""
    breaks = _CLAUSE_BREAK
    if plain[:start].rstrip().endswith("(") and plain[end:].lstrip().startswith(")"):
        breaks = _CLAUSE_BREAK_OUTSIDE
    lefts = [m.end() for m in breaks.finditer(plain, 0, start)]
    right = breaks.search(plain, end)
    return plain[lefts[-1] if lefts else 0 : right.start() if right else len(plain)].strip(" .")
