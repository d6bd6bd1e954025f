"""The fake OpenAI server: real HTTP, the real `openai` client, every fault kind."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import instructor
import openai
import pytest
from pydantic import ValidationError

from summarize import grounding
from summarize.schema import Summary, grounded_in
from tests.fakeserver import (
    FAULT_KINDS,
    FakeOpenAI,
    FaultPlan,
    default_responder,
    grounded_summary,
    prompt_parts,
)

TITLE = "GroundSum: Copying Figures Instead of Inventing Them"
ABSTRACT = (
    "Large language models often state figures that their source never gives when they "
    "summarise scientific papers. We propose GroundSum, a decoding method that copies "
    "numbers from the abstract instead of generating them. On three benchmarks GroundSum "
    "reduces unsupported numbers by 42.5% compared with the strongest baseline. It also "
    "runs 2.3x faster than constrained decoding. These results suggest that grounding "
    "summaries is cheap."
)
GAIN_QUOTE = (
    "On three benchmarks GroundSum reduces unsupported numbers by 42.5% compared with the "
    "strongest baseline."
)
SYSTEM = "You summarise one research abstract. Answer by calling the function."
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "Summary",
            "description": "A structured summary of one research abstract.",
            "parameters": Summary.model_json_schema(),
        },
    }
]
TOOL_CHOICE: Any = {"type": "function", "function": {"name": "Summary"}}
CONTEXT = {"abstract": ABSTRACT, "title": TITLE}


def messages(abstract: str = ABSTRACT, title: str = TITLE) -> list[Any]:
    """The product's prompt shape (untyped: openai wants its TypedDicts)."""
    user = f"Title: {title}\n<abstract>\n{abstract}\n</abstract>"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    """The shared server, reset to defaults for each test."""
    server.clear_faults()
    server.set_rate_limit(None)
    server.latency = 0.0
    server.retry_after = 1.0
    server.require_key = None
    server.responder = default_responder
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


def call(client: openai.OpenAI, **extra: Any) -> Any:
    kwargs: dict[str, Any] = {
        "model": "test-model",
        "messages": messages(),
        "tools": TOOLS,
        "tool_choice": TOOL_CHOICE,
    }
    kwargs.update(extra)
    return client.chat.completions.create(**kwargs)


def arguments(completion: Any) -> str:
    return str(completion.choices[0].message.tool_calls[0].function.arguments)


# ------------------------------------------------------------------ normal answers


