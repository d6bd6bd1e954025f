"""Untrusted text (scraped titles, model sentences) in the Markdown digest and the CSV.

The records come from a real run against the fake endpoint (in-process); their titles and the
sentences the model copies from the abstracts carry HTML, Markdown links and
spreadsheet formulas. The digest is rendered by a real Markdown renderer.
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt

from summarize._cli import cli
from summarize._report import markdown_text, spreadsheet_cell
from summarize.testing import MockTransport
from summarize.testing.server import FakeOpenAI, default_responder
from tests.conftest import read_jsonl, run_through, write_jsonl

TAG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
IMAGE = "![pixel](http://evil.example/track.png)"
FORMULA = '=HYPERLINK("http://evil.example/","open")'
HOSTILE_TITLES = [
    f"Fast {TAG} detectors",
    f"A survey {LINK} of gadgets",
    f"{IMAGE} Tiny training",
    FORMULA,
    "+cmd|' /C calc'!A0",
    "-2+3 gains",
    "@SUM(A1:A9) scheduling",
    "<script>alert(document.cookie)</script> & **bold** `code` # | ~~gone~~",
]
METRIC = "recall <b>on</b> [the set](javascript:alert(document.domain))"


def hostile_abstract(i: int) -> str:
    return (
        f"Renderers trust raw tags such as {TAG} in scraped text number {i}. "
        f"We propose {LINK}, a filter for it. "
        f"The filter improves recall by {i}.5% over the best prior system. "
        f"Spreadsheets run cells such as {FORMULA}"
    )


def hostile_answer(body: Any) -> Any:
    """The default grounded answer, with a metric name full of markup."""
    answer = default_responder(body)
    for gain in answer["claimed_gain"]["gains"]:
        gain["metric"] = METRIC
    return answer


@pytest.fixture
def records(tmp_path: Path) -> Path:
    rows = [{"title": t, "abstract": hostile_abstract(i)} for i, t in enumerate(HOSTILE_TITLES)]
    papers = write_jsonl(tmp_path / "papers.jsonl", rows)
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=hostile_answer)
    result = run_through(MockTransport(fake.answer), papers, out)
    assert result.exit_code == 0
    made = read_jsonl(out)
    assert {r["title"] for r in made} == set(HOSTILE_TITLES)
    assert all(r["claimed_gain"]["gains"] for r in made)  # type: ignore[index]
    return out


def digest_of(records: Path) -> str:
    digest = records.with_name("digest.md")
    result = CliRunner().invoke(cli, ["report", str(records), "--md", str(digest)])
    assert result.exit_code == 0, result.output
    return digest.read_text(encoding="utf-8")


def visible_text(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", rendered))


def test_digest_of_hostile_records_renders_no_tag_link_or_image(records: Path) -> None:
    text = digest_of(records)
    assert "<img" not in text and "<script" not in text and "<b>" not in text
    # CommonMark with raw HTML allowed, as GitHub-like renderers start from.
    rendered = MarkdownIt("commonmark", {"html": True}).render(text)
    for raw in ("<img", "<script", "<a ", "<b>", "<code", "<h2"):
        assert raw not in rendered, raw
    assert "javascript:" not in re.sub(r"(?s)>[^<]*<", "><", rendered)  # in no attribute
    assert rendered.count("<strong>") == len(HOSTILE_TITLES)  # only the template's own


def test_digest_shows_hostile_text_literally(records: Path) -> None:
    rendered = MarkdownIt("commonmark", {"html": True}).render(digest_of(records))
    shown = visible_text(rendered)
    for title in HOSTILE_TITLES:
        assert title in shown, title
    assert TAG in shown and LINK in shown and METRIC in shown


def test_csv_of_hostile_records_has_no_formula_cell(records: Path) -> None:
    out = records.with_name("out.csv")
    result = CliRunner().invoke(cli, ["export", str(records), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(HOSTILE_TITLES)
    cells = [cell for row in rows for cell in row.values()]
    starts = ("=", "+", "-", "@", "\t", "\r")
    assert not [c for c in cells if c.lstrip().startswith(starts)]
    titles = {row["title"] for row in rows}
    assert f"'{FORMULA}" in titles and "'-2+3 gains" in titles
    assert {t.removeprefix("'") for t in titles} == set(HOSTILE_TITLES)
    assert all(row["gain_1_quote"].startswith("The filter improves") for row in rows)


@pytest.mark.parametrize(
    "cell",
    ["=1+1", "+1+1", "-2+3", "-1-1", "@SUM(A1)", "\t=1", "\r=1", "  =1", "-", "+", "-0.5)",
     "-1e5", "-cmd|' /C calc'!A0"],
)  # fmt: skip
def test_a_cell_a_spreadsheet_would_run_gets_a_quote(cell: str) -> None:
    assert spreadsheet_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-0.5", "+12%", "-3", "42", "4.2%", "3x faster", "a=b"])
def test_a_plain_number_or_plain_text_stays_as_it_is(cell: str) -> None:
    assert spreadsheet_cell(cell) == cell


def test_numbers_stay_numbers_in_the_csv() -> None:
    assert spreadsheet_cell(17) == 17


def test_markdown_text_keeps_words_readable() -> None:
    plain = "FastWidget improves accuracy by 4.2% over the state-of-the-art baseline, 3x faster."
    assert markdown_text(plain) == plain
    assert markdown_text("a <b> & [c](d)\n\n# e") == r"a &lt;b&gt; &amp; \[c\](d) \# e"
