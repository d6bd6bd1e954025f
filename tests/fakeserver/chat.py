"""`/v1/chat/completions`: latency, the rate limit, the fault, then the answer."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from .answers import (
    _TOKEN_CHARS,
    REFUSAL_TEXT,
    _invented_summary,
    _tool_name,
    _ungrounded_summary,
    prompt_parts,
    prompt_tokens,
)
from .faults import _DROPPED_HEAD, _HTTP_ERRORS, _NOT_JSON_BODY, JSON, _error, _retry


class ChatRoutes:
    """The chat-completions endpoint of `FakeOpenAI`."""

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
        arrived = time.monotonic()
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
            allowed = bucket.take(self.clock()) if bucket is not None else True
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
        if delay <= 0 or kind == "hang":
            return await self._fault(request, body, kind, limit_headers, retry_after)
        if kind == "drop":
            await asyncio.sleep(delay)
            return await self._fault(request, body, kind, limit_headers, retry_after)
        # The latency runs from the request's arrival and includes building the answer,
        # as a provider's does: answers to a burst are not served one after another.
        response = await self._fault(request, body, kind, limit_headers, retry_after)
        await asyncio.sleep(max(0.0, arrived + delay - time.monotonic()))
        return response

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

    def _completion(self, body: JSON, kind: str) -> JSON:
        number = self._next_id()
        model = body.get("model") if isinstance(body.get("model"), str) else self.model
        _, abstract = prompt_parts(body)
        finish_reason = "stop"
        text: str | None = None
        arguments: JSON | None = None
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
            if kind == "object_arguments":
                arguments = summary  # as some servers send them: an object, not a string
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
        else:
            refusal = REFUSAL_TEXT

        message: JSON = {"role": "assistant", "content": None, "refusal": refusal}
        use_tools = bool(body.get("tools")) and text is not None
        if use_tools:
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
