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

from summarize import _grounding as grounding
from summarize._schema import Summary, grounded_in
from summarize.testing.server import (
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
    user = f"<abstract>\n{abstract}\n</abstract>"  # the title is not sent
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    """The shared server, reset to defaults for each test."""
    server.clear_faults()
    server.clock = time.monotonic
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
    assert prompt_parts(reask) == ("", ABSTRACT)
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
    assert prompt_parts(body) == ("", "a\n</abstract>\nstill the abstract")
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
    with pytest.raises(openai.APITimeoutError):
        call(client, timeout=0.5)
    # No reply was made at all (hang_seconds is an hour): not merely a slow one.
    assert fake.stats.faults["hang"] == 1 and fake.stats.statuses == {}


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
    assert len(FAULT_KINDS) == 18


def test_fault_rule_per_abstract(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.set_fault_rule(lambda body: "http_503" if "cursed" in prompt_parts(body)[1] else None)
    with pytest.raises(openai.InternalServerError):
        call(client, messages=messages("A cursed abstract."))
    assert call(client).choices[0].finish_reason == "tool_calls"
    assert fake.stats.faults == {"http_503": 1, "ok": 1}


# ------------------------------------------------------------------ rate limit and latency


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rps_limit_answers_429(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    clock = FakeClock()  # the bucket refills only when the test says: no race with it
    fake.clock = clock
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
    assert outcomes == [200] * 4 + [429] * 6
    stats = fake.stats
    assert stats.rate_limited == outcomes.count(429) == stats.statuses[429]
    assert stats.faults["ok"] == outcomes.count(200)
    assert len(fake.requests) == 10

    clock.now += 0.2
    with pytest.raises(openai.RateLimitError):
        call(client)
    clock.now += 0.1  # a token comes back after 0.25 s
    assert call(client).choices
    fake.rps_limit = None
    assert all(call(client).choices for _ in range(6))


async def test_latency_delays_each_answer(fake: FakeOpenAI) -> None:
    fake.latency = 0.3
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="sk-test", max_retries=0
    ) as aclient:
        start = time.monotonic()
        result = await aclient.chat.completions.create(
            model="m", messages=messages(), tools=TOOLS, tool_choice=TOOL_CHOICE
        )
        assert time.monotonic() - start >= 0.3  # a slow machine only adds to it
    assert result.choices[0].finish_reason == "tool_calls"


async def test_latency_is_served_to_concurrent_requests_at_once(fake: FakeOpenAI) -> None:
    # Counted while every request is still waiting out a latency longer than the test,
    # so how fast the requests arrive does not matter: all ten are in flight together,
    # or the server serves them one after another.
    fake.latency = 600.0
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=700.0
    ) as aclient:
        calls = [
            asyncio.ensure_future(
                aclient.chat.completions.create(
                    model="m", messages=messages(), tools=TOOLS, tool_choice=TOOL_CHOICE
                )
            )
            for _ in range(10)
        ]
        in_flight = await wait_for_in_flight(fake, 10)
        answered = sum(c.done() for c in calls)
        for pending in calls:
            pending.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    assert in_flight == 10 and answered == 0
    assert await wait_for_in_flight(fake, 0) == 0  # cancelled: the server lets them go


async def wait_for_in_flight(fake: FakeOpenAI, count: int) -> int:
    """The server's in-flight count once it is `count`, or after a minute if never."""
    for _ in range(6000):
        if fake.stats.in_flight == count:
            break
        await asyncio.sleep(0.01)
    return fake.stats.in_flight


# ------------------------------------------------------------------ lifecycle


def test_stop_cancels_hung_requests_instead_of_waiting_for_them() -> None:
    errors: list[BaseException] = []
    server = FakeOpenAI(faults=FaultPlan(["hang", "hang"]))
    # A stop has no event to wait on, only a clock: a stop that waited for the hung
    # requests would take the grace twice (its own, then aiohttp's: 60 s), one that
    # cancels them takes milliseconds; 20 s between them holds on any machine.
    server.STOP_GRACE = 30.0
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
        deadline = time.monotonic() + 60.0
        while server.stats.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.stats.in_flight == 2
        server.stop(timeout=20.0)  # raises when the thread is still running then
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


# ------------------------------------------------------------------ files and batches

BATCH_URL: Any = "/v1/chat/completions"
SCHEMA_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {"name": "Summary", "schema": Summary.model_json_schema()},
}
OTHER_TITLE = "Sparse Attention for Long Documents"
OTHER_ABSTRACT = (
    "Long documents overwhelm dense attention. We introduce a sparse attention pattern "
    "that keeps memory linear in the length. It matches dense attention on four tasks."
)
TERMINAL = {"completed", "failed", "expired", "cancelled"}


