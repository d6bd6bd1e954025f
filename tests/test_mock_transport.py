"""`summarize.testing.MockTransport`: the real client, each request answered in-process.

The client builds every request as it would for the network and judges every answer
(validation, re-asks, retries, usage) the same way; only the wire is replaced, as
httpx's `MockTransport` replaces it. The fake OpenAI endpoint answers this way too
(`MockTransport(fake.answer)`), with its faults and counters and no socket.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from summarize import ConfigError, ProviderError, RunSettings, run, summarize_rows
from summarize.testing import (
    ChatRequest,
    MockTransport,
    Reply,
    completion_reply,
    error_reply,
    grounded_summary,
    json_reply,
)
from summarize.testing.server import FakeOpenAI
from tests.conftest import (
    ABSTRACTS,
    FAKE_KEY,
    mock_endpoint,
    numbered_abstracts,
    read_jsonl,
    run_through,
    write_jsonl,
)


def test_a_run_through_the_default_mock_makes_one_record_per_abstract(
    papers: Path, tmp_path: Path
) -> None:
    transport = MockTransport()
    result = run_through(transport, papers, tmp_path / "out.jsonl")
    assert (result.done, result.failed, result.exit_code) == (3, 0, 0)
    assert len(transport.requests) == result.requests == 3
    asked = {request.abstract for request in transport.requests}
    assert asked == {abstract for _, abstract in ABSTRACTS}
    records = read_jsonl(tmp_path / "out.jsonl")
    assert {r["abstract"] for r in records} == asked
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in records)


def test_each_request_is_the_one_the_network_would_get(papers: Path, tmp_path: Path) -> None:
    transport = MockTransport()
    where = mock_endpoint(base_url="https://llm.example/v1?api-version=2", model="m-1")
    run_through(transport, papers, tmp_path / "out.jsonl", endpoint=where, concurrency=1)
    request = transport.requests[0]
    assert request.url == "https://llm.example/v1/chat/completions?api-version=2"
    assert request.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert request.body["model"] == "m-1" and request.max_tokens == request.body["max_tokens"]
    assert request.messages[0]["role"] == "system" and request.body["tool_choice"]


def test_a_reply_that_fails_validation_is_reasked_with_the_reason(tmp_path: Path) -> None:
    (paper,) = numbered_abstracts(1)
    good = grounded_summary(paper["abstract"])

    def answer(request: ChatRequest) -> Reply:
        if len(transport.requests) == 1:
            return completion_reply({**good, "method": None}, prompt_tokens=300)
        return completion_reply(good, prompt_tokens=400, completion_tokens=60)

    transport = MockTransport(answer)
    papers = write_jsonl(tmp_path / "p.jsonl", [paper])
    result = run_through(transport, papers, tmp_path / "out.jsonl")
    assert result.done == 1
    _, second = transport.requests
    rejected, reask = second.messages[-2:]
    assert rejected["role"] == "assistant" and '"method": null' in rejected["content"]
    assert reask["role"] == "user" and "method" in reask["content"]
    (record,) = read_jsonl(tmp_path / "out.jsonl")
    assert record["attempts"] == 2
    # Both answers were paid for: the record carries the usage of the two requests.
    assert (record["prompt_tokens"], record["completion_tokens"]) == (700, 110)


def test_an_endpoint_that_reasks_without_the_answer_names_only_the_faults(
    tmp_path: Path,
) -> None:
    (paper,) = numbered_abstracts(1)
    good = grounded_summary(paper["abstract"])
    too_long = {**good, "result": "It works" + " and it works" * 20 + "."}

    def answer(request: ChatRequest) -> Reply:
        return completion_reply(too_long if len(transport.requests) == 1 else good)

    transport = MockTransport(answer)
    papers = write_jsonl(tmp_path / "p.jsonl", [paper])
    endpoint = mock_endpoint(reask_with_answer=False)
    result = run_through(transport, papers, tmp_path / "out.jsonl", endpoint=endpoint)
    assert result.done == 1
    first, second = transport.requests
    # The question again, then the faults: the rejected answer is not sent back.
    assert second.messages[: len(first.messages)] == first.messages
    (reask,) = second.messages[len(first.messages) :]
    assert reask["role"] == "user" and reask["content"].startswith("An earlier answer was rejected")
    cap = f"result: {len(too_long['result'])} characters, over the cap: at most 200 characters"
    assert f"{cap} (about 28 words)" in reask["content"]


def test_a_503_then_a_429_with_retry_after_are_sent_again(tmp_path: Path) -> None:
    (paper,) = numbered_abstracts(1)
    replies = iter([error_reply(503), error_reply(429, retry_after=0.01)])

    def answer(request: ChatRequest) -> Reply:
        return next(replies, None) or completion_reply(grounded_summary(request.abstract))

    transport = MockTransport(answer)
    papers = write_jsonl(tmp_path / "p.jsonl", [paper])
    result = run_through(transport, papers, tmp_path / "out.jsonl",
                         endpoint=mock_endpoint(max_backoff=0.01))  # fmt: skip
    assert result.done == 1 and len(transport.requests) == 3
    (record,) = read_jsonl(tmp_path / "out.jsonl")
    assert record["attempts"] == 3


def test_a_rejected_key_stops_the_run_as_a_config_error(papers: Path, tmp_path: Path) -> None:
    transport = MockTransport(lambda request: error_reply(401))
    with pytest.raises(ConfigError, match=r"rejected the API key \(HTTP 401\)") as raised:
        run_through(transport, papers, tmp_path / "out.jsonl")
    assert FAKE_KEY not in str(raised.value)


def test_a_handler_that_raises_connection_error_is_an_endpoint_that_never_answers(
    papers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("summarize._live.retries.UNREACHABLE_AFTER_S", 0.0)

    def refuse(request: ChatRequest) -> Reply:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ProviderError, match=r"cannot be reached \(connection refused\)"):
        run_through(MockTransport(refuse), papers, tmp_path / "out.jsonl",
                    endpoint=mock_endpoint(max_backoff=0.01))  # fmt: skip
    assert read_jsonl(tmp_path / "out.jsonl") == []
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []  # no abstract is blamed


def test_an_async_handler_answers_requests_side_by_side(tmp_path: Path) -> None:
    in_flight, peak = 0, 0

    async def slow(request: ChatRequest) -> Reply:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return completion_reply(grounded_summary(request.abstract))

    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(8))
    result = run_through(MockTransport(slow), papers, tmp_path / "out.jsonl", concurrency=4)
    assert result.done == 8 and 1 < peak <= 4


def test_a_body_that_is_no_completion_is_sent_again_not_reasked(tmp_path: Path) -> None:
    replies = iter([json_reply({"choices": ["oops"]})])

    def answer(request: ChatRequest) -> Reply:
        return next(replies, None) or completion_reply(grounded_summary(request.abstract))

    transport = MockTransport(answer)
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(1))
    assert run_through(transport, papers, tmp_path / "out.jsonl").done == 1
    first, second = transport.requests
    assert first.body == second.body  # the same request again: nothing to re-ask


def test_summarize_rows_takes_a_transport_too() -> None:
    transport = MockTransport()
    rows = [{"title": t, "abstract": a} for t, a in ABSTRACTS]
    lines = summarize_rows(rows, RunSettings(inputs=(), endpoint=mock_endpoint()),
                           transport=transport)  # fmt: skip
    assert [line["title"] for line in lines] == [t for t, _ in ABSTRACTS]
    assert len(transport.requests) == 3


def test_a_transport_with_no_endpoint_configured_is_a_config_error(
    papers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARIZE_CACHE", str(tmp_path / "cache"))  # the model file's digest
    # With neither a base URL nor a key, the embedded model would start for nothing.
    with pytest.raises(ConfigError, match="a transport stands for an endpoint"):
        run(RunSettings(inputs=(str(papers),), model_file=papers), transport=MockTransport())


def test_the_fake_endpoint_answers_in_process_with_its_faults_and_counters(
    fake: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    fake.enqueue("http_500", "invented_number")
    result = run_through(MockTransport(fake.answer), papers, tmp_path / "out.jsonl",
                         endpoint=mock_endpoint(max_backoff=0.01), concurrency=1)  # fmt: skip
    assert result.done == 3
    stats = fake.stats
    assert stats.requests == len(fake.requests) == 5
    assert stats.faults["http_500"] == 1 and stats.faults["invented_number"] == 1
    assert stats.statuses[500] == 1 and stats.statuses[200] == 4
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url  # no socket was opened


def test_a_drop_reaches_the_client_in_process_as_no_answer(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.enqueue("ok", "drop")
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(2))
    result = run_through(MockTransport(fake.answer), papers, tmp_path / "out.jsonl",
                         endpoint=mock_endpoint(max_backoff=0.01), concurrency=1)  # fmt: skip
    assert result.done == 2 and fake.stats.requests == 3


def test_the_reply_builders_say_what_openai_says() -> None:
    error = error_reply(429, retry_after=1.5)
    assert error.status == 429 and error.headers["retry-after"] == "1.5"
    assert "Rate limit" in json.loads(error.content)["error"]["message"]
    done = json.loads(completion_reply('{"broken', finish_reason="length").content)
    (choice,) = done["choices"]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"broken'
    assert done["usage"] == {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
