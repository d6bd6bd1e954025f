"""The commands over a records file: validate, eval, diff, report, export.

One convention for their file arguments, the same as `run -o`:

- RECORDS is a JSONL file, or a folder of parts (`run --engine ray -o OUTDIR`), read
  as one output: one current line per id, the newest.
- RECORDS is optional: by default it is the file `run` writes (the config file's
  `output`, else outputs/summaries.jsonl). A default that does not exist is one line
  and exit code 2.
- `report` and `export` write beside RECORDS, named after it (outputs/summaries.md,
  .html, .csv); for a folder, beside the folder, not in it (`out/run1/` ->
  `out/run1.md`), as its manifest is: the folder holds parts only. `-o FILE` chooses
  the file, and `-o -` writes to standard output.

Like every command, these import the library when they run (see `summarize._cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .._errors import ConfigError, ExitCode, InputError, OutputError, UsageError
from .common import user_errors

if TYPE_CHECKING:
    from .._report import Report

STDOUT = Path("-")
_BESIDE = ""  # `--html` / `--md` given without a file: beside RECORDS (or -o)
_HTML_SUFFIXES = (".html", ".htm")

_output = click.Path(path_type=Path)  # a JSONL file, or a folder of parts
_records_argument = click.argument("records", type=_output, required=False)
_file = click.Path(path_type=Path, dir_okay=False, allow_dash=True)


def records_file(given: Path | None, *, cwd: Path | None = None) -> Path:
    """RECORDS as given; else the file `run` writes by default, which must exist."""
    if given is not None:
        return given
    from .._settings import DEFAULT_OUTPUT, read_config_file

    config, config_path = read_config_file(cwd or Path.cwd())
    output = config.get("output", str(DEFAULT_OUTPUT))
    if not isinstance(output, str):
        raise ConfigError(f"{config_path}: output must be a file name")
    path = Path(output)
    if not path.exists():
        raise InputError(
            "no such file: the default records file, which `summarize run` writes; "
            "run it first or name the records file",
            path=path,
        )
    return path


def report_file(records: Path, chosen: Path | None, suffix: str) -> Path:
    """Where a report of RECORDS goes: `chosen`, or beside RECORDS with `suffix`.

    Never onto a JSONL file: `--html out.jsonl` read as "the page's file" would
    overwrite the records the user meant to name.
    """
    target = records.with_suffix(suffix) if chosen is None else chosen
    if target == STDOUT:
        return target
    if target.suffix == ".jsonl" or target.resolve() == records.resolve():
        raise OutputError(
            f"{target}: will not write a report over a JSONL file "
            "(name RECORDS first, then the report's file)"
        )
    return target


def _write(path: Path, chunks: Iterable[bytes]) -> None:
    if path == STDOUT:
        for chunk in chunks:
            click.echo(chunk, nl=False)  # bytes go to the binary stream as they are
        return
    from .._atomic import replace_file

    replace_file(path, chunks)


def _wrote(path: Path, detail: str = "") -> None:
    if path != STDOUT:  # on stdout the report itself is the output
        click.echo(f"wrote {path}{detail}")


@click.command("validate")
@_records_argument
def validate_command(records: Path | None) -> None:
    """Check RECORDS (perhaps hand-edited): schema, grounding, duplicate ids.
    A record whose redo failed since is a notice (kept, asked again), not a problem.
    A folder of parts is checked as one output; a bad line is named by part and line.

    RECORDS defaults to the file `run` writes (outputs/summaries.jsonl)."""
    from .._review import validate_output
    from .progress import plural

    with user_errors():
        path = records_file(records)
        problems, kept = validate_output(path)
    for problem in [*problems, *kept]:
        click.echo(str(problem))
    notice = f", {plural(len(kept), 'record')} kept after a failed redo" if kept else ""
    click.echo(f"{path}: {len(problems)} problems{notice}", err=True)
    sys.exit(ExitCode.FAILED if problems else ExitCode.OK)


@click.command("eval")
@click.argument("gold", type=click.Path(path_type=Path, dir_okay=False))
@_records_argument
def eval_command(gold: Path, records: Path | None) -> None:
    """Score RECORDS (a run's JSONL; default: the file `run` writes) against GOLD
    (hand-written summaries, same ids)."""
    from .._current import read_current
    from .._evaluate import evaluate
    from .._review import read_json_lines

    with user_errors():
        made = read_current(records_file(records)).records
        scores = evaluate(read_json_lines(gold), made)
    for name, value in scores.table().items():
        click.echo(f"{name:<20} {'n/a' if value is None else f'{value:.3f}'}")


@click.command("diff")
@click.argument("old", type=_output)
@click.argument("new", type=_output, required=False)
def diff_command(old: Path, new: Path | None) -> None:
    """Records added (+), removed (-) and changed (~, with the fields) from OLD to NEW
    (default: the file `run` writes); then NEW's records kept after a failed redo (!)."""
    from .._current import read_current
    from .._review import diff_records

    with user_errors():
        before, after = read_current(old), read_current(records_file(new))
        changes = diff_records(before.records, after.records, after.failed_redos)
    for change in changes:
        click.echo(str(change))
    sys.exit(ExitCode.FAILED if changes else ExitCode.OK)


@click.command("report")
@_records_argument
@click.option("-o", "--output", type=_file,
              help="The report's file, - for standard output [default: beside RECORDS, "
              "named after it: RECORDS.md, or .html with --html].")  # fmt: skip
@click.option("--html", "html_path", is_flag=False, flag_value=_BESIDE, metavar="[FILE]",
              help="Write the HTML page (to FILE, or -o, or RECORDS.html).")  # fmt: skip
@click.option("--md", "md_path", is_flag=False, flag_value=_BESIDE, metavar="[FILE]",
              help="Write the Markdown digest (to FILE, or -o, or RECORDS.md).")  # fmt: skip
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Digest records created since then (UTC) [default: the newest record's last 24 h].",
)
def report_command(
    records: Path | None,
    output: Path | None,
    html_path: str | None,
    md_path: str | None,
    since: datetime | None,
) -> None:
    """Write a Markdown digest of RECORDS beside it (RECORDS.md), or with --html a
    self-contained HTML page; -o chooses the file.

    RECORDS defaults to the file `run` writes (outputs/summaries.jsonl)."""
    from .._report import Report

    with user_errors():
        path = records_file(records)
        targets = _report_targets(path, output, html_path, md_path)
        loaded = Report.load(path)
        for kind, target in targets:
            _write_report(loaded, kind, target, since)


def _report_targets(
    records: Path, output: Path | None, html: str | None, md: str | None
) -> list[tuple[str, Path]]:
    """(kind, file) of each report asked for; with neither flag, the digest (or the page,
    when -o names an .html file)."""
    asked = {kind: value for kind, value in (("html", html), ("md", md)) if value is not None}
    if not asked:
        wants_page = output is not None and output.suffix.lower() in _HTML_SUFFIXES
        asked = {"html" if wants_page else "md": _BESIDE}
    if output is not None:
        open_ = [kind for kind, value in asked.items() if value == _BESIDE]
        if len(open_) != 1:
            raise UsageError("-o names the file of one report: give --html FILE and --md FILE")
        asked[open_[0]] = str(output)
    return [
        (kind, report_file(records, Path(value) if value else None, f".{kind}"))
        for kind, value in asked.items()
    ]


def _write_report(report: Report, kind: str, target: Path, since: datetime | None) -> None:
    from .._report import render_digest, render_html
    from .progress import plural

    if kind == "html":
        _write(target, [render_html(report).encode("utf-8")])
        _wrote(target, f" ({plural(len(report.records), 'record')})")
    else:
        digest = render_digest(report, since and since.replace(tzinfo=UTC))
        _write(target, [digest.encode("utf-8")])
        _wrote(target)


@click.command("export")
@_records_argument
@click.option("-o", "--output", type=_file,
              help="The CSV file, - for standard output [default: RECORDS.csv].")  # fmt: skip
@click.option("--csv", "csv_path", type=_file, help="The CSV file (the same as -o).")
def export_command(records: Path | None, output: Path | None, csv_path: Path | None) -> None:
    """Export RECORDS as CSV, one flat row per record, for spreadsheets and BI tools;
    beside RECORDS (RECORDS.csv) unless -o chooses.

    RECORDS defaults to the file `run` writes (outputs/summaries.jsonl)."""
    from .._report import Report, csv_lines
    from .progress import plural

    with user_errors():
        if output is not None and csv_path is not None and output != csv_path:
            raise UsageError("-o and --csv name the same file: give one of them")
        path = records_file(records)
        target = report_file(path, output or csv_path, ".csv")
        loaded = Report.load(path)
        _write(target, csv_lines(loaded.records))
    _wrote(target, f" ({plural(len(loaded.records), 'record')})")


COMMANDS = (validate_command, eval_command, diff_command, report_command, export_command)
