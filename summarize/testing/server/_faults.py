"""Faults a request can meet: the kinds, the plan that picks one, the HTTP errors
they become, the rate limit and the counters."""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal, get_args

from .._answers import JSON

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
    "malformed",
    "object_arguments",
]
FAULT_KINDS: Final[tuple[str, ...]] = get_args(FaultKind)


def _check_kind(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return kind


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
        self._rng = random.Random(seed)  # noqa: S311 - a seeded fault mix, not secrets
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
        self._rng = random.Random(seed)  # noqa: S311 - a seeded fault mix, not secrets

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
        """An independent snapshot (every field, the counters copied)."""
        return replace(self, faults=Counter(self.faults), statuses=Counter(self.statuses))


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


def _retry(retry_after: float | None) -> dict[str, str]:
    if retry_after is None:
        return {}
    return {"retry-after": _seconds(retry_after), "retry-after-ms": str(round(retry_after * 1000))}
