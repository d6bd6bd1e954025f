"""The live model call: one abstract in, a validated summary or a typed error out.

Every endpoint is reached the same way: the body of `_core.request` (the
prompt's messages and a forced function tool, which OpenAI, vLLM, Ollama,
LiteLLM and llama.cpp's server all honour: llama.cpp turns the function's
schema into a grammar), serialised once and sent by the transport:
`HTTPTransport` (one keep-alive pool, no SDK per call), or the one given
(`transport=`, as in httpx; `summarize.testing.MockTransport` answers
in-process). The reply's JSON is judged by `_core.verdict`, as a batch answer
is. Two budgets, never multiplied: transient transport faults wait and resend
the same request (a tenacity policy, `max_retries`); invalid answers are
re-asked with the rejected answer and the reason (`prompts/repair.md`,
`max_reasks`). An answer cut off at `max_tokens` is no judged answer: the same
request goes again with twice the room, up to `ROOM_GROWTH` times the configured
cap, on neither budget. What a transient fault is, how long to wait, and which
typed error a fault ends as is `retries`; when each request may start is the
pacer's (`pacer.Pacing`). Logged (`summarize.client`): each request at DEBUG (the
abstract, the try, the status, the time, the tokens), each re-ask and each resend with
more room at INFO.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .._core.request import chat_request, tool_chars
from .._core.strategy import question
from .._core.summarizer import Completion
from .._core.verdict import LOGGED_FAULT_CHARS, ChatReply, NotACompletion, Verdict, judge_reply
from .._errors import SummaryError
from .._items import Item
from .._prompt import Prompt, RepairPrompt, load_repair_prompt
from .._settings import EndpointSettings
from .._tokens import TokenEstimator
from .._usage import Usage
from .pacer import Pacer, Pacing
from .retries import RetryPolicy, StatusError, completion_body
from .transport import AsyncTransport, EndpointUnreachable, HTTPTransport, chat_route

# A cut-off answer is asked again with twice the room, up to this many times the cap.
ROOM_GROWTH: Final = 4

log = logging.getLogger("summarize.client")


@dataclass(slots=True)
class _Tally:
    """One abstract's requests so far: what they cost, and how each budget stands."""

    item_id: str = ""
    schema_chars: int = 0  # of the tool, for token estimates
    usage: Usage = field(default_factory=Usage)
    sent: int = 0
    transient: int = 0
    reasks: int = 0
    service_s: float = 0.0
    rejected: str | None = None  # the last answer that failed validation
    reasons: list[str] = field(default_factory=list)  # each re-ask's `Fault.kind`

    def one_more_transient(self) -> int:
        """Count a transient fault; how many this abstract has met."""
        self.transient += 1
        return self.transient

    def failure(self, error: SummaryError) -> SummaryError:
        """`error`, carrying this abstract's totals."""
        return error.carrying(self.usage, self.sent, raw_output=self.rejected,
                              reasks=tuple(self.reasons))  # fmt: skip


