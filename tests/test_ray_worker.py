"""The callable class for `map_batches`, without Ray: a batch in, a line per id out.

Each test hands `SummarizeBatch` a batch as Ray Data would (a dict of columns, or a
pandas DataFrame) with `FakeSummarizer` as the model; the coordinator is a plain one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from summarize import Completion, ConfigError, ErrorRecord, Item, Record, RunSettings, SpendCap
from summarize._parts import compact
from summarize.ray import Coordinator, SummarizeBatch, _worker, part_name, read_parts
from summarize.testing import FakeAnswer, FakeSummarizer
from tests.conftest import ABSTRACTS, numbered_abstracts

SETTINGS = RunSettings(inputs=())


@pytest.fixture
def make_worker() -> Iterator[Any]:
    made: list[SummarizeBatch] = []

    def make(summarizer: Any = None, **options: Any) -> SummarizeBatch:
        options.setdefault("settings", SETTINGS)
        worker = SummarizeBatch(summarizer=summarizer or FakeSummarizer(), **options)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


def columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names = {name for row in rows for name in row}
    return {name: [row.get(name) for row in rows] for name in sorted(names)}


def lines_of(out: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    return {i: json.loads(line) for i, line in zip(out["id"], out["line"], strict=True)}


def test_every_row_gets_a_line_bad_input_refusals_and_records_alike(make_worker: Any) -> None:
    fake = FakeSummarizer([FakeAnswer(), FakeAnswer(error="refused")])
    rows = [
        {"id": "a", "title": "A", "abstract": ABSTRACTS[0][1]},
        {"id": "b", "title": "B", "abstract": ABSTRACTS[1][1]},
        {"id": "c", "title": "No abstract", "abstract": None},
        {"id": "d", "title": 7, "abstract": ABSTRACTS[2][1]},
    ]
    out = make_worker(fake)(columns(rows))
    assert out["id"] == ["a", "b", "c", "d"]
    assert out["status"] == ["ok", "refused", "input", "input"]
    lines = lines_of(out)
    assert Record.model_validate(lines["a"])
    assert ErrorRecord.model_validate(lines["c"]).message.startswith("'abstract' is missing")
    assert lines["d"]["message"] == "'title' must be text, got int"
    assert lines["c"]["attempts"] == 0 and fake.calls == ["a", "b"]


def test_a_row_without_an_id_or_abstract_gets_a_line_under_a_hash_of_itself(
    make_worker: Any,
) -> None:
    worker = make_worker()
    first = worker(columns([{"title": "Nothing here", "abstract": ""}]))
    again = worker(columns([{"title": "Nothing here", "abstract": ""}]))
    assert first["id"] == again["id"] and first["id"][0].startswith("row-")
    assert first["status"] == ["input"]


def test_records_carry_the_sources_the_rows_name(make_worker: Any) -> None:
    rows = [
        {"title": "T", "abstract": ABSTRACTS[0][1], "sources": ["page1.txt:12", "page3.txt:40"]},
        {"title": "T", "abstract": ABSTRACTS[1][1], "source": "s3://bucket/papers.parquet"},
        {"title": "T", "abstract": ABSTRACTS[2][1]},
    ]
    lines = list(lines_of(make_worker()(columns(rows))).values())
    assert [line["sources"] for line in lines] == [
        ["page1.txt:12", "page3.txt:40"],
        ["s3://bucket/papers.parquet"],
        ["<rows>:3"],  # a row that does not say where it was read: its place in the batch
    ]


def test_rows_with_the_same_abstract_fold_into_one_line_with_both_sources(
    make_worker: Any,
) -> None:
    rows = [
        {"title": "T", "abstract": ABSTRACTS[0][1], "sources": ["a.txt:1"]},
        {"title": "T", "abstract": "  " + ABSTRACTS[0][1], "sources": ["b.txt:9"]},
    ]
    out = make_worker()(columns(rows))
    assert len(out["id"]) == 1
    assert lines_of(out)[out["id"][0]]["sources"] == ["a.txt:1", "b.txt:9"]


def test_a_pandas_batch_comes_back_as_a_pandas_batch(make_worker: Any) -> None:
    pandas = pytest.importorskip("pandas", reason="pandas comes with the ray extra")
    numpy = pytest.importorskip("numpy")
    frame = pandas.DataFrame(
        {
            "id": ["a", "b"],
            "title": ["A", float("nan")],  # a missing title is NaN in a DataFrame
            "abstract": [ABSTRACTS[0][1], ABSTRACTS[1][1]],
            "sources": [numpy.array(["x.txt:1"]), None],  # Arrow lists arrive as arrays
        }
    )
    out = make_worker()(frame)
    assert isinstance(out, pandas.DataFrame)
    assert list(out.columns) == ["id", "status", "line", "part"]
    assert list(out["status"]) == ["ok", "ok"]
    assert json.loads(out["line"][0])["sources"] == ["x.txt:1"]
    assert json.loads(out["line"][1])["title"] == ""


def test_each_batch_writes_one_part_named_from_its_ids(make_worker: Any, tmp_path: Path) -> None:
    worker = make_worker(output=tmp_path / "out.jsonl")
    rows = [{"id": f"p{i}", **row} for i, row in enumerate(numbered_abstracts(3))]
    out = worker(columns(rows))
    name = part_name(["p2", "p0", "p1"], json.loads(out["line"][0])["request_hash"])
    part = tmp_path / "out.jsonl" / name
    assert set(out["part"]) == {str(part)}
    assert [json.loads(line)["id"] for line in part.read_text().splitlines()] == ["p0", "p1", "p2"]


def test_a_batch_run_again_overwrites_its_own_part(make_worker: Any, tmp_path: Path) -> None:
    folder = tmp_path / "out.jsonl"
    rows = columns([{"id": f"p{i}", **row} for i, row in enumerate(numbered_abstracts(3))])
    make_worker(output=folder)(rows)
    make_worker(output=folder)(rows)  # as Ray runs a task again after a worker died
    assert [p.name.startswith("part-") for p in folder.iterdir()] == [True]  # no temporaries
    assert read_parts(folder).lines == 3


def test_the_part_is_written_whole_or_not_at_all(
    make_worker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "out.jsonl"
    rows = columns([{"id": f"p{i}", **row} for i, row in enumerate(numbered_abstracts(3))])
    worker = make_worker(output=folder)
    worker(rows)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(Exception, match="No space left"):
        worker(rows)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_abstracts_the_cluster_cap_leaves_unsent_get_not_sent_lines(make_worker: Any) -> None:
    # A guess is 591 tokens an abstract, an answer 500: the cap fits four.
    coordinator = Coordinator(SpendCap(max_tokens=2_500))
    fake = FakeSummarizer()
    worker = make_worker(fake, coordinator=coordinator)
    rows = [{"id": f"p{i}", **row} for i, row in enumerate(numbered_abstracts(10))]
    out = worker(columns(rows[:5]))
    out2 = worker(columns(rows[5:]))
    statuses = out["status"] + out2["status"]
    assert len(statuses) == 10
    assert statuses.count("ok") == len(fake.calls) > 0
    assert statuses.count("not_sent") == 10 - len(fake.calls) > 0
    sent = coordinator.totals().spent.tokens
    assert sent == 500 * len(fake.calls) <= 2_500
    message = next(json.loads(line)["message"] for line in out2["line"] if "not_sent" in line)
    assert message.startswith("not sent: ") and "--max-tokens-total 2,500" in message


def test_a_stopped_job_sends_nothing_and_says_why(make_worker: Any) -> None:
    coordinator = Coordinator()
    fake = FakeSummarizer()
    worker = make_worker(fake, coordinator=coordinator)
    coordinator.stop("the endpoint stopped answering (no answer for 30 s)")
    out = worker(columns(numbered_abstracts(3)))
    assert out["status"] == ["not_sent"] * 3 and fake.calls == []
    assert "stopped answering" in json.loads(out["line"][0])["message"]


class Raising(FakeSummarizer):
    """A fake whose abstracts named in `errors` raise what is given instead of answering."""

    def __init__(self, errors: dict[str, Exception]) -> None:
        super().__init__()
        self.errors = errors

    async def summarize(self, item: Item) -> Completion:
        error = self.errors.get(item.id, self.errors.get("*"))
        if error is not None:
            raise error
        return await super().summarize(item)


def test_an_unexpected_error_is_the_abstract_s_line_not_a_dead_batch(make_worker: Any) -> None:
    fake = Raising({"bad": KeyError("oops")})
    rows = [{"id": "bad", "abstract": ABSTRACTS[0][1]}, {"id": "ok", "abstract": ABSTRACTS[1][1]}]
    out = make_worker(fake)(columns(rows))
    assert out["status"] == ["provider", "ok"]
    assert json.loads(out["line"][0])["message"] == "internal error: KeyError: 'oops'"


def test_a_rejected_key_stops_the_job_for_every_worker(make_worker: Any) -> None:
    coordinator = Coordinator()
    fake = Raising({"*": ConfigError("http://x/v1 rejected the API key (HTTP 401) for model 'm'")})
    out = make_worker(fake, coordinator=coordinator, settings=RunSettings(
        inputs=(), concurrency=1))(columns(numbered_abstracts(3)))  # fmt: skip
    assert out["status"][0] == "provider" and set(out["status"][1:]) == {"not_sent"}
    assert coordinator.stopped is not None and "rejected the API key" in coordinator.stopped


def test_the_plan_client_and_loop_are_made_once_per_worker(
    make_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans: list[object] = []
    real_plan = _worker.plan
    monkeypatch.setattr(_worker, "plan", lambda *a, **k: plans.append(1) or real_plan(*a, **k))
    fake = FakeSummarizer()
    worker = make_worker(fake)
    loop = worker._loop
    for start in range(0, 9, 3):
        worker(columns(numbered_abstracts(9)[start : start + 3]))
    assert len(plans) == 1 and worker._loop is loop and not fake.closed
    assert len(fake.calls) == 9


def test_the_embedded_model_is_not_for_a_cluster() -> None:
    with pytest.raises(ConfigError, match="the embedded model is not for a cluster"):
        SummarizeBatch(RunSettings(inputs=()))


# ---------------------------------------------------------------------- a folder of parts


def write_part(folder: Path, name: str, lines: list[dict[str, Any]]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines))


def line(item_id: str, when: str, *, error: bool = False, request_hash: str = "h1") -> dict:
    made = {"id": item_id, "created_at": when, "model": "m", "request_hash": request_hash}
    return {**made, "error_type": "provider"} if error else made


def test_a_folder_of_parts_reads_as_one_output_deduplicated_by_id(tmp_path: Path) -> None:
    folder = tmp_path / "out.jsonl"
    write_part(folder, "part-1.jsonl", [line("a", "2026-01-01T00:00:00Z"),
                                        line("b", "2026-01-01T00:00:00Z", error=True)])  # fmt: skip
    write_part(folder, "part-2.jsonl", [line("b", "2026-01-02T00:00:00Z"),
                                        line("c", "2026-01-02T00:00:00Z")])  # fmt: skip
    write_part(folder, "part-3.jsonl", [line("a", "2026-01-03T00:00:00Z", request_hash="h2")])
    (folder / ".part-4.jsonl.0123456789abcdef.tmp").write_text("torn")  # a killed writer's
    parts = read_parts(folder)
    assert sorted(parts.records) == ["a", "b", "c"] and parts.errors == {}
    assert parts.records["a"]["request_hash"] == "h2"  # the newest line of an id wins
    assert (parts.files, parts.lines) == (3, 5)
    assert parts.is_done("b", ("m", "h1")) and not parts.is_done("a", ("m", "h1"))


def test_a_failed_redo_keeps_its_record_but_is_not_done(tmp_path: Path) -> None:
    folder = tmp_path / "out.jsonl"
    write_part(folder, "part-1.jsonl", [line("a", "2026-01-01T00:00:00Z")])
    write_part(folder, "part-2.jsonl", [line("a", "2026-01-02T00:00:00Z", error=True)])
    parts = read_parts(folder)
    assert "a" in parts.records and "a" in parts.errors
    assert not parts.is_done("a", ("m", "h1"))


def test_a_missing_folder_is_an_empty_output(tmp_path: Path) -> None:
    parts = read_parts(tmp_path / "nothing.jsonl")
    assert (parts.records, parts.errors, parts.files) == ({}, {}, 0)


def test_compacting_drops_superseded_lines_and_reads_the_same(tmp_path: Path) -> None:
    folder = tmp_path / "out.jsonl"
    write_part(folder, "part-1.jsonl", [line("a", "2026-01-01T00:00:00Z"),
                                        line("b", "2026-01-01T00:00:00Z", error=True)])  # fmt: skip
    write_part(folder, "part-2.jsonl", [line("b", "2026-01-02T00:00:00Z")])
    write_part(folder, "part-3.jsonl", [line("c", "2026-01-01T00:00:00Z", error=True)])
    write_part(folder, "part-4.jsonl", [line("c", "2026-01-02T00:00:00Z", error=True)])
    # equal stamps: the later-written part is the newer, before and after compacting
    write_part(folder, "part-5.jsonl", [line("d", "2026-01-03T00:00:00Z"),
                                        line("e", "2026-01-01T00:00:00Z")])  # fmt: skip
    write_part(folder, "part-6.jsonl", [line("d", "2026-01-03T00:00:00Z", error=True),
                                        line("e", "2026-01-02T00:00:00Z")])  # fmt: skip
    os.utime(folder / "part-5.jsonl", ns=(10**18, 10**18))  # part-5 was written first
    os.utime(folder / "part-6.jsonl", ns=(15 * 10**17, 15 * 10**17))
    before = read_parts(folder)
    assert compact(folder) == 3  # b's error, c's first error, e's first record
    after = read_parts(folder)
    assert (after.records, after.errors) == (before.records, before.errors)
    assert "d" in after.errors and "d" in after.records  # a failed redo keeps its record
    assert sorted(p.name for p in folder.iterdir()) == [
        "part-1.jsonl", "part-2.jsonl", "part-4.jsonl", "part-5.jsonl", "part-6.jsonl"]
    assert after.lines == 6 and compact(folder) == 0
