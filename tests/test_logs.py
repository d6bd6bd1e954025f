"""A run you can watch: its log (`--log-file`, `--log-level`), its manifest, its hooks.

A cron job's operator reads a log: the pauses a rate limit forced, the limits learned,
the re-asks and the retries, as they happen.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from summarize import RunSettings, run
from summarize._cli import cli
from summarize._cli.logs import logging_to
from summarize._core.outcome import Outcome
from summarize.testing import FakeAnswer, FakeSummarizer
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
ID = r"[0-9a-f]{16}"


def summarize_run(server: FakeOpenAI, papers: Path, out: Path, *flags: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["run", str(papers), "-o", str(out), "--base-url", server.base_url, *flags],
        env={"OPENAI_API_KEY": FAKE_KEY},
        catch_exceptions=False,
    )


def rate_limited_run(tmp_path: Path, *flags: str) -> tuple[Result, Path]:
    """Five abstracts against a server that sends its limit in headers (100 requests a
    second), answers the first request with a 429 (Retry-After 0.05 s), and the second
    with an answer that lacks a field."""
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(5))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(rps_limit=100, retry_after=0.05) as server:
        server.enqueue("http_429", "bad_schema")
        result = summarize_run(server, papers, out, *flags)
    assert result.exit_code == 0, result.output
    return result, out


def test_the_log_file_of_a_rate_limited_run_shows_pauses_limits_reasks_and_retries(
    tmp_path: Path,
) -> None:
    log = tmp_path / "run.log"
    result, _ = rate_limited_run(tmp_path, "--log-file", str(log), "--log-level", "INFO")
    lines = log.read_text(encoding="utf-8").splitlines()
    assert all(re.match(rf"{STAMP} (INFO|WARNING) summarize\.\w+: ", line) for line in lines)
    text = "\n".join(lines)
    assert re.search(r"summarize\.rate: learned the requests limit from headers: 6000 a "
                     r"minute \(pacing at 5820\)", text)  # fmt: skip
    assert re.search(r"summarize\.rate: pausing every request for 0\.05 s: "
                     r"HTTP 429, Retry-After 0\.05 s", text)  # fmt: skip
    assert re.search(rf"summarize\.retries: retry {ID}: try 1 failed \(HTTP 429: ", text)
    assert re.search(rf"summarize\.client: re-ask {ID} \(1 of 2\): method: Field required", text)
    assert "DEBUG" not in text
    assert "INFO" not in result.output  # the log went to its file, not to the terminal


def test_the_log_file_is_appended_to_and_debug_shows_every_request(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("the night before\n", encoding="utf-8")
    rate_limited_run(tmp_path, "--log-file", str(log), "--log-level", "debug")
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "the night before"
    requests = [line for line in lines if "summarize.client: request" in line]
    # Seven requests: five abstracts, one retry after the 429, one re-ask.
    assert len(requests) == 7
    assert all(re.search(rf"request {ID} try \d: HTTP (200|429) in \d+\.\d{{3}} s", line)
               for line in requests)  # fmt: skip


def test_by_default_only_warnings_reach_stderr(tmp_path: Path) -> None:
    result, _ = rate_limited_run(tmp_path)
    assert "summarize.rate" not in result.output
    (tmp_path / "again").mkdir()
    result, _ = rate_limited_run(tmp_path / "again", "--log-level", "info")
    assert "INFO summarize.rate: pausing every request" in result.stderr


def test_a_log_file_that_cannot_be_opened_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "x.jsonl", "--log-file", str(tmp_path / "no" / "l")])
    assert result.exit_code == 2
    assert result.output.startswith("summarize: error: --log-file ")
    assert "Traceback" not in result.output


def test_stderr_lines_go_where_stderr_is_when_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # While the progress bar shows, rich swaps sys.stderr for a proxy that prints each line
    # above the bar: a handler that kept the stderr of its creation would write through it.
    with logging_to("info", None):
        swapped = io.StringIO()
        monkeypatch.setattr("sys.stderr", swapped)
        logging.getLogger("summarize.rate").info("a pause")
    assert swapped.getvalue().endswith("INFO summarize.rate: a pause\n")


def test_the_manifest_counts_pauses_learned_limits_and_reasks_by_reason(tmp_path: Path) -> None:
    _, out = rate_limited_run(tmp_path)
    manifest = json.loads(out.with_name("out.manifest.json").read_text(encoding="utf-8"))
    assert manifest["pauses"] == 1
    assert manifest["paused_s"] == pytest.approx(0.05)
    assert manifest["learned_limits"] == {"rpm": {"limit": 5820.0, "from": "headers"}}
    assert manifest["reasks"] == 1
    assert manifest["reask_reasons"] == {"method: missing": 1}


# Hooks: `run(on_outcome=...)`.


def fake_settings(tmp_path: Path, count: int) -> RunSettings:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(count))
    return RunSettings(inputs=(str(papers),), output=tmp_path / "out.jsonl")


def test_on_outcome_hears_once_of_each_abstract_after_its_line_is_written(
    tmp_path: Path,
) -> None:
    settings = fake_settings(tmp_path, 6)
    heard: list[tuple[str, bool, int]] = []

    def on_outcome(outcome: Outcome) -> None:
        lines = len(read_jsonl(settings.output)) + len(read_jsonl(tmp_path / "out.errors.jsonl"))
        heard.append((outcome.item.id, outcome.record is not None, lines))

    fake = FakeSummarizer([FakeAnswer(error="validation")])
    result = run(settings, summarizer=fake, on_outcome=on_outcome)
    assert sorted(i for i, _, _ in heard) == sorted(fake.calls)
    assert [ok for _, ok, _ in heard].count(False) == result.failed == 1
    assert [lines for _, _, lines in heard] == [1, 2, 3, 4, 5, 6]


def test_a_hook_that_raises_is_logged_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def on_outcome(outcome: Outcome) -> None:
        raise RuntimeError(f"the dashboard is down ({outcome.item.id})")

    result = run(fake_settings(tmp_path, 4), summarizer=FakeSummarizer(), on_outcome=on_outcome)
    assert (result.done, result.failed) == (4, 0)
    failures = [r for r in caplog.records if r.name == "summarize.pool"]
    assert len(failures) == 4
    assert all(r.levelno == logging.ERROR and r.exc_info for r in failures)
    assert "on_outcome raised for" in failures[0].getMessage()