@pytest.fixture
def batch_fake(fake: FakeOpenAI) -> FakeOpenAI:
    """The shared server with batches moving one step per retrieve."""
    fake.batch_polls = 1
    return fake


def batch_line(
    custom_id: str, abstract: str = ABSTRACT, title: str = TITLE, **body: Any
) -> dict[str, Any]:
    """One line of a batch input file, carrying the product's prompt shape."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "test-model", "messages": messages(abstract, title), **body},
    }


def tool_line(custom_id: str) -> dict[str, Any]:
    return batch_line(custom_id, tools=TOOLS, tool_choice=TOOL_CHOICE)


def jsonl(lines: list[Any]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, lines: list[Any]) -> Any:
    return client.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch")


def submit(client: openai.OpenAI, lines: list[Any], **extra: Any) -> Any:
    file = upload(client, lines)
    return client.batches.create(
        input_file_id=file.id, endpoint=BATCH_URL, completion_window="24h", **extra
    )


def statuses_until_done(client: openai.OpenAI, batch_id: str) -> list[str]:
    """The status each retrieve sees, until the batch has ended (10 retrieves at most)."""
    seen: list[str] = []
    for _ in range(10):
        seen.append(client.batches.retrieve(batch_id).status)
        if seen[-1] in TERMINAL:
            break
    return seen


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_a_held_reply_waits_for_its_release_with_its_work_done(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.hold_replies(after=2)
    assert client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch").id  # the 1st
    answered = threading.Event()

    def upload() -> None:
        client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
        answered.set()

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = time.monotonic() + 60.0
    while fake.held_replies == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.held_replies == 1 and not answered.is_set()
    assert len(fake.files) == 2  # the held call did its work: only its reply waits
    assert call(client).choices  # chat replies are never held
    fake.release_replies()
    thread.join(60.0)
    assert answered.is_set() and fake.held_replies == 0
    assert client.files.create(file=("c.jsonl", b"{}\n"), purpose="batch").id  # no more held


def test_upload_retrieve_and_content_round_trip(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    data = jsonl([tool_line("a"), tool_line("b")])
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert (uploaded.object, uploaded.bytes, uploaded.filename) == (
        "file",
        len(data),
        "requests.jsonl",
    )
    assert (uploaded.purpose, uploaded.status) == ("batch", "processed")
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).content == data
    assert fake.file_content(uploaded.id) == data
    assert [file["id"] for file in fake.files] == [uploaded.id]
    assert fake.stats.files_uploaded == 1

    # OpenAI refuses batch input that is not named .jsonl, and unknown purposes.
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("requests.txt", data), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", data), purpose="nonsense")  # type: ignore[arg-type]
    assert fake.stats.files_uploaded == 1
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-unknown")


def test_batch_moves_one_step_per_retrieve_and_completes_with_chat_completions(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    lines = [
        batch_line("schema", response_format=SCHEMA_FORMAT),
        tool_line("tools"),
        batch_line("other", OTHER_ABSTRACT, OTHER_TITLE, response_format=SCHEMA_FORMAT),
    ]
    batch = submit(client, lines, metadata={"run": "r1"})
    assert batch.id.startswith("batch_")
    assert (batch.object, batch.status, batch.endpoint) == ("batch", "validating", BATCH_URL)
    assert batch.completion_window == "24h"
    assert batch.metadata == {"run": "r1"}
    assert batch.expires_at == batch.created_at + 86_400
    assert batch.in_progress_at is None
    assert batch.output_file_id is None
    assert batch.error_file_id is None

    assert statuses_until_done(client, batch.id) == ["in_progress", "finalizing", "completed"]
    done = client.batches.retrieve(batch.id)  # a finished batch stays as it is
    assert done.status == "completed"
    assert done.in_progress_at is not None
    assert done.finalizing_at is not None
    assert done.completed_at is not None
    assert (done.failed_at, done.expired_at, done.cancelled_at) == (None, None, None)
    assert done.request_counts is not None
    assert done.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
    assert done.error_file_id is None
    assert done.model == "test-model"
    assert done.usage is not None
    assert done.usage.total_tokens > 0

    output = client.files.retrieve(done.output_file_id or "")
    assert (output.purpose, output.filename) == ("batch_output", f"{batch.id}_output.jsonl")
    records = read_lines(client, done.output_file_id)
    assert [record["custom_id"] for record in records] == ["schema", "tools", "other"]
    for record in records:
        assert record["id"].startswith("batch_req_")
        assert record["error"] is None
        assert record["response"]["status_code"] == 200
        assert record["response"]["request_id"].startswith("req_")
    completions = [
        openai.types.chat.ChatCompletion.model_validate(record["response"]["body"])
        for record in records
    ]
    schema, tools, other = (completion.choices[0] for completion in completions)
    assert schema.finish_reason == "stop"
    assert schema.message.content is not None
    summary = Summary.model_validate_json(schema.message.content, context=CONTEXT)
    assert summary.claimed_gain.gains[0].quote == GAIN_QUOTE
    assert tools.finish_reason == "tool_calls"
    assert tools.message.tool_calls is not None
    Summary.model_validate_json(
        tools.message.tool_calls[0].function.arguments,  # type: ignore[union-attr]
        context=CONTEXT,
    )
    assert other.message.content is not None
    Summary.model_validate_json(
        other.message.content, context={"abstract": OTHER_ABSTRACT, "title": OTHER_TITLE}
    )

    assert batch_fake.batch_requests == [line["body"] for line in lines]
    assert batch_fake.requests == []  # chat's list stays chat-only
    stats = batch_fake.stats
    assert (stats.requests, stats.batches_created, stats.batch_retrieves) == (0, 1, 4)
    assert stats.faults == {"ok": 3}
    assert batch_fake.batches[0]["status"] == "completed"


def test_batch_polls_sets_retrieves_per_step(batch_fake: FakeOpenAI, client: openai.OpenAI) -> None:
    batch_fake.batch_polls = 2
    batch = submit(client, [tool_line("a")])
    assert statuses_until_done(client, batch.id) == [
        "validating",
        "in_progress",
        "in_progress",
        "finalizing",
        "finalizing",
        "completed",
    ]
    assert batch_fake.stats.batch_retrieves == 6


def test_scripted_faults_land_in_error_file_or_as_bad_answers_in_order(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch_fake.enqueue("http_500", "invented_number", "hang", "http_429", "drop", "not_json")
    lines = [tool_line(f"c{i}") for i in range(7)]  # the last one is "ok"
    batch = submit(client, lines)
    assert statuses_until_done(client, batch.id)[-1] == "completed"
    done = client.batches.retrieve(batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 5)

    answers = read_lines(client, done.output_file_id)
    assert [record["custom_id"] for record in answers] == ["c1", "c6"]
    invented = answers[0]["response"]["body"]["choices"][0]["message"]["tool_calls"][0]
    with pytest.raises(ValidationError, match="does not occur in the abstract"):
        Summary.model_validate_json(invented["function"]["arguments"], context=CONTEXT)

    errors = read_lines(client, done.error_file_id)
    assert [record["custom_id"] for record in errors] == ["c0", "c2", "c3", "c4", "c5"]
    by_id = {record["custom_id"]: record for record in errors}
    assert by_id["c0"]["response"]["status_code"] == 500
    assert by_id["c0"]["response"]["body"]["error"]["type"] == "server_error"
    assert by_id["c0"]["error"] is None
    assert by_id["c2"]["response"] is None
    assert by_id["c2"]["error"]["code"] == "request_timeout"
    assert by_id["c3"]["response"]["status_code"] == 429
    assert by_id["c3"]["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    for dropped in ("c4", "c5"):  # a lost connection is a server error to a batch
        assert by_id[dropped]["response"]["status_code"] == 500
        assert by_id[dropped]["response"]["body"]["error"]["type"] == "server_error"

    assert batch_fake.stats.faults == {
        "http_500": 1,
        "invented_number": 1,
        "hang": 1,
        "http_429": 1,
        "drop": 1,
        "not_json": 1,
        "ok": 1,
    }
    assert len(batch_fake.batch_requests) == 7


def test_batch_where_every_request_failed_completes_with_only_an_error_file(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch_fake.enqueue("http_503", "http_503")
    batch = submit(client, [tool_line("a"), tool_line("b")])
    assert statuses_until_done(client, batch.id)[-1] == "completed"
    done = client.batches.retrieve(batch.id)
    assert done.output_file_id is None
    assert done.request_counts is not None
    assert done.request_counts.model_dump() == {"total": 2, "completed": 0, "failed": 2}
    statuses = [
        record["response"]["status_code"] for record in read_lines(client, done.error_file_id)
    ]
    assert statuses == [503, 503]


def test_expired_batch_answers_only_the_first_requests(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch_fake.enqueue_batch_outcome("expired", answered=2)
    batch_fake.enqueue("http_500")  # the first answered request fails
    lines = [tool_line(f"c{i}") for i in range(4)]
    batch = submit(client, lines)
    assert statuses_until_done(client, batch.id) == ["in_progress", "finalizing", "expired"]
    done = client.batches.retrieve(batch.id)
    assert done.expired_at is not None
    assert done.completed_at is None
    assert done.request_counts is not None
    assert done.request_counts.model_dump() == {"total": 4, "completed": 1, "failed": 3}
    assert [r["custom_id"] for r in read_lines(client, done.output_file_id)] == ["c1"]
    errors = read_lines(client, done.error_file_id)
    assert [record["custom_id"] for record in errors] == ["c0", "c2", "c3"]
    assert errors[0]["response"]["status_code"] == 500
    for record in errors[1:]:
        assert record["response"] is None
        assert record["error"] == {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        }
    assert batch_fake.batch_requests == [lines[0]["body"], lines[1]["body"]]

    # The outcome was consumed: the next batch completes.
    again = submit(client, lines)
    assert statuses_until_done(client, again.id)[-1] == "completed"


def test_invalid_input_lines_fail_validation_with_line_numbers(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    wrong_url = {**tool_line("wrong-url"), "url": "/v1/embeddings"}
    get = {**tool_line("get"), "method": "GET"}
    no_body = {key: value for key, value in tool_line("no-body").items() if key != "body"}
    other_model = tool_line("other-model")
    other_model["body"]["model"] = "another-model"
    data = jsonl([tool_line("a"), tool_line("a"), wrong_url]) + b"{not json\n\n"
    data += jsonl([get, no_body, other_model, {"custom_id": 7}])
    file = client.files.create(file=("requests.jsonl", data), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint=BATCH_URL, completion_window="24h"
    )
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.failed_at is not None
    assert failed.in_progress_at is None
    assert (failed.output_file_id, failed.error_file_id) == (None, None)
    assert failed.errors is not None
    assert failed.errors.object == "list"
    assert [(e.code, e.line, e.param) for e in failed.errors.data or []] == [
        ("duplicate_custom_id", 2, "custom_id"),
        ("url_mismatch", 3, "url"),
        ("invalid_json_line", 4, None),
        # line 5 is blank: skipped, but it keeps its number
        ("invalid_value", 6, "method"),
        ("missing_required_parameter", 7, "body"),
        ("model_mismatch", 8, "body.model"),
        ("invalid_type", 9, "custom_id"),
    ]
    assert client.batches.retrieve(batch.id).status == "failed"  # it stays failed
    assert batch_fake.batch_requests == []
    assert batch_fake.stats.faults == {}


def test_empty_and_oversized_inputs_fail_validation(
    batch_fake: FakeOpenAI, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_fake, "MAX_BATCH_REQUESTS", 2)
    too_many = submit(client, [tool_line(f"c{i}") for i in range(3)])
    empty_file = client.files.create(file=("empty.jsonl", b"\n"), purpose="batch")
    empty = client.batches.create(
        input_file_id=empty_file.id, endpoint=BATCH_URL, completion_window="24h"
    )
    for batch, code in ((too_many, "too_many_tasks"), (empty, "empty_file")):
        failed = client.batches.retrieve(batch.id)
        assert failed.status == "failed"
        assert failed.errors is not None
        assert [error.code for error in failed.errors.data or []] == [code]


def test_scripted_failure_fails_the_next_batch_only(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch_fake.enqueue_batch_outcome("failed")
    first = submit(client, [tool_line("a")])
    failed = client.batches.retrieve(first.id)
    assert failed.status == "failed"
    assert failed.errors is not None
    assert [error.code for error in failed.errors.data or []] == ["token_limit_exceeded"]
    assert (failed.output_file_id, failed.error_file_id) == (None, None)
    second = submit(client, [tool_line("a")])
    assert statuses_until_done(client, second.id)[-1] == "completed"


def test_cancel_answers_the_scripted_count_and_marks_the_rest_cancelled(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch_fake.enqueue_batch_outcome("cancelled", answered=1)
    batch = submit(client, [tool_line(f"c{i}") for i in range(3)])
    assert client.batches.retrieve(batch.id).status == "in_progress"
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert client.batches.cancel(batch.id).status == "cancelling"  # twice changes nothing
    cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert cancelled.request_counts is not None
    assert cancelled.request_counts.model_dump() == {"total": 3, "completed": 1, "failed": 2}
    assert [r["custom_id"] for r in read_lines(client, cancelled.output_file_id)] == ["c0"]
    errors = read_lines(client, cancelled.error_file_id)
    assert [record["custom_id"] for record in errors] == ["c1", "c2"]
    assert {record["error"]["code"] for record in errors} == {"batch_cancelled"}
    assert all(record["response"] is None for record in errors)

    with pytest.raises(openai.ConflictError):  # a finished batch cannot be cancelled
        client.batches.cancel(batch.id)


def test_cancel_while_validating_answers_nothing(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch = submit(client, [tool_line("a"), tool_line("b")])
    assert client.batches.cancel(batch.id).status == "cancelling"
    cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled"
    assert cancelled.output_file_id is None
    errors = read_lines(client, cancelled.error_file_id)
    assert [record["error"]["code"] for record in errors] == ["batch_cancelled"] * 2
    assert batch_fake.batch_requests == []


def test_scripted_cancel_happens_without_the_client(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch_fake.enqueue_batch_outcome("cancelled", answered=2)
    batch = submit(client, [tool_line(f"c{i}") for i in range(3)])
    assert statuses_until_done(client, batch.id) == ["in_progress", "cancelling", "cancelled"]
    done = client.batches.retrieve(batch.id)
    assert [r["custom_id"] for r in read_lines(client, done.output_file_id)] == ["c0", "c1"]
    assert [r["custom_id"] for r in read_lines(client, done.error_file_id)] == ["c2"]


def test_list_is_newest_first_and_paginates_with_after(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    file = upload(client, [tool_line("a")])
    created = [
        client.batches.create(input_file_id=file.id, endpoint=BATCH_URL, completion_window="24h").id
        for _ in range(5)
    ]
    newest = created[::-1]
    raw = client.batches.with_raw_response.list(limit=2).http_response.json()
    assert raw["object"] == "list"
    assert [batch["id"] for batch in raw["data"]] == newest[:2]
    assert (raw["first_id"], raw["last_id"], raw["has_more"]) == (newest[0], newest[1], True)
    page = client.batches.list(limit=2, after=newest[1])
    assert [batch.id for batch in page.data] == newest[2:4]
    last = client.batches.list(limit=2, after=newest[3])
    assert ([batch.id for batch in last.data], last.has_more) == ([newest[4]], False)
    assert [batch.id for batch in client.batches.list(limit=2)] == newest  # auto-pagination
    assert [batch.id for batch in client.batches.list()] == newest  # default limit 20
    assert client.batches.list(after="batch_unknown").data == []
    assert [batch["id"] for batch in batch_fake.batches] == created


def test_unknown_ids_are_404_and_bad_batch_requests_are_400(client: openai.OpenAI) -> None:
    for fetch in (
        lambda: client.files.retrieve("file-nope"),
        lambda: client.files.content("file-nope"),
        lambda: client.batches.retrieve("batch_nope"),
        lambda: client.batches.cancel("batch_nope"),
    ):
        with pytest.raises(openai.NotFoundError) as missing:
            fetch()
        error: Any = missing.value.body
        assert error["type"] == "invalid_request_error"
        assert "nope" in error["message"]

    file = upload(client, [tool_line("a")])
    other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    for kwargs in (
        {"input_file_id": "file-nope"},
        {"input_file_id": other.id},  # not a batch file
        {"endpoint": "/v1/embeddings"},
        {"completion_window": "48h"},
        {"metadata": {"key": 1}},
    ):
        arguments_: dict[str, Any] = {
            "input_file_id": file.id,
            "endpoint": BATCH_URL,
            "completion_window": "24h",
            **kwargs,
        }
        with pytest.raises(openai.BadRequestError):
            client.batches.create(**arguments_)


def test_batch_routes_require_the_key_with_or_without_v1(fake: FakeOpenAI) -> None:
    fake.require_key = "sk-right"
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0) as wrong:
        for attempt in (
            lambda: upload(wrong, [tool_line("a")]),
            lambda: wrong.files.retrieve("file-x"),
            lambda: wrong.files.content("file-x"),
            lambda: wrong.batches.create(
                input_file_id="file-x", endpoint=BATCH_URL, completion_window="24h"
            ),
            lambda: wrong.batches.retrieve("batch_x"),
            lambda: wrong.batches.cancel("batch_x"),
            wrong.batches.list,
        ):
            with pytest.raises(openai.AuthenticationError):
                attempt()
    assert fake.stats.unauthorized == 7
    assert fake.files == []

    # The routes answer without the /v1 prefix too, like the chat routes.
    with openai.OpenAI(base_url=fake.url, api_key="sk-right", max_retries=0) as right:
        batch = submit(right, [tool_line("a")])
        assert statuses_until_done(right, batch.id)[-1] == "completed"
        assert [
            r["custom_id"]
            for r in read_lines(right, right.batches.retrieve(batch.id).output_file_id)
        ] == ["a"]


def test_reset_forgets_files_batches_and_outcomes(
    batch_fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    batch = submit(client, [tool_line("a")])
    statuses_until_done(client, batch.id)
    batch_fake.enqueue_batch_outcome("failed")
    batch_fake.reset()
    assert (batch_fake.files, batch_fake.batches, batch_fake.batch_requests) == ([], [], [])
    stats = batch_fake.stats
    assert (stats.files_uploaded, stats.batches_created, stats.batch_retrieves) == (0, 0, 0)
    fresh = submit(client, [tool_line("a")])
    assert statuses_until_done(client, fresh.id)[-1] == "completed"  # no scripted failure


def test_batch_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="batch_polls"):
        FakeOpenAI(batch_polls=0)
    server = FakeOpenAI()
    with pytest.raises(ValueError, match="unknown batch outcome"):
        server.enqueue_batch_outcome("lost")
    with pytest.raises(ValueError, match="negative"):
        server.enqueue_batch_outcome("expired", answered=-1)
