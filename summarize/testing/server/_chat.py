"""`/v1/chat/completions`: latency, the rate limit, the fault, then the answer.

`ChatRoutes.answer` is the whole endpoint short of the wire: the aiohttp route calls
it for each POST, and `MockTransport(server.answer)` calls it in-process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

from aiohttp import web

from ..._live.transport import Reply
from .._answers import (
    _TOKEN_CHARS,
    JSON,
    REFUSAL_TEXT,
    _invented_summary,
    _tool_name,
    _ungrounded_summary,
    prompt_parts,
    prompt_tokens,
)
from .._transport import ChatRequest
from ._faults import _DROPPED_HEAD, _HTTP_ERRORS, _NOT_JSON_BODY, _error, _retry
from ._state import _ServerState, _web


class ChatRoutes(_ServerState):
    """The chat-completions endpoint of `FakeOpenAI`."""

    async def answer(self, request: ChatRequest) -> Reply:
        """The answer to one chat-completions request, as the server would send it.

        A handler for `summarize.testing.MockTransport`: the same faults, rate limit,
        latency, counters and `requests` as over sockets, with no socket. A "drop"
        raises `ConnectionResetError`; a "hang" sleeps `hang_seconds` (only a client's
        timeout, which needs the wire, ends it).
        """
        with self._lock:
            self._stats.requests += 1
            self._stats.in_flight += 1
            self._stats.max_in_flight = max(self._stats.max_in_flight, self._stats.in_flight)
        try:
            return await self._answer(request.body, request.headers)
        finally:
            with self._lock:
                self._stats.in_flight -= 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = None
            if not isinstance(body, dict):
                with self._lock:
                    self._stats.requests += 1
                    self._stats.bad_requests += 1
                message = "We could not parse the JSON body of your request."
                return self._respond(400, _error(message, "invalid_request_error", None))
            try:
                return _web(await self.answer(ChatRequest(str(request.url), request.headers, body)))
            except ConnectionResetError:
                return await self._drop(request)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        """Break the answer off mid-body, as a dropped connection does."""
        transport = request.transport
        if transport is not None:
            transport.write(_DROPPED_HEAD)
            transport.abort()
        # The lost connection cancels this handler (handler_cancellation=True).
        await asyncio.sleep(self.hang_seconds)
        raise ConnectionResetError("dropped by FakeOpenAI")

    async def _answer(self, body: JSON, headers: Mapping[str, str]) -> Reply:
        arrived = time.monotonic()
        with self._lock:
            self._requests.append(body)
        if body.get("stream"):
            with self._lock:
                self._stats.bad_requests += 1
            message = "FakeOpenAI does not support stream=true."
            return self._reply(400, _error(message, "invalid_request_error", "unsupported"))
        if not self._authorized(headers):
            return self._refused(headers)
        kind, delay, limit_headers = self._fault_for(body)
        if kind == "rate_limited":
            return self._reply(
                429, _HTTP_ERRORS["http_429"][1], {**limit_headers, **_retry(self.retry_after)}
            )
        if delay <= 0 or kind == "hang":
            return await self._fault(body, kind, limit_headers)
        if kind == "drop":
            await asyncio.sleep(delay)
            return await self._fault(body, kind, limit_headers)
        # The latency runs from the request's arrival and includes building the answer,
        # as a provider's does: answers to a burst are not served one after another.
        reply = await self._fault(body, kind, limit_headers)
        await asyncio.sleep(max(0.0, arrived + delay - time.monotonic()))
        return reply

    def _fault_for(self, body: JSON) -> tuple[str, float, dict[str, str]]:
        """The request's fate ("rate_limited" or a fault kind), its latency, and the
        rate-limit headers its answer carries."""
        with self._lock:
            bucket = self._bucket
            allowed = bucket.take(self.clock()) if bucket is not None else True
            send = bucket is not None and self.limit_headers
            limit_headers = bucket.headers() if send and bucket is not None else {}
            if not allowed:
                self._stats.rate_limited += 1
                return "rate_limited", 0.0, limit_headers
            kind = self.faults.next_fault(body)
            self._stats.faults[kind] += 1
            delay = self.latency
            if self.jitter > 0:
                delay += self._jitter_rng.uniform(0.0, self.jitter)
        return kind, delay, limit_headers

    async def _fault(self, body: JSON, kind: str, headers: dict[str, str]) -> Reply:
        if kind in _HTTP_ERRORS:
            status, payload = _HTTP_ERRORS[kind]
            if kind == "http_429":
                headers = {**headers, **_retry(self.retry_after)}
            return self._reply(status, payload, headers)
        if kind == "hang":
            await asyncio.sleep(self.hang_seconds)
            kind = "ok"
        if kind == "drop":
            raise ConnectionResetError("dropped by FakeOpenAI")
        if kind == "not_json":
            with self._lock:
                self._stats.statuses[200] += 1
            html = {**headers, "Content-Type": "text/html; charset=utf-8"}
            return Reply(200, html, _NOT_JSON_BODY.encode())
        return self._reply(200, self._completion(body, kind), headers)

    def _completion(self, body: JSON, kind: str) -> JSON:
        number = self._next_id()
        model = body.get("model") if isinstance(body.get("model"), str) else self.model
        text, arguments, finish_reason = self._answer_text(body, kind)
        refusal = REFUSAL_TEXT if text is None else None
        message: JSON = {"role": "assistant", "content": None, "refusal": refusal}
        if body.get("tools") and text is not None:
            call = {
                "id": f"call_fake{number:08d}",
                "type": "function",
                "function": {"name": _tool_name(body), "arguments": arguments or text},
            }
            message["tool_calls"] = [call]
            if finish_reason == "stop":
                finish_reason = "tool_calls"
        else:
            message["content"] = text
        completion_tokens = max(1, len(text or refusal or "") // _TOKEN_CHARS)
        tokens_in = prompt_tokens(body)
        choices = [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ]
        completion = {
            "id": f"chatcmpl-fake{number:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fakeserver",
            "choices": [] if kind == "empty_choices" else choices,
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": completion_tokens,
                "total_tokens": tokens_in + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }
        return _malformed(completion, number) if kind == "malformed" else completion

    def _answer_text(self, body: JSON, kind: str) -> tuple[str | None, JSON | None, str]:
        """The answer's JSON text (None: a refusal), the same as an object when `kind`
        sends it so, and the finish reason."""
        if kind == "refusal":
            return None, None, "stop"
        _, abstract = prompt_parts(body)
        summary = self.responder(body)
        if kind == "bad_schema":
            summary = {k: v for k, v in summary.items() if k != "method"}
        elif kind == "invented_number":
            summary = _invented_summary(summary, abstract)
        elif kind == "ungrounded_quote":
            summary = _ungrounded_summary(summary, abstract)
        text = json.dumps(summary, ensure_ascii=False)
        # As some servers send them: an object, not a string.
        arguments = summary if kind == "object_arguments" else None
        finish_reason = "stop"
        if kind == "bad_json_args":
            text = "{'problem': 'single-quoted keys are not JSON', method: None,}"
        elif kind == "truncated":
            text = text[: max(1, len(text) // 2)]
            finish_reason = "length"
        room = body.get("max_tokens")
        if isinstance(room, int) and len(text) > room * _TOKEN_CHARS:
            # As a model does: the answer stops at the request's token cap.
            text, arguments = text[: room * _TOKEN_CHARS], None
            finish_reason = "length"
        return text, arguments, finish_reason


def _malformed(completion: JSON, number: int) -> JSON:
    """A 200 body that is no chat completion, one of the shapes broken servers send."""
    choice = completion["choices"][0]
    message = choice["message"]
    variant = number % 4
    if variant == 0:
        return {**completion, "choices": ["oops"]}
    if variant == 1:
        usage = {"prompt_tokens": "many", "completion_tokens": "few", "total_tokens": None}
        return {**completion, "usage": usage}
    if variant == 2:
        calls = message.get("tool_calls") or [{"function": {"arguments": message["content"]}}]
        broken = {**message, "tool_calls": calls[0]}  # an object, not a list
        return {**completion, "choices": [{**choice, "message": broken}]}
    return {**completion, "choices": [{**choice, "message": "the answer"}]}
