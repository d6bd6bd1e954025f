"""A fake OpenAI-compatible chat-completions and Batch API server for tests and benchmarks.

`FakeOpenAI` is a real HTTP server (aiohttp) on 127.0.0.1 and a free port, run
in a background thread with its own event loop, so sync and async tests talk to
it over real sockets with the real `openai` client:

    with FakeOpenAI(latency=0.05, rps_limit=20) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        server.enqueue("http_500", "bad_json")   # the next two requests fail
        ...
        server.requests   # the JSON bodies received
        server.stats      # a snapshot of the counters

What each request gets, in order: 400 for a body that is not a JSON object (or
asks for streaming); 401 when `require_key` is set and the bearer token differs;
429 when the `rps_limit` token bucket is empty; else the fault chosen by the
`FaultPlan` (a scripted queue first, then the `fault_for` rule, then the seeded
random mix, else "ok"), after `latency` (+ up to `jitter`) seconds.

The Batch API speaks OpenAI's wire format: `/v1/files` (multipart upload, retrieve,
content, delete) and `/v1/batches` (create, retrieve, cancel, list with an `after`
cursor). A batch moves only when it is retrieved, one step every `batch_polls`
retrieves: validating -> in_progress -> finalizing -> completed. Leaving "validating"
it checks its input lines as OpenAI does ("failed" with `errors`); on the last step it
answers every line, in order, through the same `FaultPlan` and responder as chat (no
rate limit, no latency): 200 answers go to the output file, failed requests to the
error file. `enqueue_batch_outcome` scripts batches that expire, fail or are cancelled
part-way; `cancel` moves a batch to "cancelling", then "cancelled":

    file = client.files.create(file=("in.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    server.enqueue_batch_outcome("expired", answered=10)  # the next batch expires ...

An "ok" answer is a tool call with the `responder`'s arguments when the request
has `tools`, else (`response_format` json_schema / json_object, or plain JSON
prompting) the same JSON in `message.content`. The default responder is
deterministic and grounded in the abstract of the prompt, so its answers pass
`summarize.schema.Summary` validation with the grounding context.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, get_args

from aiohttp import BodyPartReader, web
from pydantic import ValidationError

from summarize import grounding
from summarize.schema import SENTENCE_MAX, TITLE_COPY_OVERLAP, Gain, Summary

JSON = dict[str, Any]
Responder = Callable[[JSON], JSON]
FaultRule = Callable[[JSON], str | None]

FaultKind = Literal[
    "ok",
    "http_429",
    "http_429_no_retry_after",
    "http_500",
    "http_502",
    "http_503",
    "hang",
    "drop",
    "not_json",
    "bad_schema",
    "bad_json_args",
    "truncated",
    "refusal",
    "empty_choices",
    "invented_number",
    "ungrounded_quote",
]
FAULT_KINDS: Final[tuple[str, ...]] = get_args(FaultKind)

DEFAULT_MODEL: Final = "fake-model"
REFUSAL_TEXT: Final = "I'm sorry, but I can't help with that request."
UNGROUNDED_QUOTE: Final = (
    "Our approach decisively outperforms every prior method on all benchmarks we tried."
)
_QUALITATIVE_MAX: Final = 200
_VALUE_MAX: Final = 60
_QUOTE_MAX: Final = 1200
_TOKEN_CHARS: Final = 4

_ABSTRACT_OPEN: Final = "<abstract>\n"
_ABSTRACT_CLOSE: Final = "\n</abstract>"
_TITLE_LINE = re.compile(r"^Title: (.*)$", re.MULTILINE)
_PROPOSE = re.compile(r"\bwe\s+(?:propose|introduce|present)\b", re.IGNORECASE)
# A number (as `summarize.grounding` reads them) followed by a unit of improvement.
_GAIN = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"\s*(?:\\?%|\u00d7|\$?\\times\$?|x(?![A-Za-z0-9])|times\b|(?:percentage\s+)?points?\b)"
)
_DIGITS = re.compile(r"\d")


def _check_kind(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return kind


# --------------------------------------------------------------------------- faults


class FaultPlan:
    """Which fault each request gets: script first, then the rule, then the random mix.

    - `script`: kinds consumed in order, one per request (then the plan falls through);
    - `fault_for`: a rule `(request_body) -> kind | None`, e.g. keyed on the abstract
      (see `prompt_parts`); None falls through to the mix;
    - `mix`: `{kind: probability}` drawn from `random.Random(seed)`; the remainder is "ok".
    """

    def __init__(
        self,
        script: Iterable[str] = (),
        *,
        mix: Mapping[str, float] | None = None,
        seed: int = 0,
        fault_for: FaultRule | None = None,
    ) -> None:
        self._script: deque[str] = deque(_check_kind(kind) for kind in script)
        self.mix: dict[str, float] = {}
        self.seed = seed
        self._rng = random.Random(seed)
        self.fault_for = fault_for
        if mix:
            self.set_mix(mix, seed=seed)

    def enqueue(self, *kinds: str) -> None:
        """Append kinds to the script."""
        self._script.extend(_check_kind(kind) for kind in kinds)

    def set_mix(self, mix: Mapping[str, float], *, seed: int = 0) -> None:
        """Replace the random mix and reseed its generator."""
        total = 0.0
        for kind, probability in mix.items():
            _check_kind(kind)
            if probability < 0:
                raise ValueError(f"probability of {kind!r} is negative")
            total += probability
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities sum to {total:g} > 1")
        self.mix = dict(mix)
        self.seed = seed
        self._rng = random.Random(seed)

    @property
    def pending(self) -> list[str]:
        """The scripted kinds not consumed yet."""
        return list(self._script)

    def next_fault(self, body: JSON) -> str:
        """The fault for this request (consumes the script and the random stream)."""
        if self._script:
            return self._script.popleft()
        if self.fault_for is not None:
            kind = self.fault_for(body)
            if kind is not None:
                return _check_kind(kind)
        if self.mix:
            draw = self._rng.random()
            cumulative = 0.0
            for kind, probability in self.mix.items():
                cumulative += probability
                if draw < cumulative:
                    return kind
        return "ok"


# --------------------------------------------------------------------------- stats


@dataclass
class ServerStats:
    """Counters of one server; `FakeOpenAI.stats` returns a copy.

    `requests`: chat-completion POSTs received (any outcome); `faults`: the kind chosen
    for each request that passed validation, auth and the rate limit, and for each batch
    request answered ("ok" included); `statuses`: status codes of complete responses, on
    every route (a dropped or hung request has none). `files_uploaded` and
    `batches_created` count successful uploads and creations; `batch_retrieves` counts
    `GET /v1/batches/{id}` requests received (any outcome).
    """

    requests: int = 0
    model_requests: int = 0
    bad_requests: int = 0
    unauthorized: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    files_uploaded: int = 0
    batches_created: int = 0
    batch_retrieves: int = 0

    def copy(self) -> ServerStats:
        """An independent snapshot."""
        return ServerStats(
            requests=self.requests,
            model_requests=self.model_requests,
            bad_requests=self.bad_requests,
            unauthorized=self.unauthorized,
            rate_limited=self.rate_limited,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            faults=Counter(self.faults),
            statuses=Counter(self.statuses),
            files_uploaded=self.files_uploaded,
            batches_created=self.batches_created,
            batch_retrieves=self.batch_retrieves,
        )


class _TokenBucket:
    """`rate` requests per second with bursts up to `capacity`."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def headers(self) -> dict[str, str]:
        """OpenAI's headers: the limit per minute, what is left, when it is full again."""
        per_minute = round(self.rate * 60)
        reset = (self.capacity - self.tokens) / self.rate
        return {
            "x-ratelimit-limit-requests": str(per_minute),
            "x-ratelimit-remaining-requests": str(
                math.floor(math.floor(self.tokens) / self.capacity * per_minute)
            ),
            "x-ratelimit-reset-requests": _duration(reset),
        }


