"""A folder of parts (what `run --engine ray -o OUTDIR` writes) reads as one output
everywhere: report, export, validate, diff, eval and a local run's resume. No Ray here:
the folder is made of a real run's lines, written as parts by the writer Ray's workers use.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from summarize._cli import cli
from summarize._parts import part_paths, read_parts
from summarize.testing import MockTransport
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, run_through, write_jsonl

PAPERS = 8
Line = dict[str, Any]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def write_part(folder: Path, name: str, lines: list[Line]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def later(line: Line, **changes: Any) -> Line:
    """`line` made a day later, with `changes`."""
    when = line["created_at"].replace("20", "21", 1)  # 2026-... -> 2126-...: later, same form
    return {**line, "created_at": when, **changes}


@pytest.fixture
def runs(fake: FakeOpenAI, tmp_path: Path) -> tuple[Path, Path, Path]:
    """The papers, a run where the first abstract failed (a refusal), then a clean run of
    the same papers into another file: (papers, failed run's output, clean output)."""
    papers = write_jsonl(tmp_path / "papers.jsonl", numbered_abstracts(PAPERS))
    fake.enqueue("refusal")
    failed = tmp_path / "failed.jsonl"
    assert run_through(MockTransport(fake.answer), papers, failed, concurrency=1).failed == 1
    clean = tmp_path / "clean.jsonl"
    assert run_through(MockTransport(fake.answer), papers, clean).done == PAPERS
    return papers, failed, clean


@pytest.fixture
def folder(runs: tuple[Path, Path, Path], tmp_path: Path) -> Path:
    """Two parts: the first has the failed abstract's error line and the other records;
    the later one its record (an error, then a record: the record is current)."""
    _, failed, clean = runs
    (error,) = read_jsonl(failed.with_name("failed.errors.jsonl"))
    records = read_jsonl(clean)
    out = tmp_path / "out.jsonl"
    write_part(out, "part-1.jsonl", [error, *(r for r in records if r["id"] != error["id"])])
    write_part(out, "part-2.jsonl", [r for r in records if r["id"] == error["id"]])
    return out


def test_a_folder_reads_as_the_file_it_replaces(folder: Path, runs: tuple[Path, ...]) -> None:
    clean = runs[2]
    assert invoke("diff", str(clean), str(folder)).output == ""
    assert invoke("diff", str(folder), str(clean)).exit_code == 0
    checked = invoke("validate", str(folder))
    assert checked.exit_code == 0, checked.output
    assert checked.output == f"{folder}: 0 problems\n"


def test_the_newer_line_of_an_id_wins_in_every_reader(folder: Path, runs: tuple[Path, ...]) -> None:
    first = read_jsonl(runs[2])[1]
    write_part(folder, "part-3.jsonl", [later(first, model="model-b")])
    assert invoke("diff", str(runs[2]), str(folder)).output == (
        f"~ {first['id']}  {first['title']}  [model]\n"
    )
    exported = invoke("export", str(folder))
    assert exported.exit_code == 0, exported.output
    csv_file = folder.with_suffix(".csv")  # beside the folder, as beside a file
    assert exported.output == f"wrote {csv_file} ({PAPERS} records)\n"
    rows = list(csv.DictReader(csv_file.read_text(encoding="utf-8").splitlines()))
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in read_jsonl(runs[2]))
    assert {r["id"]: r["model"] for r in rows}[first["id"]] == "model-b"
    assert [p.name for p in part_paths(folder)] == ["part-1.jsonl", "part-2.jsonl", "part-3.jsonl"]


def test_report_writes_beside_the_folder_with_no_failure(folder: Path) -> None:
    made = invoke("report", str(folder), "--html")
    assert made.exit_code == 0, made.output
    page = folder.with_suffix(".html")
    assert made.output == f"wrote {page} ({PAPERS} records)\n"
    digest = invoke("report", str(folder), "-o", "-")
    assert digest.exit_code == 0 and f"{PAPERS} new" in digest.output, digest.output
    assert sorted(p.name for p in folder.iterdir()) == ["part-1.jsonl", "part-2.jsonl"]


