"""`/v1/batches`: batches that check their input, move over polls, and answer."""

from __future__ import annotations

import copy
import json
import time

from aiohttp import web

from .._answers import JSON
from ._batch_input import (
    _ANSWERED_KINDS,
    _BATCH_DONE,
    _NOT_RUN,
    _TIMED_OUT,
    BATCH_ENDPOINT,
    _Batch,
    _batch_error,
    _batch_object,
    _creation_problem,
    _Outcome,
    _parse_batch_input,
    batch_usage,
)
from ._chat import ChatRoutes
from ._faults import _HTTP_ERRORS
from ._files import FileRoutes, _jsonl


class BatchRoutes(ChatRoutes, FileRoutes):
    """The Batch API of `FakeOpenAI`: its batches answer each line as chat does."""

    def _batch_asked(self, request: web.Request) -> _Batch | web.Response:
        """The batch the URL names, or the answer saying why not (401, 404)."""
        if not self._authorized(request.headers):
            return self._unauthorized(request)
        batch_id = request.match_info["batch_id"]
        with self._lock:
            batch = self._batches.get(batch_id)
        return batch if batch is not None else self._no_batch(batch_id)

    def _no_batch(self, batch_id: str) -> web.Response:
        return self._invalid(f"No batch found with id '{batch_id}'.", "batch_id", status=404)

    async def _create_batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers):
            return self._unauthorized(request)
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._invalid("We could not parse the JSON body of your request.", None)
        file_id = body.get("input_file_id")
        with self._lock:
            file = self._files.get(file_id) if isinstance(file_id, str) else None
            content = self._file_data.get(file_id) if isinstance(file_id, str) else None
        if file is None or content is None:
            return self._invalid(f"No such File object: {file_id}", "input_file_id")
        problem = _creation_problem(body, file)
        if problem is not None:
            return self._invalid(*problem)
        requests, errors = _parse_batch_input(content, BATCH_ENDPOINT, self.MAX_BATCH_REQUESTS)
        obj = _batch_object(f"batch_fake{self._next_id():08d}", body)
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
        if not self._authorized(request.headers):
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
                "usage": batch_usage(outputs),
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
