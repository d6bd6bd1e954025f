"""What batch mode is asked to do, and where: the settings of the nightly commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from .._errors import ConfigError
from .._settings import EndpointSettings, RunSettings, wants_local
from .provider import BatchAPI

MAX_REQUESTS = 50_000  # OpenAI's limits per batch input file
MAX_BYTES = 200 * 1024 * 1024

RepairMode = Literal["batch", "live", "none"]


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How batches are cut, repaired and waited for."""

    repair: RepairMode = "batch"
    wait: bool = False
    poll_s: float = 60.0
    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES
    # A batch the provider answers 404 for is kept (exit 3) unless the user says it is gone.
    release_lost: bool = False


DEFAULT_OPTIONS = BatchOptions()


def remote_endpoint(settings: RunSettings) -> EndpointSettings:
    """The configured endpoint; batch mode has no embedded model to fall back on."""
    if wants_local(settings):
        raise ConfigError(
            "batch mode needs a provider with the Batch API: set OPENAI_API_KEY "
            "(and --base-url for another provider); the embedded model has none"
        )
    return settings.endpoint


@contextmanager
def open_api(endpoint: EndpointSettings) -> Iterator[BatchAPI]:
    """A `BatchAPI` closed on the way out."""
    api = BatchAPI(endpoint)
    try:
        yield api
    finally:
        api.close()


# Where a setting a nightly command does not read applies instead.
_LIVE = "live requests: run, collect --repair live"
_COLLECT = "collect"
_SUBMIT = "submit"
_RUN = "run"
_AS_SUBMITTED = "submit; collect asks as each batch was submitted"
_SENDING = "what collect sends: --repair batch or live"
_SUBMIT_IGNORES = {
    "concurrency": _LIVE, "rpm": _LIVE, "tpm": _LIVE, "max_backoff": _LIVE,
    "max_retries": _COLLECT, "max_reasks": _COLLECT, "model_file": _RUN,
}  # fmt: skip
_COLLECT_IGNORES = {
    "limit": _SUBMIT, "strict": _SUBMIT, "prompt": _SUBMIT, "strategy": _SUBMIT,
    "model_file": _RUN, "model": _AS_SUBMITTED, "temperature": _AS_SUBMITTED,
    "max_tokens": _AS_SUBMITTED, "extra_body": _AS_SUBMITTED, "constrain_quotes": _AS_SUBMITTED,
    "reask_with_answer": _AS_SUBMITTED,
}  # fmt: skip
_NOT_LIVE_IGNORES = {"concurrency": _LIVE, "rpm": _LIVE, "tpm": _LIVE, "max_backoff": _LIVE}
_NONE_IGNORES = {"max_cost": _SENDING, "max_tokens_total": _SENDING, "max_retries": _SENDING,
                 "max_reasks": _SENDING}  # fmt: skip


def ignored_settings(
    settings: RunSettings, command: str, repair: RepairMode = "batch"
) -> str | None:
    """One line naming the settings given (flags, environment, config file) that
    `batch submit` or `batch collect` does not read, and where they apply; None if none."""
    given = settings.model_fields_set - {"inputs", "endpoint"}
    given |= settings.endpoint.model_fields_set
    ignores = dict(_SUBMIT_IGNORES)
    if command == "collect":
        ignores = {**_COLLECT_IGNORES, **(_NOT_LIVE_IGNORES if repair != "live" else {}),
                   **(_NONE_IGNORES if repair == "none" else {})}  # fmt: skip
    where: dict[str, list[str]] = {}
    for name in sorted(given & set(ignores)):
        where.setdefault(ignores[name], []).append(name)
    if not where:
        return None
    parts = [f"{', '.join(names)} (for {applies})" for applies, names in where.items()]
    return f"batch {command}: ignoring {'; '.join(parts)}"
