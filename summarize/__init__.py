"""summarize: structured, grounded summaries of research abstracts, as JSONL.

The library API (the `summarize` command is a thin shell over it):

    from summarize import RunSettings, EndpointSettings, run
    result = run(RunSettings(inputs=("papers.jsonl",), output=Path("out.jsonl")))

The public modules are this one, `summarize.batch` (nightly mode on a Batch API),
`summarize.ray` (the same run on a Ray cluster; Ray is imported only when it runs) and
`summarize.testing` (test doubles); each lists its names in `__all__`. Modules whose
name starts with an underscore are internal and may change in any release.

Each name is imported from its module on first use (PEP 562), so that `import summarize`
(and `summarize --help`) loads none of pydantic's models, the HTTP stack or jinja2 until
a name is asked for.

The package logs through `logging.getLogger("summarize")` and its children
(`summarize.pacer`, `summarize.client`, ...) and leaves where the lines go to the
application: pauses, learned limits, re-asks and retries at INFO, each request at DEBUG.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core.outcome import Outcome, RunResult
    from ._core.records import SCHEMA_VERSION, ErrorRecord, Record, record_json_schema
    from ._core.stop import Stop
    from ._core.summarizer import Completion, Summarizer
    from ._cost import Price, PriceTable, SpendCap
    from ._errors import (
        ConfigError,
        ErrorType,
        ExitCode,
        InputError,
        OutputError,
        ProviderError,
        SummarizeError,
        SummaryError,
        UsageError,
    )
    from ._estimate import Estimate, estimate
    from ._extraction import Extraction
    from ._items import Entry, Item, Source, collect_items
    from ._live.client import OpenAISummarizer
    from ._readers import read_entries, read_items
    from ._rows import summarize_rows
    from ._run import run
    from ._schema import ClaimedGain, Gain, Summary
    from ._settings import EndpointSettings, RunSettings
    from ._usage import Usage

logging.getLogger("summarize").addHandler(logging.NullHandler())  # a library's manners

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
    "ProviderError",
    "Record",
    "RunResult",
    "RunSettings",
    "Source",
    "SpendCap",
    "Stop",
    "SummarizeError",
    "Summarizer",
    "Summary",
    "SummaryError",
    "Usage",
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
    "SCHEMA_VERSION": "._core.records",
    "ClaimedGain": "._schema",
    "Completion": "._core.summarizer",
    "ConfigError": "._errors",
    "EndpointSettings": "._settings",
    "Entry": "._items",
    "ErrorRecord": "._core.records",
    "ErrorType": "._errors",
    "Estimate": "._estimate",
    "ExitCode": "._errors",
    "Extraction": "._extraction",
    "Gain": "._schema",
    "InputError": "._errors",
    "Item": "._items",
    "OpenAISummarizer": "._live.client",
    "Outcome": "._core.outcome",
    "OutputError": "._errors",
    "Price": "._cost",
    "PriceTable": "._cost",
    "ProviderError": "._errors",
    "Record": "._core.records",
    "RunResult": "._core.outcome",
    "RunSettings": "._settings",
    "Source": "._items",
    "SpendCap": "._cost",
    "Stop": "._core.stop",
    "SummarizeError": "._errors",
    "Summarizer": "._core.summarizer",
    "Summary": "._schema",
    "SummaryError": "._errors",
    "Usage": "._usage",
    "UsageError": "._errors",
    "collect_items": "._items",
    "estimate": "._estimate",
    "read_entries": "._readers",
    "read_items": "._readers",
    "record_json_schema": "._core.records",
    "run": "._run",
    "summarize_rows": "._rows",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
