"""What `FakeOpenAI` holds: its settings, what it was sent, its counters; and how every
route answers (a status counted, a key checked)."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web

from ..._live.transport import Reply
from .._answers import JSON
from ._batch_input import BatchOutcome, _Batch, _check_outcome, _Outcome
from ._faults import (
    FaultKind,
    FaultPlan,
    FaultRule,
    Responder,
    ServerStats,
    _error,
    _TokenBucket,
)


class _ServerState:
    """The state every route of `FakeOpenAI` reads and writes, under `_lock`."""

    # OpenAI's limit of requests in one batch input file; set a smaller one on an
    # instance to test the limit without a huge file.
    MAX_BATCH_REQUESTS: ClassVar[int] = 50_000

    # Settings (see `FakeOpenAI`): safe to change between phases of a test.
    latency: float
    jitter: float
    retry_after: float | None
    limit_headers: bool
    faults: FaultPlan
    responder: Responder
    model: str
    require_key: str | None
    hang_seconds: float
    batch_polls: int
    # Batch creations to perform and then answer with a 502, as when the
    # response is lost on the way back (tests of double-submission).
    lose_create_responses: int
    clock: Callable[[], float]

    def __init__(self, *, seed: int) -> None:
        self._lock = threading.RLock()
        self.clock = time.monotonic
        self._jitter_rng = random.Random(seed)  # noqa: S311 - latency, not secrets
        self._rps_limit: float | None = None
        self._bucket: _TokenBucket | None = None
        self._requests: list[JSON] = []
        self._batch_requests: list[JSON] = []
        self._files: dict[str, JSON] = {}
        self._file_data: dict[str, bytes] = {}
        self._batches: dict[str, _Batch] = {}  # in creation order
        self._outcomes: deque[_Outcome] = deque()
        self._stats = ServerStats()
        self._ids = 0
        self._handlers: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- public API

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
        self.set_rate_limit(value)

    def set_rate_limit(self, rps_limit: float | None) -> None:
        """Set (or remove, with None) the limit: a bucket of one second's requests, full."""
        if rps_limit is not None and rps_limit <= 0:
            raise ValueError("rps_limit must be positive")
        with self._lock:
            self._rps_limit = rps_limit
            self._bucket = None
            if rps_limit is not None:
                self._bucket = _TokenBucket(rps_limit, max(1.0, rps_limit), self.clock())

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

    # ----------------------------------------------------------------- routes' helpers

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _reply(self, status: int, payload: JSON, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON reply, its status counted."""
        with self._lock:
            self._stats.statuses[status] += 1
        content = json.dumps(payload).encode()
        return Reply(status, {"Content-Type": "application/json", **(headers or {})}, content)

    def _respond(
        self, status: int, payload: JSON, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return _web(self._reply(status, payload, headers))

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        key = self.require_key
        return key is None or headers.get("Authorization") == f"Bearer {key}"

    def _refused(self, headers: Mapping[str, str]) -> Reply:
        """The 401 of a request without the key `require_key` asks for."""
        with self._lock:
            self._stats.unauthorized += 1
        given = headers.get("Authorization", "")
        message = "Incorrect API key provided." if given else "You didn't provide an API key."
        return self._reply(401, _error(message, "invalid_request_error", "invalid_api_key"))

    def _unauthorized(self, request: web.Request) -> web.Response:
        return _web(self._refused(request.headers))


def _web(reply: Reply) -> web.Response:
    """`reply` as aiohttp's server sends it."""
    return web.Response(status=reply.status, body=reply.content, headers=reply.headers)
