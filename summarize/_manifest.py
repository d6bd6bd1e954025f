"""The run manifest: `OUT.manifest.json`, what the last run did and what it cost.

Written whole (temporary file, then `os.replace`) at the end of every run that
sent requests, interrupted ones included, so a cron job or a report can read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._atomic import replace_file
from ._core.outcome import RunResult
from ._core.records import MadeBy
from ._cost import Price
from ._urls import without_credentials


def manifest_path_for(path: Path) -> Path:
    """`out.jsonl` -> `out.manifest.json`."""
    return path.with_name(f"{path.stem}.manifest.json")


def manifest(
    result: RunResult,
    *,
    made_by: MadeBy,
    base_url: str | None,
    price: Price | None,
    limits: dict[str, float | int | None],
) -> dict[str, Any]:
    """The manifest's content: provenance, counts, tokens, cost, limits (those learned
    too), the pauses every request waited, and the re-asks by reason."""
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        **{k: v for k, v in made_by.fields().items() if k != "batch_id"},
        "base_url": without_credentials(base_url),
        "unique": result.unique,
        "done": result.done,
        "skipped": result.skipped,
        "failed": result.failed,
        "previous_records_kept": result.previous_kept,
        "left": result.left,
        "failures": result.failures,
        "stopped": result.stopped,
        "requests": result.requests,
        "prompt_tokens": result.prompt_tokens,
        "cached_tokens": result.cached_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": None if result.cost_usd is None else round(result.cost_usd, 6),
        "price_per_million": None if price is None else asdict(price),
        "elapsed_s": round(result.elapsed_s, 3),
        "requests_per_second": round(result.requests_per_second, 3),
        "limits": limits,
        "learned_limits": result.learned,
        "pauses": result.pauses,
        "paused_s": round(result.paused_s, 3),
        "reasks": sum(result.reasks.values()),
        "reask_reasons": dict(sorted(result.reasks.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def write_manifest(path: Path, content: dict[str, Any]) -> None:
    """Replace `path` with `content` as indented JSON, atomically."""
    replace_file(path, [(json.dumps(content, indent=2) + "\n").encode("utf-8")])
