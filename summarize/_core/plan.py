"""The plan of a run, decided before any request: what is asked, of which model, at what
price, under which fingerprint, and which abstracts are still pending.

Live runs (`plan`) choose the model here: the configured endpoint, or the embedded
model when no endpoint and no key are configured, or the caller's own summarizer.
Batch mode plans for the configured endpoint and the prompt it submits
(`plan_for_endpoint`). Both skip the abstracts whose record was made the same way
(`Plan.wanted`, `pending_ids`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .._cost import Price, PriceTable
from .._embedded.server import local_endpoint
from .._embedded.weights import ModelFile, embedded_model, model_file
from .._errors import ConfigError
from .._items import Item
from .._prompt import PROMPT_FOR, Prompt, load_prompt, load_repair_prompt
from .._settings import EndpointSettings, RunSettings, wants_local
from .records import Fingerprint, MadeBy
from .request import request_hash
from .summarizer import Summarizer


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will ask, of which model, at what price: decided before any request."""

    made_by: MadeBy
    local: ModelFile | None
    price: Price | None

    @property
    def wanted(self) -> Fingerprint:
        """What a record must have been made with to count as done."""
        return (self.made_by.model, self.made_by.request_hash)


def plan(
    settings: RunSettings, *, summarizer: Summarizer | None = None, dry_run: bool = False
) -> Plan:
    """The prompt, the model (the embedded one if nothing is configured) and its price.

    `dry_run`: write nothing, not even the embedded weights (named by their pinned hash)."""
    local = None if summarizer is not None else _local_model(settings, dry_run=dry_run)
    prompt = choose_prompt(settings, local=summarizer is None and wants_local(settings))
    given = settings.endpoint
    endpoint = given if local is None else local_endpoint(local, given=given)
    model = _model_name(settings, local, summarizer)
    return plan_for_endpoint(settings, prompt, endpoint, model=model, local=local)


def plan_for_endpoint(
    settings: RunSettings,
    prompt: Prompt,
    endpoint: EndpointSettings,
    *,
    model: str | None = None,
    local: ModelFile | None = None,
) -> Plan:
    """The plan of asking `endpoint` with `prompt`; `model` is the name records carry
    (the endpoint's by default), `local` the embedded model that serves it."""
    name = endpoint.recorded_model if model is None else model
    price = priced(settings, name, free=local is not None)
    asked = request_hash(prompt, endpoint, load_repair_prompt())
    return Plan(MadeBy(name, prompt, asked), local, price)


def choose_prompt(settings: RunSettings, *, local: bool) -> Prompt:
    """`--prompt FILE`, or the bundled prompt of `--strategy`, or of the model's kind:
    extractive for a local GGUF (small models pick better than they write),
    abstractive for an endpoint."""
    if settings.prompt is not None:
        prompt = load_prompt(settings.prompt)
        if settings.strategy is not None and prompt.strategy != settings.strategy:
            raise ConfigError(
                f"{settings.prompt}: the prompt's strategy is {prompt.strategy}, "
                f"not --strategy {settings.strategy}"
            )
        return prompt
    strategy = settings.strategy or ("extractive" if local else "abstractive")
    return load_prompt(PROMPT_FOR[strategy])


def pending_ids(
    index: dict[str, Item], done: Callable[[str], bool], *, force: bool, limit: int | None
) -> tuple[list[str], int]:
    """Ids to summarise (in input order, at most `limit`), and how many were already done."""
    pending = [item_id for item_id in (i.id for i in index.values()) if force or not done(item_id)]
    skipped = len(index) - len(pending)
    return (pending if limit is None else pending[:limit]), skipped


def price_of(settings: RunSettings, model: str, *, free: bool = False) -> Price | None:
    """The model's price from the table (over `--prices`), if it has one; `free`: a
    local model, which costs nothing."""
    table = PriceTable.load(settings.prices)
    return (table.with_free(model) if free else table).get(model)


def priced(settings: RunSettings, model: str, *, free: bool = False) -> Price | None:
    """`price_of`, or `ConfigError` when `--max-cost` needs a price the table lacks."""
    price = price_of(settings, model, free=free)
    if price is None and settings.max_cost is not None:
        raise ConfigError(
            f"--max-cost needs a price for model {model!r}: add it with --prices FILE"
        )
    return price


def _local_model(settings: RunSettings, *, dry_run: bool) -> ModelFile | None:
    if not wants_local(settings):
        return None
    if settings.model_file:
        return model_file(settings.model_file, remember=not dry_run)
    return embedded_model(assemble=not dry_run)


def _model_name(settings: RunSettings, local: ModelFile | None,
                summarizer: Summarizer | None) -> str:  # fmt: skip
    if summarizer is not None:
        return summarizer.model_name
    if local is not None:
        return local.label
    return settings.endpoint.recorded_model
