"""What is exact is repaired without the model; what is not is re-asked with what would fix it.

A gain's quote that fails (not in the abstract, a fragment, a sentence without the value)
is set to the one sentence of the abstract that states the value, and the record names
the field (`repaired`). A value that two sentences state is re-asked with both named;
a field over its cap is re-asked with the cap and its length, never cut. Answers are
written by hand and judged by the code both transports share
(`summarize._core.verdict.judge_completion`), and sent by the fake endpoint: in-process
(`MockTransport(fake.answer)`) to a live run, over HTTP to a batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from summarize import _grounding as grounding
from summarize._cli import cli
from summarize._core.records import Record
from summarize._core.strategy import question
from summarize._core.verdict import Verdict, judge_completion
from summarize._items import Item
from summarize._prompt import load_prompt
from summarize._review import check_record, diff_records
from summarize.testing.server import FakeOpenAI, prompt_parts
from tests.conftest import read_jsonl, write_jsonl
from tests.test_batch import WAIT, batch_cli
from tests.test_run import summarize_in_process

TITLE = "OptiComm: Overlapping Communication in Distributed Training"
ABSTRACT = (
    "Training large language models on commodity clusters is slow. "
    "We present OptiComm, a scheduler that overlaps gradient exchange with computation. "
    "OptiComm reduces end-to-end training time by up to 51.6\\% on training the "
    "BERT-Large model. "
    "It also outperforms the Switch Transformer by 2 BLEU scores on translation. "
    "Adopting it takes 2 lines of code."
)
SPEEDUP = (
    "OptiComm reduces end-to-end training time by up to 51.6% on training the BERT-Large model."
)
BLEU = "It also outperforms the Switch Transformer by 2 BLEU scores on translation."
TWO_LINES = "Adopting it takes 2 lines of code."
FIRST_QUOTE = "claimed_gain.gains[0].quote"


def answer(*gains: dict[str, str], result: str | None = None) -> dict[str, Any]:
    """A hand-written answer about `ABSTRACT`, right but for what a test changes."""
    return {
        "problem": "Training large language models on commodity clusters takes long.",
        "method": "A scheduler overlaps the exchange of gradients with computation.",
        "result": result or "Training runs faster and translation improves.",
        "claimed_gain": {"gains": list(gains), "qualitative": None},
    }


def gain(value: str, quote: str, metric: str = "end-to-end training time") -> dict[str, str]:
    return {"quote": quote, "metric": metric, "value": value}


def judged(
    arguments: dict[str, Any],
    *,
    abstract: str = ABSTRACT,
    title: str = TITLE,
    constrained: bool = False,
) -> Verdict:
    item = Item(id="x", title=title, abstract=abstract)
    call = {"function": {"name": "Summary", "arguments": json.dumps(arguments)}}
    body = {"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "stop"}]}
    asked = question(load_prompt(), item, constrain_quotes=constrained)
    return judge_completion(body, asked, item)


def test_a_fragment_quote_is_set_to_the_one_sentence_stating_its_value() -> None:
    verdict = judged(answer(gain("51.6%", "up to 51.6% on training the BERT-Large model")))
    assert verdict.error is None and verdict.summary is not None
    assert verdict.summary.claimed_gain.gains[0].quote == SPEEDUP
    assert verdict.summary.repaired == (FIRST_QUOTE,)


def test_a_quote_not_in_the_abstract_is_set_to_the_sentence_stating_its_value() -> None:
    verdict = judged(answer(gain("51.6%", "OptiComm trains BERT-Large 51.6% faster.")))
    assert verdict.summary is not None
    assert verdict.summary.claimed_gain.gains[0].quote == SPEEDUP
    assert verdict.summary.repaired == (FIRST_QUOTE,)


def test_a_sentence_without_the_value_is_set_to_the_sentence_stating_it() -> None:
    # The second gain's quote is right and stays as the model wrote it.
    right = gain("2 BLEU", BLEU, "BLEU over the Switch Transformer")
    verdict = judged(answer(gain("51.6%", BLEU), right))
    assert verdict.summary is not None
    assert [g.quote for g in verdict.summary.claimed_gain.gains] == [SPEEDUP, BLEU]
    assert verdict.summary.repaired == (FIRST_QUOTE,)


REPAIRED = [json.loads(line) for line in (Path(__file__).parent / "data" / "answers"
             / "repair.jsonl").read_text("utf-8").splitlines()]  # fmt: skip


@pytest.mark.parametrize("case", REPAIRED, ids=lambda c: c["case"])
def test_realistic_answers_with_a_wrong_quote_are_repaired_naming_the_field(
    case: dict[str, Any],
) -> None:
    verdict = judged(case["answer"], abstract=case["abstract"], title=case["title"])
    assert verdict.summary is not None, verdict.error and verdict.error.message
    assert verdict.summary.repaired == tuple(case["repaired"])
    for made, given in zip(verdict.summary.claimed_gain.gains, case["answer"]["claimed_gain"]
                           ["gains"], strict=True):  # fmt: skip
        assert made.quote == grounding.sentence_holding(case["abstract"], given["value"])


def test_the_repaired_quote_is_one_the_constrained_schema_offers() -> None:
    # Under a constrained decoder (the embedded model) a quote is one of the abstract's
    # sentences as plain text: `51.6\%` is offered as `51.6%`.
    verdict = judged(answer(gain("51.6%", BLEU)), constrained=True)
    assert verdict.summary is not None and verdict.summary.repaired == (FIRST_QUOTE,)
    assert verdict.summary.claimed_gain.gains[0].quote == SPEEDUP


def test_a_figure_two_sentences_state_is_reasked_naming_both_not_repaired() -> None:
    wrong = answer(gain("2 BLEU", "outperforms the Switch Transformer", "BLEU"))
    verdict = judged(wrong)
    assert verdict.summary is None and verdict.repair == "reask"
    assert verdict.error is not None
    message = verdict.error.message
    assert "is a fragment" in message and "2 sentences state '2 BLEU'" in message
    assert repr(BLEU) in message and repr(TWO_LINES) in message
    assert verdict.answer == json.dumps(wrong)  # the model's own answer goes back, unchanged


def test_a_figure_no_sentence_states_is_reasked_not_repaired() -> None:
    verdict = judged(answer(gain("61.6%", "OptiComm trains BERT-Large 61.6% faster.")))
    assert verdict.summary is None and verdict.repair == "reask"
    assert verdict.error is not None
    assert "no sentence of the abstract states '61.6%'" in verdict.error.message


def test_a_repair_that_leaves_another_fault_is_no_repair_and_the_reask_names_the_sentence(
) -> None:  # fmt: skip
    wrong = {**answer(gain("51.6%", BLEU)), "problem": TITLE}
    verdict = judged(wrong)
    assert verdict.summary is None and verdict.repair == "reask"
    assert verdict.error is not None
    assert "problem: must say more than the title" in verdict.error.message
    assert f"the sentence that states '51.6%' is {SPEEDUP!r}" in verdict.error.message
    assert verdict.answer == json.dumps(wrong)


LONG_RESULT = (
    "OptiComm, the scheduler that overlaps the exchange of gradients with the computation of "
    "the next layers, cuts the end-to-end training time of BERT-Large and also improves the "
    "translation quality over the Switch Transformer."
)


def test_an_over_long_field_is_reasked_with_its_cap_and_length_not_cut() -> None:
    verdict = judged(answer(result=LONG_RESULT))
    assert verdict.summary is None and verdict.repair == "reask"
    assert verdict.error is not None
    assert (f"result: {len(LONG_RESULT)} characters, over the cap: at most 200 characters"
            in verdict.error.message)  # fmt: skip
    long_metric = answer(gain("51.6%", SPEEDUP, "training time " * 10))
    verdict = judged(long_metric)
    assert verdict.error is not None and "at most 120 characters" in verdict.error.message


def test_the_prompt_states_every_cap_the_validator_holds() -> None:
    system = load_prompt().system
    assert "one sentence in your own words, ≤200 characters" in system
    assert "- metric: ≤120 characters." in system
    assert "- qualitative: if no gains, the advantage, ≤200 characters; else null." in system
    assert "- quote: its whole sentence." in system


# The fake endpoint answers every request with a fragment quote.
def fragment_quote(body: dict[str, Any]) -> dict[str, Any]:
    _, abstract = prompt_parts(body)
    figure = "51.6%" if "51.6" in abstract else "17.5x"
    return answer(gain(figure, f"by up to {figure}"))


SECOND = (
    "Diffusion transformers train slowly. We present FastSiT, a schedule for the noise "
    "levels. It speeds up SiT training by over 17.5times on ImageNet 256x256."
)


def test_a_run_repairs_fragment_quotes_at_once_and_records_the_repair(tmp_path: Path) -> None:
    rows = [{"title": TITLE, "abstract": ABSTRACT}, {"title": "FastSiT", "abstract": SECOND}]
    papers = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=fragment_quote)
    result = summarize_in_process(fake, papers, out)
    assert result.exit_code == 0
    assert fake.stats.requests == 2  # no re-ask
    records = read_jsonl(out)
    assert [r["repaired"] for r in records] == [[FIRST_QUOTE], [FIRST_QUOTE]]
    quotes = [r["claimed_gain"]["gains"][0]["quote"] for r in records]  # type: ignore[index]
    assert quotes == [SPEEDUP, "It speeds up SiT training by over 17.5x on ImageNet 256x256."]
    assert all(r["attempts"] == 1 for r in records)
    validated = CliRunner().invoke(cli, ["validate", str(out)])
    assert validated.exit_code == 0, validated.output


def reasked_shorter(body: dict[str, Any]) -> dict[str, Any]:
    """Over the cap at first; when re-asked, a shorter sentence of its own."""
    if len(body["messages"]) > 2:
        return answer(gain("51.6%", SPEEDUP), result="Training runs up to 51.6% faster.")
    return answer(gain("51.6%", SPEEDUP), result=LONG_RESULT)


def test_a_run_reasks_an_over_long_field_and_keeps_the_models_shorter_sentence(
    tmp_path: Path,
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", [{"title": TITLE, "abstract": ABSTRACT}])
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=reasked_shorter)
    result = summarize_in_process(fake, papers, out)
    assert result.exit_code == 0
    reask = fake.requests[-1]["messages"][-1]["content"]
    assert f"result: {len(LONG_RESULT)} characters" in reask and "at most 200" in reask
    (record,) = read_jsonl(out)
    assert record["result"] == "Training runs up to 51.6% faster."
    assert record["attempts"] == 2 and record["repaired"] == []


def test_an_over_long_field_never_shortened_is_an_error_line_not_a_cut_record(
    tmp_path: Path,
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", [{"title": TITLE, "abstract": ABSTRACT}])
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=lambda body: answer(result=LONG_RESULT))
    result = summarize_in_process(fake, papers, out)
    assert result.exit_code == 1
    assert read_jsonl(out) == []
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert "at most 200 characters" in str(error["message"])


def test_a_record_from_before_the_repaired_field_still_validates_and_diffs_unchanged(
    tmp_path: Path,
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", [{"title": TITLE, "abstract": ABSTRACT}])
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=fragment_quote)
    assert summarize_in_process(fake, papers, out).exit_code == 0
    (record,) = read_jsonl(out)
    older = {k: v for k, v in record.items() if k != "repaired"}
    assert check_record(older) == []
    assert Record.model_validate(older).repaired == []
    assert diff_records([older], [{**older, "repaired": []}]) == []
    assert [c.fields for c in diff_records([older], [record])] == [("repaired",)]


def test_a_nightly_batch_repairs_fragment_quotes_as_a_live_run_does(tmp_path: Path) -> None:
    rows = [{"title": TITLE, "abstract": ABSTRACT}, {"title": "FastSiT", "abstract": SECOND}]
    papers = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(responder=fragment_quote) as server:
        submitted = batch_cli(server, "submit", str(papers), "-o", str(out))
        assert submitted.exit_code == 0, submitted.output
        collected = batch_cli(server, "collect", "-o", str(out), *WAIT)
        assert collected.exit_code == 0, collected.output
        assert server.stats.requests == 0  # no live re-ask: every answer was repaired
    records = read_jsonl(out)
    assert [r["repaired"] for r in records] == [[FIRST_QUOTE], [FIRST_QUOTE]]
    assert [r["attempts"] for r in records] == [1, 1]
    assert CliRunner().invoke(cli, ["validate", str(out)]).exit_code == 0
