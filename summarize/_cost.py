"""What a run costs: a price table in the repo that users can override, and spend caps.

Prices are USD per million tokens (`summarize/data/prices.toml`). A model with no
row has no price: the run shows its tokens and never a made-up figure.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._usage import Usage

PER_MILLION = 1_000_000
FREE = "free"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; `batch` is the Batch API's multiplier."""

    input: float
    cached_input: float
    output: float
    batch: float = 1.0

    def cost(self, *, prompt: int, cached: int, completion: int) -> float:
        """USD for these tokens; cached prompt tokens are billed at the cached rate."""
        fresh = max(prompt - cached, 0)
        total = fresh * self.input + cached * self.cached_input + completion * self.output
        return total / PER_MILLION


ZERO = Price(0.0, 0.0, 0.0)


def cost_of(usage: Usage, price: Price | None) -> float:
    """USD of `usage` at `price` (0 without one)."""
    if price is None:
        return 0.0
    return price.cost(prompt=usage.prompt_tokens, cached=usage.cached_tokens,
                      completion=usage.completion_tokens)  # fmt: skip


class PriceTable:
    """Model name -> `Price`, matched exactly or by the longest prefix."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = prices

    @classmethod
    def load(cls, override: Path | None = None) -> PriceTable:
        """The bundled table, with the rows of `override` (same format) on top."""
        bundled = resources.files("summarize").joinpath("data/prices.toml").read_text("utf-8")
        prices = _parse(tomllib.loads(bundled), "summarize/data/prices.toml")
        if override is not None:
            prices.update(_parse(_read(override), str(override)))
        return cls(prices)

    def with_free(self, model: str) -> PriceTable:
        """The same table, with `model` (e.g. a local one) costing nothing."""
        return PriceTable({**self._prices, model: ZERO})

    def get(self, model: str) -> Price | None:
        """The price of `model`, or None if the table does not know it."""
        if model in self._prices:
            return self._prices[model]
        prefixes = [name for name in self._prices if model.startswith(name)]
        return self._prices[max(prefixes, key=len)] if prefixes else None


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read price table ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _parse(data: dict[str, Any], where: str) -> dict[str, Price]:
    models = data.get("models", {})
    prices: dict[str, Price] = {}
    for name, row in models.items():
        try:
            prices[name] = Price(
                input=float(row["input"]),
                cached_input=float(row.get("cached_input", row["input"])),
                output=float(row["output"]),
                batch=float(row.get("batch", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: [models.{name!r}] needs numbers input and output "
                              f"({exc})") from None  # fmt: skip
    return prices


@dataclass(frozen=True, slots=True)
class SpendCap:
    """The most a run may spend, in USD or in tokens (`budget.Budget` holds a run to it)."""

    max_cost: float | None = None
    max_tokens: int | None = None
