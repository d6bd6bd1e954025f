"""Token estimates before a request is sent, corrected by what responses report.

A rate limit on tokens must be paced before the provider counts them. No
tokenizer is bundled (tiktoken fetches its vocabulary from the network on first
use, and local models have their own): the estimate is characters / 4, scaled
by the ratio the run has observed between reported prompt tokens and estimates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

CHARS_PER_TOKEN = 4.0
TOKENS_PER_MESSAGE = 4
FIRST_COMPLETION_GUESS = 300
_LEARNING_RATE = 0.2


def schema_chars(schema: Any) -> int:
    """Characters of a tool list or response format as sent; worked out once per schema."""
    return len(json.dumps(schema, separators=(",", ":"))) if schema else 0


def request_chars(messages: Sequence[Mapping[str, Any]], schema: int = 0) -> int:
    """Characters the model reads: message contents plus `schema` characters of schema."""
    return sum(len(str(message.get("content") or "")) for message in messages) + schema


class TokenEstimator:
    """Prompt and completion token guesses that learn from each response's usage."""

    def __init__(self, max_tokens: int | None = None) -> None:
        self._ratio = 1.0
        self._max_tokens = max_tokens
        self._completion: float | None = None

    def prompt_tokens(self, messages: Sequence[Mapping[str, Any]], schema: int = 0) -> int:
        """Estimated prompt tokens of one request whose schema has `schema` characters."""
        raw = request_chars(messages, schema) / CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * len(messages)
        return math.ceil(raw * self._ratio)

    def completion_tokens(self) -> int:
        """Expected completion tokens: the mean seen so far, capped at max_tokens."""
        guess = self._completion if self._completion is not None else FIRST_COMPLETION_GUESS
        if self._max_tokens is not None:
            guess = min(guess, self._max_tokens)
        return math.ceil(guess)

    def learn(self, *, estimated_prompt: int, prompt: int, completion: int) -> None:
        """Move the estimates towards what a response reported."""
        if estimated_prompt > 0 and prompt > 0:
            observed = prompt / (estimated_prompt / self._ratio)
            self._ratio += _LEARNING_RATE * (observed - self._ratio)
        if completion > 0:
            current = self._completion if self._completion is not None else float(completion)
            self._completion = current + _LEARNING_RATE * (completion - current)
