"""Review and report: validate, diff, the HTML page (in a real browser), digest and CSV."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from summarize._cli import cli
from summarize.testing import MockTransport
from summarize.testing.server import FakeOpenAI
from tests.browser import chromium_path, open_page
from tests.conftest import numbered_abstracts, read_jsonl, run_through, write_jsonl

PAPERS = 12


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def records(fake: FakeOpenAI, tmp_path: Path) -> Path:
    """A real run (the fake endpoint answering in-process): PAPERS abstracts, one of which
    fails with a refusal."""
    rows = numbered_abstracts(PAPERS)
    rows[0]["title"] = "A <script>alert('x')</script> & friends"
    papers = write_jsonl(tmp_path / "papers.jsonl", rows)
    fake.enqueue("refusal")
    out = tmp_path / "out.jsonl"
    result = run_through(MockTransport(fake.answer), papers, out, concurrency=1)
    assert result.exit_code == 1
    return out


def test_validate_passes_a_run_output(records: Path) -> None:
    result = invoke("validate", str(records))
    assert result.exit_code == 0, result.output


def test_validate_names_each_hand_made_problem_by_line(records: Path, tmp_path: Path) -> None:
    lines = records.read_text(encoding="utf-8").splitlines()
    edited = json.loads(lines[1])
    edited["result"] = "It is 987% better."
    gain_free = json.loads(lines[2])
    gain_free["claimed_gain"]["gains"] = [
        {"quote": "Not in the abstract.", "metric": "m", "value": "3%"}
    ]
    bad = tmp_path / "edited.jsonl"
    bad.write_text(
        "\n".join([lines[0], json.dumps(edited), json.dumps(gain_free), "{oops", lines[0]]) + "\n",
        encoding="utf-8",
    )
    result = invoke("validate", str(bad))
    assert result.exit_code == 1
    out = result.output
    assert f"{bad}:2: result states numbers the abstract does not: 987" in out
    assert f"{bad}:3: claimed_gain.gains.0: the quote 'Not in the abstract.' does not occur" in out
    assert f"{bad}:4: malformed JSON" in out
    assert f"{bad}:5: duplicate id" in out and "(first on line 1)" in out


def test_diff_lists_added_removed_and_changed_fields(records: Path, tmp_path: Path) -> None:
    old = read_jsonl(records)
    new = [dict(r) for r in old[1:]]
    new[0]["problem"] = "A different problem statement."
    new[0]["created_at"] = "2030-01-01T00:00:00Z"  # timing noise is not a change
    new.append({**old[0], "id": "feedfacefeedface"})
    new_path = write_jsonl(tmp_path / "new.jsonl", new)  # type: ignore[arg-type]
    result = invoke("diff", str(records), str(new_path))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"- {old[0]['id']}  {old[0]['title']}" in lines
    assert f"~ {old[1]['id']}  {old[1]['title']}  [problem]" in lines
    assert any(line.startswith("+ feedfacefeedface") for line in lines)
    assert len(lines) == 3
    assert invoke("diff", str(records), str(records)).exit_code == 0


def test_digest_has_one_paragraph_per_new_paper_and_counts_failures(
    records: Path, tmp_path: Path
) -> None:
    digest = tmp_path / "digest.md"
    assert invoke("report", str(records), "--md", str(digest)).exit_code == 0
    text = digest.read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if p.startswith("**")]
    assert text.startswith(f"# {PAPERS - 1} new papers")
    assert len(paragraphs) == PAPERS - 1
    assert "Claimed: " in text
    assert "1 abstracts failed" in text
    old = invoke("report", str(records), "--md", str(digest), "--since", "2100-01-01")
    assert old.exit_code == 0
    assert digest.read_text(encoding="utf-8").startswith("# 0 new papers")


def test_csv_export_flattens_one_row_per_record(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    assert invoke("export", str(records), "--csv", str(out)).exit_code == 0
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == PAPERS - 1
    assert {r["claim"] for r in rows} == {"figures"}
    assert all(r["gain_1_value"] and r["gain_1_quote"] for r in rows)


def test_report_alone_writes_the_digest_beside_the_records(records: Path) -> None:
    result = invoke("report", str(records))
    assert result.exit_code == 0, result.output
    digest = records.with_suffix(".md")
    assert result.output == f"wrote {digest}\n"
    assert digest.read_text(encoding="utf-8").startswith(f"# {PAPERS - 1} new papers")


needs_browser = pytest.mark.skipif(
    chromium_path() is None and not os.environ.get("SUMMARIZE_REQUIRE_BROWSER"),
    reason="no chromium (bash .ci/setup installs it; CI requires it)",
)


@needs_browser
def test_html_report_loads_cleanly_sorts_and_searches_in_a_real_browser(
    records: Path, tmp_path: Path
) -> None:
    html = tmp_path / "report.html"
    assert invoke("report", str(records), "--html", str(html)).exit_code == 0
    problems: list[str] = []
    with open_page(html, problems) as page:
        rows = page.locator("#papers tbody tr")
        assert rows.count() == PAPERS - 1
        assert page.locator("#errors tbody tr").count() == 1
        assert "<script>" in page.locator("#errors").inner_text()  # escaped, shown as text
        page.fill("#search", "Paper 7")
        assert page.locator("#papers tbody tr:visible").count() == 1
        assert page.inner_text("#shown") == "1 shown"
        page.fill("#search", "")
        first_cells = page.locator("#papers tbody tr td:first-child")
        page.click("#papers th:first-child")
        assert first_cells.all_inner_texts() == sorted(first_cells.all_inner_texts())
        page.click("#papers th:first-child")
        titles = first_cells.all_inner_texts()
        assert titles == sorted(titles, reverse=True)
        page.locator("#papers details summary").first.click()
        assert page.locator("#papers details[open] mark").count() >= 1
        page.screenshot(path=str(tmp_path / "report.png"))
    assert problems == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