def _duration(seconds: float) -> str:
    """OpenAI's style of reset durations: `20ms`, `1.5s`, `2m3s`."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m{rest:.3g}s" if minutes else f"{rest:.3g}s"


def _seconds(value: float) -> str:
    return f"{value:g}"


# --------------------------------------------------------------------------- prompts


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "".join(part for part in parts if isinstance(part, str))
    return ""


def _messages(body: JSON) -> list[JSON]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [message for message in messages if isinstance(message, dict)]


def prompt_parts(body: JSON) -> tuple[str, str]:
    """`(title, abstract)` of a request: from the last user message holding `<abstract>`.

    The abstract runs from the first `<abstract>\\n` to the last `\\n</abstract>`; the
    title is the first `Title: ` line before it. Without markers the whole last user
    message is the abstract and the title is empty.
    """
    users = [_text_of(m.get("content")) for m in _messages(body) if m.get("role") == "user"]
    for text in reversed(users):
        start = text.find(_ABSTRACT_OPEN)
        end = text.rfind(_ABSTRACT_CLOSE)
        if start != -1 and end >= start + len(_ABSTRACT_OPEN):
            match = _TITLE_LINE.search(text, 0, start)
            title = match.group(1).strip() if match else ""
            return title, text[start + len(_ABSTRACT_OPEN) : end]
    return "", users[-1] if users else ""


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-")


def _copies_title(text: str, title: str) -> bool:
    return bool(title) and (
        grounding.word_overlap(text, title) >= TITLE_COPY_OVERLAP and len(text) <= len(title) * 1.2
    )


def _plain_sentence(source: str, abstract: str, title: str, fallback: str) -> str:
    """A sentence field from an abstract sentence: short, no invented number, not the title."""
    text = " ".join(source.split())
    if _copies_title(text, title):
        text = f"The paper is about the following: {text}"
    text = _shorten(text, SENTENCE_MAX)
    if grounding.unsupported_numbers(text, abstract):
        text = " ".join(_DIGITS.sub("", text).split())
    return text or fallback


def _first_gain(sentences: list[str], abstract: str) -> JSON | None:
    for sentence in sentences:
        if len(sentence) > _QUOTE_MAX:
            continue
        for match in _GAIN.finditer(sentence):
            value = grounding.plain_text(match.group(0))
            if len(value) > _VALUE_MAX:
                continue
            gain = {"metric": "reported metric", "value": value, "quote": sentence}
            try:
                Gain.model_validate(gain, context={"abstract": abstract})
            except ValidationError:
                continue
            return gain
    return None


def grounded_summary(abstract: str, title: str = "") -> JSON:
    """A deterministic `Summary` dict that validates against `abstract` and `title`."""
    sentences = grounding.sentences(abstract)
    if not sentences:
        sentences = ["The abstract is empty."]
    method_source = next(
        (s for s in sentences if _PROPOSE.search(s)),
        sentences[1] if len(sentences) > 1 else sentences[0],
    )
    gain = _first_gain(sentences, abstract)
    summary: JSON = {
        "problem": _plain_sentence(sentences[0], abstract, title, "The problem is not stated."),
        "method": _plain_sentence(method_source, abstract, title, "The method is not stated."),
        "result": _plain_sentence(sentences[-1], abstract, title, "The result is not stated."),
        "claimed_gain": {"gains": [gain] if gain else [], "qualitative": None},
    }
    try:
        Summary.model_validate(summary, context={"abstract": abstract, "title": title})
    except ValidationError:
        summary = {
            "problem": "The abstract describes a research problem.",
            "method": "The authors describe their approach in words only.",
            "result": "The abstract reports an outcome without further detail.",
            "claimed_gain": {"gains": [], "qualitative": None},
        }
    return summary


def default_responder(body: JSON) -> JSON:
    """The arguments of an "ok" answer: `grounded_summary` of the request's abstract."""
    title, abstract = prompt_parts(body)
    return grounded_summary(abstract, title)


