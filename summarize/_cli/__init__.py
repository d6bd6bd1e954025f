"""The command line: parse flags into settings, call the library, map errors to exit codes.

Exit codes are `ExitCode` (`_errors`), the same for every command. A command imports
the library when it runs, not when the CLI loads: `summarize --help` then costs click and
little else (`bench/startup.py`), and no command pays for another's dependencies (the
OpenAI SDK is the Batch API's alone).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._errors import ExitCode
from .batch import batch_group
from .common import fail, job_errors, show_problems, user_errors
from .logs import log_options
from .ray import ray_options
from .records import COMMANDS as RECORDS_COMMANDS

if TYPE_CHECKING:
    from .._core.outcome import RunResult


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="summarize")
def cli() -> None:
    """Structured, grounded summaries of research abstracts, as JSONL."""


cli.add_command(batch_group)
for _command in RECORDS_COMMANDS:
    cli.add_command(_command)


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
@log_options
def run_command(inputs: tuple[str, ...], **flags: Any) -> None:
    """Summarise every unique abstract in INPUTS (.txt listings, .jsonl, .csv, or - for stdin)."""
    from .._core.stop import INTERRUPTED
    from .._estimate import estimate
    from .._run import run
    from .._settings import resolve_settings
    from .logs import logging_from
    from .progress import ProgressDisplay, estimate_line
    from .ray import run_with_ray, take_ray_options
    from .signals import stopping_on_signals

    if flags.get("model_file") is not None:
        flags["local"] = True
    dry_run = flags.pop("dry_run")
    ray = take_ray_options(flags)
    logs = logging_from(flags)
    with job_errors(), logs, stopping_on_signals() as stopping:
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
                         on_loading=display.loading, stop=stopping.stop)  # fmt: skip
        _report(result, settings.output)
        # Interrupted: the shell's code for the signal (130 Ctrl-C, 143 SIGTERM).
        sys.exit(stopping.exit_code if result.stopped == INTERRUPTED else result.exit_code)


def _report(result: RunResult, output: Path) -> None:
    from .._output import errors_path_for
    from .progress import summary_line

    show_problems(result.input_problems)
    # A folder of parts keeps its error lines in its parts.
    errors = output if output.is_dir() else errors_path_for(output)
    click.echo(summary_line(result, output, errors))


@cli.command("schema")
@click.option("--out", type=click.Path(path_type=Path), help="Write the schema to this file.")
def schema_command(out: Path | None) -> None:
    """Print the JSON Schema of one record line (generated from the models)."""
    from .._core.records import record_json_schema

    text = json.dumps(record_json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    with user_errors():
        _write(out, text)


def _write(path: Path, text: str) -> None:
    from .._atomic import replace_file

    replace_file(path, [text.encode("utf-8")])


@cli.command("model")
def model_command() -> None:
    """Assemble and hash-check the embedded model's weights; print where they are."""
    from .._embedded.weights import EMBEDDED, embedded_model

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
