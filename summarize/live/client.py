"""The live model call: one abstract in, a validated summary or a typed error out.

Every endpoint is reached the same way: the body of `summarize.request` (the
prompt's messages and a forced function tool, which OpenAI, vLLM, Ollama,
LiteLLM and llama.cpp's server all honour: llama.cpp turns the function's
schema into a grammar), posted through an `openai.AsyncOpenAI` client with
`max_retries=0`. The reply's JSON is judged by `summarize.answer`, as a batch
answer is. Two budgets, never multiplied: transient transport faults wait and
resend the same request (a tenacity policy, `max_retries`); invalid answers are
re-asked with the rejected answer and the reason (`prompts/repair.md`,
`max_reasks`). openai's exceptions are translated into `SummaryError` /
`ConfigError` / `ProviderError` here.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import openai
from tenacity import AsyncRetrying, RetryCallState, wait_random_exponential

from ..answer import Verdict, judge_completion
from ..errors import ConfigError, ErrorType, ProviderError, SummaryError, error_line
from ..items import Item
from ..prompt import Prompt, RepairPrompt, load_repair_prompt
from ..request import chat_request, tool_chars
from ..schema import Summary
from ..settings import EndpointSettings, without_credentials
from ..strategy import question
from ..tokens import TokenEstimator
from ..usage import Usage
from .ratelimit import RateLimiter

# How long a run keeps trying an endpoint that has never answered, before it stops.
UNREACHABLE_AFTER_S = 15.0
_FATAL_STATUS = {401: "rejected the API key", 403: "refused access", 404: "has no such model"}


@dataclass(frozen=True, slots=True)
class Completion:
    """A validated summary and what it cost."""

    summary: Summary
    usage: Usage
    attempts: int
    service_s: float = 0.0  # of the answered request, rate-limit waits excluded; 0: untimed


class Summarizer(Protocol):
    """What the runner needs from a model: one abstract in, one summary out."""

    model_name: str

    async def summarize(self, item: Item) -> Completion:
        """Summarise one item, or raise `SummaryError` saying why not."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class _Transient(Exception):
    """A reply that was no chat completion at all: sent again, like a 5xx."""


@dataclass(slots=True)
class _Tally:
    """One abstract's requests so far: what they cost, and how each budget stands."""

    schema_chars: int = 0  # of the tool, for token estimates
    usage: Usage = field(default_factory=Usage)
    sent: int = 0
    transient: int = 0
    reasks: int = 0
    service_s: float = 0.0
    rejected: str | None = None  # the last answer that failed validation

    def failure(self, error: SummaryError) -> SummaryError:
        """`error`, carrying this abstract's totals."""
        return SummaryError(error.message, error_type=error.error_type, attempts=self.sent,
                            raw_output=error.raw_output or self.rejected,
                            prompt_tokens=self.usage.prompt_tokens,
                            completion_tokens=self.usage.completion_tokens)  # fmt: skip


