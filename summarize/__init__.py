"""summarize: structured, grounded summaries of research abstracts, as JSONL.

The library API (the `summarize` command is a thin shell over it):

    from summarize import RunSettings, EndpointSettings, run
    result = run(RunSettings(inputs=("papers.jsonl",), output=Path("out.jsonl")))

Each name is imported from its module on first use, so that `import summarize` (and
`summarize --help`) does not load pydantic's models, aiohttp or jinja2 until asked.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cost import Price, PriceTable, SpendCap
    from .errors import (
        ConfigError,
        ErrorType,
        ExitCode,
        InputError,
        OutputError,
        SummarizeError,
        SummaryError,
        UsageError,
    )
    from .estimate import Estimate, estimate
    from .items import Entry, Item, Source, collect_items
    from .job import run
    from .live.client import Completion, OpenAISummarizer, Summarizer
    from .live.runner import Outcome, RunResult
    from .readers import read_entries, read_items
    from .records import SCHEMA_VERSION, ErrorRecord, Record, record_json_schema
    from .rows import summarize_rows
    from .schema import ClaimedGain, Extraction, Gain, Summary
    from .settings import EndpointSettings, RunSettings

__all__ = [
    "SCHEMA_VERSION",
    "ClaimedGain",
    "Completion",
    "ConfigError",
    "EndpointSettings",
    "Entry",
    "ErrorRecord",
    "ErrorType",
    "Estimate",
    "ExitCode",
    "Extraction",
    "Gain",
    "InputError",
    "Item",
    "OpenAISummarizer",
    "Outcome",
    "OutputError",
    "Price",
    "PriceTable",
    "Record",
    "RunResult",
    "RunSettings",
    "Source",
    "SpendCap",
    "SummarizeError",
    "Summarizer",
    "Summary",
    "SummaryError",
    "UsageError",
    "collect_items",
    "estimate",
    "read_entries",
    "read_items",
    "record_json_schema",
    "run",
    "summarize_rows",
]

# Where each public name lives.
_HOMES = {
    "Price": ".cost",
    "PriceTable": ".cost",
    "SpendCap": ".cost",
    "ConfigError": ".errors",
    "ErrorType": ".errors",
    "ExitCode": ".errors",
    "InputError": ".errors",
    "OutputError": ".errors",
    "SummarizeError": ".errors",
    "SummaryError": ".errors",
    "UsageError": ".errors",
    "Estimate": ".estimate",
    "estimate": ".estimate",
    "Entry": ".items",
    "Item": ".items",
    "Source": ".items",
    "collect_items": ".items",
    "run": ".job",
    "Completion": ".live.client",
    "OpenAISummarizer": ".live.client",
    "Summarizer": ".live.client",
    "Outcome": ".live.runner",
    "RunResult": ".live.runner",
    "read_entries": ".readers",
    "read_items": ".readers",
    "ErrorRecord": ".records",
    "Record": ".records",
    "SCHEMA_VERSION": ".records",
    "record_json_schema": ".records",
    "summarize_rows": ".rows",
    "ClaimedGain": ".schema",
    "Extraction": ".schema",
    "Gain": ".schema",
    "Summary": ".schema",
    "EndpointSettings": ".settings",
    "RunSettings": ".settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(ModuleType):
    """`summarize.estimate` is the function, as `from summarize import estimate` gives:
    the import system's setting of the submodule of that name does not replace it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and name in _HOMES:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
