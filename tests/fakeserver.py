"""A fake OpenAI-compatible chat-completions server for tests and benchmarks.

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

An "ok" answer is a tool call with the `responder`'s arguments when the request
has `tools`, else (`response_format` json_schema / json_object, or plain JSON
prompting) the same JSON in `message.content`. The default responder is
deterministic and grounded in the abstract of the prompt, so its answers pass
`summarize.schema.Summary` validation with the grounding context.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from typing import Any, Final, Literal, get_args

from aiohttp import web
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
    for each request that passed validation, auth and the rate limit ("ok" included);
    `statuses`: status codes of complete responses (a dropped or hung request has none).
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


def _error(message: str, kind: str, code: str | None) -> JSON:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


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


# --------------------------------------------------------------------------- server


class FakeOpenAI:
    """An OpenAI-compatible chat-completions server in a background thread.

    Settings are attributes, safe to change between phases of a test (`latency`,
    `jitter`, `retry_after`, `limit_headers`, `responder`, `require_key`, `faults`,
    `rps_limit`, `burst`). With `limit_headers`, answers carry OpenAI's
    `x-ratelimit-*-requests` headers (the limit per minute) when `rps_limit` is set.
    """

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
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.jitter = jitter
        self.retry_after = retry_after
        self.limit_headers = limit_headers
        self.faults = faults if faults is not None else FaultPlan()
        self.responder: Responder = responder or default_responder
        self.model = model
        self.require_key = require_key
        self.hang_seconds = hang_seconds
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
        """Forget the received requests and zero the counters (in-flight stays)."""
        with self._lock:
            self._requests.clear()
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
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
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
            limit_headers = bucket.headers() if send else {}
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


def _retry(retry_after: float | None) -> dict[str, str]:
    if retry_after is None:
        return {}
    return {"retry-after": _seconds(retry_after), "retry-after-ms": str(round(retry_after * 1000))}


__all__ = [
    "DEFAULT_MODEL",
    "FAULT_KINDS",
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
    """Serve until Ctrl-C: `python -m tests.fakeserver --port 8000 --latency 0.2 --rps 50`."""
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
        port=args.port,
    ) as server:
        server.set_fault_mix(mix)
        print(f"serving {server.base_url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