def _invented_number(abstract: str) -> str:
    present = grounding.numbers_in(abstract)
    value = 87.3
    while value in present:
        value = round(value + 1.1, 1)
    return f"{value:.1f}"


def _invented_summary(summary: JSON, abstract: str) -> JSON:
    number = _invented_number(abstract)
    quote = f"Our method improves accuracy by {number}% over the strongest prior work."
    return {
        **summary,
        "result": f"The method improves accuracy by {number}% over the strongest baseline.",
        "claimed_gain": {
            "gains": [{"metric": "accuracy", "value": f"{number}%", "quote": quote}],
            "qualitative": None,
        },
    }


def _ungrounded_summary(summary: JSON, abstract: str) -> JSON:
    gains = summary.get("claimed_gain", {}).get("gains") or []
    if gains and isinstance(gains[0], dict) and "value" in gains[0]:
        value = str(gains[0]["value"])
    else:
        numbers = sorted(grounding.numbers_in(abstract))
        value = f"{numbers[0]:g}%" if numbers else "10%"
    gain = {"metric": "reported metric", "value": value, "quote": UNGROUNDED_QUOTE}
    return {**summary, "claimed_gain": {"gains": [gain], "qualitative": None}}


# --------------------------------------------------------------------------- responses


def _error(message: str, kind: str, code: str | None, param: str | None = None) -> JSON:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


_HTTP_ERRORS: Final[dict[str, tuple[int, JSON]]] = {
    "http_429": (
        429,
        _error(
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
        ),
    ),
    "http_500": (
        500,
        _error("The server had an error while processing your request.", "server_error", None),
    ),
    "http_502": (502, _error("Bad gateway.", "server_error", "bad_gateway")),
    "http_503": (
        503,
        _error(
            "The engine is currently overloaded, please try again later.",
            "server_error",
            "service_unavailable",
        ),
    ),
}
_HTTP_ERRORS["http_429_no_retry_after"] = _HTTP_ERRORS["http_429"]

_NOT_JSON_BODY: Final = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
_DROPPED_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    b'{"id": "chatcmpl-dropped", "object": "chat.completion", "choi'
)


def _tool_name(body: JSON) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        if isinstance(name, str):
            return name
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        name = tools[0].get("function", {}).get("name")
        if isinstance(name, str):
            return name
    return "Summary"


