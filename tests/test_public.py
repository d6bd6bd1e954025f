"""The public surface: `summarize`, `summarize.batch`, `summarize.ray`, `summarize.testing`
and its `summarize.testing.server` (the `testing` extra).

Each lists its names in `__all__`, held here to the letter: a name added or dropped is
a change to the API and shows up in this file's diff. Every other module's name starts
with an underscore (httpx's convention): internal, free to change.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import summarize

PUBLIC = {
    "summarize": [
        "SCHEMA_VERSION", "ClaimedGain", "Completion", "ConfigError", "EndpointSettings",
        "Entry", "ErrorRecord", "ErrorType", "Estimate", "ExitCode", "Extraction", "Gain",
        "InputError", "Item", "OpenAISummarizer", "Outcome", "OutputError", "Price",
        "PriceTable", "ProviderError", "Record", "RunResult", "RunSettings", "Source",
        "SpendCap", "Stop", "SummarizeError", "Summarizer", "Summary", "SummaryError", "Usage",
        "UsageError", "collect_items", "estimate", "read_entries", "read_items",
        "record_json_schema", "run", "summarize_rows",
    ],
    "summarize.batch": [
        "BatchOptions", "CancelResult", "CollectResult", "SubmitResult", "cancel", "collect",
        "ignored_settings", "remote_endpoint", "status", "submit",
    ],
    "summarize.ray": [
        "NO_ENDPOINT", "Coordinator", "Lease", "News", "Parts", "Permits", "RayOptions",
        "Spend", "SummarizeBatch", "Totals", "part_name", "read_parts", "run_on_ray",
        "start_coordinator",
    ],
    "summarize.testing": [
        "ChatRequest", "FakeAnswer", "FakeSummarizer", "Handler", "MockTransport", "Reply",
        "completion_reply", "error_reply", "grounded_reply", "grounded_summary", "json_reply",
        "plain_summary",
    ],
    "summarize.testing.server": [
        "BATCH_ENDPOINT", "BATCH_OUTCOMES", "DEFAULT_MODEL", "FAULT_KINDS", "JSON",
        "BatchOutcome", "FakeOpenAI", "FaultKind", "FaultPlan", "FaultRule", "Responder",
        "ServerStats", "default_responder", "grounded_summary", "prompt_parts", "prompt_tokens",
    ],
}  # fmt: skip


@pytest.mark.parametrize(("module", "names"), PUBLIC.items())
def test_each_public_module_exports_exactly_its_names(module: str, names: list[str]) -> None:
    assert importlib.import_module(module).__all__ == names


@pytest.mark.parametrize(
    ("module", "name"), [(module, name) for module, names in PUBLIC.items() for name in names]
)
def test_every_exported_name_imports(module: str, name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module} import {name}", namespace)
    assert namespace[name] is not None


def test_every_other_module_is_private() -> None:
    public = {
        info.name
        for info in pkgutil.walk_packages(summarize.__path__, "summarize.")
        if not info.name.rsplit(".", 1)[-1].startswith("_")
        and not any(part.startswith("_") for part in info.name.split(".")[1:-1])
    }
    assert public == {
        "summarize.batch", "summarize.ray", "summarize.testing", "summarize.testing.server"
    }
