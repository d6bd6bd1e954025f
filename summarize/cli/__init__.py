"""The command line: parse flags into settings, call the library, map errors to exit codes.

Exit codes are `errors.ExitCode`, the same for every command.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..batch import BatchOptions, cancel, collect, status, submit
from ..errors import ExitCode, OutputError, SummarizeError, UsageError
from ..estimate import estimate
from ..evaluate import evaluate
from ..job import run
from ..live.local import EMBEDDED, embedded_model
from ..live.runner import RunResult
from ..output import errors_path_for
from ..records import record_json_schema
from ..report import Report, render_digest, render_html, write_csv
from ..review import diff_records, read_json_lines, validate_file
from ..settings import resolve_settings
from .progress import (
    ProgressDisplay,
    WaitDisplay,
    collect_line,
    estimate_line,
    plural,
    status_lines,
    submit_line,
    summary_line,
)

MAX_PROBLEMS_SHOWN = 20


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (cron's timeout, `kill`) stops like Ctrl-C: the local server is stopped too.

    Re-raised as SIGINT so that asyncio cancels the run's tasks cleanly.
    """
    signal.raise_signal(signal.SIGINT)


@contextmanager
def _user_errors() -> Iterator[None]:
    """A user's mistake (input, config, output) is one line and exit code 2."""
    try:
        yield
    except UsageError as exc:
        _fail(str(exc))


def _fail(message: str, code: ExitCode = ExitCode.USAGE) -> None:
    click.echo(f"summarize: error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="summarize")
def cli() -> None:
    """Structured, grounded summaries of research abstracts, as JSONL."""


@cli.command("run")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Records file [default: outputs/summaries.jsonl].",
)
@click.option("--model", help="Model name at the endpoint [env SUMMARIZE_MODEL].")
@click.option("--base-url", help="OpenAI-compatible endpoint [env OPENAI_BASE_URL].")
@click.option(
    "--concurrency",
    type=int,
    help="Requests in flight [default: sized from the rate limit and the latency; "
    "1 for the embedded model].",
)
@click.option("--rpm", type=float, help="Client-side limit, requests per minute, evenly paced.")
@click.option("--tpm", type=float, help="Client-side limit, tokens per minute, evenly paced.")
@click.option("--max-cost", type=float, help="Stop starting requests once this many USD are spent.")
@click.option("--max-tokens-total", type=int, help="Stop starting requests after this many tokens.")
@click.option(
    "--prices", type=click.Path(path_type=Path), help="Price table (TOML) over the bundled one."
)
@click.option("--dry-run", is_flag=True, help="Estimate tokens and cost; send and write nothing.")
@click.option("--limit", type=int, help="Summarise at most N of the pending abstracts.")
@click.option("--force", is_flag=True, default=None, help="Redo abstracts already in the output.")
@click.option(
    "--strict",
    is_flag=True,
    default=None,
    help="Fail on any bad input line instead of skipping it.",
)
@click.option(
    "--local", is_flag=True, default=None, help="Use the embedded model even if an endpoint is set."
)
@click.option(
    "--model-file",
    type=click.Path(path_type=Path),
    help="Serve this GGUF file locally instead of the embedded model.",
)
@click.option("--timeout", type=float, help="Seconds before one request is abandoned and retried.")
@click.option(
    "--max-retries", type=int, help="Retries of transient faults (429, 5xx, timeouts) per abstract."
)
@click.option("--max-reasks", type=int, help="Re-asks of an invalid answer per abstract.")
@click.option(
    "--prompt",
    type=click.Path(path_type=Path),
    help="Prompt file [default: the bundled prompt of the strategy].",
)
@click.option(
    "--strategy",
    type=click.Choice(["abstractive", "extractive"]),
    help="abstractive: the model writes the summary; extractive: it picks sentences and "
    "figures [default: extractive for a local model, abstractive for an endpoint].",
)
def run_command(inputs: tuple[str, ...], **flags: Any) -> None:
    """Summarise every unique abstract in INPUTS (.txt listings, .jsonl, .csv, or - for stdin)."""
    if flags.get("model_file") is not None:
        flags["local"] = True
    dry_run = flags.pop("dry_run")
    signal.signal(signal.SIGTERM, _interrupt)
    with _job_errors():
        settings = resolve_settings({"inputs": inputs, **flags}, env=os.environ, cwd=Path.cwd())
        if dry_run:
            guess = estimate(settings)
            _show_problems(guess.input_problems)
            click.echo(estimate_line(guess))
            sys.exit(ExitCode.OK)
        display = ProgressDisplay(enabled=sys.stderr.isatty())
        with display:
            result = run(settings, on_start=display.start, on_outcome=display.advance,
                         on_loading=display.loading)  # fmt: skip
    _report(result, settings.output)
    sys.exit(result.exit_code)