def _prompt_tokens(body: JSON) -> int:
    chars = sum(len(_text_of(m.get("content"))) for m in _messages(body))
    extra = sum(len(json.dumps(body[key])) for key in ("tools", "response_format") if key in body)
    return max(1, chars // _TOKEN_CHARS + extra // _TOKEN_CHARS)


# --------------------------------------------------------------------------- batches

BatchOutcome = Literal["completed", "expired", "failed", "cancelled"]
BATCH_OUTCOMES: Final[tuple[str, ...]] = get_args(BatchOutcome)
BATCH_ENDPOINT: Final = "/v1/chat/completions"
COMPLETION_WINDOW: Final = "24h"
_WINDOW_SECONDS: Final = 86_400
# OpenAI deletes `purpose="batch"` uploads after 30 days unless told otherwise.
_BATCH_FILE_SECONDS: Final = 30 * 86_400
_UPLOAD_PURPOSES: Final = frozenset(
    {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
)
_METADATA_PAIRS: Final = 16
_METADATA_KEY_MAX: Final = 64
_METADATA_VALUE_MAX: Final = 512
_BATCH_DONE: Final = frozenset({"completed", "failed", "expired", "cancelled"})
# What the error file says of the requests a batch never ran, by how it ended.
_NOT_RUN: Final[dict[str, JSON]] = {
    "expired": {
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired.",
    },
    "cancelled": {
        "code": "batch_cancelled",
        "message": "This request could not be executed before the batch was cancelled.",
    },
}
_TIMED_OUT: Final[JSON] = {
    "code": "request_timeout",
    "message": "The request timed out before the model answered.",
}
# Kinds whose chat answer is a 200 completion; in a batch they go to the output file.
_ANSWERED_KINDS: Final = frozenset(FAULT_KINDS) - {
    "http_429", "http_429_no_retry_after", "http_500", "http_502", "http_503",
    "hang", "drop", "not_json",
}  # fmt: skip


def _check_outcome(outcome: str) -> str:
    if outcome not in BATCH_OUTCOMES:
        raise ValueError(
            f"unknown batch outcome {outcome!r}; expected one of {', '.join(BATCH_OUTCOMES)}"
        )
    return outcome


@dataclass(frozen=True)
class _Outcome:
    """How a batch ends, and how many of its requests are answered before that."""

    status: str
    answered: int = 0


@dataclass
class _Batch:
    """A batch's API object and what moves it on (guarded by the server's lock).

    The input is parsed at creation (a file cannot change), but its errors show only
    when the batch leaves "validating", as they do at OpenAI.
    """

    obj: JSON
    requests: list[JSON]
    errors: list[JSON]
    polls: int = 0
    outcome: _Outcome | None = None


def _batch_error(
    code: str, message: str, line: int | None = None, param: str | None = None
) -> JSON:
    return {"code": code, "message": message, "param": param, "line": line}


def _request_problem(line: Any, endpoint: str) -> tuple[str, str, str | None] | None:
    """`(code, message, param)` of the first thing wrong with one input line, or None."""
    if not isinstance(line, dict):
        return "invalid_json_line", "This line is not parseable as valid JSON.", None
    for key, kind in (("custom_id", str), ("method", str), ("url", str), ("body", dict)):
        if key not in line:
            return "missing_required_parameter", f"Missing required parameter: '{key}'.", key
        if not isinstance(line[key], kind):
            expected = "an object" if kind is dict else "a string"
            return "invalid_type", f"Invalid type for '{key}': expected {expected}.", key
    if line["method"] != "POST":
        message = f"Invalid value for 'method': {line['method']!r}; only 'POST' is supported."
        return "invalid_value", message, "method"
    if line["url"] != endpoint:
        message = f"The url {line['url']!r} does not match the batch's endpoint {endpoint!r}."
        return "url_mismatch", message, "url"
    return None


def _parse_batch_input(content: bytes, endpoint: str, limit: int) -> tuple[list[JSON], list[JSON]]:
    """`(requests, errors)` of a batch input file: the lines in order, or what is wrong.

    Blank lines (a trailing newline) are skipped but keep their number in `line`.
    """
    numbered = [(n, raw) for n, raw in enumerate(content.split(b"\n"), start=1) if raw.strip()]
    if not numbered:
        return [], [_batch_error("empty_file", "The batch input file is empty.")]
    if len(numbered) > limit:
        message = f"The input file has {len(numbered):,} requests; a batch takes at most {limit:,}."
        return [], [_batch_error("too_many_tasks", message)]
    requests: list[JSON] = []
    errors: list[JSON] = []
    seen: set[str] = set()
    model: Any = None
    for number, raw in numbered:
        try:
            line: Any = json.loads(raw)
        except ValueError:  # bad JSON and bad UTF-8 alike
            line = None
        problem = _request_problem(line, endpoint)
        if problem is not None:
            code, message, param = problem
            errors.append(_batch_error(code, message, number, param))
            continue
        if line["custom_id"] in seen:
            message = (
                "The custom_id for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each request in a batch."
            )
            errors.append(_batch_error("duplicate_custom_id", message, number, "custom_id"))
            continue
        seen.add(line["custom_id"])
        # One batch serves one model, as at OpenAI.
        line_model = line["body"].get("model")
        if model is None:
            model = line_model
        elif line_model != model:
            message = f"The model {line_model!r} differs from the batch's model {model!r}."
            errors.append(_batch_error("model_mismatch", message, number, "body.model"))
            continue
        requests.append(line)
    return ([] if errors else requests), errors


def _metadata_problem(metadata: Any) -> str | None:
    """Why `metadata` is not OpenAI's up to 16 string pairs (keys <= 64, values <= 512)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "Invalid type for 'metadata': expected an object."
    if len(metadata) > _METADATA_PAIRS:
        return f"Invalid 'metadata': at most {_METADATA_PAIRS} pairs are allowed."
    for key, value in metadata.items():
        if not isinstance(value, str):
            return f"Invalid type for 'metadata.{key}': expected a string."
        if len(key) > _METADATA_KEY_MAX or len(value) > _METADATA_VALUE_MAX:
            return f"Invalid 'metadata.{key}': keys take 64 characters, values 512."
    return None


def _jsonl(records: list[JSON]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()


# --------------------------------------------------------------------------- server


class FakeOpenAI:
    """An OpenAI-compatible chat-completions and Batch API server in a background thread.

    Settings are attributes, safe to change between phases of a test (`latency`,
    `jitter`, `retry_after`, `limit_headers`, `responder`, `require_key`, `faults`,
    `rps_limit`, `burst`, `batch_polls`). With `limit_headers`, answers carry OpenAI's
    `x-ratelimit-*-requests` headers (the limit per minute) when `rps_limit` is set.
    """

    # OpenAI's limit of requests in one batch input file; set a smaller one on an
    # instance to test the limit without a huge file.
    MAX_BATCH_REQUESTS: ClassVar[int] = 50_000

    def __init__(
        self,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        rps_limit: float | None = None,
        burst: float | None = None,
        retry_after: float | None = 1.0,
        limit_headers: bool = True,
        faults: FaultPlan | None = None,
        responder: Responder | None = None,
        model: str = DEFAULT_MODEL,
        require_key: str | None = None,
        hang_seconds: float = 3600.0,
        batch_polls: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if batch_polls < 1:
            raise ValueError("batch_polls must be at least 1")
        self.latency = latency
        self.jitter = jitter
        self.retry_after = retry_after
        self.limit_headers = limit_headers
        self.faults = faults if faults is not None else FaultPlan()
        self.responder: Responder = responder or default_responder
        self.model = model
        self.require_key = require_key
        self.hang_seconds = hang_seconds
        self.batch_polls = batch_polls
        # Batch creations to perform and then answer with a 502, as when the
        # response is lost on the way back (tests of double-submission).
        self.lose_create_responses = 0
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.RLock()
        self._jitter_rng = random.Random(seed)
        self._rps_limit: float | None = None
        self._burst: float | None = None
        self._bucket: _TokenBucket | None = None
        self.set_rate_limit(rps_limit, burst=burst)
        self._requests: list[JSON] = []
        self._batch_requests: list[JSON] = []
        self._files: dict[str, JSON] = {}
        self._file_data: dict[str, bytes] = {}
        self._batches: dict[str, _Batch] = {}  # in creation order
        self._outcomes: deque[_Outcome] = deque()
        self._stats = ServerStats()
        self._ids = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- public API

    @property
    def port(self) -> int:
        """The port the server listens on (after `start`)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `openai.OpenAI(base_url=...)`."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[JSON]:
        """The chat-completion bodies received so far (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def batch_requests(self) -> list[JSON]:
        """The request bodies batches have answered so far, in order (a copy)."""
        with self._lock:
            return list(self._batch_requests)

    @property
    def batches(self) -> list[JSON]:
        """Copies of the batch objects, oldest first, as the API would return them now."""
        with self._lock:
            return [copy.deepcopy(batch.obj) for batch in self._batches.values()]

    @property
    def files(self) -> list[JSON]:
        """Copies of the file objects (uploads and batch outputs), oldest first."""
        with self._lock:
            return [copy.deepcopy(file) for file in self._files.values()]

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a stored file (KeyError for an unknown id)."""
        with self._lock:
            return self._file_data[file_id]

    def enqueue_batch_outcome(self, outcome: BatchOutcome | str, *, answered: int = 0) -> None:
        """Script how a coming batch ends; outcomes are consumed in order.

        A batch takes the next outcome when it leaves "validating" with a valid input
        (default: "completed"): "failed" fails it there (`errors`: token_limit_exceeded,
        no files); "expired" makes it end "expired" after "finalizing", with its first
        `answered` requests answered and the rest `batch_expired` in the error file;
        "cancelled" makes it cancel itself (as from the dashboard): "cancelling" after
        "in_progress", then "cancelled" with `answered` requests answered. A client's
        cancel of a batch still validating takes a queued "cancelled" outcome too (only
        when it is the next one), for its `answered`.
        """
        _check_outcome(outcome)
        if answered < 0:
            raise ValueError("answered must not be negative")
        with self._lock:
            self._outcomes.append(_Outcome(outcome, answered))

    @property
    def stats(self) -> ServerStats:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats.copy()

    @property
    def rps_limit(self) -> float | None:
        """Requests per second allowed (None: unlimited)."""
        return self._rps_limit

    @rps_limit.setter
    def rps_limit(self, value: float | None) -> None:
        self.set_rate_limit(value, burst=self._burst)

    @property
    def burst(self) -> float | None:
        """Bucket capacity (None: `max(1, rps_limit)`)."""
        return self._burst

    @burst.setter
    def burst(self, value: float | None) -> None:
        self.set_rate_limit(self._rps_limit, burst=value)

    def set_rate_limit(self, rps_limit: float | None, *, burst: float | None = None) -> None:
        """Set (or remove, with None) the token bucket; it starts full."""
        if rps_limit is not None and rps_limit <= 0:
            raise ValueError("rps_limit must be positive")
        if burst is not None and burst < 1:
            raise ValueError("burst must be at least 1")
        with self._lock:
            self._rps_limit = rps_limit
            self._burst = burst
            self._bucket = None
            if rps_limit is not None:
                capacity = burst if burst is not None else max(1.0, rps_limit)
                self._bucket = _TokenBucket(rps_limit, capacity, time.monotonic())

    def enqueue(self, *kinds: FaultKind | str) -> None:
        """Script the faults of the next requests, in order (then back to the plan)."""
        with self._lock:
            self.faults.enqueue(*kinds)

    def set_fault_mix(self, mix: Mapping[str, float], *, seed: int = 0) -> None:
        """Random faults: `{kind: probability}` from a generator seeded with `seed`."""
        with self._lock:
            self.faults.set_mix(mix, seed=seed)

    def set_fault_rule(self, fault_for: FaultRule | None) -> None:
        """A rule `(request_body) -> kind | None` consulted after the script."""
        with self._lock:
            self.faults.fault_for = fault_for

    def clear_faults(self) -> None:
        """No more faults: every request is answered "ok"."""
        with self._lock:
            self.faults = FaultPlan()

    def reset(self) -> None:
        """Forget requests, files, batches and scripted batch outcomes; zero the counters.

        The in-flight count stays: those requests are still being answered.
        """
        with self._lock:
            self._requests.clear()
            self._batch_requests.clear()
            self._files.clear()
            self._file_data.clear()
            self._batches.clear()
            self._outcomes.clear()
            in_flight = self._stats.in_flight
            self._stats = ServerStats(in_flight=in_flight, max_in_flight=in_flight)

    # ----------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 5.0) -> FakeOpenAI:
        """Bind a port and serve in a background thread; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._ready.clear()
        self._startup_error = None
        thread = threading.Thread(
            target=self._run, args=(sock,), name=f"FakeOpenAI:{self._port}", daemon=True
        )
        self._thread = thread
        thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("the fake server did not start in time")
        if self._startup_error is not None:
            error = self._startup_error
            self.stop()
            raise error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel requests in progress, close every connection and join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the fake server did not stop in time")
        self._thread = None
        self._loop = None
        self._stopping = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeOpenAI:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:  # reported to start()
            if not self._ready.is_set():
                self._startup_error = exc
        finally:
            sock.close()
            try:
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        # Batch input files run to 200 MB at OpenAI; aiohttp refuses bodies over 1 MB by default.
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/files", self._upload_file)
            app.router.add_get(f"{prefix}/files/{{file_id}}", self._retrieve_file)
            app.router.add_delete(f"{prefix}/files/{{file_id}}", self._delete_file)
            app.router.add_get(f"{prefix}/files/{{file_id}}/content", self._file_content)
            app.router.add_post(f"{prefix}/batches", self._create_batch)
            app.router.add_get(f"{prefix}/batches", self._list_batches)
            app.router.add_get(f"{prefix}/batches/{{batch_id}}", self._retrieve_batch)
            app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", self._cancel_batch)
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            self._ready.set()
            await self._stopping.wait()
            for task in list(self._handlers):
                task.cancel()
            if self._handlers:
                await asyncio.wait(list(self._handlers), timeout=1.0)
        finally:
            await runner.cleanup()

    # ----------------------------------------------------------------- handlers

    def _respond(
        self, status: int, payload: JSON, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        with self._lock:
            self._stats.statuses[status] += 1
        return web.json_response(payload, status=status, headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        key = self.require_key
        return key is None or request.headers.get("Authorization") == f"Bearer {key}"

    def _unauthorized(self, request: web.Request) -> web.Response:
        with self._lock:
            self._stats.unauthorized += 1
        given = request.headers.get("Authorization", "")
        message = "Incorrect API key provided." if given else "You didn't provide an API key."
        return self._respond(401, _error(message, "invalid_request_error", "invalid_api_key"))

    async def _models(self, request: web.Request) -> web.Response:
        with self._lock:
            self._stats.model_requests += 1
        if not self._authorized(request):
            return self._unauthorized(request)
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "fakeserver"}
        return self._respond(200, {"object": "list", "data": [model]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        with self._lock:
            self._stats.requests += 1
            self._stats.in_flight += 1
            self._stats.max_in_flight = max(self._stats.max_in_flight, self._stats.in_flight)
        try:
            return await self._chat_inner(request)
        finally:
            with self._lock:
                self._stats.in_flight -= 1
            if task is not None:
                self._handlers.discard(task)

    async def _chat_inner(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            with self._lock:
                self._stats.bad_requests += 1
            message = "We could not parse the JSON body of your request."
            return self._respond(400, _error(message, "invalid_request_error", None))
        with self._lock:
            self._requests.append(body)
        if body.get("stream"):
            with self._lock:
                self._stats.bad_requests += 1
            message = "FakeOpenAI does not support stream=true."
            return self._respond(400, _error(message, "invalid_request_error", "unsupported"))
        if not self._authorized(request):
            return self._unauthorized(request)

        with self._lock:
            bucket = self._bucket
            allowed = bucket.take(time.monotonic()) if bucket is not None else True
            send = bucket is not None and self.limit_headers
            limit_headers = bucket.headers() if send and bucket is not None else {}
            retry_after = self.retry_after
            if not allowed:
                self._stats.rate_limited += 1
                kind = "rate_limited"
            else:
                kind = self.faults.next_fault(body)
                self._stats.faults[kind] += 1
            delay = self.latency
            if self.jitter > 0:
                delay += self._jitter_rng.uniform(0.0, self.jitter)

        if not allowed:
            return self._respond(
                429, _HTTP_ERRORS["http_429"][1], {**limit_headers, **_retry(retry_after)}
            )
        if delay > 0 and kind != "hang":
            await asyncio.sleep(delay)
        return await self._fault(request, body, kind, limit_headers, retry_after)

    async def _fault(
        self,
        request: web.Request,
        body: JSON,
        kind: str,
        headers: dict[str, str],
        retry_after: float | None,
    ) -> web.StreamResponse:
        if kind in _HTTP_ERRORS:
            status, payload = _HTTP_ERRORS[kind]
            if kind == "http_429":
                headers = {**headers, **_retry(retry_after)}
            return self._respond(status, payload, headers)
        if kind == "hang":
            await asyncio.sleep(self.hang_seconds)
            kind = "ok"
        if kind == "drop":
            transport = request.transport
            if transport is not None:
                transport.write(_DROPPED_HEAD)
                transport.abort()
            # The lost connection cancels this handler (handler_cancellation=True).
            await asyncio.sleep(self.hang_seconds)
            raise ConnectionResetError("dropped by FakeOpenAI")
        if kind == "not_json":
            with self._lock:
                self._stats.statuses[200] += 1
            return web.Response(
                status=200, text=_NOT_JSON_BODY, content_type="text/html", headers=headers
            )
        return self._respond(200, self._completion(body, kind), headers)

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _completion(self, body: JSON, kind: str) -> JSON:
        number = self._next_id()
        model = body.get("model") if isinstance(body.get("model"), str) else self.model
        _, abstract = prompt_parts(body)
        finish_reason = "stop"
        text: str | None = None
        refusal: str | None = None
        if kind != "refusal":
            summary = self.responder(body)
            if kind == "bad_schema":
                summary = {k: v for k, v in summary.items() if k != "method"}
            elif kind == "invented_number":
                summary = _invented_summary(summary, abstract)
            elif kind == "ungrounded_quote":
                summary = _ungrounded_summary(summary, abstract)
            text = json.dumps(summary, ensure_ascii=False)
            if kind == "bad_json_args":
                text = "{'problem': 'single-quoted keys are not JSON', method: None,}"
            elif kind == "truncated":
                text = text[: max(1, len(text) // 2)]
                finish_reason = "length"
        else:
            refusal = REFUSAL_TEXT

        message: JSON = {"role": "assistant", "content": None, "refusal": refusal}
        use_tools = bool(body.get("tools")) and text is not None
        if use_tools:
            call = {
                "id": f"call_fake{number:08d}",
                "type": "function",
                "function": {"name": _tool_name(body), "arguments": text},
            }
            message["tool_calls"] = [call]
            if finish_reason == "stop":
                finish_reason = "tool_calls"
        else:
            message["content"] = text
        completion_tokens = max(1, len(text or refusal or "") // _TOKEN_CHARS)
        prompt_tokens = _prompt_tokens(body)
        choices = [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ]
        return {
            "id": f"chatcmpl-fake{number:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fakeserver",
            "choices": [] if kind == "empty_choices" else choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }

    # ----------------------------------------------------------------- files and batches

    def _invalid(
        self, message: str, param: str | None, code: str | None = None, status: int = 400
    ) -> web.Response:
        return self._respond(status, _error(message, "invalid_request_error", code, param))

    def _no_file(self, file_id: str) -> web.Response:
        return self._invalid(f"No such File object: {file_id}", "id", status=404)

    def _no_batch(self, batch_id: str) -> web.Response:
        return self._invalid(f"No batch found with id '{batch_id}'.", "batch_id", status=404)

    def _add_file(self, data: bytes, filename: str, purpose: str, expires_at: int | None) -> JSON:
        file: JSON = {
            "id": f"file-fake{self._next_id():08d}",
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": expires_at,
            "status_details": None,
        }
        with self._lock:
            self._files[file["id"]] = file
            self._file_data[file["id"]] = data
        return copy.deepcopy(file)

    async def _upload_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized(request)
        if not request.content_type.startswith("multipart/"):
            return self._invalid("Uploads must be multipart/form-data.", None)
        fields: dict[str, str] = {}
        data: bytes | None = None
        filename = "upload"
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue  # a nested multipart: OpenAI's client never sends one
            if part.name == "file":
                filename = part.filename or filename
                data = bytes(await part.read())
            elif part.name:
                fields[part.name] = await part.text()
        purpose = fields.get("purpose")
        if data is None or purpose is None:
            missing = "file" if data is None else "purpose"
            message = f"Missing required parameter: '{missing}'."
            return self._invalid(message, missing, "missing_required_parameter")
        if purpose not in _UPLOAD_PURPOSES:
            allowed = ", ".join(sorted(_UPLOAD_PURPOSES))
            return self._invalid(
                f"Invalid purpose {purpose!r}; expected one of {allowed}.", "purpose"
            )
        if purpose == "batch" and not filename.endswith(".jsonl"):
            # OpenAI's own words: a batch input named otherwise is refused.
            return self._invalid("Invalid file format for Batch API. Must be .jsonl", "file")
        now = int(time.time())
        expires_at = now + _BATCH_FILE_SECONDS if purpose == "batch" else None
        seconds = fields.get("expires_after[seconds]")
        if fields.get("expires_after[anchor]") == "created_at" and seconds and seconds.isdigit():
            expires_at = now + int(seconds)
        file = self._add_file(data, filename, purpose, expires_at)
        with self._lock:
            self._stats.files_uploaded += 1
        return self._respond(200, file)

    async def _retrieve_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized(request)
        file_id = request.match_info["file_id"]
        with self._lock:
            file = copy.deepcopy(self._files.get(file_id))
        if file is None:
            return self._no_file(file_id)
        return self._respond(200, file)

    async def _delete_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized(request)
        file_id = request.match_info["file_id"]
        with self._lock:
            deleted = self._files.pop(file_id, None)
            self._file_data.pop(file_id, None)
        if deleted is None:
            return self._no_file(file_id)
        return self._respond(200, {"id": file_id, "object": "file", "deleted": True})

    async def _file_content(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized(request)
        file_id = request.match_info["file_id"]
        with self._lock:
            data = self._file_data.get(file_id)
            if data is not None:
                self._stats.statuses[200] += 1
        if data is None:
            return self._no_file(file_id)
        return web.Response(status=200, body=data, content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized(request)
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._invalid("We could not parse the JSON body of your request.", None)
        file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        window = body.get("completion_window")
        metadata = body.get("metadata")
        with self._lock:
            file = self._files.get(file_id) if isinstance(file_id, str) else None
            content = self._file_data.get(file_id) if isinstance(file_id, str) else None
        if file is None or content is None:
            return self._invalid(f"No such File object: {file_id}", "input_file_id")
        if file["purpose"] != "batch":
            message = f"File {file_id} was not uploaded with purpose 'batch'."
            return self._invalid(message, "input_file_id")
        if endpoint != BATCH_ENDPOINT:
            message = f"Invalid endpoint {endpoint!r}; FakeOpenAI batches only {BATCH_ENDPOINT!r}."
            return self._invalid(message, "endpoint")
        if window != COMPLETION_WINDOW:
            message = (
                f"Invalid completion_window {window!r}; only {COMPLETION_WINDOW!r} is supported."
            )
            return self._invalid(message, "completion_window")
        problem = _metadata_problem(metadata)
        if problem is not None:
            return self._invalid(problem, "metadata")

        requests, errors = _parse_batch_input(content, endpoint, self.MAX_BATCH_REQUESTS)
        now = int(time.time())
        obj: JSON = {
            "id": f"batch_fake{self._next_id():08d}",
            "object": "batch",
            "endpoint": endpoint,
            "model": None,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + _WINDOW_SECONDS,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "usage": _batch_usage([]),
            "metadata": metadata,
        }
        with self._lock:
            self._batches[obj["id"]] = _Batch(obj, requests, errors)
            self._stats.batches_created += 1
            payload = copy.deepcopy(obj)
            lost = self.lose_create_responses > 0
            self.lose_create_responses -= lost
        if lost:
            return self._respond(502, _HTTP_ERRORS["http_502"][1])
        return self._respond(200, payload)

    async def _retrieve_batch(self, request: web.Request) -> web.Response:
        with self._lock:
            self._stats.batch_retrieves += 1
        if not self._authorized(request):
            return self._unauthorized(request)
        batch_id = request.match_info["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return self._no_batch(batch_id)
            if batch.obj["status"] not in _BATCH_DONE:
                batch.polls += 1
                if batch.polls >= max(1, self.batch_polls):
                    batch.polls = 0
                    self._advance(batch)
            payload = copy.deepcopy(batch.obj)
        return self._respond(200, payload)

    async def _cancel_batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized(request)
        batch_id = request.match_info["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return self._no_batch(batch_id)
            status = batch.obj["status"]
            if status in _BATCH_DONE:
                message = f"Cannot cancel a batch with status '{status}'."
                return self._invalid(message, None, status=409)
            if status != "cancelling":  # cancelling twice changes nothing, as at OpenAI
                queued = self._outcomes[0] if self._outcomes else None
                if batch.outcome is None and queued is not None and queued.status == "cancelled":
                    batch.outcome = self._outcomes.popleft()
                batch.obj.update(status="cancelling", cancelling_at=int(time.time()))
                batch.polls = 0
            payload = copy.deepcopy(batch.obj)
        return self._respond(200, payload)

    async def _list_batches(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized(request)
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return self._invalid("Invalid 'limit': expected an integer from 1 to 100.", "limit")
        after = request.query.get("after")
        with self._lock:
            newest_first = [batch.obj for batch in reversed(self._batches.values())]
            ids = [obj["id"] for obj in newest_first]
            # An unknown cursor gives an empty last page rather than an error.
            start = 0 if after is None else (ids.index(after) + 1 if after in ids else len(ids))
            page = copy.deepcopy(newest_first[start : start + limit])
        return self._respond(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + limit < len(newest_first),
            },
        )

    # Called with the lock held: a batch moves as a whole, between two requests.

    def _advance(self, batch: _Batch) -> None:
        """One step of the batch's life (see `enqueue_batch_outcome` for the endings)."""
        obj = batch.obj
        now = int(time.time())
        status = obj["status"]
        if status == "validating":
            if batch.errors:
                self._fail(batch, batch.errors, now)
                return
            outcome = self._outcomes.popleft() if self._outcomes else _Outcome("completed")
            batch.outcome = outcome
            model = batch.requests[0]["body"].get("model")
            obj["model"] = model if isinstance(model, str) else self.model
            obj["request_counts"]["total"] = len(batch.requests)
            if outcome.status == "failed":
                message = (
                    f"Enqueued token limit reached for {obj['model']} in organization "
                    "org-fakeserver. Limit: 90,000 enqueued tokens. Please try again once "
                    "some in_progress batches have been completed."
                )
                self._fail(batch, [_batch_error("token_limit_exceeded", message)], now)
                return
            obj.update(status="in_progress", in_progress_at=now)
        elif status == "in_progress":
            if batch.outcome is not None and batch.outcome.status == "cancelled":
                obj.update(status="cancelling", cancelling_at=now)
            else:
                obj.update(status="finalizing", finalizing_at=now)
        elif status == "finalizing":
            if batch.outcome is not None and batch.outcome.status == "expired":
                self._finish(batch, "expired", batch.outcome.answered, now)
            else:
                self._finish(batch, "completed", len(batch.requests), now)
        elif status == "cancelling":
            ending = batch.outcome
            answered = ending.answered if ending and ending.status == "cancelled" else 0
            self._finish(batch, "cancelled", answered, now)

    def _fail(self, batch: _Batch, errors: list[JSON], now: int) -> None:
        batch.obj.update(
            status="failed", failed_at=now, errors={"object": "list", "data": list(errors)}
        )

    def _finish(self, batch: _Batch, status: str, answered: int, now: int) -> None:
        """Answer the first `answered` requests; the rest never ran. Write the files."""
        outputs: list[JSON] = []
        failures: list[JSON] = []
        for index, request in enumerate(batch.requests):
            if index < answered:
                record = self._answer_batch_request(request)
                response = record["response"]
                ok = response is not None and response["status_code"] == 200
                (outputs if ok else failures).append(record)
            else:
                failures.append(self._batch_record(request, None, _NOT_RUN[status]))
        batch_id = batch.obj["id"]
        batch.obj.update(
            {
                "status": status,
                f"{status}_at": now,
                "output_file_id": self._output_file(f"{batch_id}_output.jsonl", outputs),
                "error_file_id": self._output_file(f"{batch_id}_error.jsonl", failures),
                "request_counts": {
                    "total": len(batch.requests),
                    "completed": len(outputs),
                    "failed": len(failures),
                },
                "usage": _batch_usage(outputs),
            }
        )

    def _output_file(self, filename: str, records: list[JSON]) -> str | None:
        # OpenAI writes no file rather than an empty one.
        if not records:
            return None
        return str(self._add_file(_jsonl(records), filename, "batch_output", None)["id"])

    def _batch_record(self, request: JSON, response: JSON | None, error: JSON | None) -> JSON:
        return {
            "id": f"batch_req_fake{self._next_id():08d}",
            "custom_id": request["custom_id"],
            "response": response,
            "error": error,
        }

    def _answer_batch_request(self, request: JSON) -> JSON:
        """One line of an output or error file: the chat fault machinery, minus the wire."""
        body: JSON = request["body"]
        kind = self.faults.next_fault(body)
        self._stats.faults[kind] += 1
        self._batch_requests.append(body)
        request_id = f"req_fake{self._next_id():08d}"
        if kind == "hang":
            return self._batch_record(request, None, _TIMED_OUT)
        if kind in _ANSWERED_KINDS:
            status, payload = 200, self._completion(body, kind)
        else:
            # A dropped connection or an HTML page is, to a batch, a server error.
            status, payload = _HTTP_ERRORS.get(kind, _HTTP_ERRORS["http_500"])
        response = {"status_code": status, "request_id": request_id, "body": payload}
        return self._batch_record(request, response, None)


def _batch_usage(outputs: list[JSON]) -> JSON:
    """OpenAI's batch `usage`: the token counts of the completions in the output file."""
    usages = [record["response"]["body"]["usage"] for record in outputs]
    prompt = sum(usage["prompt_tokens"] for usage in usages)
    completion = sum(usage["completion_tokens"] for usage in usages)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _retry(retry_after: float | None) -> dict[str, str]:
    if retry_after is None:
        return {}
    return {"retry-after": _seconds(retry_after), "retry-after-ms": str(round(retry_after * 1000))}


__all__ = [
    "BATCH_ENDPOINT",
    "BATCH_OUTCOMES",
    "DEFAULT_MODEL",
    "FAULT_KINDS",
    "BatchOutcome",
    "FakeOpenAI",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "Responder",
    "ServerStats",
    "default_responder",
    "grounded_summary",
    "prompt_parts",
]


def main() -> None:
    """Serve until Ctrl-C: `python -m tests.fakeserver --port 8000 --latency 0.2 --rps 50`.

    `--batch-polls 3` makes a batch take three retrieves per step of its life.
    """
    import argparse  # noqa: PLC0415 - only the command line needs it
    import time  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="A local OpenAI-compatible test server.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--rps", type=float, default=None, help="429 past this many requests/s")
    parser.add_argument("--jitter", type=float, default=0.0, help="up to this much extra latency")
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds, on 429s")
    parser.add_argument(
        "--no-limit-headers", action="store_true", help="send no x-ratelimit-* headers"
    )
    parser.add_argument(
        "--batch-polls",
        type=int,
        default=1,
        help="retrieves of a batch per step of its status (validating, in_progress, ...)",
    )
    parser.add_argument(
        "--faults",
        default="",
        help="fault mix, e.g. http_500=0.05,drop=0.02",
    )
    args = parser.parse_args()
    mix = {k: float(v) for k, v in (p.split("=") for p in args.faults.split(",") if p)}
    with FakeOpenAI(
        latency=args.latency,
        jitter=args.jitter,
        rps_limit=args.rps,
        retry_after=args.retry_after,
        limit_headers=not args.no_limit_headers,
        batch_polls=args.batch_polls,
        port=args.port,
    ) as server:
        server.set_fault_mix(mix)
        print(f"serving {server.base_url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
