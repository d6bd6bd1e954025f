"""What can go wrong with one live request, and what is done about it.

Transient faults (429, 5xx, timeouts, dropped connections, a reply that is no
chat completion) are sent again, after the wait the endpoint asks for
(`Retry-After`; a 429 pauses every request through the pacer) or an
exponential backoff with jitter. An endpoint that has never answered stops the
run after `UNREACHABLE_AFTER_S`. What is left is translated, here and nowhere
else on the live path, into `SummaryError` (one abstract), `ConfigError` (a
rejected key, an unknown model) or `ProviderError` (the endpoint is unreachable).
Each retry is logged (`summarize.retries`, INFO): the abstract, the try, and why.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, wait_random_exponential

from .._core.verdict import ChatReply, NotACompletion, read_reply
from .._errors import ConfigError, ErrorType, ProviderError, SummaryError, error_line
from .._settings import EndpointSettings
from .._urls import without_credentials
from .pacer import Pacing
from .transport import EndpointUnreachable, Reply

log = logging.getLogger("summarize.retries")

# How long a run keeps trying an endpoint that has never answered, before it stops.
UNREACHABLE_AFTER_S = 15.0
_FATAL_STATUS = {401: "rejected the API key", 403: "refused access", 404: "has no such model"}


class StatusError(Exception):
    """An HTTP answer that was not a success; says what the endpoint said."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status}: {_said(reply)}")
        self.reply = reply
        self.status_code = reply.status


def _said(reply: Reply) -> str:
    """The endpoint's own error message (`{"error": {"message": ...}}`), else the body."""
    try:
        error = json.loads(reply.content).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else reply.text() or "(empty body)"


class RetryPolicy:
    """One endpoint's retry policy and error translation, shared by all its requests."""

    def __init__(self, endpoint: EndpointSettings, pacer: Pacing) -> None:
        self._endpoint = endpoint
        self._pacer = pacer
        self._reached = False  # has any request of this run got an HTTP answer?
        self._unreachable_since: float | None = None

    def retrying(
        self,
        one_more: Callable[[], int],
        item_id: str = "",
        sent: Callable[[], int] | None = None,
    ) -> AsyncRetrying:
        """Tenacity's loop for one request of abstract `item_id`: a transient fault is sent
        again while the abstract's count of them (`one_more()` counts this one) is within
        `max_retries`. `sent()`: the abstract's requests so far, for the log."""

        def retry(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return transient(exc) and one_more() <= self._endpoint.max_retries

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.upcoming_sleep
            log.info("retry %s: try %d failed (%s); sending again%s", item_id,
                     sent() if sent else state.attempt_number,
                     self._scrub(error_line(exc) if exc else "?"),
                     f" in {wait:.2f} s" if wait else " when the pause ends")  # fmt: skip

        return AsyncRetrying(retry=retry, wait=self._wait, before_sleep=before_sleep,
                             reraise=True)  # fmt: skip

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before this request is sent again.

        A 429 or a `Retry-After` holds back every request, not only this one: the wait
        is the pacer's (`rate_limited`, `pause`), and this request waits it out, with the
        others, at its next start slot; tenacity itself then waits 0. Any other fault
        waits a jittered backoff of its own."""
        exc = state.outcome.exception() if state.outcome else None
        limit = self._endpoint.max_backoff
        after = retry_after(exc)
        if isinstance(exc, StatusError) and exc.status_code == 429:
            # Everyone slows down, not only the task that got the 429.
            backoff = wait_random_exponential(multiplier=0.5, max=limit)(state)
            why = "HTTP 429, backoff" if after is None else f"HTTP 429, Retry-After {after:g} s"
            self._pacer.rate_limited(min(backoff if after is None else after, limit), why)
            return 0.0
        if after is not None:
            status = exc.status_code if isinstance(exc, StatusError) else "?"
            self._pacer.pause(min(after, limit), f"HTTP {status}, Retry-After {after:g} s")
            return 0.0
        return float(wait_random_exponential(multiplier=0.5, max=limit)(state))

    def answered(self) -> None:
        """An HTTP answer came back (whatever its status): the endpoint is there."""
        self._reached = True

    def connection_failed(self, exc: EndpointUnreachable) -> None:
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

    def translate(self, exc: Exception) -> Exception:
        """The typed error a request's last fault stands for."""
        if isinstance(exc, EndpointUnreachable) and not self._reached:
            return self._unreachable(exc)
        if isinstance(exc, StatusError) and 300 <= exc.status_code < 400:
            to = without_credentials(exc.reply.headers.get("Location")) or "elsewhere"
            return ConfigError(
                f"{self._where()} redirects (HTTP {exc.status_code}) to {to}: "
                "use that address as --base-url"
            )
        if isinstance(exc, StatusError) and exc.status_code in _FATAL_STATUS:
            return ConfigError(
                f"{self._where()} {_FATAL_STATUS[exc.status_code]} (HTTP {exc.status_code}) "
                f"for model {self._endpoint.model!r}"
            )
        if isinstance(exc, StatusError) and exc.status_code == 429:
            kind = ErrorType.RATE_LIMIT
            message = f"still rate limited after retries: {error_line(exc)}"
        elif isinstance(exc, StatusError):
            kind, message = ErrorType.PROVIDER, error_line(exc)
        else:
            kind, message = ErrorType.PROVIDER, f"{type(exc).__name__}: {error_line(exc)}"
        return SummaryError(self._scrub(message), error_type=kind)

    def _where(self) -> str:
        return without_credentials(self._endpoint.base_url) or "the OpenAI API"

    def _unreachable(self, exc: BaseException) -> ProviderError:
        return ProviderError(
            f"{self._where()} cannot be reached ({error_line(exc)}); no request of this run "
            "was answered, so it stops here: check --base-url / OPENAI_BASE_URL and run again"
        )

    def _scrub(self, text: str) -> str:
        key = self._endpoint.api_key.get_secret_value() if self._endpoint.api_key else ""
        return text.replace(key, "***") if key else text


def completion_body(reply: Reply) -> ChatReply:
    """The reply, if it is a success and a chat completion with a choice; else
    `StatusError` or `NotACompletion`."""
    if not 200 <= reply.status < 300:
        raise StatusError(reply)
    try:
        body = json.loads(reply.content)
    except ValueError:
        raise NotACompletion(f"the reply was not JSON: {reply.text()!r}") from None
    completion = read_reply(body)
    if not completion.choices:
        raise NotACompletion(f"the reply was no chat completion: {reply.text()!r}")
    return completion


def transient(exc: BaseException | None) -> bool:
    """429s, 5xx, timeouts, dropped connections and replies that were no completion."""
    if isinstance(exc, StatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, EndpointUnreachable | NotACompletion)


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a `Retry-After` / `retry-after-ms` header, if the error has one."""
    if not isinstance(exc, StatusError):
        return None
    headers = exc.reply.headers
    if (ms := _seconds(headers.get("retry-after-ms"))) is not None:
        return ms / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: the backoff decides
    return max(parsed.timestamp() - time.time(), 0.0)


def _seconds(value: str | None) -> float | None:
    """A header's number of seconds; None if it is absent, unreadable, nan or infinite."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
