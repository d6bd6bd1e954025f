"""`eval`'s `faithful` is recomputed on its own terms, not with the validator's code.

It reads numbers its own way (every run of digits) and quotes its own way (pieces of
the abstract between punctuation), so a flaw in either check shows as a disagreement.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import pytest

import summarize._evaluate as scoring
from summarize._evaluate import evaluate, grounding_problems
from summarize._review import read_json_lines
from summarize._schema import Gain, Summary

GOLD = Path(__file__).parent / "data" / "gold.jsonl"
INVENTED = " on 8 GPUs vs the 2023 state of the art (99.9% mAP)"
ABSTRACT = (
    "Serving large models is costly. We quantise weights to int8 with a learned scale. "
    "Our kernel runs 2.5x faster than fp32 inference, with 40\\% less memory."
)


@pytest.fixture
def gold() -> list[dict[str, Any]]:
    return read_json_lines(GOLD)


def first_gain(record: dict[str, Any]) -> dict[str, Any]:
    gain: dict[str, Any] = record["claimed_gain"]["gains"][0]
    return gain


def test_evaluate_shares_no_code_with_the_validators() -> None:
    tree = ast.parse(Path(scoring.__file__).read_text("utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"_grounding", "_schema", "summarize._grounding", "summarize._schema"}


def test_every_gold_record_passes_both_the_validator_and_faithful(
    gold: list[dict[str, Any]],
) -> None:
    for line in gold:
        answer = {name: line[name] for name in ("problem", "method", "result", "claimed_gain")}
        context = {"abstract": line["abstract"], "title": line["title"]}
        Summary.model_validate(answer, context=context)
    assert [(g["title"], grounding_problems(g)) for g in gold if grounding_problems(g)] == []


def test_faithful_catches_a_number_only_in_a_metric(gold: list[dict[str, Any]]) -> None:
    predicted = copy.deepcopy(gold)
    target = next(r for r in predicted if r["claimed_gain"]["gains"])
    first_gain(target)["metric"] += INVENTED
    assert grounding_problems(target) == ["numbers not in the abstract: ['2023', '8', '99.9']"]
    assert evaluate(gold, predicted, embeddings=False).faithful == len(gold) - 1


def test_faithful_catches_a_quote_that_is_a_fragment(gold: list[dict[str, Any]]) -> None:
    predicted = copy.deepcopy(gold)
    target = next(r for r in predicted if r["claimed_gain"]["gains"])
    first_gain(target)["quote"] = first_gain(target)["value"]
    assert grounding_problems(target)[0].startswith("quote is a fragment")
    scores = evaluate(gold, predicted, embeddings=False)
    assert scores.faithful == len(gold) - 1 and scores.quotes_found == scores.quotes - 1


@pytest.mark.parametrize(
    ("quote", "problem"),
    [
        ("Our kernel runs 2.5x faster than fp32 inference, with 40% less memory.", None),
        ("our kernel runs 2.5times faster than FP32 inference", None),
        ("with 40\\% less memory", None),
        ("Serving large models is costly", None),
        ("2.5x faster", "quote is a fragment"),
        ("runs 2.5x faster than fp32", "quote is a fragment"),
        ("Our kernel runs 3x faster than fp32 inference.", "quote not in the abstract"),
    ],
)
def test_a_quote_is_a_sentence_or_a_clause_by_faithfuls_own_reading(
    quote: str, problem: str | None
) -> None:
    found = scoring.quote_problem(ABSTRACT, quote)
    assert (found.split(":")[0] if found else None) == problem


def test_numbers_are_every_run_of_digits_compared_as_values() -> None:
    assert scoring.figures_in(
        "50\\% of 1,000 tasks, 17.5times, 1000.0 and 10^{3}"
    ) == scoring.figures_in("50 1000 17.5 3 10")
    assert scoring.figures_in("int8 on A100 GPUs") == scoring.figures_in("8 and 100")


def test_faithful_reads_figures_in_names_that_the_validator_skips() -> None:
    # The two checks disagree here by design: `int4` is a name to the validator (no
    # number), while faithful counts its 4, which this abstract never writes (int8).
    gain = {
        "quote": "Our kernel runs 2.5x faster than fp32 inference, with 40% less memory.",
        "metric": "int4 inference speed",
        "value": "2.5x",
    }
    Gain.model_validate(gain, context={"abstract": ABSTRACT})
    record = {
        "abstract": ABSTRACT,
        "problem": "Serving is costly.",
        "method": "Weights are quantised.",
        "result": "Inference gets faster.",
        "claimed_gain": {"gains": [gain], "qualitative": None},
    }
    assert grounding_problems(record) == ["numbers not in the abstract: ['4']"]