class OpenAISummarizer:
    """Summaries from any endpoint that speaks the OpenAI chat-completions protocol."""

    def __init__(
        self,
        endpoint: EndpointSettings,
        prompt: Prompt,
        *,
        limiter: RateLimiter | None = None,
        repairs: Mapping[str, Sequence[dict[str, str]]] | None = None,
        repair_prompt: RepairPrompt | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._prompt = prompt
        # Turns that follow the prompt for some ids: a rejected answer and why (batch repair).
        self._repairs = repairs or {}
        self._repair_prompt = repair_prompt or load_repair_prompt()
        self._limiter = limiter or RateLimiter(None)
        self._estimator = TokenEstimator(endpoint.max_tokens)
        self._client = openai.AsyncOpenAI(
            api_key=endpoint.api_key.get_secret_value() if endpoint.api_key else "unused",
            base_url=endpoint.base_url,
            timeout=endpoint.timeout,
            max_retries=0,
        )
        self.model_name = endpoint.model_label or endpoint.model
        self._reached = False  # has any request of this run got an HTTP answer?
        self._unreachable_since: float | None = None

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def summarize(self, item: Item) -> Completion:
        """Summarise one abstract; every failure becomes a typed `SummaryError`."""
        asked = question(self._prompt, item, constrain_quotes=self._endpoint.constrain_quotes)
        messages = [*asked.messages, *self._repairs.get(item.id, ())]
        tally = _Tally(schema_chars=tool_chars(asked.answer_model))
        while True:
            body = await self._answer(chat_request(asked, messages, self._endpoint), tally)
            verdict = judge_completion(body, asked, item)
            tally.usage += verdict.usage
            if verdict.summary is not None:
                return Completion(verdict.summary, tally.usage, tally.sent, tally.service_s)
            assert verdict.error is not None
            if not self._may_reask(verdict, tally):
                raise tally.failure(verdict.error)
            answer, reason = verdict.answer or "", verdict.error.message
            messages = [*messages, *self._repair_prompt.messages(answer=answer, error=reason)]

    def _may_reask(self, verdict: Verdict, tally: _Tally) -> bool:
        if verdict.repair != "reask" or tally.reasks >= self._endpoint.max_reasks:
            return False
        # A model that gives the rejected answer again will give it every time.
        repeated = verdict.answer is not None and verdict.answer == tally.rejected
        tally.rejected = verdict.answer
        tally.reasks += 1
        return not repeated

    async def _answer(self, request: dict[str, Any], tally: _Tally) -> dict[str, Any]:
        """The completion's JSON body, sending again after transient faults."""
        retrying = AsyncRetrying(retry=lambda state: self._retry(state, tally),
                                 wait=self._wait, reraise=True)  # fmt: skip
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send(request, tally)
        except (openai.APIError, _Transient) as exc:
            raise self._translate(exc, tally) from None
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _send(self, request: dict[str, Any], tally: _Tally) -> dict[str, Any]:
        """One HTTP attempt: wait for a rate-limit slot, send, learn from the answer."""
        tally.sent += 1
        prompt_guess = self._estimator.prompt_tokens(request["messages"], tally.schema_chars)
        expected = prompt_guess + self._estimator.completion_tokens()
        await self._limiter.acquire(expected)
        started = time.perf_counter()
        try:
            # The body is built here; the SDK sends it, authenticates and raises its errors.
            raw = await self._client.post("/chat/completions", body=request,
                                          cast_to=httpx2.Response)  # fmt: skip
        except openai.APIStatusError as exc:
            self._reached = True
            self._limiter.observe(exc.response.headers)
            raise
        except openai.APIConnectionError as exc:
            self._check_reachable(exc)
            raise
        self._reached = True
        tally.service_s = time.perf_counter() - started
        self._limiter.observe(raw.headers)
        body = _completion(raw)
        usage = body.get("usage") or {}
        self._limiter.settle(expected, int(usage.get("total_tokens") or 0))
        self._estimator.learn(estimated_prompt=prompt_guess,
                              prompt=int(usage.get("prompt_tokens") or 0),
                              completion=int(usage.get("completion_tokens") or 0))  # fmt: skip
        self._limiter.succeeded()
        return body

    def _retry(self, state: RetryCallState, tally: _Tally) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if not _transient(exc):
            return False
        tally.transient += 1
        return tally.transient <= self._endpoint.max_retries

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        limit = self._endpoint.max_backoff
        retry_after = _retry_after(exc)
        if isinstance(exc, openai.RateLimitError):
            # Everyone slows down, not only the task that got the 429.
            backoff = wait_random_exponential(multiplier=0.5, max=limit)(state)
            self._limiter.rate_limited(min(backoff if retry_after is None else retry_after, limit))
            return 0.0
        if retry_after is not None:
            self._limiter.pause(min(retry_after, limit))
            return 0.0
        return float(wait_random_exponential(multiplier=0.5, max=limit)(state))

    def _check_reachable(self, exc: openai.APIConnectionError) -> None:
        """Stop the run when the endpoint has never answered and still does not.

        A dead or mistyped URL would otherwise be retried for every abstract, all night.
        """
        if self._reached:
            return
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        if now - self._unreachable_since >= UNREACHABLE_AFTER_S:
            raise self._unreachable(exc)

    def _where(self) -> str:
        return without_credentials(self._endpoint.base_url) or "the OpenAI API"

    def _unreachable(self, exc: BaseException) -> ProviderError:
        return ProviderError(
            f"{self._where()} cannot be reached ({error_line(exc)}); no request of this run "
            "was answered, so it stops here: check --base-url / OPENAI_BASE_URL and run again"
        )

    def _translate(self, exc: Exception, tally: _Tally) -> Exception:
        if isinstance(exc, openai.APIConnectionError) and not self._reached:
            return self._unreachable(exc)
        if isinstance(exc, openai.APIStatusError) and exc.status_code in _FATAL_STATUS:
            return ConfigError(
                f"{self._where()} {_FATAL_STATUS[exc.status_code]} (HTTP {exc.status_code}) "
                f"for model {self._endpoint.model!r}"
            )
        if isinstance(exc, openai.RateLimitError):
            kind = ErrorType.RATE_LIMIT
            message = f"still rate limited after retries: {error_line(exc)}"
        elif isinstance(exc, openai.APIStatusError):
            kind, message = ErrorType.PROVIDER, f"HTTP {exc.status_code}: {error_line(exc)}"
        else:
            kind, message = ErrorType.PROVIDER, f"{type(exc).__name__}: {error_line(exc)}"
        return tally.failure(SummaryError(self._scrub(message), error_type=kind))

    def _scrub(self, text: str) -> str:
        key = self._endpoint.api_key.get_secret_value() if self._endpoint.api_key else ""
        return text.replace(key, "***") if key else text


def _completion(raw: httpx2.Response) -> dict[str, Any]:
    """The reply's JSON, if it is a chat completion with a choice; else `_Transient`."""
    try:
        body = json.loads(raw.content)
    except ValueError:
        raise _Transient(f"the reply was not JSON: {raw.text[:200]!r}") from None
    if not isinstance(body, dict) or not body.get("choices"):
        raise _Transient(f"the reply was no chat completion: {raw.text[:200]!r}")
    return body


def _transient(exc: BaseException | None) -> bool:
    """429s, 5xx, timeouts, dropped connections and replies that were no completion."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError | _Transient)


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a `Retry-After` / `retry-after-ms` header, if the error has one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None
