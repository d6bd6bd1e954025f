"""`MockTransport`: the wire of live requests, answered in-process by a function.

As httpx's `MockTransport(handler)`: the client builds each request as it would for
the network (URL, headers, JSON body), and `handler` answers it as an endpoint would.
Nothing opens a socket, so a test of answers, validation, re-asks, records and usage
runs at the speed of the code under test. What only sockets show (timeouts, dropped
connections, TLS, proxies, throughput) needs a real server: `summarize.testing.server`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import error_line
from .._live.transport import EndpointUnreachable, Reply, Request
from ._answers import grounded_summary, prompt_parts, prompt_tokens
from ._replies import completion_reply


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat-completions request as the endpoint receives it: its JSON body parsed."""

    url: str
    headers: Mapping[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation sent: the prompt, then any rejected answer and its re-ask."""
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def abstract(self) -> str:
        """The abstract asked about: the text between `<abstract>` markers of the last
        user message that has them (the whole last user message if none has)."""
        return prompt_parts(self.body)[1]

    @property
    def max_tokens(self) -> int | None:
        """The answer's token cap, if the request sets one."""
        cap = self.body.get("max_tokens")
        return cap if isinstance(cap, int) else None


Handler = Callable[[ChatRequest], Reply | Awaitable[Reply]]


class MockTransport:
    """A transport that answers each request with `handler(request)`, in-process.

        from summarize import EndpointSettings, RunSettings, run
        from summarize.testing import MockTransport, completion_reply, error_reply

        replies = iter([error_reply(503), completion_reply({"problem": ...})])
        transport = MockTransport(lambda request: next(replies))
        endpoint = EndpointSettings(api_key="sk-test")  # an endpoint, not the embedded model
        result = run(RunSettings(inputs=("papers.jsonl",), endpoint=endpoint),
                     transport=transport)

    `handler` takes a `ChatRequest` and returns a `Reply` (see `completion_reply`,
    `error_reply`, `json_reply`), or an awaitable of one (an `async def` handler can
    sleep, to stand for latency). A handler that raises `ConnectionError` or
    `TimeoutError` stands for an endpoint that gave no answer. Without a handler, every
    request gets `grounded_reply`: a valid summary of the abstract asked about.
    `requests` keeps every request, in the order they were sent.
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or grounded_reply
        self.requests: list[ChatRequest] = []

    async def send(self, request: Request) -> Reply:
        """The handler's answer to one request (called by the client)."""
        asked = ChatRequest(str(request.url), dict(request.headers), json.loads(request.content))
        self.requests.append(asked)
        try:
            answer = self.handler(asked)
            return await answer if inspect.isawaitable(answer) else answer
        except (ConnectionError, TimeoutError) as exc:
            raise EndpointUnreachable(error_line(exc)) from exc

    async def aclose(self) -> None:
        """Nothing to release: the same transport may serve run after run."""


def grounded_reply(request: ChatRequest) -> Reply:
    """A valid answer to `request`: a summary grounded in its abstract (the first
    sentences, a gain its abstract states), as a tool call, with usage at about four
    characters a token. What `MockTransport()` answers by default."""
    arguments = grounded_summary(request.abstract)
    completion_tokens = len(json.dumps(arguments)) // 4
    return completion_reply(arguments, prompt_tokens=prompt_tokens(request.body),
                            completion_tokens=completion_tokens)  # fmt: skip
