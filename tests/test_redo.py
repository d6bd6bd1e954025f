"""A failed redo: the previous record is kept, and the failure stays visible everywhere.

An abstract that has a record is redone when the model, the prompt or the schema
changes, or under `--force`. When that redo fails, the record stays (nothing paid for
is lost) and the error line is written beside it: the run, the manifest, `report`,
`validate` and `diff` all say so, and the next run asks it again.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from summarize._cli import cli
from summarize._core.records import ErrorRecord, Record
from summarize._errors import OutputError
from summarize._output import Output, errors_path_for
from summarize._report import Report
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl

COUNT = 30


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"OPENAI_API_KEY": FAKE_KEY},
                              catch_exceptions=False)  # fmt: skip


def run_cli(server: FakeOpenAI, papers: Path, out: Path, *flags: str) -> Result:
    return invoke("run", str(papers), "-o", str(out), "--base-url", server.base_url,
                  "--max-retries", "1", "--max-reasks", "1", *flags)  # fmt: skip


def failed_redo(server: FakeOpenAI, tmp_path: Path, *flags: str, count: int = COUNT) -> Result:
    """`count` records made with the default model, then a redo (another model, or
    `flags`) whose every answer is invalid."""
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(count))
    out = tmp_path / "out.jsonl"
    assert run_cli(server, papers, out).exit_code == 0
    server.set_fault_rule(lambda body: "invented_number")
    server.reset()
    return run_cli(server, papers, out, *(flags or ("--model", "other-model")))


def test_a_failed_redo_keeps_every_record_and_writes_every_error_line(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = failed_redo(server, tmp_path)
    assert result.exit_code == 1, result.output
    records, errors = read_jsonl(out), read_jsonl(errors_path_for(out))
    assert len(records) == COUNT and {r["model"] for r in records} == {"gpt-4o-mini"}
    assert len(errors) == COUNT and {e["model"] for e in errors} == {"other-model"}
    assert {e["id"] for e in errors} == {r["id"] for r in records}
    assert f"{COUNT} failed (" in result.output
    assert "previous records kept" in result.output
    manifest = json.loads((tmp_path / "out.manifest.json").read_text(encoding="utf-8"))
    assert manifest["failed"] == COUNT and manifest["previous_records_kept"] == COUNT


def test_the_summary_line_counts_kept_records_when_only_some_failures_had_one(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(4))
    out = tmp_path / "out.jsonl"
    assert run_cli(server, papers, out, "--limit", "2").exit_code == 0
    server.set_fault_rule(lambda body: "invented_number")
    result = run_cli(server, papers, out, "--force")
    assert result.exit_code == 1
    assert "4 failed (4 validation; see " in result.output
    assert ", 2 previous records kept" in result.output
    assert len(read_jsonl(out)) == 2 and len(read_jsonl(errors_path_for(out))) == 4


def test_a_failed_forced_redo_is_asked_again_and_its_error_line_goes_when_it_succeeds(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    assert failed_redo(server, tmp_path, "--force", count=3).exit_code == 1
    old = {r["id"]: r["created_at"] for r in read_jsonl(out)}
    server.set_fault_rule(None)
    server.reset()
    result = run_cli(server, tmp_path / "p.jsonl", out)
    assert result.exit_code == 0, result.output
    assert "3 done, 0 skipped, 0 failed" in result.output  # the stale records were not done
    assert server.stats.requests == 3
    assert len(read_jsonl(out)) == 3 and read_jsonl(errors_path_for(out)) == []
    assert all(r["created_at"] >= old[str(r["id"])] for r in read_jsonl(out))


def test_a_failed_redo_is_asked_again_even_for_the_model_that_made_the_record(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    assert failed_redo(server, tmp_path, count=3).exit_code == 1
    server.set_fault_rule(None)
    server.reset()
    result = run_cli(server, tmp_path / "p.jsonl", out)  # back to the first model
    assert result.exit_code == 0, result.output
    assert server.stats.requests == 3
    assert read_jsonl(errors_path_for(out)) == []


def test_the_dry_run_counts_a_failed_redo_as_to_send(server: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert failed_redo(server, tmp_path, "--force", count=3).exit_code == 1
    result = run_cli(server, tmp_path / "p.jsonl", out, "--dry-run")
    assert "dry run: 3 of 3 abstracts to send" in result.output  # as the run will


# ---------------------------------------------------------------- the files, after a crash


def line(kind: type[Record] | type[ErrorRecord], item_id: str, created_at: str) -> str:
    """One record or error line of `item_id`, stamped `created_at`."""
    common = {
        "id": item_id, "title": "T", "abstract": "A.", "model": "m", "prompt_version": "1",
        "prompt_hash": "h", "schema_version": "3", "request_hash": "r", "prompt_tokens": 1,
        "completion_tokens": 1, "attempts": 1, "created_at": created_at, "sources": [],
    }  # fmt: skip
    if kind is Record:
        extra = {"problem": "p", "method": "m", "result": "r", "cached_tokens": 0,
                 "latency_s": 0.1, "claimed_gain": {"gains": [], "qualitative": None}}  # fmt: skip
    else:
        extra = {"error_type": "validation", "message": "no", "raw_output": None}
    return json.dumps({**common, **extra}) + "\n"


def test_opening_keeps_an_error_newer_than_its_record_and_drops_an_older_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(
        line(Record, "failed-since", "2026-01-01T00:00:00Z")
        + line(Record, "redone-since", "2026-01-01T00:00:09Z")
        + line(Record, "same-second", "2026-01-01T00:00:05Z"),
        encoding="utf-8",
    )
    errors_path_for(out).write_text(
        line(ErrorRecord, "failed-since", "2026-01-01T00:00:01Z")
        + line(ErrorRecord, "redone-since", "2026-01-01T00:00:08Z")
        + line(ErrorRecord, "same-second", "2026-01-01T00:00:05Z")
        + line(ErrorRecord, "never-done", "2026-01-01T00:00:00Z"),
        encoding="utf-8",
    )
    with Output(out) as output:
        done = {i for i in ("failed-since", "redone-since", "same-second", "never-done")
                if output.is_done(i, ("m", "r"))}  # fmt: skip
    assert done == {"redone-since"}
    assert len(read_jsonl(out)) == 3
    kept = [e["id"] for e in read_jsonl(errors_path_for(out))]
    # A tie goes to the error: a failure is never hidden; at worst asked once more.
    assert kept == ["failed-since", "same-second", "never-done"]


# ---------------------------------------------------------------- what the readers show


def test_validate_names_each_kept_record_as_a_notice_not_a_problem(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    assert failed_redo(server, tmp_path, count=3).exit_code == 1
    result = invoke("validate", str(out))
    assert result.exit_code == 0, result.output  # every record is still sound
    notices = [line for line in result.output.splitlines() if ": notice: " in line]
    assert len(notices) == 3
    assert all("a redo failed after this record (validation; see out.errors.jsonl)" in n
               and "asked again on the next run" in n for n in notices)  # fmt: skip
    assert f"{out}: 0 problems, 3 records kept after a failed redo" in result.output


def test_diff_marks_the_records_whose_redo_failed(server: FakeOpenAI, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(3))
    out, old = tmp_path / "out.jsonl", tmp_path / "old.jsonl"
    assert run_cli(server, papers, out).exit_code == 0
    old.write_bytes(out.read_bytes())
    server.set_fault_rule(lambda body: "invented_number")
    assert run_cli(server, papers, out, "--model", "other-model").exit_code == 1
    result = invoke("diff", str(old), str(out))
    assert result.exit_code == 1
    marks = result.output.splitlines()
    assert len(marks) == 3
    assert all(m.startswith("! ") and m.endswith("[redo failed: validation; record kept]")
               for m in marks)  # fmt: skip
    assert invoke("diff", str(out), str(old)).output == ""  # old has no failed redo


def test_report_and_digest_count_failures_whose_previous_record_is_kept(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    assert failed_redo(server, tmp_path, count=3).exit_code == 1
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    assert invoke("report", str(out), "--html", str(html), "--md", str(md)).exit_code == 0
    page = html.read_text(encoding="utf-8")
    assert '<b id="count-errors">3</b> failed (<b id="count-kept">3</b>' in page
    assert page.count("(a redo; the previous record is kept above)") == 3
    assert "3 abstracts failed (3 with their previous record kept)" in md.read_text("utf-8")


def test_report_shows_no_error_line_older_than_its_record(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(line(Record, "a", "2026-01-01T00:00:09Z"), encoding="utf-8")
    errors_path_for(out).write_text(line(ErrorRecord, "a", "2026-01-01T00:00:01Z"), "utf-8")
    loaded = Report.load(out)  # as a crash between the redo and the compaction leaves it
    assert loaded.errors == [] and loaded.kept == 0


# ---------------------------------------------------------------- the lock


def test_a_run_that_opened_the_lock_file_before_its_deletion_cannot_share_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Output.close` deletes the lock file while holding it. A run that opened the file
    just before, and locks it just after the release, must not hold the lock on the
    deleted inode while a third run locks the new file (filelock >= 3.20.4 checks)."""
    out = tmp_path / "out.jsonl"
    first = Output(out)
    first.open()
    real_flock = fcntl.flock
    deleted: list[bool] = []  # whether the late run's file was the deleted one

    def flock_after_the_first_run_closes(fd: int, operation: int) -> None:
        if not deleted and operation & fcntl.LOCK_NB:
            first.close()  # deletes the file it holds, then releases it
            deleted.append(os.fstat(fd).st_nlink == 0)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_first_run_closes)
    late, third = Output(out), Output(out)
    holders = [run for run in (late, third) if opens(run)]
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert deleted == [True] and len(holders) == 1
    for run in holders:
        run.close()


def opens(output: Output) -> bool:
    """Whether `output` opened (took the lock)."""
    try:
        output.open()
    except OutputError:
        return False
    return True


def test_a_failed_redo_through_the_batch_api_keeps_the_records_and_says_so(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(5))
    out = tmp_path / "out.jsonl"
    assert run_cli(server, papers, out).exit_code == 0
    server.set_fault_rule(lambda body: "invented_number")
    batch = ("--base-url", server.base_url, "-o", str(out))
    assert invoke("batch", "submit", str(papers), *batch, "--model", "other-model").exit_code == 0
    result = invoke("batch", "collect", *batch, "--repair", "none", "--wait", "--poll", "0.05")
    assert result.exit_code == 1, result.output
    assert "5 failed (5 validation; see " in result.output
    assert "previous records kept" in result.output
    assert len(read_jsonl(out)) == 5 and len(read_jsonl(errors_path_for(out))) == 5
