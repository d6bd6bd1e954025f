"""The first hour with summarize: what a new user reads on the screen and finds on disk."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import summarize._cli
from summarize import ExitCode
from summarize._cli import cli
from summarize.testing.server import FakeOpenAI
from tests.conftest import ABSTRACTS, FAKE_KEY, read_jsonl, write_jsonl


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"OPENAI_API_KEY": FAKE_KEY},
                              catch_exceptions=False)  # fmt: skip


def test_a_run_leaves_no_lock_file_behind(server: FakeOpenAI, papers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert invoke("run", str(papers), "-o", str(out), "--base-url", server.base_url).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == [
        "out.errors.jsonl", "out.jsonl", "out.manifest.json"
    ]  # fmt: skip


def test_one_abstract_is_one_abstract_in_the_summary_line(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    one = write_jsonl(tmp_path / "one.jsonl", [{"title": ABSTRACTS[0][0],
                                                "abstract": ABSTRACTS[0][1]}])  # fmt: skip
    result = invoke("run", str(one), "-o", str(tmp_path / "o.jsonl"),
                    "--base-url", server.base_url)  # fmt: skip
    assert "1 abstract: 1 done" in result.output


def one_failure(server: FakeOpenAI, papers: Path, tmp_path: Path) -> Path:
    """A run whose one abstract fails validation; its errors file."""
    server.set_fault_rule(lambda body: "invented_number")
    invoke("run", str(papers), "-o", str(tmp_path / "o.jsonl"), "--base-url", server.base_url,
           "--limit", "1")  # fmt: skip
    return tmp_path / "o.errors.jsonl"


def test_an_error_line_says_why_without_pydantics_prefix(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    [error] = read_jsonl(one_failure(server, papers, tmp_path))
    assert "does not occur in the abstract" in str(error["message"])
    assert "Value error" not in str(error["message"])


def test_the_dry_run_names_the_input_lines_it_would_skip(tmp_path: Path) -> None:
    papers = tmp_path / "p.jsonl"
    papers.write_text(json.dumps({"title": "T", "abstract": ABSTRACTS[0][1]}) + "\n{broken\n")
    result = invoke("run", str(papers), "--dry-run", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 0
    assert f"summarize: skipped {papers}:2:" in result.output
    assert "dry run: 1 of 1 abstract to send" in result.output


def test_validate_on_an_errors_file_says_what_it_is(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    result = invoke("validate", str(one_failure(server, papers, tmp_path)))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "this is an errors file" in result.output


def test_report_and_export_say_what_they_wrote(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o.jsonl"
    invoke("run", str(papers), "-o", str(out), "--base-url", server.base_url)
    html, csv = tmp_path / "r.html", tmp_path / "r.csv"
    assert invoke("report", str(out), "--html", str(html)).output == f"wrote {html} (3 records)\n"
    assert invoke("export", str(out), "--csv", str(csv)).output == f"wrote {csv} (3 records)\n"


def test_run_help_says_how_concurrency_is_sized() -> None:
    help_text = " ".join(invoke("run", "--help").output.split())
    assert "sized from the rate limit and the latency" in help_text
    assert "extractive for a local model, abstractive for an endpoint" in help_text


def test_an_internal_error_has_its_own_exit_code_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(summarize._cli, "cli", broken)
    monkeypatch.setattr(sys, "argv", ["summarize", "run", "papers.txt"])
    with pytest.raises(SystemExit) as exited:
        summarize._cli.main()
    assert exited.value.code == ExitCode.INTERNAL == 70  # not 3: the endpoint is not to blame
    assert capsys.readouterr().err == (
        "summarize: error: internal error: RuntimeError: a bug (SUMMARIZE_DEBUG=1 shows more)\n"
    )
