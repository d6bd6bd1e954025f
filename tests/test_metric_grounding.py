"""Every number of a claimed gain is the abstract's, and a quote is a sentence, not a fragment.

`metric` is free text, so a model's own figures hide there ("on 8 GPUs", "vs the 2023
state of the art"); a quote that is only part of its sentence ("3x") says nothing about
what was measured. Both are re-asked, through the real client (the fake endpoint answers
in-process, `MockTransport(fake.answer)`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from summarize import _grounding as grounding
from summarize._cli import cli
from summarize._schema import Gain, summary_model_for
from summarize.testing.server import FakeOpenAI, default_responder
from tests.conftest import numbered_abstracts, read_jsonl, write_jsonl
from tests.test_run import summarize_in_process

GOLD = Path(__file__).parent / "data" / "gold.jsonl"
INVENTED = " on 8 GPUs vs the 2023 state of the art (99.9% mAP)"
ABSTRACT = (
    "Widget detection is slow on edge devices. We propose FastWidget, a pruned detector. "
    "FastWidget improves accuracy by 4.2% over the strongest baseline, while running 3x "
    "faster on a phone."
)
GAIN_SENTENCE = grounding.sentences(ABSTRACT)[2]


def _is_reask(body: dict[str, Any]) -> bool:
    return any(m.get("role") == "assistant" for m in body.get("messages", []))


def with_invented_metric(body: dict[str, Any]) -> dict[str, Any]:
    """A grounded answer whose every gain's metric carries figures of the model's own."""
    answer = default_responder(body)
    for gain in answer["claimed_gain"]["gains"]:
        gain["metric"] = (gain["metric"] + INVENTED)[:120]
    return answer


def fixed_when_reasked(body: dict[str, Any]) -> dict[str, Any]:
    """Invents in `metric` on the first ask, answers cleanly when told why."""
    return default_responder(body) if _is_reask(body) else with_invented_metric(body)


def invented_in_metrics(records: list[dict[str, Any]]) -> int:
    """How many numbers of the records' metrics their abstracts never write."""
    return sum(
        len(grounding.unsupported_numbers(gain["metric"], str(record["abstract"])))
        for record in records
        for gain in record["claimed_gain"]["gains"]  # type: ignore[index]
    )


def sixty_papers(tmp_path: Path) -> Path:
    """The 39 gold abstracts and 21 numbered ones: 60, most with a gain."""
    gold = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines()]
    rows = [{"title": g["title"], "abstract": g["abstract"]} for g in gold]
    rows += numbered_abstracts(60 - len(rows))
    return write_jsonl(tmp_path / "papers.jsonl", rows)


def test_a_number_only_in_the_metric_is_rejected_naming_it() -> None:
    gain = {"quote": GAIN_SENTENCE, "metric": "accuracy" + INVENTED, "value": "4.2%"}
    with pytest.raises(
        ValidationError, match=re.escape("states numbers the abstract does not: 8, 99.9, 2023")
    ):
        Gain.model_validate(gain, context={"abstract": ABSTRACT})


def test_a_metric_with_the_abstracts_own_numbers_is_accepted() -> None:
    gain = {
        "quote": GAIN_SENTENCE,
        "metric": "accuracy over the baseline, 3x faster",
        "value": "4.2%",
    }
    assert Gain.model_validate(gain, context={"abstract": ABSTRACT}).metric.endswith("3x faster")


def test_a_number_only_in_the_metric_is_reasked_and_the_fixed_answer_kept(tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(5))
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=fixed_when_reasked)
    result = summarize_in_process(fake, papers, out)
    assert result.exit_code == 0
    reasks = [b for b in fake.requests if _is_reask(b)]
    assert fake.stats.requests == 10 and len(reasks) == 5
    assert all("the metric" in r["messages"][-1]["content"] for r in reasks)
    assert "2023" in reasks[0]["messages"][-1]["content"]
    records = read_jsonl(out)
    assert len(records) == 5 and all(r["attempts"] == 2 for r in records)
    assert invented_in_metrics(records) == 0


def test_a_metric_never_fixed_becomes_an_error_line_not_a_record(tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(3))
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=with_invented_metric)
    result = summarize_in_process(fake, papers, out)
    assert result.exit_code == 1
    assert read_jsonl(out) == []
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert len(errors) == 3
    assert all("states numbers the abstract does not" in str(e["message"]) for e in errors)


def test_sixty_abstracts_against_a_server_inventing_in_every_metric_keep_no_invented_number(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=with_invented_metric)
    result = summarize_in_process(fake, sixty_papers(tmp_path), out)
    assert result.exit_code == 1
    records, errors = read_jsonl(out), read_jsonl(tmp_path / "out.errors.jsonl")
    assert invented_in_metrics(records) == 0
    assert len(records) + len(errors) == 60 and len(errors) >= 30


