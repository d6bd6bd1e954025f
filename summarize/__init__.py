"""summarize: structured, grounded summaries of research abstracts, as JSONL.

The library API (the `summarize` command is a thin shell over it):

    from summarize import RunSettings, EndpointSettings, run
    result = run(RunSettings(inputs=("papers.jsonl",), output=Path("out.jsonl")))

The public modules are this one, `summarize.batch` (nightly mode on a Batch API),
`summarize.ray` (the same run on a Ray cluster; Ray is imported only when it runs) and
`summarize.testing` (test doubles); each lists its names in `__all__`. Modules whose
name starts with an underscore are internal and may change in any release.
"""

from ._core.outcome import Outcome, RunResult
from ._core.records import SCHEMA_VERSION, ErrorRecord, Record, record_json_schema
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
