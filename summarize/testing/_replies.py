"""Replies a `MockTransport` handler returns: a chat completion, an error, any JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from .._live.transport import Reply

_REASONS: Final = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    404: "The model does not exist.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


def json_reply(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Reply:
    """`payload` as a JSON body, with `status` and `headers`."""
    content = json.dumps(payload, ensure_ascii=False).encode()
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, content)


def completion_reply(
    arguments: Mapping[str, Any] | str,
    *,
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
    finish_reason: str = "tool_calls",
    model: str = "mock-model",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """A chat completion whose answer is a call of the summary tool with `arguments`
    (a dict, sent as its JSON; or a string, sent as it is: broken JSON too), and
    `usage` with these token counts. `finish_reason="length"` says the answer was cut
    off at the request's `max_tokens`."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    function = {"name": "Summary", "arguments": text}
    call = {"id": "call_mock", "type": "function", "function": function}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return json_reply(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
        headers=headers,
    )


def error_reply(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An error as OpenAI sends one (`{"error": {"message": ...}}`) with `status`;
    `retry_after` (seconds) adds the `Retry-After` header a 429 or 503 may carry."""
    said = message or _REASONS.get(status, f"HTTP {status}.")
    waits = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    body = {"error": {"message": said, "type": "error", "param": None, "code": None}}
    return json_reply(body, status=status, headers={**waits, **(headers or {})})
