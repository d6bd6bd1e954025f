"""The model call: the only module that imports `openai` and `instructor`.

Every endpoint is reached the same way: an `openai.AsyncOpenAI` client created
with `max_retries=0`, patched by instructor in TOOLS mode (a forced function
call, which OpenAI, vLLM, Ollama, LiteLLM and llama.cpp's server all honour:
llama.cpp turns the function's schema into a grammar). One tenacity policy,
handed to instructor as `max_retries`, owns every retry: transient transport
faults wait and resend the same request, invalid answers are re-asked with the
validation error. Their budgets are separate, so they never multiply.

Third-party exceptions are translated into `SummaryError` / `ConfigError` here
and nowhere else.
"""

from __future__ import annotations

import contextvars
import email.utils
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import instructor
import openai
from instructor.core import IncompleteOutputException, InstructorRetryException
from instructor.core.hooks import Hooks
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, wait_random_exponential

from .errors import ConfigError, ErrorType, ProviderError, SummaryError
from .items import Item
from .prompt import Prompt
from .ratelimit import RateLimiter
from .schema import Summary, grounded_in
from .settings import EndpointSettings
from .strategy import question
from .tokens import TokenEstimator, schema_chars

# instructor logs every failed attempt at ERROR; the run reports outcomes itself.
logging.getLogger("instructor").setLevel(logging.CRITICAL)

# How long a run keeps trying an endpoint that has never answered, before it stops.
UNREACHABLE_AFTER_S = 15.0
_FATAL_STATUS = {401: "rejected the API key", 403: "refused access", 404: "has no such model"}


@dataclass(frozen=True, slots=True)
class Completion:
    """A validated summary and what it cost."""

    summary: Summary
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    attempts: int
    service_s: float = 0.0


class Summarizer(Protocol):
    """What the runner needs from a model: one abstract in, one summary out."""

    model_name: str

    async def summarize(self, item: Item) -> Completion:
        """Summarise one item, or raise `SummaryError` saying why not."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(slots=True)
class _CallLog:
    """Per-abstract bookkeeping that instructor's hooks and tenacity fill in."""

    transient_failures: int = 0
    invalid_answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    last_response: Any = None
    responses: int = field(default=0)
    service_s: float = 0.0
    sent: int = 0
    rejected: str | None = None  # the last answer that failed validation

    def on_response(self, response: Any) -> None:
        self.last_response = response
        self.responses += 1
        usage = getattr(response, "usage", None)
        if usage is None:
            return
        self.prompt_tokens += usage.prompt_tokens or 0
        self.completion_tokens += usage.completion_tokens or 0
        details = getattr(usage, "prompt_tokens_details", None)
        self.cached_tokens += (getattr(details, "cached_tokens", 0) or 0) if details else 0

    @property
    def attempts(self) -> int:
        """Requests sent for this abstract (the last one included, whatever its fate)."""
        return self.sent or self.transient_failures + self.invalid_answers + 1


# instructor wraps a plain model in a new class on every call, which regenerates
# its JSON schema (~6 ms of CPU a request); wrapped once here, it is reused.
_SUMMARY = cast("type[Summary]", instructor.openai_schema(Summary))
# The tool list instructor sends with it (TOOLS mode), in characters.
SUMMARY_TOOL_CHARS = schema_chars(
    [{"type": "function", "function": cast("Any", _SUMMARY).openai_schema}]
)

# The bookkeeping of the abstract this task is summarising, for `_send`, which
# instructor calls with the request's keyword arguments only.
_current_log: contextvars.ContextVar[_CallLog] = contextvars.ContextVar("summarize_call_log")


