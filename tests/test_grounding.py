"""Grounding survives LaTeX leftovers, and the schema enforces it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from summarize import _grounding as grounding
from summarize._schema import Gain, Summary, summary_model_for

ABSTRACT = (
    "Training is slow. We propose FastTrain, a new schedule. "
    "FastTrain cuts cost by 50\\% and is 17.5times faster than $\\alpha$-SGD on 1,000 tasks."
)
GAIN_SENTENCE = grounding.sentences(ABSTRACT)[2]


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("50\\%", {50.0}),
        ("17.5times", {17.5}),
        ("1,000 tasks and 1000.0 more", {1000.0}),
        ("a $\\sim$3x gain", {3.0}),
        ("no figures here", set()),
        ("-2.5 points", {2.5}),
    ],
)
def test_numbers_are_values_whatever_the_latex(text: str, numbers: set[float]) -> None:
    assert grounding.numbers_in(text) == numbers


def test_quotes_match_across_whitespace_case_and_latex() -> None:
    assert grounding.contains_quote(ABSTRACT, "fasttrain cuts cost by   50% and is 17.5x faster")
    assert not grounding.contains_quote(ABSTRACT, "FastTrain cuts cost by 60%")
    assert not grounding.contains_quote(ABSTRACT, " . ")


def test_unsupported_numbers_names_only_the_invented_ones() -> None:
    assert grounding.unsupported_numbers("50% cheaper, 99% better", ABSTRACT) == {99.0}


def context() -> dict[str, str]:
    return {"abstract": ABSTRACT, "title": "FastTrain: Fast Training"}


def summary(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "problem": "Training takes too long.",
        "method": "A new training schedule.",
        "result": "Training becomes cheaper and faster.",
        "claimed_gain": {
            "gains": [{"quote": GAIN_SENTENCE, "metric": "cost", "value": "50%"}],
            "qualitative": None,
        },
    }
    return {**base, **changes}


def test_a_grounded_summary_validates() -> None:
    parsed = Summary.model_validate(summary(), context=context())
    assert parsed.claimed_gain.kind == "quantitative"


@pytest.mark.parametrize(
    ("gain", "reason"),
    [
        ({"quote": "It is 3x faster.", "metric": "speed", "value": "3x"}, "does not occur"),
        ({"quote": GAIN_SENTENCE, "metric": "speed", "value": "20x"}, "its quote does not state"),
        ({"quote": GAIN_SENTENCE, "metric": "speed", "value": "much"}, "should match pattern"),
        ({"quote": GAIN_SENTENCE, "metric": "speed", "value": '3" , "x'}, "should match pattern"),
    ],
)
def test_an_ungrounded_gain_is_rejected_with_the_reason(gain: dict[str, str], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Gain.model_validate(gain, context=context())


def test_numbers_in_sentences_must_come_from_the_abstract() -> None:
    with pytest.raises(ValidationError, match="result states numbers the abstract does not: 75"):
        Summary.model_validate(summary(result="It is 75% cheaper."), context=context())


def test_a_copied_passage_is_rejected_as_not_one_sentence() -> None:
    passage = "Training is slow. We propose FastTrain, a new schedule."
    with pytest.raises(ValidationError, match="must be one short sentence"):
        Summary.model_validate(summary(problem=passage), context=context())


def test_a_copy_of_the_title_or_an_empty_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="repeats the title"):
        Summary.model_validate(summary(problem="FastTrain: fast training."), context=context())
    with pytest.raises(ValidationError, match="must not be empty"):
        Summary.model_validate(summary(method="   "), context=context())


def test_no_quantitative_claim_is_a_valid_answer_distinct_from_words_only() -> None:
    none = Summary.model_validate(
        summary(claimed_gain={"gains": [], "qualitative": None}), context=context()
    )
    words = Summary.model_validate(
        summary(claimed_gain={"gains": [], "qualitative": "Training gets faster."}),
        context=context(),
    )
    assert (none.claimed_gain.kind, words.claimed_gain.kind) == ("none", "qualitative")


def test_the_request_schema_offers_only_the_abstracts_own_sentences_as_quotes() -> None:
    schema = summary_model_for(ABSTRACT).model_json_schema()
    gain = next(v for k, v in schema["$defs"].items() if k.startswith("Gain"))
    plain = [grounding.plain_text(s) for s in grounding.sentences(ABSTRACT)]
    assert gain["properties"]["quote"]["enum"] == plain
    assert list(gain["properties"]) == ["quote", "metric", "value"]


def test_a_sentence_with_a_double_quote_is_not_offered_to_the_grammar() -> None:
    abstract = 'We call it "Fast". It is 3x faster.'
    schema = summary_model_for(abstract).model_json_schema()
    gain = next(v for k, v in schema["$defs"].items() if k.startswith("Gain"))
    assert gain["properties"]["quote"]["const"] == "It is 3x faster."  # one choice
    assert summary_model_for('Only "quoted" text.') is Summary


def test_quote_choices_carry_no_backslash_for_the_grammar_converter() -> None:
    abstract = 'We use Nystr\\"om approximation. It is 50\\% faster than SVD.'
    schema = summary_model_for(abstract).model_json_schema()
    gain = next(v for k, v in schema["$defs"].items() if k.startswith("Gain"))
    choices = gain["properties"]["quote"]["enum"]
    assert choices == ["We use Nyström approximation.", "It is 50% faster than SVD."]
    assert all(grounding.contains_quote(abstract, choice) for choice in choices)
