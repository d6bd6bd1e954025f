"""Picks: which sentences of an abstract are its problem, its method and its result, by rule.

Abstracts are written in a few set moves: background, the gap ("however ... remains
costly"), what the authors do ("we propose X", then how X works), then what they
found ("experiments show X outperforms ..."). Each field is scored on where it lives
and on its own cue words, and ranked best first:

- problem: sentences before the first in the authors' voice ("we", "our", "this
  paper"; not a gap that says "however, ... we often limit", which is everyone's
  "we"), the nearer it the better, with a gap or contrast cue;
- method: from the first sentence in the authors' voice on, the sentences that say
  how (mechanism words: "via", "based on", "framework", "propose", ...), not a question;
- result: after the first sentence in the authors' voice, late in the abstract, with a
  finding cue ("we show", "outperforms", "achieves", "experiments"), and not a sentence
  that proposes, looks ahead ("future research") or hands over ("we provide"); the
  finding in plain words rather than the long sentence of its figures, which the
  record's gains already quote.

A sentence that announces code or a URL is none of them, unless it also introduces
the work ("We introduce X, whose weights will be available"). The extractive strategy
offers a small model only the top few of each field; with one, the rule alone decides.
The weights were set on half of the gold set (`bench/embedded.py --split dev`) and
checked on the other half.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import _figures as figures

FIELDS = ("problem", "method", "result")
_I = re.IGNORECASE
RELEASE = re.compile(
    r"https?://|github\.com|\b(?:code|data|models?|weights)\b[^.]{0,40}"
    r"\b(?:available|released|open-sourced?)\b",
    _I,
)
AUTHORS = re.compile(r"\b(?:we|our|this (?:paper|work|study|article|survey))\b", _I)
_GAP = re.compile(
    r"\b(?:however|but|remains?|remaining|challeng\w*|limit\w*|suffer\w*|costly|expensive|"
    r"bottleneck\w*|lack\w*|difficult\w*|hinder\w*|struggl\w*|problems?|issues?|quadratic|"
    r"prohibitive\w*|inefficien\w*|unclear|despite|although|yet)\b",
    _I,
)
# A gap told in the first person plural is everyone's "we", not the authors' work:
# "However, when it comes to inference, we often limit the compute to one attempt."
_GENERIC_WE = re.compile(
    r"(?:however|but|yet|despite|although|unfortunately)\b"
    r"(?![^.]*\b(?:we (?:propose|introduce|present|develop|design)|this (?:paper|work)))",
    _I,
)
_PROPOSES = re.compile(
    r"\b(?:we (?:propose|introduce|present|develop|design|describe|build)|"
    r"this (?:paper|work)|in this (?:paper|work))\b",
    _I,
)
# How a method is told: each distinct word counts.
_MECHANISM = re.compile(
    r"\b(?:specifically|consists?|compris\w*|based on|via|leverag\w*|employ\w*|uses?|using|"
    r"combin\w*|partition\w*|introduc\w*|propos\w*|framework|architecture|mechanism|"
    r"technique\w*|scheme|algorithm|method)\b",
    _I,
)
_FINDING = re.compile(
    r"\b(?:we (?:show|find|demonstrate|observe)|show(?:s|n)? that|outperform\w*|achiev\w*|"
    r"results?|experiments?|improv\w*|surpass\w*|state[- ]of[- ]the[- ]art|faster|reduc\w*|"
    r"speed\w*|significantly|competitive|better|matches|empirical\w*|evaluat\w*|"
    r"performance|yields?|demonstrat\w*|effective\w*|consistently)\b",
    _I,
)


# What a paper leaves to others or hands over, not what it found.
_OUTLOOK = re.compile(
    r"\b(?:future|we hope|hope to|contribut\w*|remains? an?|we (?:also )?(?:provide|release|"
    r"discuss|outline)|aims? to)\b",
    _I,
)

# Words beyond which a result sentence is a list of settings and scores more than a finding.
_PLAIN_WORDS = 30


@dataclass(frozen=True, slots=True)
class _Abstract:
    sentences: list[str]
    usable: list[int]  # 0-based, release sentences left out
    first_own: int | None  # 0-based index of the first sentence in the authors' voice
    with_figure: frozenset[int]


def ranked(sentences: list[str]) -> dict[str, list[int]]:
    """Each field's candidate sentence numbers (1-based), best first."""
    abstract = _read(sentences)
    scorers = {"problem": _problem, "method": _method, "result": _result}
    ranking: dict[str, list[int]] = {}
    for name in FIELDS:
        score = {i: scorers[name](abstract, i) for i in abstract.usable}
        ranking[name] = [i + 1 for i in sorted(score, key=lambda i: (-score[i], i))]
    # A reader should not get the method's sentence again as the problem or the result:
    # the best sentence before it, or after it, when there is one.
    method = ranking["method"][0]
    for name, sign in (("problem", -1), ("result", 1)):
        order = ranking[name]
        better = next((n for n in order if (n - method) * sign > 0), None)
        if order[0] == method and better is not None:
            order.remove(better)
            order.insert(0, better)
    return ranking


