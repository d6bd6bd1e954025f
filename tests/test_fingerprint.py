"""A record counts as done only for the request that made it: change what is asked, and
the next run asks again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from summarize import EndpointSettings, RunResult, Summary
from summarize._core.request import request_hash, tool_chars, tool_for
from summarize._prompt import load_prompt, load_repair_prompt
from summarize.testing import MockTransport
from summarize.testing.server import FakeOpenAI
from tests.conftest import mock_endpoint, numbered_abstracts, read_jsonl, run_through, write_jsonl


def run(fake: FakeOpenAI, tmp_path: Path, **endpoint: Any) -> RunResult:
    """A run over three abstracts into `out.jsonl`, the fake endpoint answering in-process."""
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(3))
    return run_through(MockTransport(fake.answer), papers, tmp_path / "out.jsonl",
                       endpoint=mock_endpoint(**endpoint))  # fmt: skip


@pytest.fixture
def described_anew() -> Iterator[None]:
    """`Summary.problem` with another description, as if schema.py had been edited."""
    field = Summary.model_fields["problem"]
    before = field.description

    def rebuild(description: str | None) -> None:
        field.description = description
        Summary.model_rebuild(force=True)
        tool_for.cache_clear()
        tool_chars.cache_clear()

    rebuild("The research problem, in one sentence of at most 20 words.")
    yield
    rebuild(before)


def test_a_changed_field_description_makes_the_next_run_redo_every_abstract(
    fake: FakeOpenAI, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first = run(fake, tmp_path)
    assert first.done == 3
    assert run(fake, tmp_path).skipped == 3  # nothing changed: nothing redone
    old = {r["id"]: r["request_hash"] for r in read_jsonl(tmp_path / "out.jsonl")}
    request.getfixturevalue("described_anew")
    sent = fake.stats.requests
    again = run(fake, tmp_path)
    assert again.done == 3 and again.skipped == 0
    assert fake.stats.requests == sent + 3
    assert "at most 20 words" in fake.requests[-1]["messages"][0]["content"]
    new = {r["id"]: r["request_hash"] for r in read_jsonl(tmp_path / "out.jsonl")}
    assert new.keys() == old.keys() and not set(new.values()) & set(old.values())


@pytest.mark.parametrize("change", [{"temperature": 0.7}, {"extra_body": {"top_k": 5}}])
def test_changed_sampling_makes_the_next_run_redo(
    fake: FakeOpenAI, tmp_path: Path, change: dict[str, Any]
) -> None:
    assert run(fake, tmp_path).done == 3
    assert run(fake, tmp_path, **change).done == 3


def test_what_does_not_decide_the_answer_does_not_move_the_hash() -> None:
    prompt, repair = load_prompt(), load_repair_prompt()
    base = EndpointSettings(base_url="http://a/v1", api_key="sk-a")
    moved = base.model_copy(update={"base_url": "http://b/v1", "timeout": 5.0, "max_retries": 1})
    assert request_hash(prompt, base, repair) == request_hash(prompt, moved, repair)
    hotter = base.model_copy(update={"temperature": 1.0})
    # A re-ask without the rejected answer is another conversation.
    without = base.model_copy(update={"reask_with_answer": False})
    assert request_hash(prompt, base, repair) != request_hash(prompt, without, repair)
    assert request_hash(prompt, base, repair) != request_hash(prompt, hotter, repair)
