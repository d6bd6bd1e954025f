"""Opening an output that already holds many records: memory and time, 10x apart.

    .venv/bin/python bench/resume.py

A nightly run starts by reading what is done. This builds outputs of 10,000 and
100,000 records (a realistic record, about 2.6 kB a line, with its id changed),
then opens and closes each with `summarize._output.Output` in a fresh process, and
prints the peak RSS over the process's RSS before opening, and the time. Flat
memory means the 100,000 run needs about what the 10,000 one does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `--tree DIR` opens the outputs with the summarize of another checkout (e.g. a
# `git worktree` of an older commit).
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv else ROOT

RECORD = {
    "id": "",
    "title": "PowerNorm: Rethinking Batch Normalization in Transformers",
    "abstract": "The standard normalization method for neural network models used in NLP is "
    "layer normalization. " * 24,
    "problem": "Batch normalization performs poorly in NLP compared with layer normalization.",
    "method": "We propose Power Normalization, which relaxes zero-mean normalization.",
    "result": "PN outperforms LN by 0.4/0.6 BLEU on IWSLT14/WMT14 and 5.6/3.0 PPL.",
    "claimed_gain": {
        "gains": [{"quote": "In particular, PN outperforms LN by 0.4/0.6 BLEU.",
                   "metric": "BLEU", "value": "0.4/0.6 BLEU"}],
        "qualitative": None,
    },
    "model": "gpt-4o-mini",
    "prompt_version": "3",
    "prompt_hash": "30b30dc1a9b9",
    "schema_version": "3",
    "request_hash": "a857978a82f9c600",
    "prompt_tokens": 1523,
    "completion_tokens": 135,
    "cached_tokens": 0,
    "attempts": 1,
    "latency_s": 1.2,
    "created_at": "2026-12-03T05:05:04Z",
    "sources": ["../shared/data/papers/000_395348c374228ab2.txt:15"],
    "strategy": "abstractive",
    "batch_id": None,
}

PROBE = """
import resource, sys, time
from pathlib import Path
from summarize._output import Output
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
with Output(Path(sys.argv[1])) as output:
    count = len(output.done)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(count, (peak - before) / 1024, elapsed)
"""


def build(path: Path, count: int) -> int:
    with path.open("w", encoding="utf-8") as fh:
        for number in range(count):
            fh.write(json.dumps({**RECORD, "id": f"{number:016x}"}) + "\n")
    return path.stat().st_size


def probe(path: Path) -> tuple[int, float, float]:
    child = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=TREE, check=True,
                           capture_output=True, text=True)  # fmt: skip
    count, grown, elapsed = child.stdout.split()
    return int(count), float(grown), float(elapsed)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for count in (10_000, 100_000):
            path = Path(tmp) / f"out-{count}.jsonl"
            size = build(path, count)
            done, grown, elapsed = probe(path)
            print(f"{done:7d} records ({size / 1e6:.0f} MB file): open+close {elapsed:.1f}s, "
                  f"memory grew {grown:.0f} MB = {grown * 1024 * 1024 / done:.0f} bytes a record "
                  f"(a line is {size / done:.0f} bytes)")  # fmt: skip


if __name__ == "__main__":
    main()
