"""What people read: a self-contained HTML report, a Markdown digest, a flat CSV.

All three are built from a records file and its errors file; templates are Jinja2
files in `summarize/templates/`. Data comes from scraped pages and model text, so
every value is escaped for where it lands: HTML by autoescaping, Markdown by
`markdown_text` on every `{{ }}` of the digest, and CSV by `spreadsheet_cell`.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from . import _grounding as grounding
from ._atomic import replace_file
from ._current import read_current

MAX_GAINS = 4
TOP_METRICS = 12
DIGEST_WINDOW = timedelta(hours=24)
CSV_COLUMNS = (
    "id", "title", "problem", "method", "result", "claim", "qualitative",
    *(f"gain_{i}_{part}" for i in range(1, MAX_GAINS + 1) for part in ("metric", "value", "quote")),
    "model", "prompt_version", "schema_version", "prompt_tokens", "completion_tokens",
    "created_at", "sources", "batch_id",
)  # fmt: skip
# Markdown punctuation that opens emphasis, code, links, images, headings, tables or
# strike-through; `<`, `>` and `&` become entities, which no renderer reads as HTML.
# `(` and `)` stay as typed, for reading: with `[` and `]` escaped no link can open.
_MARKDOWN_ACTIVE = re.compile(r"[\\`*_\[\]!#|~]")
_HTML_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# ... except a plain number, which it reads as a constant: "-0.5" stays a number.
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?%?", re.ASCII)


@dataclass
class Report:
    """Records, failures and their totals, as the templates see them."""

    source: Path
    records: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Report:
        """The records of `path` (a JSONL file, or a folder of parts) and the error lines
        that are current: of an id with no record, or a redo that failed after its record."""
        current = read_current(path)
        return cls(path, current.records, current.errors)

    @cached_property
    def record_ids(self) -> frozenset[str]:
        """The ids of the records."""
        return frozenset(r["id"] for r in self.records)

    @property
    def kept(self) -> int:
        """Failed abstracts whose previous record is kept (shown, but not current)."""
        return sum(1 for e in self.errors if e.get("id") in self.record_ids)

    @property
    def claims(self) -> Counter[str]:
        """How many records claim a gain in figures, in words, or none."""
        return Counter(claim_kind(r) for r in self.records)

    @property
    def metrics(self) -> list[tuple[str, int]]:
        """The most frequent metrics of claimed gains, lower-cased."""
        names = Counter(
            " ".join(g["metric"].casefold().split())
            for r in self.records
            for g in r["claimed_gain"]["gains"]
        )
        return names.most_common(TOP_METRICS)

    @property
    def provenance(self) -> dict[str, Any]:
        """Models, prompt and schema versions, and token totals of the records."""
        return {
            "models": sorted({str(r.get("model")) for r in self.records}),
            "prompts": sorted({f"v{r.get('prompt_version')} ({r.get('prompt_hash')})"
                               for r in self.records}),
            "schemas": sorted({str(r.get("schema_version")) for r in self.records}),
            "prompt_tokens": sum(int(r.get("prompt_tokens", 0)) for r in self.records),
            "completion_tokens": sum(int(r.get("completion_tokens", 0)) for r in self.records),
        }  # fmt: skip


def claim_kind(record: dict[str, Any]) -> str:
    """ "figures", "words" or "none"."""
    claimed = record["claimed_gain"]
    return "figures" if claimed["gains"] else "words" if claimed.get("qualitative") else "none"


def highlight(abstract: str, quotes: list[str]) -> Markup:
    """The abstract, escaped, with each quote wrapped in <mark>."""
    html = str(escape(abstract))
    for quote in sorted(set(quotes), key=len, reverse=True):
        escaped = str(escape(quote.strip()))
        if escaped and escaped in html:
            html = html.replace(escaped, f"<mark>{escaped}</mark>")
    return Markup(html)  # noqa: S704 - built from escaped text only


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("summarize", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["highlight"] = highlight
    env.filters["claim_kind"] = claim_kind
    env.filters["plain"] = grounding.plain_text
    return env


def render_html(report: Report) -> str:
    """One self-contained page: no script, style or font is fetched at view time."""
    return _environment().get_template("report.html").render(report=report)


def render_digest(report: Report, since: datetime | None = None) -> str:
    """Markdown: the records created since `since` (default: the last run's 24 hours).

    Every value the template prints goes through `markdown_text`, so no title or
    model text can add a tag, a link, an image or a heading.
    """
    fresh = new_records(report.records, since)
    env = _environment().overlay(finalize=markdown_text)
    return env.get_template("digest.md").render(report=report, records=fresh)


def markdown_text(value: object) -> str:
    """`value` as literal text on one line of a Markdown paragraph.

    Whitespace runs become one space (no line of data starts a block); `<`, `>`
    and `&` become entities and Markdown punctuation is backslash-escaped, so a
    renderer shows `<img src=x>` or `[x](javascript:...)` as the characters typed.
    """
    text = " ".join(str(value).split())
    text = "".join(_HTML_SPECIAL.get(char, char) for char in text)
    return _MARKDOWN_ACTIVE.sub(r"\\\g<0>", text)


def new_records(records: list[dict[str, Any]], since: datetime | None) -> list[dict[str, Any]]:
    """Records created at or after `since`, or in the 24 hours before the newest one."""
    stamps = [_stamp(r) for r in records]
    if not stamps:
        return []
    start = since or max(stamps) - DIGEST_WINDOW
    return [r for r, t in zip(records, stamps, strict=True) if t >= start]


def _stamp(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record.get("created_at", "1970-01-01T00:00:00Z")))


def write_csv(report: Report, path: Path) -> None:
    """One row per record, gains flattened into numbered columns; written whole or not at all."""
    replace_file(path, csv_lines(report.records))


def csv_lines(records: list[dict[str, Any]]) -> Iterator[bytes]:
    """The CSV of `write_csv`, a row at a time (the header first), as UTF-8."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for record in records:
        writer.writerow(flat_row(record))
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as one spreadsheet row."""
    row = {key: "" if record.get(key) is None else record[key] for key in CSV_COLUMNS}
    row["claim"] = claim_kind(record)
    row["qualitative"] = record["claimed_gain"].get("qualitative") or ""
    for i, gain in enumerate(record["claimed_gain"]["gains"][:MAX_GAINS], 1):
        for part in ("metric", "value", "quote"):
            row[f"gain_{i}_{part}"] = gain[part]
    row["sources"] = "; ".join(record.get("sources", []))
    return {k: spreadsheet_cell(_one_line(v)) for k, v in row.items()}


def _one_line(value: Any) -> Any:
    return re.sub(r"\s+", " ", value) if isinstance(value, str) else value


def spreadsheet_cell(value: Any) -> Any:
    """`value`, with a `'` in front if a spreadsheet would run it as a formula.

    A cell that starts (after any spaces) with `=`, `+`, `-`, `@`, a tab or a CR is
    prefixed, as OWASP advises; a plain number such as `-0.5` or `+12%` is left as
    it is: a spreadsheet reads it as a constant, with nothing in it to call or refer to.
    """
    if not isinstance(value, str) or _PLAIN_NUMBER.fullmatch(value):
        return value
    if value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START):
        return "'" + value
    return value