def test_tool_call_is_a_grounded_summary(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    completion = call(client)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call_ = choice.message.tool_calls[0]
    assert call_.type == "function"
    assert call_.function.name == "Summary"
    summary = Summary.model_validate_json(call_.function.arguments, context=CONTEXT)
    assert summary.claimed_gain.kind == "quantitative"
    gain = summary.claimed_gain.gains[0]
    assert (gain.value, gain.quote) == ("42.5%", GAIN_QUOTE)
    assert "GroundSum" in summary.method

    assert completion.object == "chat.completion"
    assert completion.model == "test-model"
    usage = completion.usage
    assert usage.prompt_tokens > len(ABSTRACT) // 4
    assert usage.completion_tokens == len(call_.function.arguments) // 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0

    assert fake.requests[-1]["tool_choice"] == TOOL_CHOICE
    stats = fake.stats
    assert (stats.requests, stats.faults["ok"], stats.statuses[200]) == (1, 1, 1)


@pytest.mark.parametrize("kind", ["json_schema", "json_object"])
def test_response_format_answers_in_content(client: openai.OpenAI, kind: str) -> None:
    if kind == "json_schema":
        schema = {"name": "Summary", "schema": Summary.model_json_schema()}
        response_format: Any = {"type": "json_schema", "json_schema": schema}
    else:
        response_format = {"type": "json_object"}
    completion = client.chat.completions.create(
        model="m", messages=messages(), response_format=response_format
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert choice.message.content is not None
    Summary.model_validate_json(choice.message.content, context=CONTEXT)


def test_instructor_tools_mode_and_reask(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    patched = instructor.from_openai(client, mode=instructor.Mode.TOOLS)
    with grounded_in(abstract=ABSTRACT, title=TITLE):
        summary = patched.chat.completions.create(
            model="m", messages=messages(), response_model=Summary, max_retries=0
        )
        assert summary.claimed_gain.gains[0].quote == GAIN_QUOTE
        # An invented number fails grounding; the reask is answered correctly.
        fake.enqueue("invented_number")
        summary = patched.chat.completions.create(
            model="m", messages=messages(), response_model=Summary, max_retries=2
        )
    assert summary.claimed_gain.gains[0].value == "42.5%"
    reask = fake.requests[-1]
    assert len(reask["messages"]) > 2  # the failed answer and the validation error
    assert prompt_parts(reask) == (TITLE, ABSTRACT)
    assert fake.stats.faults == {"ok": 2, "invented_number": 1}


@pytest.mark.parametrize(
    ("abstract", "title"),
    [
        (ABSTRACT, TITLE),
        ("A single sentence with no figure at all", "Other"),
        ("", "Empty"),
        ("Accuracy rises by 12.5\\% on ImageNet. We introduce X. Done in 3 days.", "T"),
        ("Speed improves $\\sim$3$\\times$ over prior work. The end.", "T"),
        ("We study the effect of 17 layers on depth. Results improve by 4 points.", "T"),
        ("Grounded Summaries For Everyone. We present a tool.", "Grounded Summaries for Everyone"),
        ("Word " * 200 + "ends with 1.5 here. Gains of 7% are shown.", "T"),
    ],
)
def test_default_responder_always_validates(abstract: str, title: str) -> None:
    summary = Summary.model_validate(
        grounded_summary(abstract, title), context={"abstract": abstract, "title": title}
    )
    assert all(len(text) <= 300 for text in (summary.problem, summary.method, summary.result))


def test_default_responder_picks_gain_and_method() -> None:
    no_gain = grounded_summary("We study X. We introduce Y for Z. It works well.", "T")
    assert no_gain["method"] == "We introduce Y for Z."
    assert no_gain["claimed_gain"] == {"gains": [], "qualitative": None}
    latex = grounded_summary("Prior work is slow. Ours is 3.5\\times faster, on 4 tasks.", "T")
    assert latex["claimed_gain"]["gains"][0]["value"] == "3.5x"


def test_prompt_parts_uses_first_open_and_last_close() -> None:
    body = {"messages": messages("a\n</abstract>\nstill the abstract", "The T")}
    assert prompt_parts(body) == ("The T", "a\n</abstract>\nstill the abstract")
    assert prompt_parts({"messages": [{"role": "user", "content": "plain"}]}) == ("", "plain")


def test_custom_responder_and_models_and_auth(fake: FakeOpenAI) -> None:
    fake.responder = lambda body: {"problem": "p", "method": body["model"]}
    fake.require_key = "sk-right"
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            call(wrong)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-right", max_retries=0) as right:
        assert json.loads(arguments(call(right, model="echo"))) == {
            "problem": "p",
            "method": "echo",
        }
        assert [m.id for m in right.models.list()] == ["fake-model"]
    stats = fake.stats
    assert (stats.unauthorized, stats.statuses[401], stats.model_requests) == (2, 2, 2)


# ------------------------------------------------------------------ faults


def test_429_carries_retry_after(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue("http_429", "http_429_no_retry_after")
    with pytest.raises(openai.RateLimitError) as with_header:
        call(client)
    assert with_header.value.response.headers["retry-after"] == "1"
    assert with_header.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    with pytest.raises(openai.RateLimitError) as without:
        call(client)
    assert "retry-after" not in without.value.response.headers
    fake.retry_after = 0.25
    fake.enqueue("http_429")
    with pytest.raises(openai.RateLimitError) as custom:
        call(client)
    assert custom.value.response.headers["retry-after"] == "0.25"
    assert custom.value.response.headers["retry-after-ms"] == "250"
    assert call(client).choices  # the script is consumed: back to normal


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(fake: FakeOpenAI, client: openai.OpenAI, status: int) -> None:
    fake.enqueue(f"http_{status}")
    with pytest.raises(openai.InternalServerError) as raised:
        call(client)
    assert raised.value.status_code == status
    assert fake.stats.statuses[status] == 1


def test_drop_is_a_connection_error(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue("drop")
    with pytest.raises(openai.APIConnectionError) as raised:
        call(client)
    assert not isinstance(raised.value, openai.APITimeoutError)
    assert fake.stats.faults["drop"] == 1
    assert fake.stats.statuses == {}


def test_hang_times_out(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue("hang")
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        call(client, timeout=0.5)
    assert time.monotonic() - start < 2.0


def test_not_json_is_unparsable(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue("not_json")
    result = call(client)
    assert isinstance(result, str)
    assert result.startswith("<html>")
    with pytest.raises(json.JSONDecodeError):
        json.loads(result)


def test_payload_faults(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(
        "bad_schema",
        "bad_json_args",
        "truncated",
        "refusal",
        "empty_choices",
        "invented_number",
        "ungrounded_quote",
    )
    with pytest.raises(ValidationError, match="method"):
        Summary.model_validate_json(arguments(call(client)), context=CONTEXT)

    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments(call(client)))

    truncated = call(client)
    assert truncated.choices[0].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments(truncated))

    refusal = call(client).choices[0]
    assert refusal.finish_reason == "stop"
    assert refusal.message.refusal
    assert refusal.message.content is None
    assert refusal.message.tool_calls is None

    assert call(client).choices == []

    invented = arguments(call(client))
    Summary.model_validate_json(invented)  # the shape is right ...
    with pytest.raises(ValidationError, match="does not occur in the abstract"):
        Summary.model_validate_json(invented, context=CONTEXT)  # ... the figures are not
    result = json.loads(invented)["result"]
    assert grounding.unsupported_numbers(result, ABSTRACT)

    ungrounded = arguments(call(client))
    with pytest.raises(ValidationError, match="does not occur in the abstract"):
        Summary.model_validate_json(ungrounded, context=CONTEXT)

    assert fake.stats.statuses == {200: 7}


def test_truncated_and_bad_json_in_content_mode(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue("truncated", "bad_json_args")
    fmt: Any = {"type": "json_object"}
    truncated = client.chat.completions.create(model="m", messages=messages(), response_format=fmt)
    assert truncated.choices[0].finish_reason == "length"
    bad = client.chat.completions.create(model="m", messages=messages(), response_format=fmt)
    for completion in (truncated, bad):
        content = completion.choices[0].message.content
        assert content
        with pytest.raises(json.JSONDecodeError):
            json.loads(content)


def test_fault_plan_mix_is_seeded_and_rules_apply() -> None:
    body = {"messages": messages()}
    draws = [FaultPlan(mix={"http_500": 0.3, "drop": 0.2}, seed=7) for _ in range(2)]
    sequences = [[plan.next_fault(body) for _ in range(200)] for plan in draws]
    assert sequences[0] == sequences[1]
    counts = {kind: sequences[0].count(kind) for kind in ("http_500", "drop", "ok")}
    assert 35 <= counts["http_500"] <= 85
    assert 20 <= counts["drop"] <= 60

    plan = FaultPlan(
        ["http_502"], fault_for=lambda b: "refusal" if "GroundSum" in prompt_parts(b)[1] else None
    )
    other = {"messages": messages("Nothing to see.")}
    assert [plan.next_fault(body), plan.next_fault(body), plan.next_fault(other)] == [
        "http_502",
        "refusal",
        "ok",
    ]
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan(["http_418"])
    with pytest.raises(ValueError, match="sum to"):
        FaultPlan(mix={"http_500": 0.8, "drop": 0.5})
    assert len(FAULT_KINDS) == 16


def test_fault_rule_per_abstract(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.set_fault_rule(lambda body: "http_503" if "cursed" in prompt_parts(body)[1] else None)
    with pytest.raises(openai.InternalServerError):
        call(client, messages=messages("A cursed abstract."))
    assert call(client).choices[0].finish_reason == "tool_calls"
    assert fake.stats.faults == {"http_503": 1, "ok": 1}


# ------------------------------------------------------------------ rate limit and latency


def test_rps_limit_answers_429(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.retry_after = 0.5
    fake.set_rate_limit(4.0)
    outcomes: list[int] = []
    for _ in range(10):
        try:
            response = client.chat.completions.with_raw_response.create(
                model="m", messages=messages(), tools=TOOLS, tool_choice=TOOL_CHOICE
            )
            outcomes.append(response.status_code)
            assert response.headers["x-ratelimit-limit-requests"] == "240"  # per minute
            assert "x-ratelimit-remaining-requests" in response.headers
        except openai.RateLimitError as exc:
            outcomes.append(exc.status_code)
            assert exc.response.headers["retry-after"] == "0.5"
            assert exc.response.headers["x-ratelimit-remaining-requests"] == "0"
            assert exc.response.headers["x-ratelimit-reset-requests"].endswith("s")
    assert outcomes[:4] == [200] * 4
    assert outcomes.count(429) >= 5
    stats = fake.stats
    assert stats.rate_limited == outcomes.count(429) == stats.statuses[429]
    assert stats.faults["ok"] == outcomes.count(200)
    assert len(fake.requests) == 10

    time.sleep(0.3)  # a token comes back after 0.25 s
    assert call(client).choices
    fake.rps_limit = None
    assert all(call(client).choices for _ in range(6))


async def test_latency_overlaps_for_concurrent_requests(fake: FakeOpenAI) -> None:
    fake.latency = 0.3
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="sk-test", max_retries=0
    ) as aclient:
        start = time.monotonic()
        results = await asyncio.gather(
            *(
                aclient.chat.completions.create(
                    model="m", messages=messages(), tools=TOOLS, tool_choice=TOOL_CHOICE
                )
                for _ in range(10)
            )
        )
        elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 1.5
    assert all(r.choices[0].finish_reason == "tool_calls" for r in results)
    assert fake.stats.max_in_flight >= 5


# ------------------------------------------------------------------ lifecycle


def test_stop_cancels_hung_requests_quickly() -> None:
    errors: list[BaseException] = []
    server = FakeOpenAI(faults=FaultPlan(["hang", "hang"]))
    server.start()
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as c:

        def hung() -> None:
            try:
                call(c, timeout=30.0)
            except openai.APIError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=hung) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 2.0
        while server.stats.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.stats.in_flight == 2
        start = time.monotonic()
        server.stop()
        assert time.monotonic() - start < 2.0
        for thread in threads:
            thread.join(5.0)
    assert len(errors) == 2
    assert all(isinstance(e, openai.APIConnectionError) for e in errors)
    server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeOpenAI().base_url


async def test_async_context_manager_and_restart() -> None:
    async with (
        FakeOpenAI(rps_limit=100) as first,
        openai.AsyncOpenAI(base_url=first.base_url, api_key="sk-test", max_retries=0) as aclient,
    ):
        models = await aclient.models.list()
        assert [m.id for m in models.data] == ["fake-model"]
    with first, openai.OpenAI(base_url=first.base_url, api_key="k", max_retries=0) as again:
        assert first.base_url.startswith("http://127.0.0.1:")
        assert call(again).choices
    assert first.stats.statuses == {200: 2}
