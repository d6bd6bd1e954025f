"""Tokens: what one request, one abstract or one run spent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._cost import Price


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one request, one abstract or one run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )

    @property
    def total(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def cost(self, price: Price | None) -> float:
        """USD at `price` (0 without one)."""
        if price is None:
            return 0.0
        return price.cost(prompt=self.prompt_tokens, cached=self.cached_tokens,
                          completion=self.completion_tokens)  # fmt: skip


NO_USAGE = Usage()
