"""The real embedded model, through the CLI, with no key and no endpoint configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from summarize.errors import ErrorType
from summarize.local import EMBEDDED
from summarize.schema import ErrorRecord, Record
from tests.conftest import PAPERS, read_jsonl

GOLD = Path(__file__).parent / "data" / "gold.jsonl"
SAMPLE = 3


def shared_input() -> str:
    """A real listing page when the shared data is here; else the gold set (same abstracts)."""
    listings = sorted(PAPERS.glob("*.txt")) if PAPERS.is_dir() else []
    return str(listings[0]) if listings else str(GOLD)


@pytest.mark.embedded
def test_embedded_model_turns_shared_abstracts_into_records_or_reasoned_errors(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run(
        [sys.executable, "-m", "summarize", "run", shared_input(), "--limit", str(SAMPLE),
         "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    records = [Record.model_validate(r) for r in read_jsonl(out)]
    errors = [ErrorRecord.model_validate(e) for e in read_jsonl(tmp_path / "out.errors.jsonl")]
    assert len(records) + len(errors) == SAMPLE
    assert len({r.id for r in records} | {e.id for e in errors}) == SAMPLE
    for record in records:
        assert record.model.startswith(EMBEDDED.file_name)
        assert record.model.split("sha256:")[1] == EMBEDDED.sha256[:12]
        assert record.completion_tokens > 0
    for error in errors:
        assert error.error_type in set(ErrorType)
        assert error.message
    assert f"{len(records)} done" in done.stdout
