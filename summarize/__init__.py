"""summarize: structured, grounded summaries of research abstracts, as JSONL.

The library API (the `summarize` command is a thin shell over it):

    from summarize import RunSettings, EndpointSettings, run
    result = run(RunSettings(inputs=("papers.jsonl",), output=Path("out.jsonl")))
"""

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
from .readers import read_items
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

from .readers import read_entries
