"""What one `batch collect` works with: shared by its poll loop (`collect`) and each
finished batch (`finished.FinishedBatch`).

The settings and options, the output, the state directory, the provider's API, the
counts (`CollectResult`) and the spend allowance (`caps.Allowance`); how a chunk was
asked (its prompt copy, its request settings); and the two ways a line is written,
each carrying what every try of its abstract spent, batch and live alike.
"""

from __future__ import annotations

from .._core.records import MadeBy, make_error, make_record
from .._cost import SpendCap
from .._errors import ConfigError, SummaryError
from .._items import Item
from .._output import Output
from .._prompt import Prompt, RepairPrompt, load_prompt, load_repair_prompt
from .._schema import Summary
from .._settings import EndpointSettings, RunSettings
from .caps import Allowance
from .options import BatchOptions
from .provider import BatchAPI
from .results import CollectResult
from .state import Chunk, LostChunk, StateDir, spent_usage


class CollectContext:
    """One collect's settings, files, API, counts and caps, and how it writes a line."""

    def __init__(self, settings: RunSettings, options: BatchOptions, *, output: Output,
                 states: StateDir, api: BatchAPI, result: CollectResult) -> None:  # fmt: skip
        self.settings = settings
        self.options = options
        self.output = output
        self.states = states
        self.api = api
        self.result = result
        self.repair_prompt: RepairPrompt = load_repair_prompt()
        self.allowance = Allowance(SpendCap(settings.max_cost, settings.max_tokens_total))

    def prompt(self, chunk: Chunk) -> Prompt:
        """The copy of the prompt file the chunk was written with."""
        try:
            return load_prompt(self.states.root / chunk.prompt_file)
        except ConfigError as exc:
            raise LostChunk(f"its prompt copy is unusable ({exc})") from None

    def endpoint(self, chunk: Chunk) -> EndpointSettings:
        """This collect's endpoint, sending what the chunk's requests were sent with."""
        return self.settings.endpoint.model_copy(update=chunk.request)

    def write_record(self, item: Item, summary: Summary, total: dict[str, int], *, by: MadeBy,
                     latency: float) -> None:  # fmt: skip
        """A record carrying every attempt's tokens, batch and live alike."""
        record = make_record(item, summary, usage=spent_usage(total), attempts=total["attempt"],
                             latency=latency, by=by)  # fmt: skip
        self.output.write_record(record)
        self.result.done += 1

    def write_error(self, item: Item, error: SummaryError, total: dict[str, int], *,
                    by: MadeBy) -> None:  # fmt: skip
        """An error line carrying every attempt's tokens."""
        line = make_error(item, error.carrying(spent_usage(total), total["attempt"]), by=by)
        kept = self.output.write_error(line)
        self.result.count_failure(error.error_type.value, previous_kept=kept)
