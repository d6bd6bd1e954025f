"""Output length: every request carries a token cap that fits a summary with room to
spare, and an answer cut off at it is asked again with more room, not re-asked.

The fake endpoint answers in-process (`MockTransport(fake.answer)`), except where the
command line's flags or the Batch API are the subject."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from summarize._cli import cli
from summarize._settings import DEFAULT_MAX_TOKENS
from summarize.testing.server import FakeOpenAI, grounded_summary, prompt_parts
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl
from tests.test_run import summarize_in_process

ENV = {"OPENAI_API_KEY": FAKE_KEY}


def summarize_cli(server: FakeOpenAI, *args: str) -> Result:
    return CliRunner().invoke(cli, ["run", "--base-url", server.base_url, *args], env=ENV,
                              catch_exceptions=False)  # fmt: skip


def by_abstract(bodies: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each abstract's requests, in the order they were sent."""
    sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for body in bodies:
        sent[prompt_parts(body)[1]].append(body)
    return sent


def cut_first_answers(times: int) -> Any:
    """A fault rule: each abstract's first `times` answers are cut off."""
    answered: Counter[str] = Counter()

    def rule(body: dict[str, Any]) -> str | None:
        abstract = prompt_parts(body)[1]
        answered[abstract] += 1
        return "truncated" if answered[abstract] <= times else None

    return rule


def test_answers_cut_off_twice_are_asked_again_with_more_room_and_all_150_make_records(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.set_fault_rule(cut_first_answers(2))
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(150))
    out = tmp_path / "out.jsonl"
    result = summarize_in_process(fake, papers, out)
    assert result.exit_code == 0
    assert len({r["id"] for r in read_jsonl(out)}) == 150
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []
    sent = by_abstract(fake.requests)
    assert len(sent) == 150 and fake.stats.faults["truncated"] == 300
    room = DEFAULT_MAX_TOKENS
    for bodies in sent.values():
        # The same question each time, with twice the room; the cut-off answer never sent back.
        assert [b["max_tokens"] for b in bodies] == [room, 2 * room, 4 * room]
        assert all(b["messages"] == bodies[0]["messages"] for b in bodies)
    for record in read_jsonl(out):
        assert record["attempts"] == 3


def test_every_request_carries_the_default_cap_or_the_flags(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(2))
    assert summarize_cli(server, str(papers), "-o", str(tmp_path / "a.jsonl")).exit_code == 0
    assert {body["max_tokens"] for body in server.requests} == {DEFAULT_MAX_TOKENS}
    server.reset()
    flagged = summarize_cli(server, str(papers), "-o", str(tmp_path / "b.jsonl"),
                            "--max-tokens", "1500")  # fmt: skip
    assert flagged.exit_code == 0, flagged.output
    assert {body["max_tokens"] for body in server.requests} == {1500}


def test_a_cut_off_answer_given_twice_the_room_finishes(fake: FakeOpenAI, tmp_path: Path) -> None:
    (paper,) = numbered_abstracts(1)
    answer = json.dumps(grounded_summary(paper["abstract"]), ensure_ascii=False)
    room = math.ceil(len(answer) / 8)  # cut at 4 characters a token; fits in twice that
    papers = write_jsonl(tmp_path / "p.jsonl", [paper])
    out = tmp_path / "out.jsonl"
    result = summarize_in_process(fake, papers, out, max_tokens=room)
    assert result.exit_code == 0
    assert [body["max_tokens"] for body in fake.requests] == [room, 2 * room]
    (record,) = read_jsonl(out)
    assert record["attempts"] == 2


def test_an_answer_that_does_not_fit_four_times_the_room_ends_as_a_truncated_error_line(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(1))
    out = tmp_path / "out.jsonl"
    result = summarize_in_process(fake, papers, out, max_tokens=5)
    assert result.exit_code == 1
    assert [body["max_tokens"] for body in fake.requests] == [5, 10, 20]
    assert {len(body["messages"]) for body in fake.requests} == {
        len(fake.requests[0]["messages"])
    }
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["error_type"] == "truncated" and error["attempts"] == 3


def test_a_new_token_cap_does_not_redo_records(fake: FakeOpenAI, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(3))
    out = tmp_path / "out.jsonl"
    assert summarize_in_process(fake, papers, out).exit_code == 0
    fake.reset()
    again = summarize_in_process(fake, papers, out, max_tokens=4000)
    assert again.exit_code == 0
    assert fake.stats.requests == 0
    assert len(read_jsonl(out)) == 3


def test_batch_requests_carry_the_cap(server: FakeOpenAI, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(3))
    out = tmp_path / "out.jsonl"
    for command in (
        ["submit", str(papers), "--max-tokens", "900"],
        ["collect", "--wait", "--poll", "0"],
    ):
        args = ["batch", *command, "-o", str(out), "--base-url", server.base_url]
        done = CliRunner().invoke(cli, args, env=ENV, catch_exceptions=False)
        assert done.exit_code == 0, done.output
    assert [body["max_tokens"] for body in server.batch_requests] == [900] * 3
    assert len(read_jsonl(out)) == 3