def test_sixty_abstracts_whose_metrics_are_fixed_when_reasked_all_make_records(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=fixed_when_reasked)
    result = summarize_in_process(fake, sixty_papers(tmp_path), out)
    assert result.exit_code == 0
    records = read_jsonl(out)
    assert len(records) == 60
    with_gains = [r for r in records if r["claimed_gain"]["gains"]]  # type: ignore[index]
    assert len(with_gains) >= 30 and all(r["attempts"] == 2 for r in with_gains)
    assert invented_in_metrics(records) == 0


# --------------------------------------------------------------------------- quotes


@pytest.mark.parametrize(
    ("quote", "value"),
    [
        (GAIN_SENTENCE, "4.2%"),
        (GAIN_SENTENCE.rstrip("."), "3x"),
        (GAIN_SENTENCE.upper(), "4.2%"),
        ("FastWidget improves accuracy by 4.2% over the strongest baseline", "4.2%"),
        ("while running 3x faster on a phone", "3x"),
    ],
)
def test_a_whole_sentence_or_a_clause_holding_the_value_is_a_quote(quote: str, value: str) -> None:
    gain = {"quote": quote, "metric": "speed", "value": value}
    assert Gain.model_validate(gain, context={"abstract": ABSTRACT}).quote == quote


@pytest.mark.parametrize(
    ("quote", "value"),
    [
        ("3x", "3x"),
        ("3x faster", "3x"),
        ("by 4.2% over the strongest baseline", "4.2%"),  # not a clause: starts mid-clause
        ("improves accuracy by 4.2%", "4.2%"),  # ends mid-clause
        ("running 3x faster on a", "3x"),
    ],
)
def test_a_fragment_of_a_sentence_is_not_a_quote(quote: str, value: str) -> None:
    gain = {"quote": quote, "metric": "speed", "value": value}
    with pytest.raises(ValidationError, match="is a fragment: quote the whole sentence"):
        Gain.model_validate(gain, context={"abstract": ABSTRACT})


def test_a_clause_must_still_state_its_value() -> None:
    gain = {"quote": "while running 3x faster on a phone", "metric": "accuracy", "value": "4.2%"}
    with pytest.raises(ValidationError, match=re.escape("its quote does not state: 4.2")):
        Gain.model_validate(gain, context={"abstract": ABSTRACT})


def test_a_span_across_two_sentences_is_not_a_quote() -> None:
    quote = "We propose FastWidget, a pruned detector. FastWidget improves accuracy by 4.2%"
    gain = {"quote": quote, "metric": "accuracy", "value": "4.2%"}
    with pytest.raises(ValidationError, match="is a fragment"):
        Gain.model_validate(gain, context={"abstract": ABSTRACT})


def test_every_quote_the_constrained_schema_offers_is_accepted() -> None:
    schema = summary_model_for(ABSTRACT).model_json_schema()
    gain = next(v for k, v in schema["$defs"].items() if k.startswith("Gain"))
    for choice in gain["properties"]["quote"]["enum"]:
        assert grounding.quoted_sentence(ABSTRACT, choice) is not None


def test_the_sentence_holding_a_value_is_found_only_when_it_is_the_only_one() -> None:
    assert grounding.sentence_holding(ABSTRACT, "4.2%") == GAIN_SENTENCE
    assert grounding.sentence_holding(ABSTRACT, "17%") is None
    twice = f"{ABSTRACT} It is 3x smaller too."
    assert grounding.sentence_holding(twice, "3x") is None
    assert grounding.sentence_holding(ABSTRACT, "much") is None


def test_validate_names_an_invented_metric_number_and_a_fragment_quote_by_line(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI()
    made = summarize_in_process(fake, write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(3)), out)
    assert made.exit_code == 0
    records = read_jsonl(out)
    gains = [r["claimed_gain"]["gains"][0] for r in records]  # type: ignore[index]
    gains[0]["metric"] += INVENTED
    gains[1]["quote"] = gains[1]["value"]
    write_jsonl(out, records)  # type: ignore[arg-type]
    result = CliRunner().invoke(cli, ["validate", str(out)])
    assert result.exit_code == 1
    assert f"{out}:1: claimed_gain.gains.0: the metric" in result.output
    assert "states numbers the abstract does not: 8, 99.9, 2023" in result.output
    assert f"{out}:2: claimed_gain.gains.0: the quote" in result.output
    assert "is a fragment" in result.output
    assert f"{out}:3:" not in result.output
