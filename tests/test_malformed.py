"""A 200 whose body is no chat completion is a transient fault of one request, never the
run's end; tool arguments sent as a JSON object are read as that object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from summarize._batch.answers import Answers, judge
from summarize._cli import cli
from summarize._core.strategy import question
from summarize._core.verdict import judge_completion, read_reply
from summarize._errors import ErrorType
from summarize._items import Item
from summarize._prompt import load_prompt
from summarize.testing.server import FakeOpenAI, grounded_summary
from tests.conftest import ABSTRACTS, FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl

TITLE, ABSTRACT = ABSTRACTS[0]
ITEM = Item(id="a1", title=TITLE, abstract=ABSTRACT)
GOOD = grounded_summary(ABSTRACT)


def completion(message: Any = None, *, usage: Any = None, **choice: Any) -> dict[str, Any]:
    """A chat completion whose first choice has `message` (a good tool call by default)."""
    if message is None:
        call = {"function": {"name": "summary", "arguments": json.dumps(GOOD)}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    body: dict[str, Any] = {"choices": [{"message": message, "finish_reason": "tool_calls",
                                         **choice}]}  # fmt: skip
    body["usage"] = usage if usage is not None else {"prompt_tokens": 10, "completion_tokens": 5}
    return body


def judged(body: object) -> Any:
    return judge_completion(body, question(load_prompt(), ITEM), ITEM)


MALFORMED = {
    "a choice that is a string": {"choices": ["oops"]},
    "a message that is a string": completion("the answer"),
    "token counts that are words": completion(usage={"prompt_tokens": "many"}),
    "usage that is a list": completion(usage=[1, 2]),
    "cached tokens that are a word": completion(
        usage={"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": "some"}}
    ),
    "tool calls that are an object": completion(
        {"tool_calls": {"function": {"arguments": json.dumps(GOOD)}}}
    ),
    "a tool call with no function": completion({"tool_calls": [{"id": "call_1"}]}),
    "arguments that are a number": completion({"tool_calls": [{"function": {"arguments": 7}}]}),
    "content that is an object": completion({"content": {"problem": "x"}}),
    "a finish reason that is a number": completion(finish_reason=3),
    "choices that are an object": {"choices": {"0": {}}},
    "a body that is a list": [completion()],
    "a body that is a string": "upstream timed out",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_body_that_is_no_completion_is_a_provider_error_worth_a_resend(body: object) -> None:
    verdict = judged(body)
    assert verdict.summary is None and verdict.error is not None
    assert verdict.error.error_type == ErrorType.PROVIDER
    assert verdict.repair == "resend"
    assert "no chat completion" in verdict.error.message


def test_arguments_sent_as_an_object_are_read_as_that_object() -> None:
    body = completion({"tool_calls": [{"function": {"name": "summary", "arguments": GOOD}}]})
    verdict = judged(body)
    assert verdict.summary is not None, verdict.error
    assert verdict.summary.problem == GOOD["problem"]
    assert verdict.usage.prompt_tokens == 10 and verdict.usage.completion_tokens == 5


def run_cli(
    server: FakeOpenAI, papers: Path, out: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`summarize run` as a user runs it: its own process, exit code and stderr."""
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": server.base_url}
    return subprocess.run(
        [sys.executable, "-m", "summarize", "run", str(papers), "-o", str(out), *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_fifth_of_replies_malformed_still_gives_one_record_per_abstract_and_no_reask(
    tmp_path: Path,
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(100))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI() as server:
        server.set_fault_mix({"malformed": 0.2, "object_arguments": 0.3}, seed=24)
        done = run_cli(server, papers, out, "--max-retries", "10")
        faults, requests = server.stats.faults, server.requests
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr
    assert faults["malformed"] >= 10 and faults["object_arguments"] >= 10
    assert len({r["id"] for r in read_jsonl(out)}) == len(read_jsonl(out)) == 100
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []
    # Each malformed reply cost one resend and nothing else: no answer was re-asked.
    assert len(requests) == 100 + faults["malformed"]
    assert {len(body["messages"]) for body in requests} == {len(requests[0]["messages"])}


def test_a_malformed_reply_that_persists_ends_as_that_abstracts_error_line(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    server.set_fault_rule(lambda body: "malformed" if "M1," in json.dumps(body) else None)
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(4))
    out = tmp_path / "out.jsonl"
    done = run_cli(server, papers, out, "--max-retries", "3")
    assert done.returncode == 1, done.stderr
    assert len(read_jsonl(out)) == 3
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["error_type"] == "provider" and "no chat completion" in str(error["message"])
    assert error["attempts"] == 4
    assert server.stats.faults["malformed"] == 4


def batch_cli(server: FakeOpenAI, *args: str) -> Any:
    return CliRunner().invoke(cli, ["batch", *args, "--base-url", server.base_url],
                              env={"OPENAI_API_KEY": FAKE_KEY}, catch_exceptions=False)  # fmt: skip


def test_malformed_batch_answers_are_sent_again_and_every_abstract_gets_its_record(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(40))
    out = tmp_path / "out.jsonl"
    server.set_fault_mix({"malformed": 0.3, "object_arguments": 0.3}, seed=5)
    submitted = batch_cli(server, "submit", str(papers), "-o", str(out))
    assert submitted.exit_code == 0, submitted.output
    collected = batch_cli(server, "collect", "-o", str(out), "--wait", "--poll", "0",
                          "--max-retries", "10")  # fmt: skip
    assert collected.exit_code == 0, collected.output
    assert server.stats.faults["malformed"] >= 5
    assert len({r["id"] for r in read_jsonl(out)}) == 40
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []
    # Resent as asked: no answer was re-asked (a re-ask would carry the rejected answer).
    assert {len(body["messages"]) for body in server.batch_requests} == {2}


@pytest.mark.parametrize(
    "line",
    [
        {"custom_id": "a1", "response": {"status_code": 500, "body": ["bad gateway"]}},
        {"custom_id": "a1", "response": {"status_code": "200", "body": "ok"}},
        {"custom_id": "a1", "response": ["oops"]},
        {"custom_id": "a1", "response": {"status_code": 200, "body": {"choices": ["oops"]}}},
    ],
    ids=[
        "a list body",
        "a status that is a string",
        "a response that is a list",
        "a body that is no completion",
    ],
)
def test_a_malformed_batch_answer_line_is_judged_a_failure_not_a_crash(
    tmp_path: Path, line: dict[str, Any]
) -> None:
    output = tmp_path / "batch.output.jsonl"
    output.write_text(json.dumps(line) + "\n", encoding="utf-8")
    answers = Answers([output])
    try:
        verdict = judge(answers.get("a1"), ITEM, question(load_prompt(), ITEM),
                        batch_status="completed")  # fmt: skip
    finally:
        answers.close()
    assert verdict.summary is None and verdict.error is not None
    assert verdict.error.error_type == ErrorType.PROVIDER


@pytest.mark.parametrize("count", [12.0, "12"])
def test_token_counts_written_as_a_float_or_a_numeral_are_read_not_resent(count: object) -> None:
    reply = read_reply(completion(usage={"prompt_tokens": count, "completion_tokens": 5}))
    assert reply.tokens.prompt_tokens == 12
