"""Realistic answers, kept as fixtures: the validators must take the good ones and refuse
the bad ones.

A test server that checks its own answers with the production validator can never
show that the validator rejects a good answer; these answers were written by hand,
the way capable models write (abbreviations, parentheses, decimals, LaTeX), and
are judged by the code both transports use (`summarize._core.verdict.judge_completion`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from summarize._core.strategy import question
from summarize._core.verdict import judge_completion
from summarize._items import Item
from summarize._prompt import load_prompt
from summarize.testing.server import FakeOpenAI
from tests.conftest import read_jsonl, write_jsonl
from tests.test_run import summarize_in_process

ANSWERS = Path(__file__).parent / "data" / "answers"


def cases(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (ANSWERS / name).read_text("utf-8").splitlines()]


def judged(case: dict[str, Any]) -> Any:
    item = Item(id="x", title=case["title"], abstract=case["abstract"])
    call = {"function": {"name": "Summary", "arguments": json.dumps(case["answer"])}}
    body = {"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "stop"}]}
    return judge_completion(body, question(load_prompt(), item), item)


@pytest.mark.parametrize("case", cases("accept.jsonl"), ids=lambda c: c["case"])
def test_good_answers_are_accepted(case: dict[str, Any]) -> None:
    verdict = judged(case)
    assert verdict.error is None, verdict.error and verdict.error.message
    assert verdict.summary is not None and verdict.summary.problem == case["answer"]["problem"]


@pytest.mark.parametrize("case", cases("reject.jsonl"), ids=lambda c: c["case"])
def test_bad_answers_are_rejected_saying_why(case: dict[str, Any]) -> None:
    verdict = judged(case)
    assert verdict.summary is None and verdict.repair == "reask"
    assert verdict.error is not None and case["rejected_for"] in verdict.error.message


ABBREVIATED = [
    "Compares BERT vs. GPT-2 on summarisation, e.g. of long reports.",
    "Builds on the kernel of Child et al. (sparse transformers), i.e. strided attention.",
    "Long inputs (e.g. U.S. patents) strain dense attention, i.e. its memory.",
]


def abbreviating_responder(body: dict[str, Any]) -> dict[str, Any]:
    """Answers as a capable model writes them, every field with an abbreviation."""
    return {
        "problem": ABBREVIATED[2],
        "method": ABBREVIATED[1],
        "result": ABBREVIATED[0],
        "claimed_gain": {
            "gains": [],
            "qualitative": "Fewer errors than dense attention, e.g. on patents.",
        },
    }


def test_answers_full_of_abbreviations_make_records_without_a_reask(tmp_path: Path) -> None:
    abstract = (
        "Long inputs (e.g. U.S. patents) strain dense attention. We compare BERT vs. GPT-2 "
        "on summarisation, building on the kernel of Child et al. and on Fig. 3 of prior work."
    )
    rows = [
        {"title": f"Paper {i}", "abstract": f"{abstract} Case {i} is studied."} for i in range(100)
    ]
    papers = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=abbreviating_responder)
    result = summarize_in_process(fake, papers, out)
    assert result.exit_code == 0
    assert fake.stats.requests == 100  # not one re-ask
    records = read_jsonl(out)
    assert len(records) == 100 and all(r["attempts"] == 1 for r in records)