def test_a_redo_that_failed_after_a_record_keeps_it_and_says_so(
    folder: Path, runs: tuple[Path, ...]
) -> None:
    (error,) = read_jsonl(runs[1].with_name("failed.errors.jsonl"))
    record = [r for r in read_jsonl(runs[2]) if r["id"] != error["id"]][1]  # part-1, line 3
    write_part(folder, "part-3.jsonl", [later(error, id=record["id"])])
    assert invoke("diff", str(runs[2]), str(folder)).output == (
        f"! {record['id']}  {record['title']}  [redo failed: refused; record kept]\n"
    )
    checked = invoke("validate", str(folder))
    assert checked.exit_code == 0
    assert (
        f"{folder / 'part-1.jsonl'}:3: notice: {record['id']}: a redo failed after this "
        "record (refused; see part-3.jsonl:1); the record is kept" in checked.output
    )
    assert checked.output.endswith("0 problems, 1 record kept after a failed redo\n")


def test_validate_names_a_bad_line_by_part_and_line(folder: Path, runs: tuple[Path, ...]) -> None:
    record = read_jsonl(runs[2])[3]
    bad = write_part(folder, "part-3.jsonl", [later(record)])
    with bad.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "x", "oops\n')
    edited = later(record, result="It is 987% better.", id=record["id"])
    write_part(folder, "part-4.jsonl", [later(edited, created_at="2227-01-01T00:00:00Z")])
    checked = invoke("validate", str(folder))
    assert checked.exit_code == 1
    lines = checked.output.splitlines()
    assert lines[0].startswith(f"{bad}:2: malformed JSON"), lines
    part4 = folder / "part-4.jsonl"
    assert lines[1].startswith(f"{part4}:1: result states numbers the abstract does not")
    assert lines[-1] == f"{folder}: 2 problems"
    # The other readers refuse the folder, naming the same part and line.
    reported = invoke("report", str(folder))
    assert reported.exit_code == 2
    assert f"{bad}:2: malformed JSON" in reported.output


def test_a_local_run_resumes_into_a_folder_and_sends_nothing_when_nothing_changed(
    folder: Path, runs: tuple[Path, ...], fake: FakeOpenAI, tmp_path: Path
) -> None:
    papers = runs[0]
    asked = len(fake.requests)
    again = run_through(MockTransport(fake.answer), papers, folder)
    assert (again.skipped, again.done, len(fake.requests) - asked) == (PAPERS, 0, 0)
    assert sorted(p.name for p in folder.iterdir()) == ["part-1.jsonl", "part-2.jsonl"]
    # Two new abstracts: only they are sent, and they land in a new part.
    more = write_jsonl(tmp_path / "more.jsonl", numbered_abstracts(PAPERS + 2))
    added = run_through(MockTransport(fake.answer), more, folder)
    assert (added.skipped, added.done, len(fake.requests) - asked) == (PAPERS, 2, 2)
    assert len(part_paths(folder)) == 3 and len(read_parts(folder).records) == PAPERS + 2
    assert run_through(MockTransport(fake.answer), more, folder).done == 0
    assert len(fake.requests) - asked == 2


def test_run_on_the_command_line_resumes_into_a_folder(
    folder: Path, runs: tuple[Path, ...], server: FakeOpenAI
) -> None:
    # The fixture's records came from the in-process endpoint: the same model and prompt.
    ran = invoke("run", str(runs[0]), "-o", str(folder), "--base-url", server.base_url,
                 env={"OPENAI_API_KEY": FAKE_KEY})  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert f"{PAPERS} abstracts: 0 done, {PAPERS} skipped, 0 failed" in ran.output
    assert server.requests == []


def test_a_folder_without_parts_is_not_an_output(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a part")
    for command in ("report", "validate", "export"):
        said = invoke(command, str(tmp_path / "notes"))
        assert said.exit_code == 2
        assert "a folder with no parts (part-*.jsonl): not an output" in said.output


def test_a_local_run_writes_a_part_every_few_lines_so_a_kill_loses_few(
    folder: Path, fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("summarize._parts_output.PART_LINES", 3)
    more = write_jsonl(tmp_path / "more.jsonl", numbered_abstracts(PAPERS + 7))
    added = run_through(MockTransport(fake.answer), more, folder)
    assert added.done == 7
    new = [p for p in part_paths(folder) if p.name not in ("part-1.jsonl", "part-2.jsonl")]
    assert sorted(len(read_jsonl(p)) for p in new) == [1, 3, 3]
    checked = invoke("validate", str(folder))
    assert checked.output == f"{folder}: 0 problems\n"