def own_voice_starts(sentences: list[str]) -> int:
    """The number (1-based) of the first sentence in the authors' voice; 1 without one."""
    first = _read(sentences).first_own
    return 1 if first is None else first + 1


def _read(sentences: list[str]) -> _Abstract:
    every = range(len(sentences))
    # A sentence that introduces the work is kept even when it also promises the weights.
    usable = [
        i for i in every if not RELEASE.search(sentences[i]) or _PROPOSES.search(sentences[i])
    ] or list(every)
    own = [
        i for i in usable if AUTHORS.search(sentences[i]) and not _GENERIC_WE.match(sentences[i])
    ]
    found = figures.figures(sentences, max_quote=10_000)
    return _Abstract(
        sentences=sentences,
        usable=usable,
        first_own=own[0] if own else None,
        with_figure=frozenset(f.sentence - 1 for f in found),
    )


def _problem(abstract: _Abstract, i: int) -> float:
    text, first = abstract.sentences[i], abstract.first_own
    if first is None:
        score = -0.2 * i
    elif i < first:
        score = 2.0 - 0.5 * (first - 1 - i)  # the gap is stated just before the answer
    elif i == first:
        score = 0.5  # "To address X, we ..." when the abstract opens in the authors' voice
    else:
        score = -1.0 - 0.3 * (i - first)
    score += 1.0 if _GAP.search(text) else 0.0
    return score - (1.0 if i in abstract.with_figure else 0.0)


def _method(abstract: _Abstract, i: int) -> float:
    text, first = abstract.sentences[i], abstract.first_own or 0
    score = 0.3 * len({word.casefold() for word in _MECHANISM.findall(text)})
    score -= 1.0 if text.rstrip().endswith("?") else 0.0  # a question asks, it does not tell how
    return score - (1.0 if i < first else 0.1 * (i - first))


def _result(abstract: _Abstract, i: int) -> float:
    text, first = abstract.sentences[i], abstract.first_own
    last = len(abstract.sentences) - 1
    score = 2.0 * (i / last if last else 1.0)  # findings come late
    if first is not None and i <= first:
        score -= 2.0
    score += 1.0 if _FINDING.search(text) else 0.0
    score -= 1.0 if _PROPOSES.search(text) else 0.0
    score -= 1.0 if _OUTLOOK.search(text) else 0.0
    # The gains already quote the sentences of figures; the result is the finding they
    # illustrate ("significantly outperforms previous models"), told in a plain sentence.
    score -= 0.25 if i in abstract.with_figure else 0.0
    score -= 0.01 * max(0, len(text.split()) - _PLAIN_WORDS)
    # The last sentence is as often an outlook ("we hope ...") as a finding.
    return score - (0.5 if i == last and last else 0.0)


# An advantage claimed in words: a comparison, or a quality that sets the work apart.
_ADVANTAGE = re.compile(
    r"\b(?:outperform\w*|surpass\w*|better|faster|cheaper|smaller|superior|more (?:\w+ )?"
    r"(?:efficient|favou?rable|reliable|accurate|robust|diverse|powerful)|substantial\w*|"
    r"significant\w*|reduc\w*|cuts?|halves|unprecedented|state[- ]of[- ]the[- ]art|first|"
    r"powerful|advantage\w*|improv\w*|increase\w*|enabl\w*|gains?)\b",
    _I,
)
_COMPARED = re.compile(r"\b(?:than|compared|versus|previous\w*|prior|existing|baselines?)\b", _I)
_SURVEY = re.compile(r"\b(?:survey|review|overview|tutorial)\b", _I)


def claim(sentences: list[str], *, title: str = "", limit: int = 200) -> str | None:
    """The words in which the abstract claims an advantage, when it states no figure: the
    sentence (or, if longer than `limit`, its clause) with the most advantage cues, after
    the first in the authors' voice. None for a survey, or when nothing is claimed."""
    abstract = _read(sentences)
    own = [abstract.sentences[i] for i in abstract.usable if AUTHORS.search(abstract.sentences[i])]
    if _SURVEY.search(title) or any(_SURVEY.search(text) for text in own[:1]):
        return None
    start = abstract.first_own or 0
    best: tuple[int, str] | None = None
    for i in abstract.usable:
        for text in _pieces(abstract.sentences[i], limit):
            cues = len({w.casefold() for w in _ADVANTAGE.findall(text)})
            score = cues + (1 if cues and _COMPARED.search(text) else 0) - (i < start)
            if cues and (best is None or score > best[0]):
                best = (score, text)
    return best[1] if best is not None and best[0] >= _CLAIM_MIN else None


# Cues a claim needs: one advantage word is as often background ("LLMs have improved").
_CLAIM_MIN = 2


def _pieces(sentence: str, limit: int) -> list[str]:
    """The sentence, or its clauses when it is longer than `limit`."""
    if len(sentence) <= limit:
        return [sentence]
    return [p.strip() for p in re.split(r"[,;:]\s+", sentence) if 0 < len(p.strip()) <= limit]
