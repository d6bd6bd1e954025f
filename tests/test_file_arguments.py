"""One convention for file arguments.

RECORDS defaults to the file `run` writes; reports are written beside it:

    summarize run papers.jsonl        # outputs/summaries.jsonl
    summarize validate                # checks outputs/summaries.jsonl
    summarize report                  # writes outputs/summaries.md
    summarize report --html           # writes outputs/summaries.html
    summarize export                  # writes outputs/summaries.csv
    summarize export -o -             # the CSV on standard output
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from summarize._cli import cli
from tests.conftest import FAKE_KEY, read_jsonl
from tests.fakeserver import FakeOpenAI

DEFAULT = Path("outputs/summaries.jsonl")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def ran(server: FakeOpenAI, papers: Path) -> Path:
    """`summarize run papers.jsonl` in the working directory, with no -o."""
    result = CliRunner().invoke(
        cli, ["run", str(papers), "--base-url", server.base_url], env={"OPENAI_API_KEY": FAKE_KEY}
    )
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(DEFAULT)) == 3
    return DEFAULT


def test_validate_with_no_arguments_checks_the_file_run_wrote(ran: Path) -> None:
    result = invoke("validate")
    assert result.exit_code == 0, result.output
    assert result.output == f"{ran}: 0 problems\n"


def test_report_with_no_arguments_writes_the_digest_beside_the_records(ran: Path) -> None:
    result = invoke("report")
    assert result.exit_code == 0, result.output
    assert result.output == "wrote outputs/summaries.md\n"
    assert Path("outputs/summaries.md").read_text(encoding="utf-8").startswith("# 3 new papers")


def test_report_html_goes_beside_too_or_where_o_says(ran: Path, tmp_path: Path) -> None:
    assert invoke("report", "--html").output == "wrote outputs/summaries.html (3 records)\n"
    assert Path("outputs/summaries.html").read_text(encoding="utf-8").startswith("<!doctype")
    page = tmp_path / "page.html"
    assert invoke("report", "-o", str(page)).output == f"wrote {page} (3 records)\n"
    assert page.read_text(encoding="utf-8").startswith("<!doctype")
    digest = tmp_path / "d.md"
    assert invoke("report", "--html", "--md", str(digest), "-o", str(page)).exit_code == 0
    assert digest.exists()


def test_report_o_dash_prints_the_digest(ran: Path) -> None:
    result = invoke("report", "-o", "-")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# 3 new papers")
    assert not Path("outputs/summaries.md").exists()


def test_export_with_no_arguments_writes_the_csv_beside_and_o_dash_prints_it(ran: Path) -> None:
    result = invoke("export")
    assert result.output == "wrote outputs/summaries.csv (3 records)\n"
    written = Path("outputs/summaries.csv").read_bytes()
    printed = CliRunner().invoke(cli, ["export", "-o", "-"]).stdout_bytes
    assert printed == written
    rows = list(csv.DictReader(io.StringIO(printed.decode("utf-8"), newline="")))
    assert [r["id"] for r in rows] == [r["id"] for r in read_jsonl(ran)]


def test_a_report_never_lands_on_a_jsonl_file(ran: Path) -> None:
    """`--html FILE` takes the next word: RECORDS written after it is not overwritten."""
    before = ran.read_bytes()
    result = invoke("report", "--html", str(ran))
    assert result.exit_code == 2
    assert "will not write a report over a JSONL file" in result.output
    assert ran.read_bytes() == before


def test_o_names_one_report(ran: Path) -> None:
    result = invoke("report", "--html", "--md", "-o", "x")
    assert result.exit_code == 2
    assert "-o names the file of one report" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["report"],
        ["report", "--html"],
        ["export"],
        ["diff", "old.jsonl"],
        ["eval", "gold.jsonl"],
    ],
)
def test_a_missing_default_records_file_is_one_line_and_exit_2(args: list[str]) -> None:
    Path("old.jsonl").write_text("", encoding="utf-8")
    Path("gold.jsonl").write_text("", encoding="utf-8")
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"summarize: error: {DEFAULT}: no such file")
    assert "Traceback" not in result.output


def test_the_default_records_file_follows_the_config_files_output(
    server: FakeOpenAI, papers: Path
) -> None:
    Path("summarize.toml").write_text('output = "nightly/records.jsonl"\n', encoding="utf-8")
    env = {"OPENAI_API_KEY": FAKE_KEY}
    ran = CliRunner().invoke(cli, ["run", str(papers), "--base-url", server.base_url], env=env)
    assert ran.exit_code == 0, ran.output
    assert invoke("validate").output == "nightly/records.jsonl: 0 problems\n"
    assert invoke("report").output == "wrote nightly/records.md\n"


def test_a_named_missing_file_is_one_line_too() -> None:
    result = invoke("validate", "nope.jsonl")
    assert (result.exit_code, result.output) == (2, "summarize: error: nope.jsonl: no such file\n")
