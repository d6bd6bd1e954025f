"""The rule that picks an abstract's problem, method and result (`summarize._picks`), each
habit on a real abstract of the gold set (`tests/data/gold.jsonl`)."""

from __future__ import annotations

import json
from pathlib import Path

from summarize import _grounding as grounding
from summarize import _picks as picks

GOLD = Path(__file__).parent / "data" / "gold.jsonl"


def sentences(title: str) -> list[str]:
    """The sentences of the gold abstract whose title starts with `title`."""
    with GOLD.open(encoding="utf-8") as fh:
        paper = next(p for p in map(json.loads, fh) if p["title"].startswith(title))
    return [" ".join(s.split()) for s in grounding.sentences(paper["abstract"])]


def test_the_sentence_that_introduces_the_work_is_its_method_even_when_it_promises_weights() -> (
    None
):
    neox = sentences("GPT-NeoX-20B")
    assert neox[0].startswith("We introduce GPT-NeoX-20B") and "openly available" in neox[0]
    assert picks.ranked(neox)["method"][0] == 1


def test_a_gap_told_with_everyones_we_is_the_problem_not_the_authors_first_word() -> None:
    monkeys = sentences("Large Language Monkeys")
    assert monkeys[1].startswith("However, when it comes to inference, we often limit")
    assert picks.own_voice_starts(monkeys) == 3  # "Here, we explore inference compute ..."
    assert picks.ranked(monkeys)["problem"][0] == 2


def test_an_outlook_is_not_the_result() -> None:
    monkeys = sentences("Large Language Monkeys")
    assert "important direction for future research" in monkeys[8]
    assert picks.ranked(monkeys)["result"][0] != 9


def test_a_question_is_not_the_method() -> None:
    matryoshka = sentences("Matryoshka Representation Learning")
    assert matryoshka[3].endswith("varying computational resources?")
    method = picks.ranked(matryoshka)["method"]
    assert method[0] == 5  # "Our main contribution is Matryoshka Representation Learning ..."
    assert method.index(4) > method.index(5)


def test_the_result_is_the_finding_not_the_sentence_of_its_figures() -> None:
    efficientnet = sentences("EfficientNetV2")
    assert "significantly outperforms previous models" in efficientnet[6]
    assert "87.3% top-1 accuracy" in efficientnet[7]  # its figures are the record's gains
    assert picks.ranked(efficientnet)["result"][0] == 7
