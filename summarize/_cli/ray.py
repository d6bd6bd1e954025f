"""`summarize run --engine ray`: its flags, and the call, for `run_command`.

Kept apart so that `run` gains one option group and one call. Nothing here imports
Ray: `summarize.ray.run_on_ray` does, when a run needs it. Nor `summarize.ray` itself
(it loads the HTTP stack) until a run asks for it: the CLI loads this module to list
the flags, and `summarize --help` must stay light (tests/test_startup.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from .common import show_problems

if TYPE_CHECKING:
    from .._settings import RunSettings
    from ..ray import RayOptions

_F = TypeVar("_F", bound=Callable[..., Any])
_FLAGS = ("engine", "ray_address", "workers", "batch_size")


def ray_options(command: _F) -> _F:
    """`--engine`, `--ray-address`, `--workers` and `--batch-size`."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                     show_default=True,
                     help="ray: run on a Ray cluster, writing a folder of parts to -o "
                          "(needs an endpoint and the ray extra)."),
        click.option("--ray-address", help="--engine ray: the cluster to join "
                     "[default: a local Ray started for the run]."),
        click.option("--workers", type=click.IntRange(min=1),
                     help="--engine ray: workers (actors, no CPU slot each) [default: 2]."),
        click.option("--batch-size", type=click.IntRange(min=1),
                     help="--engine ray: abstracts per batch, the most a dead worker "
                          "repays [default: 64]."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def take_ray_options(flags: dict[str, Any]) -> RayOptions | None:
    """Take the Ray flags out of `flags`: `RayOptions` for `--engine ray`, else None
    (and a usage error if a Ray flag came without it)."""
    engine, address, workers, batch_size = (flags.pop(name) for name in _FLAGS)
    if engine != "ray":
        given = [name for name, value in (("--ray-address", address), ("--workers", workers),
                                           ("--batch-size", batch_size)) if value is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)}: only with --engine ray")
        return None
    from ..ray import RayOptions
    from ..ray._job import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS

    return RayOptions(address=address, workers=workers or DEFAULT_WORKERS,
                      batch_size=batch_size or DEFAULT_BATCH_SIZE)  # fmt: skip


def run_with_ray(settings: RunSettings, options: RayOptions) -> NoReturn:
    """Run on Ray, print the summary line, exit with the run's code."""
    from ..ray import run_on_ray
    from .progress import summary_line

    result = run_on_ray(settings, options)
    show_problems(result.input_problems)
    click.echo(summary_line(result, settings.output, settings.output))
    sys.exit(result.exit_code)