class OpenAISummarizer:
    """Summaries from any endpoint that speaks the OpenAI chat-completions protocol."""

    def __init__(
        self,
        endpoint: EndpointSettings,
        prompt: Prompt,
        *,
        limiter: RateLimiter | None = None,
        repairs: Mapping[str, Sequence[dict[str, str]]] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._prompt = prompt
        # Turns that follow the prompt for some ids: a rejected answer and why (batch repair).
        self._repairs = repairs or {}
        self._limiter = limiter or RateLimiter(None)
        self._estimator = TokenEstimator(endpoint.max_tokens)
        # The same tool schema goes with every request, unless quotes are constrained.
        self._schema_chars = None if endpoint.constrain_quotes else SUMMARY_TOOL_CHARS
        self._client = openai.AsyncOpenAI(
            api_key=endpoint.api_key.get_secret_value() if endpoint.api_key else "unused",
            base_url=endpoint.base_url,
            timeout=endpoint.timeout,
            max_retries=0,
        )
        # instructor types `patch` as returning a sync callable; ours is async.
        self._create = cast(
            "Callable[..., Awaitable[Summary]]",
            instructor.patch(create=self._send, mode=instructor.Mode.TOOLS),
        )
        self.model_name = endpoint.model_label or endpoint.model
        self._reached = False  # has any request of this run got an HTTP answer?
        self._unreachable_since: float | None = None

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def summarize(self, item: Item) -> Completion:
        """Summarise one abstract; every failure becomes a typed `SummaryError`."""
        log = _CallLog()
        _current_log.set(log)
        hooks = Hooks()
        hooks.on("completion:response", log.on_response)
        asked = question(self._prompt, item, constrain_quotes=self._endpoint.constrain_quotes)
        response_model = _SUMMARY if asked.answer_model is Summary else asked.answer_model
        try:
            with grounded_in(abstract=item.abstract, title=item.title):
                answer = await self._create(
                    response_model=response_model,
                    messages=[*asked.messages, *self._repairs.get(item.id, ())],
                    model=self._endpoint.model,
                    max_retries=self._retrying(log),
                    hooks=hooks,
                    **self._sampling(),
                )
                summary = asked.finish(answer)
        except (InstructorRetryException, IncompleteOutputException) as exc:
            raise self._translate(exc, log) from None
        except ValidationError as exc:
            raise SummaryError(
                error_line(exc),
                error_type=ErrorType.VALIDATION,
                attempts=log.attempts,
                raw_output=_raw_output(log.last_response),
                prompt_tokens=log.prompt_tokens,
                completion_tokens=log.completion_tokens,
            ) from None
        return Completion(
            summary=summary,
            prompt_tokens=log.prompt_tokens,
            completion_tokens=log.completion_tokens,
            cached_tokens=log.cached_tokens,
            attempts=log.attempts,
            service_s=log.service_s,
        )

    def _sampling(self) -> dict[str, Any]:
        options = self._endpoint.sampling()
        if self._endpoint.extra_body:
            options["extra_body"] = dict(self._endpoint.extra_body)
        return options

    async def _send(self, **request: Any) -> Any:
        """One HTTP attempt: wait for a rate-limit slot, send, learn from the answer."""
        log = _current_log.get()
        log.sent += 1
        schema = self._schema_chars
        if schema is None:  # a schema of this abstract's own (constrained quotes)
            schema = schema_chars(request.get("tools") or request.get("response_format"))
        prompt_guess = self._estimator.prompt_tokens(request["messages"], schema)
        expected = prompt_guess + self._estimator.completion_tokens()
        await self._limiter.acquire(expected)
        started = time.perf_counter()
        try:
            raw = await self._client.chat.completions.with_raw_response.create(**request)
        except openai.APIStatusError as exc:
            self._reached = True
            self._limiter.observe(exc.response.headers)
            raise
        except openai.APIConnectionError as exc:
            self._check_reachable(exc)
            raise
        self._reached = True
        log.service_s = time.perf_counter() - started
        self._limiter.observe(raw.headers)
        response = raw.parse()
        usage = getattr(response, "usage", None)
        if usage is not None:
            self._limiter.settle(expected, usage.total_tokens or 0)
            self._estimator.learn(estimated_prompt=prompt_guess, prompt=usage.prompt_tokens or 0,
                                  completion=usage.completion_tokens or 0)  # fmt: skip
        self._limiter.succeeded()
        return response

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

    def _unreachable(self, exc: BaseException) -> ProviderError:
        where = self._endpoint.base_url or "the OpenAI API"
        return ProviderError(
            f"{where} cannot be reached ({error_line(exc)}); no request of this run was "
            "answered, so it stops here: check --base-url / OPENAI_BASE_URL and run again"
        )

    def _retrying(self, log: _CallLog) -> AsyncRetrying:
        endpoint = self._endpoint

        def should_retry(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            kind = _classify(exc, log.last_response)
            if kind == "transient":
                log.transient_failures += 1
                return log.transient_failures <= endpoint.max_retries
            if kind in {"invalid", "truncated"}:
                log.invalid_answers += 1
                # A model that gives the rejected answer again will give it every time.
                answer = _raw_output(log.last_response)
                repeated = answer is not None and answer == log.rejected
                log.rejected = answer
                return log.invalid_answers <= endpoint.max_reasks and not repeated
            return False

        backoff = wait_random_exponential(multiplier=0.5, max=endpoint.max_backoff)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if _classify(exc, log.last_response) != "transient":
                return 0.0
            retry_after = _retry_after(exc)
            if isinstance(exc, openai.RateLimitError):
                # Everyone slows down, not only the task that got the 429.
                pause = backoff(state) if retry_after is None else retry_after
                self._limiter.rate_limited(min(pause, endpoint.max_backoff))
                return 0.0
            if retry_after is not None:
                self._limiter.pause(min(retry_after, endpoint.max_backoff))
                return 0.0
            return float(backoff(state))

        return AsyncRetrying(retry=should_retry, wait=wait, stop=lambda _s: False, reraise=True)

    def _translate(self, exc: Exception, log: _CallLog) -> Exception:
        cause = exc.__cause__ if isinstance(exc, InstructorRetryException) else exc
        cause = cause or exc
        if isinstance(cause, ProviderError):
            return cause
        if isinstance(cause, openai.APIConnectionError) and not self._reached:
            return self._unreachable(cause)
        if isinstance(cause, openai.APIStatusError) and cause.status_code in _FATAL_STATUS:
            where = self._endpoint.base_url or "the OpenAI API"
            return ConfigError(
                f"{where} {_FATAL_STATUS[cause.status_code]} (HTTP {cause.status_code}) "
                f"for model {self._endpoint.model!r}"
            )
        error_type, message = _describe(cause, log.last_response)
        return SummaryError(
            self._scrub(message),
            error_type=error_type,
            attempts=log.attempts,
            raw_output=_raw_output(log.last_response),
            prompt_tokens=log.prompt_tokens,
            completion_tokens=log.completion_tokens,
        )

    def _scrub(self, text: str) -> str:
        key = self._endpoint.api_key.get_secret_value() if self._endpoint.api_key else ""
        return text.replace(key, "***") if key else text


def _classify(exc: BaseException | None, last_response: Any) -> str:
    """transient | invalid | truncated | refused | fatal | other."""
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in _FATAL_STATUS:
            return "fatal"
        return "transient" if exc.status_code == 429 or exc.status_code >= 500 else "other"
    if isinstance(exc, openai.APIConnectionError | openai.APIResponseValidationError):
        return "transient"  # includes timeouts and dropped connections
    if isinstance(exc, IncompleteOutputException):
        return "truncated"
    if _refusal(last_response) is not None:
        return "refused"
    if last_response is not None and not getattr(last_response, "choices", None):
        # An empty choice list, or a body that was not a completion at all.
        return "transient"
    if isinstance(exc, ValidationError | json.JSONDecodeError | instructor.core.InstructorError):
        return "invalid"
    return "other"


def _describe(exc: BaseException, last_response: Any) -> tuple[ErrorType, str]:
    kind = _classify(exc, last_response)
    if kind == "refused":
        return ErrorType.REFUSED, f"the model refused: {_refusal(last_response)}"
    if kind == "truncated":
        return ErrorType.TRUNCATED, "the answer was cut off at the token limit"
    if isinstance(exc, openai.RateLimitError):
        return ErrorType.RATE_LIMIT, f"still rate limited after retries: {error_line(exc)}"
    if kind == "invalid":
        return ErrorType.VALIDATION, error_line(exc)
    if isinstance(exc, openai.APIStatusError):
        return ErrorType.PROVIDER, f"HTTP {exc.status_code}: {error_line(exc)}"
    return ErrorType.PROVIDER, f"{type(exc).__name__}: {error_line(exc)}"


def error_line(exc: BaseException) -> str:
    """One line saying why: every field a validation error names, or the first line."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: "
            f"{str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        )
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _refusal(response: Any) -> str | None:
    choices = getattr(response, "choices", None)
    if not choices:
        return None
    refusal = getattr(choices[0].message, "refusal", None)
    if refusal is None and choices[0].finish_reason == "content_filter":
        return "content filter"
    return refusal if isinstance(refusal, str) else None


def _raw_output(response: Any) -> str | None:
    choices = getattr(response, "choices", None)
    if not choices:
        return None if response is None else str(response)[:2000]
    message = choices[0].message
    if message.tool_calls:
        return str(message.tool_calls[0].function.arguments)
    return message.content or getattr(message, "refusal", None)


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
