"""The abstractive strategy on a local GGUF: what it makes of the gold set, and why not.

    .venv/bin/python bench/abstractive.py --model-file /root/.cache/tm/qwen-1.5b.gguf --n 20
    (--keep DIR keeps the run's files; --rescore DIR scores them again, a partial run's too)

`summarize.run` with `--strategy abstractive` and `--model-file` (the embedded llama.cpp
runtime serving that GGUF, its settings as a run gives them: constrained quotes, one
re-ask) on the first N abstracts of the gold set (tests/data/gold.jsonl), in file order:
all of it by default, or one part of `bench/embedded.py`'s split by id (`--split dev`
is 18 abstracts, on which the extractive picks were tuned; `held-out` the other 21).
Printed:

- records, and error lines by reason (the error type; for a validation error, what its
  message names first: a figure no sentence states, a cap, a quote, the title...);
- re-asks (as the run counts them, `RunResult.reasks`) and requests;
- repairs: quotes set from the abstract (`Record.repaired`), and the records they saved;
- invented numbers: numbers the records state that their abstract does not, counted by
  `summarize.evaluate` (its own number reading, no code shared with the validator);
  and records with any grounding problem by the same code;
- gain precision and recall, and no-claim accuracy, against the gold summaries;
- seconds per abstract, server start and weight check included.

The 1.5B model takes about 100 s an abstract on 2 cores: --n sets the run's length.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.embedded import GOLD, SPLITS, in_split  # noqa: E402
from summarize import (  # noqa: E402
    RunResult,
    RunSettings,
    run,
)
from summarize._evaluate import evaluate  # noqa: E402

# What a validation error's first fault is about, by the words the validators use.
REASONS = (
    ("value's figure in no sentence", re.compile(r"no sentence of the abstract states")),
    ("cap", re.compile(r"characters|at most \d+ items|should have at most")),
    ("quote", re.compile(r"the quote|its quote does not state")),
    ("invented number", re.compile(r"states numbers the abstract does not")),
    ("value without a figure", re.compile(r"has no number|should match pattern")),
    ("title copied", re.compile(r"repeats the title")),
    ("not one sentence", re.compile(r"one short sentence")),
    ("not JSON / shape", re.compile(r"Invalid JSON|json_invalid|Field required|Extra inputs")),
)


def reason(error: dict[str, Any]) -> str:
    """The error line's reason: its type, and for a validation error its first fault."""
    kind = str(error.get("error_type"))
    if kind != "validation":
        return kind
    message = str(error.get("message", ""))
    found = [(m.start(), name) for name, words in REASONS if (m := words.search(message))]
    return f"validation: {min(found)[1]}" if found else "validation: other"


def job(gold: list[dict[str, Any]], workdir: Path, model_file: Path) -> tuple[RunResult, float]:
    """`summarize run --strategy abstractive --model-file` on `gold`'s titles and abstracts,
    in `workdir`; what the run says, and its wall time (server start included)."""
    papers = workdir / "papers.jsonl"
    papers.write_text("".join(json.dumps({"title": g["title"], "abstract": g["abstract"]}) + "\n"
                              for g in gold), encoding="utf-8")  # fmt: skip
    settings = RunSettings(inputs=(str(papers),), output=workdir / "out.jsonl", local=True,
                           model_file=model_file, strategy="abstractive")  # fmt: skip
    start = time.perf_counter()
    result = run(settings)
    return result, time.perf_counter() - start


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-file", type=Path, required=True, help="the GGUF to serve")
    parser.add_argument("--n", type=int, default=20, help="gold abstracts, from the first")
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--split", choices=SPLITS, default="all",
                        help="part of the gold set, split by id as bench/embedded.py")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="write the run's files here (else a tempdir)")
    parser.add_argument("--rescore", type=Path, metavar="DIR",
                        help="no run: score the files a run kept in DIR (--keep), a partial "
                             "one too, over the abstracts it has a line for")  # fmt: skip
    args = parser.parse_args()
    gold = [paper for paper in read_lines(args.gold) if in_split(paper, args.split)][: args.n]
    if args.rescore:
        rescore(args, gold, args.rescore)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result, wall = job(gold, workdir, args.model_file)
        records = read_lines(workdir / "out.jsonl")
        errors = read_lines(workdir / "out.errors.jsonl")
    report(args, gold, records, errors, Sent(result.requests, sum(result.reasks.values())), wall)


@dataclass(frozen=True, slots=True)
class Sent:
    """Requests a run sent, and how many were re-asks (None: not counted)."""

    requests: int
    reasks: int | None


def rescore(args: argparse.Namespace, gold: list[dict[str, Any]], workdir: Path) -> None:
    """The figures of a run kept in `workdir`, over the abstracts it has a line for.

    Re-asks are not in the files: requests are the lines' `attempts`. Time runs from the
    input file's writing (just before the run) to the last line's `created_at`."""
    records = read_lines(workdir / "out.jsonl")
    errors = read_lines(workdir / "out.errors.jsonl")
    ended = {line["id"] for line in records + errors}
    done = [paper for paper in gold if paper["id"] in ended]
    started = (workdir / "papers.jsonl").stat().st_mtime
    last = max((datetime.fromisoformat(line["created_at"].replace("Z", "+00:00")).timestamp()
                for line in records + errors), default=started)  # fmt: skip
    print(f"rescored from {workdir}: {len(done)} of {len(gold)} abstracts have a line")
    requests = sum(int(line["attempts"]) for line in records + errors)
    report(args, done, records, errors, Sent(requests, None), last - started)


def report(
    args: argparse.Namespace,
    gold: list[dict[str, Any]],
    records: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    sent: Sent,
    wall: float,
) -> None:
    """Print the figures of one run."""
    n = len(gold)
    print(f"model: {args.model_file.name}, {os.cpu_count()} cores, strategy abstractive, "
          f"{n} gold abstracts ({args.gold.name}, split {args.split})")  # fmt: skip
    print(f"records: {len(records)} of {n} ({len(records) / n:.0%}; goal >= 80%)")
    print(f"error lines: {len(errors)}")
    for why, count in Counter(reason(e) for e in errors).most_common():
        print(f"  {count:3}  {why}")
    for error in errors:
        print(f"    {error['id']}: {str(error['message'])[:220]}")
    reasks = "not counted (rescored from files)" if sent.reasks is None else sent.reasks
    print(f"requests: {sent.requests}; re-asks: {reasks}")
    repaired = [r for r in records if r.get("repaired")]
    fields = sum(len(r["repaired"]) for r in repaired)
    saved = sum(r["attempts"] == 1 for r in repaired)
    print(f"repairs: {fields} quotes set from the abstract, in {len(repaired)} records "
          f"({saved} of them made without a re-ask)")  # fmt: skip
    scores = evaluate(gold, records, embeddings=False)
    invented = scores.numbers - scores.numbers_found
    table = scores.table()
    print(f"invented numbers: {invented} (goal 0), of {scores.numbers} numbers stated; "
          f"records with a grounding problem: {scores.matched - scores.faithful}")  # fmt: skip
    for name, goal in (("gain_precision", " (goal >= 0.8)"), ("gain_recall", ""),
                       ("no_claim_accuracy", "")):  # fmt: skip
        value = table.get(name)
        print(f"{name.replace('_', ' ')}: {'n/a' if value is None else f'{value:.2f}'}{goal}")
    print(f"seconds per abstract: {wall / n:.1f} ({wall:.0f} s in all, server start included)")


if __name__ == "__main__":
    main()
