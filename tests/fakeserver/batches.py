"""`/v1/batches`: batches that check their input, move over polls, and answer."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from aiohttp import web

from .faults import _HTTP_ERRORS, FAULT_KINDS, JSON
from .files import _jsonl

BatchOutcome = Literal["completed", "expired", "failed", "cancelled"]
BATCH_OUTCOMES: Final[tuple[str, ...]] = get_args(BatchOutcome)
BATCH_ENDPOINT: Final = "/v1/chat/completions"
COMPLETION_WINDOW: Final = "24h"
_WINDOW_SECONDS: Final = 86_400
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


class BatchRoutes:
    """The Files and Batch API of `FakeOpenAI`."""

    def _batch_asked(self, request: web.Request) -> _Batch | web.Response:
        """The batch the URL names, or the answer saying why not (401, 404)."""
        if not self._authorized(request):
            return self._unauthorized(request)
        batch_id = request.match_info["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
        return batch if batch is not None else self._no_batch(batch_id)

    def _no_batch(self, batch_id: str) -> web.Response:
        return self._invalid(f"No batch found with id '{batch_id}'.", "batch_id", status=404)

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
        batch = self._batch_asked(request)
        if isinstance(batch, web.Response):
            return batch
        with self._lock:
            if batch.obj["status"] not in _BATCH_DONE:
                batch.polls += 1
                if batch.polls >= max(1, self.batch_polls):
                    batch.polls = 0
                    self._advance(batch)
            payload = copy.deepcopy(batch.obj)
        return self._respond(200, payload)

    async def _cancel_batch(self, request: web.Request) -> web.Response:
        batch = self._batch_asked(request)
        if isinstance(batch, web.Response):
            return batch
        with self._lock:
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
        return str(self._add_file(_jsonl(records), filename, "batch_output")["id"])

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
    usages = [record["response"]["body"].get("usage") for record in outputs]
    prompt = sum(_tokens(usage, "prompt_tokens") for usage in usages)
    completion = sum(_tokens(usage, "completion_tokens") for usage in usages)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _tokens(usage: Any, key: str) -> int:
    """A count of a completion's usage; 0 where a malformed answer has none."""
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) else 0
