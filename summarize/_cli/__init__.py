"""The command line: parse flags into settings, call the library, map errors to exit codes.

Exit codes are `ExitCode` (`_errors`), the same for every command.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .._atomic import replace_file
from .._core.outcome import RunResult
from .._core.records import record_json_schema
from .._embedded.weights import EMBEDDED, embedded_model
from .._errors import ExitCode
from .._estimate import estimate
from .._evaluate import evaluate
from .._output import errors_path_for, failed_redos
from .._report import Report, render_digest, render_html, write_csv
from .._review import diff_records, kept_records, read_json_lines, validate_file
from .._run import run
from .._settings import resolve_settings
from .batch import batch_group
from .common import fail, interrupt, job_errors, show_problems, user_errors
from .progress import (
    ProgressDisplay,
    estimate_line,
    plural,
    summary_line,
)
from .ray import ray_options, run_with_ray, take_ray_options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="summarize")
def cli() -> None:
    """Structured, grounded summaries of research abstracts, as JSONL."""


cli.add_command(batch_group)


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
    "--allow-insecure-key",
    is_flag=True,
    default=None,
    help="Send the API key over plain http to another machine (refused without).",
)
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
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Room for one answer, in tokens; a cut-off answer is asked again with twice the "
    "room, up to 4x [default: 2048; the embedded model uses 512].",
)
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
@ray_options
def run_command(inputs: tuple[str, ...], **flags: Any) -> None:
    """Summarise every unique abstract in INPUTS (.txt listings, .jsonl, .csv, or - for stdin)."""
    if flags.get("model_file") is not None:
        flags["local"] = True
    dry_run = flags.pop("dry_run")
    ray = take_ray_options(flags)
    signal.signal(signal.SIGTERM, interrupt)
    with job_errors():
        settings = resolve_settings({"inputs": inputs, **flags}, env=os.environ, cwd=Path.cwd())
        if dry_run:
            guess = estimate(settings)
            show_problems(guess.input_problems)
            click.echo(estimate_line(guess))
            sys.exit(ExitCode.OK)
        if ray is not None:
            run_with_ray(settings, ray)
        display = ProgressDisplay(enabled=sys.stderr.isatty())
        with display:
            result = run(settings, on_start=display.start, on_outcome=display.advance,
                         on_loading=display.loading)  # fmt: skip
    _report(result, settings.output)
    sys.exit(result.exit_code)


def _report(result: RunResult, output: Path) -> None:
    show_problems(result.input_problems)
    click.echo(summary_line(result, output, errors_path_for(output)))


@cli.command("schema")
@click.option("--out", type=click.Path(path_type=Path), help="Write the schema to this file.")
def schema_command(out: Path | None) -> None:
    """Print the JSON Schema of one record line (generated from the models)."""
    text = json.dumps(record_json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    with user_errors():
        _write(out, text)


@cli.command("eval")
@click.argument("gold", type=click.Path(path_type=Path))
@click.argument("records", type=click.Path(path_type=Path))
def eval_command(gold: Path, records: Path) -> None:
    """Score RECORDS (a run's JSONL) against GOLD (hand-written summaries, same ids)."""
    with user_errors():
        scores = evaluate(read_json_lines(gold), read_json_lines(records))
    for name, value in scores.table().items():
        click.echo(f"{name:<20} {'n/a' if value is None else f'{value:.3f}'}")


@cli.command("validate")
@click.argument("records", type=click.Path(path_type=Path))
def validate_command(records: Path) -> None:
    """Check a records file (perhaps hand-edited): schema, grounding, duplicate ids.
    A record whose redo failed since is a notice (kept, asked again), not a problem."""
    with user_errors():
        problems = validate_file(records)
        kept = kept_records(records)
    for problem in [*problems, *kept]:
        click.echo(str(problem))
    notice = f", {plural(len(kept), 'record')} kept after a failed redo" if kept else ""
    click.echo(f"{records}: {len(problems)} problems{notice}", err=True)
    sys.exit(ExitCode.FAILED if problems else ExitCode.OK)


@cli.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
def diff_command(old: Path, new: Path) -> None:
    """Records added (+), removed (-) and changed (~, with the fields) from OLD to NEW;
    then NEW's records kept after a failed redo (!)."""
    with user_errors():
        changes = diff_records(read_json_lines(old), read_json_lines(new), failed_redos(new))
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
        fail("nothing to write: give --html FILE and/or --md FILE")
    with user_errors():
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
    with user_errors():
        loaded = Report.load(records)
        write_csv(loaded, csv_path)
    click.echo(f"wrote {csv_path} ({plural(len(loaded.records), 'record')})")


def _write(path: Path, text: str) -> None:
    replace_file(path, [text.encode("utf-8")])


@cli.command("model")
def model_command() -> None:
    """Assemble and hash-check the embedded model's weights; print where they are."""
    with user_errors():
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
        fail(f"internal error: {type(exc).__name__}: {exc} (SUMMARIZE_DEBUG=1 shows more)",
              ExitCode.INTERNAL)  # fmt: skip
