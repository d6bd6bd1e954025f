"""`summarize batch ...`: nightly mode on the provider's Batch API."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .common import interrupt, job_errors, show_problems
from .logs import log_options, logging_from

FC = TypeVar("FC", bound=Callable[..., Any])


@click.group("batch")
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
_url_option = click.option("--base-url", help="OpenAI-compatible endpoint [env OPENAI_BASE_URL].")
_insecure_key_option = click.option(
    "--allow-insecure-key", is_flag=True, default=None,
    help="Send the API key over plain http to another machine (refused without).",
)  # fmt: skip


def _base_url_option(command: FC) -> FC:
    """`--base-url`, and `--allow-insecure-key`, which every command that sends the key needs."""
    return _url_option(_insecure_key_option(command))
_release_lost_option = click.option(
    "--release-lost", is_flag=True,
    help="A batch the endpoint answers 404 for is gone: release its abstracts for the next "
    "submit. Without it a 404 is an error (exit 3) and the state is kept.",
)  # fmt: skip
_prices_option = click.option(
    "--prices", type=click.Path(path_type=Path), help="Price table (TOML) over the bundled one."
)
_max_cost_option = click.option(
    "--max-cost", type=float, help="USD this command may send, estimated before sending "
    "(batch requests at the batch price, live re-asks at the live price).",
)  # fmt: skip
_max_tokens_option = click.option(
    "--max-tokens-total", type=int, help="Tokens this command may send, estimated likewise."
)


def _batch_settings(inputs: tuple[str, ...], flags: dict[str, Any]) -> Any:
    from .._settings import resolve_settings

    signal.signal(signal.SIGTERM, interrupt)
    return resolve_settings({"inputs": inputs, **flags}, env=os.environ, cwd=Path.cwd())


def _say_ignored(line: str | None) -> None:
    """No setting is ignored silently: one line naming those the command does not read."""
    if line is not None:
        click.echo(f"summarize: {line}", err=True)


@batch_group.command("submit")
@click.argument("inputs", nargs=-1, required=True)
@_output_option
@_model_option
@_base_url_option
@_prices_option
@_max_cost_option
@_max_tokens_option
@click.option("--limit", type=int, help="Submit at most N of the pending abstracts.")
@click.option("--strict", is_flag=True, default=None, help="Fail on any bad input line.")
@click.option("--prompt", type=click.Path(path_type=Path), help="Prompt file.")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="Room for one answer, in tokens [default: 2048].")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(1, 50_000), default=50_000, show_default=True,
              help="Requests per batch at most (the cap: 50,000 and 200 MB).")  # fmt: skip
@log_options
def batch_submit_command(inputs: tuple[str, ...], batch_size: int, **flags: Any) -> None:
    """Build, upload and create batches for every pending abstract in INPUTS; returns at once.

    Under --max-cost / --max-tokens-total, abstracts go in input order while their
    estimate at the batch price fits; the rest wait for the next submit.
    """
    from ..batch import BatchOptions, ignored_settings, submit
    from .progress import submit_line

    with job_errors(), logging_from(flags):
        settings = _batch_settings(inputs, flags)
        _say_ignored(ignored_settings(settings, "submit"))
        result = submit(settings, BatchOptions(max_requests=batch_size))
    show_problems(result.input_problems)
    for problem in result.problems:
        click.echo(f"summarize: {problem}", err=True)
    if result.cap_note is not None:
        click.echo(f"summarize: batch submit: {result.cap_note}", err=True)
    click.echo(submit_line(result, settings.output))
    sys.exit(result.exit_code)


@batch_group.command("status")
@_output_option
@_base_url_option
def batch_status_command(**flags: Any) -> None:
    """What is pending at the provider, per batch."""
    from ..batch import status
    from .progress import status_lines

    with job_errors():
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
@_max_cost_option
@_max_tokens_option
@_release_lost_option
@log_options
def batch_collect_command(
    wait: bool, poll: float, repair: str, release_lost: bool, **flags: Any
) -> None:
    """Download finished batches, validate every answer, merge the records into OUT."""
    from .._output import errors_path_for
    from ..batch import BatchOptions, collect, ignored_settings
    from .progress import WaitDisplay, collect_line, plural

    options = BatchOptions(repair=repair, wait=wait, poll_s=poll,  # type: ignore[arg-type]
                           release_lost=release_lost)  # fmt: skip
    with job_errors(), logging_from(flags):
        settings = _batch_settings((), flags)
        _say_ignored(ignored_settings(settings, "collect", options.repair))
        with WaitDisplay(terminal=wait and sys.stderr.isatty()) as display:
            result = collect(settings, options, on_poll=display if wait else None)
    for problem in [*result.lost, *result.problems]:
        click.echo(f"summarize: {problem}", err=True)
    if result.capped:
        click.echo(f"summarize: batch collect: {plural(result.capped, 'abstract')} not sent "
                   f"again ({result.cap_note}): their error lines are written; the next "
                   "submit sends them again", err=True)  # fmt: skip
    click.echo(collect_line(result, settings.output, errors_path_for(settings.output)))
    sys.exit(result.exit_code)


@batch_group.command("cancel")
@_output_option
@_base_url_option
@_release_lost_option
def batch_cancel_command(release_lost: bool, **flags: Any) -> None:
    """Cancel the open batches; `collect` then keeps what they answered and releases the rest."""
    from ..batch import cancel
    from .progress import plural

    with job_errors():
        result = cancel(_batch_settings((), flags), release_lost=release_lost)
    for problem in result.problems:
        click.echo(f"summarize: {problem}", err=True)
    click.echo(f"{plural(result.cancelled, 'batch')} cancelled, "
               f"{plural(result.released, 'unsent abstract')} released; "
               "collect to keep what was answered")  # fmt: skip
    sys.exit(result.exit_code)

