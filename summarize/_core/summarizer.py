"""The contract of a model caller: one abstract in, a validated summary (or a typed error) out.

`summarize._live.client.OpenAISummarizer` is the one for OpenAI-protocol endpoints;
`summarize.testing.FakeSummarizer` answers from memory; `run(summarizer=...)` takes
any object that has these two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .._items import Item
from .._schema import Summary
from .._usage import Usage


@dataclass(frozen=True, slots=True)
class Completion:
    """A validated summary and what it cost."""

    summary: Summary
    usage: Usage
    attempts: int
    service_s: float = 0.0  # of the answered request, rate-limit waits excluded; 0: untimed
    reasks: tuple[str, ...] = ()  # why each re-ask was made: its answer's first fault's kind


class Summarizer(Protocol):
    """What the live pool needs from a model: one abstract in, one summary out."""

    model_name: str

    async def summarize(self, item: Item) -> Completion:
        """Summarise one item, or raise `SummaryError` saying why not."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
