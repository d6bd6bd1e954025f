"""The function tool: the answer model's schema, bare of words, with everything a
constrained decoder needs."""

from __future__ import annotations

import json
from typing import Any

import instructor
import pytest
from pydantic import ValidationError

from summarize._core.request import _compact, tool_for
from summarize._core.strategy import question
from summarize._items import Item
from summarize._prompt import PROMPT_FOR, load_prompt
from summarize._schema import QUOTE_MAX, SENTENCE_MAX, VALUE_PATTERN, Summary, summary_model_for

ABSTRACT = "Widget detection is slow. We propose FastWidget. It is 3x faster than prior work."


def gain_of(parameters: dict[str, Any]) -> dict[str, Any]:
    claimed = parameters["properties"]["claimed_gain"]
    gains: dict[str, Any] = claimed["properties"]["gains"]
    assert gains["maxItems"] == 4
    return gains["items"]  # type: ignore[no-any-return]


def test_the_tool_keeps_the_types_required_fields_item_cap_and_pattern() -> None:
    function = tool_for(Summary)["function"]
    assert function["name"] == "Summary"
    parameters = function["parameters"]
    assert parameters["type"] == "object"
    assert sorted(parameters["required"]) == ["claimed_gain", "method", "problem", "result"]
    assert parameters["properties"]["problem"] == {"type": "string"}
    gain = gain_of(parameters)
    assert sorted(gain["required"]) == ["metric", "quote", "value"]
    assert gain["properties"]["quote"] == {"type": "string"}
    assert gain["properties"]["value"]["pattern"] == VALUE_PATTERN
    qualitative = parameters["properties"]["claimed_gain"]["properties"]["qualitative"]
    assert qualitative == {"type": ["string", "null"]}


def test_constrained_quotes_are_inlined_as_the_abstracts_sentences() -> None:
    gain = gain_of(tool_for(summary_model_for(ABSTRACT))["function"]["parameters"])
    assert gain["properties"]["quote"]["enum"] == [
        "Widget detection is slow.",
        "We propose FastWidget.",
        "It is 3x faster than prior work.",
    ]


def test_what_the_tool_leaves_out_is_still_enforced_by_validation() -> None:
    ok = {"problem": "p", "method": "m", "result": "r",
          "claimed_gain": {"gains": [], "qualitative": None}}  # fmt: skip
    Summary.model_validate(ok)
    with pytest.raises(ValidationError):
        Summary.model_validate({**ok, "problem": ""})  # minLength
    with pytest.raises(ValidationError):
        Summary.model_validate({**ok, "problem": "p" * (SENTENCE_MAX + 1)})  # maxLength
    long_quote = {"quote": "q" * (QUOTE_MAX + 1), "metric": "speed", "value": "3x"}
    with pytest.raises(ValidationError):
        Summary.model_validate({**ok, "claimed_gain": {"gains": [long_quote], "qualitative": None}})
    with pytest.raises(ValidationError):
        Summary.model_validate({**ok, "extra": 1})  # additionalProperties
    gain = {"quote": "q", "metric": "speed", "value": "fast"}
    with pytest.raises(ValidationError):
        Summary.model_validate({**ok, "claimed_gain": {"gains": [gain], "qualitative": None}})


def test_constrained_values_are_the_abstracts_candidate_figures() -> None:
    model = summary_model_for(ABSTRACT, ["3x", "2x"])
    gain = gain_of(tool_for(model)["function"]["parameters"])
    assert gain["properties"]["value"]["enum"] == ["3x", "2x"]
    with pytest.raises(ValidationError):
        model.model_validate(
            {
                "problem": "Detection is slow.",
                "method": "A faster detector.",
                "result": "It is faster.",
                "claimed_gain": {
                    "gains": [
                        {
                            "quote": "It is 3x faster than prior work.",
                            "metric": "speed",
                            "value": "10%",
                        }
                    ],
                    "qualitative": None,
                },
            }
        )


def test_an_abstract_without_candidate_figures_is_offered_no_gains() -> None:
    model = summary_model_for("Widget detection is slow. We propose FastWidget.", [])
    claimed = tool_for(model)["function"]["parameters"]["properties"]["claimed_gain"]
    assert "gains" not in claimed["properties"]
    answer = {
        "problem": "Detection is slow.",
        "method": "A new detector.",
        "result": "It works.",
        "claimed_gain": {"qualitative": "It is simpler."},
    }
    assert model.model_validate(answer).claimed_gain.gains == []


def answer_models() -> list[type[Any]]:
    """Every kind of model a request asks for: each strategy's, constrained or not."""
    item = Item(id="x", title="FastWidget", abstract=ABSTRACT)
    asked = [question(load_prompt(PROMPT_FOR[name]), item) for name in PROMPT_FOR]
    constrained = question(load_prompt(PROMPT_FOR["abstractive"]), item, constrain_quotes=True)
    return [Summary, summary_model_for(ABSTRACT), *(q.answer_model for q in [*asked, constrained])]


@pytest.mark.parametrize("model", answer_models(), ids=lambda model: model.__name__)
def test_the_tool_is_instructors_openai_schema_compacted(model: type[Any]) -> None:
    # Made without instructor's import, which loads the OpenAI SDK: the same JSON, key
    # order included, so the same tool on the wire and the same request fingerprint.
    schema = instructor.openai_schema(model).openai_schema["parameters"]
    wanted = _compact(schema, schema.get("$defs", {}))
    assert json.dumps(tool_for(model)["function"]["parameters"]) == json.dumps(wanted)