@contextmanager
def _job_errors() -> Iterator[None]:
    """Exit codes for a job: 2 for the user's mistakes, 3 for the rest, 130 interrupted."""
    try:
        yield
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to continue", ExitCode.INTERRUPTED)
    except UsageError as exc:
        _fail(str(exc))
    except SummarizeError as exc:
        _fail(str(exc), ExitCode.PROVIDER)


@cli.group("batch")
def batch_group() -> None:
    """Nightly mode on the provider's Batch API: half the cost, the same records.

    \b
    summarize batch submit INPUT... -o OUT.jsonl     # returns at once
    summarize batch status -o OUT.jsonl              # what is pending, per batch
    summarize batch collect -o OUT.jsonl [--wait]    # download, validate, merge
    summarize batch cancel -o OUT.jsonl              # stop spending on open batches
    """


_output_option = click.option(
    "-o", "--output", type=click.Path(path_type=Path),
    help="Records file [default: outputs/summaries.jsonl]; its batches live in OUT.batches/.",
)  # fmt: skip
_model_option = click.option("--model", help="Model name [env SUMMARIZE_MODEL].")
_base_url_option = click.option(
    "--base-url", help="OpenAI-compatible endpoint [env OPENAI_BASE_URL]."
)
_release_lost_option = click.option(
    "--release-lost", is_flag=True,
    help="A batch the endpoint answers 404 for is gone: release its abstracts for the next "
    "submit. Without it a 404 is an error (exit 3) and the state is kept.",
)  # fmt: skip
_prices_option = click.option(
    "--prices", type=click.Path(path_type=Path), help="Price table (TOML) over the bundled one."
)


def _batch_settings(inputs: tuple[str, ...], flags: dict[str, Any]) -> Any:
    signal.signal(signal.SIGTERM, _interrupt)
    return resolve_settings({"inputs": inputs, **flags}, env=os.environ, cwd=Path.cwd())


@batch_group.command("submit")
@click.argument("inputs", nargs=-1, required=True)
@_output_option
@_model_option
@_base_url_option
@_prices_option
@click.option("--limit", type=int, help="Submit at most N of the pending abstracts.")
@click.option("--strict", is_flag=True, default=None, help="Fail on any bad input line.")
@click.option("--prompt", type=click.Path(path_type=Path), help="Prompt file.")
@click.option("--batch-size", type=click.IntRange(1, 50_000), default=50_000, show_default=True,
              help="Requests per batch at most (the cap: 50,000 and 200 MB).")  # fmt: skip
def batch_submit_command(inputs: tuple[str, ...], batch_size: int, **flags: Any) -> None:
    """Build, upload and create batches for every pending abstract in INPUTS; returns at once."""
    with _job_errors():
        settings = _batch_settings(inputs, flags)
        result = submit(settings, BatchOptions(max_requests=batch_size))
    _show_problems(result.input_problems)
    for problem in result.problems:
        click.echo(f"summarize: {problem}", err=True)
    click.echo(submit_line(result, settings.output))
    sys.exit(result.exit_code)


@batch_group.command("status")
@_output_option
@_base_url_option
def batch_status_command(**flags: Any) -> None:
    """What is pending at the provider, per batch."""
    with _job_errors():
        rows, collected = status(_batch_settings((), flags))
    for line in status_lines(rows, collected):
        click.echo(line)


@batch_group.command("collect")
@_output_option
@_base_url_option
@_prices_option
@click.option("--wait", is_flag=True, help="Poll until every batch is collected.")
@click.option("--poll", type=click.FloatRange(min=0.0), default=60.0, show_default=True,
              help="Seconds between polls with --wait.")  # fmt: skip
@click.option("--repair", type=click.Choice(["batch", "live", "none"]), default="batch",
              show_default=True, help="What to do with answers that failed validation, that the "
              "provider failed, or that expired: resubmit them in a follow-up batch, re-ask them "
              "live now, or write them to the errors file.")  # fmt: skip
@click.option("--concurrency", type=int, help="Live re-asks in flight (--repair live).")
@click.option("--rpm", type=float, help="Live re-asks per minute at most (--repair live).")
@click.option("--tpm", type=float, help="Live tokens per minute at most (--repair live).")
@click.option("--max-reasks", type=int, help="Re-asks of an invalid answer per abstract.")
@click.option("--max-retries", type=int, help="Resends of a failed or expired request.")
@_release_lost_option
def batch_collect_command(
    wait: bool, poll: float, repair: str, release_lost: bool, **flags: Any
) -> None:
    """Download finished batches, validate every answer, merge the records into OUT."""
    options = BatchOptions(repair=repair, wait=wait, poll_s=poll,  # type: ignore[arg-type]
                           release_lost=release_lost)  # fmt: skip
    with _job_errors():
        settings = _batch_settings((), flags)
        with WaitDisplay(terminal=wait and sys.stderr.isatty()) as display:
            result = collect(settings, options, on_poll=display if wait else None)
    for problem in [*result.lost, *result.problems]:
        click.echo(f"summarize: {problem}", err=True)
    click.echo(collect_line(result, settings.output, errors_path_for(settings.output)))
    sys.exit(result.exit_code)


