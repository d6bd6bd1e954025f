"""What batch mode is asked to do, and where: the settings of the nightly commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from ..cost import Price, PriceTable
from ..errors import ConfigError
from ..settings import EndpointSettings, RunSettings, wants_local
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


def price_of(settings: RunSettings, model: str) -> Price | None:
    """The model's price from the table, if it has one."""
    return PriceTable.load(settings.prices).get(model)