class OpenAISummarizer:
    """Summaries from any endpoint that speaks the OpenAI chat-completions protocol.

    `transport` sends each request instead of the sockets of an `HTTPTransport` (a
    `summarize.testing.MockTransport` answers in-process); the endpoint's URL and
    headers are built and checked the same either way.
    """

    def __init__(
        self,
        endpoint: EndpointSettings,
        prompt: Prompt,
        *,
        pacer: Pacing | None = None,
        repairs: Mapping[str, Sequence[dict[str, str]]] | None = None,
        repair_prompt: RepairPrompt | None = None,
        transport: AsyncTransport | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._prompt = prompt
        # Turns that follow the prompt for some ids: a rejected answer and why (batch repair).
        self._repairs = repairs or {}
        self._repair_prompt = repair_prompt or load_repair_prompt()
        self._pacer = pacer or Pacer()
        self._estimator = TokenEstimator(endpoint.max_tokens)
        self._route = chat_route(endpoint)
        self._transport = transport or HTTPTransport(self._route.url, timeout=endpoint.timeout)
        self.model_name = endpoint.recorded_model
        self._retries = RetryPolicy(endpoint, self._pacer)

    async def aclose(self) -> None:
        """Close the transport (the HTTP connection pool)."""
        await self._transport.aclose()

    async def summarize(self, item: Item) -> Completion:
        """Summarise one abstract; every failure becomes a typed `SummaryError`."""
        asked = question(self._prompt, item, constrain_quotes=self._endpoint.constrain_quotes)
        messages = [*asked.messages, *self._repairs.get(item.id, ())]
        tally = _Tally(item.id, schema_chars=tool_chars(asked.answer_model))
        endpoint = self._endpoint
        while True:
            reply = await self._answer(chat_request(asked, messages, endpoint), tally)
            verdict = judge_reply(reply, asked, item)
            tally.usage += verdict.usage
            if verdict.summary is not None:
                return Completion(verdict.summary, tally.usage, tally.sent, tally.service_s,
                                  tuple(tally.reasons))  # fmt: skip
            assert verdict.error is not None
            if verdict.repair == "longer" and (room := self._more_room(endpoint)) is not None:
                # The same request with more room: the cut-off answer is not sent back.
                log.info("resend %s with room for %d tokens: the answer was cut off at %s",
                         item.id, room, endpoint.max_tokens)  # fmt: skip
                endpoint = endpoint.model_copy(update={"max_tokens": room})
                continue
            if not self._may_reask(verdict, tally):
                raise tally.failure(verdict.error)
            answer, reason = verdict.answer or "", verdict.error.message
            messages = [*messages, *self._repair_prompt.messages(
                answer=answer, error=reason, with_answer=endpoint.reask_with_answer)]

    def _more_room(self, sent: EndpointSettings) -> int | None:
        """Twice the cap `sent` had, within `ROOM_GROWTH` times the configured one; None
        when no more is allowed."""
        room, cap = sent.max_tokens, self._endpoint.max_tokens
        if room is None or cap is None:
            return None  # no cap was sent: the endpoint's own limit cut the answer off
        return min(room * 2, cap * ROOM_GROWTH) if room < cap * ROOM_GROWTH else None

    def _may_reask(self, verdict: Verdict, tally: _Tally) -> bool:
        if verdict.repair != "reask" or tally.reasks >= self._endpoint.max_reasks:
            return False
        # A model that gives the rejected answer again will give it every time.
        repeated = verdict.answer is not None and verdict.answer == tally.rejected
        tally.rejected = verdict.answer
        if repeated:
            return False
        tally.reasks += 1
        fault = verdict.fault
        tally.reasons.append(fault.kind if fault else "other")
        text = fault.text if fault else (verdict.error.message if verdict.error else "")
        log.info("re-ask %s (%d of %d): %s", tally.item_id, tally.reasks,
                 self._endpoint.max_reasks, text[:LOGGED_FAULT_CHARS])  # fmt: skip
        return True

    async def _answer(self, request: dict[str, Any], tally: _Tally) -> ChatReply:
        """The completion, sending again after transient faults."""
        try:
            retrying = self._retries.retrying(tally.one_more_transient, tally.item_id,
                                              lambda: tally.sent)  # fmt: skip
            async for attempt in retrying:
                with attempt:
                    return await self._send(request, tally)
        except (StatusError, EndpointUnreachable, NotACompletion) as exc:
            error = self._retries.translate(exc)
            raise tally.failure(error) if isinstance(error, SummaryError) else error from None
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _send(self, request: dict[str, Any], tally: _Tally) -> ChatReply:
        """One HTTP attempt: wait for a rate-limit slot, send, learn from the answer."""
        tally.sent += 1
        prompt_guess = self._estimator.prompt_tokens(request["messages"], tally.schema_chars)
        expected = prompt_guess + self._estimator.completion_tokens()
        await self._pacer.acquire(expected)
        started = time.perf_counter()
        try:
            reply = await self._transport.send(self._route.request(json.dumps(request).encode()))
        except EndpointUnreachable as exc:
            log.debug("request %s try %d: no answer after %.3f s (%s)", tally.item_id,
                      tally.sent, time.perf_counter() - started, exc)  # fmt: skip
            self._retries.connection_failed(exc)
            raise
        took = time.perf_counter() - started
        self._retries.answered()
        self._pacer.observe(reply.headers)
        try:
            completion = completion_body(reply)
        except (StatusError, NotACompletion):
            log.debug("request %s try %d: HTTP %d in %.3f s", tally.item_id, tally.sent,
                      reply.status, took)  # fmt: skip
            raise
        log.debug("request %s try %d: HTTP %d in %.3f s, %d tokens", tally.item_id, tally.sent,
                  reply.status, took, completion.total_tokens)  # fmt: skip
        tally.service_s = took
        tokens = completion.tokens
        self._estimator.learn(estimated_prompt=prompt_guess, prompt=tokens.prompt_tokens,
                              completion=tokens.completion_tokens)  # fmt: skip
        self._pacer.settle(expected, completion.total_tokens)
        return completion