@batch_group.command("cancel")
@_output_option
@_base_url_option
@_release_lost_option
def batch_cancel_command(release_lost: bool, **flags: Any) -> None:
    """Cancel the open batches; `collect` then keeps what they answered and releases the rest."""
    with _job_errors():
        result = cancel(_batch_settings((), flags), release_lost=release_lost)
    for problem in result.problems:
        click.echo(f"summarize: {problem}", err=True)
    click.echo(f"{plural(result.cancelled, 'batch')} cancelled, "
               f"{plural(result.released, 'unsent abstract')} released; "
               "collect to keep what was answered")  # fmt: skip
    sys.exit(result.exit_code)


def _show_problems(problems: list[Any]) -> None:
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        click.echo(f"summarize: skipped {problem}", err=True)
    hidden = len(problems) - MAX_PROBLEMS_SHOWN
    if hidden > 0:
        click.echo(f"summarize: … and {hidden} more skipped input problems", err=True)


def _report(result: RunResult, output: Path) -> None:
    _show_problems(result.input_problems)
    click.echo(summary_line(result, output, errors_path_for(output)))


@cli.command("schema")
@click.option("--out", type=click.Path(path_type=Path), help="Write the schema to this file.")
def schema_command(out: Path | None) -> None:
    """Print the JSON Schema of one record line (generated from the models)."""
    text = json.dumps(record_json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    with _user_errors():
        _write(out, text)


@cli.command("eval")
@click.argument("gold", type=click.Path(path_type=Path))
@click.argument("records", type=click.Path(path_type=Path))
def eval_command(gold: Path, records: Path) -> None:
    """Score RECORDS (a run's JSONL) against GOLD (hand-written summaries, same ids)."""
    with _user_errors():
        scores = evaluate(read_json_lines(gold), read_json_lines(records))
    for name, value in scores.table().items():
        click.echo(f"{name:<20} {'n/a' if value is None else f'{value:.3f}'}")


@cli.command("validate")
@click.argument("records", type=click.Path(path_type=Path))
def validate_command(records: Path) -> None:
    """Check a records file (perhaps hand-edited): schema, grounding, duplicate ids."""
    with _user_errors():
        problems = validate_file(records)
    for problem in problems:
        click.echo(str(problem))
    click.echo(f"{records}: {len(problems)} problems", err=True)
    sys.exit(ExitCode.FAILED if problems else ExitCode.OK)


@cli.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
def diff_command(old: Path, new: Path) -> None:
    """Records added (+), removed (-) and changed (~, with the fields) from OLD to NEW."""
    with _user_errors():
        changes = diff_records(read_json_lines(old), read_json_lines(new))
    for change in changes:
        click.echo(str(change))
    sys.exit(ExitCode.FAILED if changes else ExitCode.OK)


@cli.command("report")
@click.argument("records", type=click.Path(path_type=Path))
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write an HTML page.")
@click.option("--md", "md_path", type=click.Path(path_type=Path), help="Write a Markdown digest.")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Digest records created since then (UTC) [default: the newest record's last 24 h].",
)
def report_command(
    records: Path, html_path: Path | None, md_path: Path | None, since: datetime | None
) -> None:
    """Write a self-contained HTML report and/or a Markdown digest of RECORDS."""
    if html_path is None and md_path is None:
        _fail("nothing to write: give --html FILE and/or --md FILE")
    with _user_errors():
        loaded = Report.load(records)
        if html_path is not None:
            _write(html_path, render_html(loaded))
            click.echo(f"wrote {html_path} ({plural(len(loaded.records), 'record')})")
        if md_path is not None:
            _write(md_path, render_digest(loaded, since and since.replace(tzinfo=UTC)))
            click.echo(f"wrote {md_path}")


@cli.command("export")
@click.argument("records", type=click.Path(path_type=Path))
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), required=True,
              help="Write one flat row per record.")  # fmt: skip
def export_command(records: Path, csv_path: Path) -> None:
    """Export RECORDS with flattened columns for spreadsheets and BI tools."""
    with _user_errors():
        loaded = Report.load(records)
        write_csv(loaded, csv_path)
    click.echo(f"wrote {csv_path} ({plural(len(loaded.records), 'record')})")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc


@cli.command("model")
def model_command() -> None:
    """Assemble and hash-check the embedded model's weights; print where they are."""
    with _user_errors():
        model = embedded_model()
    click.echo(f"{model.path}  sha256:{model.sha256}  licence:{EMBEDDED.licence}")


def main() -> None:
    """Console entry point: never a traceback for the user."""
    try:
        cli(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get("SUMMARIZE_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (SUMMARIZE_DEBUG=1 shows more)",
              ExitCode.PROVIDER)  # fmt: skip
