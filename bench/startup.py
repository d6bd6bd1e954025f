"""Start-up: how long `summarize --help` and friends take, against `python -c pass`.

    .venv/bin/python bench/startup.py [--reps 15] [--tree DIR]

Each command runs `--reps` times, the commands interleaved (one of each, then again)
so that a busy machine slows them alike. Printed: each command's median wall time and
its ratio to the floor, `python -c pass` (the interpreter's own start-up, site and the
editable install's finder included). `summarize ...` is run as the console script
runs it (`from summarize._cli import main; main()`).

On 2 busy cores (load 5), `--reps 15 --tree` at the commit before the lazy imports:
`summarize --help` 0.18 s, 3.9x the floor, against 2.31 s, 51x, before.

`--tree DIR` runs the same commands, in the same rounds, against the `summarize` of
another checkout (for example `git worktree add /tmp/before main`): a before and after
measured side by side. 15 repetitions take about 40 s, 90 s with `--tree`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The entry point moved from summarize.cli to summarize._cli (issue 26); a --tree from
# before the move still runs.
MAIN = """import sys
try:
    from summarize._cli import main
except ModuleNotFoundError:
    from summarize.cli import main
sys.argv[0] = 'summarize'
main()"""
FLOOR = ("python -c pass", ["-c", "pass"])
CASES = {
    "import summarize": ["-c", "import summarize"],
    "summarize --help": ["-c", MAIN, "--help"],
    "summarize run --help": ["-c", MAIN, "run", "--help"],
}


def option(name: str, default: str | None) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def once(args: list[str], tree: Path) -> float:
    """Seconds for one run of `python ARGS` with `tree`'s summarize first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=tree, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{args} in {tree} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    reps = int(option("--reps", "15") or 15)
    trees = {"this tree": ROOT}
    if (other := option("--tree", None)) is not None:
        trees["--tree"] = Path(other).resolve()
    floor: list[float] = []
    times: dict[tuple[str, str], list[float]] = {
        (label, case): [] for label in trees for case in CASES
    }
    for _ in range(reps):
        floor.append(once(FLOOR[1], ROOT))
        for case, args in CASES.items():
            for label, tree in trees.items():
                times[label, case].append(once(args, tree))
    base = statistics.median(floor)
    cores, load = os.cpu_count(), os.getloadavg()[0]
    print(f"{reps} rounds, {cores} cores, load average {load:.1f} at the end; medians")
    for label, tree in trees.items():
        print(f"  {label}: {tree}")
    print(f"\n{'':<22}" + "".join(f"{label:>24}" for label in trees))
    print(f"{FLOOR[0]:<22}" + f"{base:>10.3f} s  1.0x floor" * len(trees))
    for case in CASES:
        cells = []
        for label in trees:
            median = statistics.median(times[label, case])
            cells.append(f"{median:>10.3f} s {median / base:4.1f}x floor")
        print(f"{case:<22}" + "".join(cells))


if __name__ == "__main__":
    main()
