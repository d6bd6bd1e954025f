"""The embedded model: what the job adds over raw llama-cpp-python, and its quality.

    .venv/bin/python bench/embedded.py --n 10

In one run, on the first N abstracts of the gold set (tests/data/gold.jsonl):
1. raw: the same model, prompt and sampling through `llama_cpp.Llama` in-process,
   no server, no schema, no validation: generated tokens per second of wall time;
2. job: `summarize.run` with the embedded model (server start included), the same
   abstracts: abstracts per minute, generated tokens per second, time to first
   record, and the ratio job / raw;
3. quality of what the job wrote, against the gold summaries (`summarize.evaluate`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from llama_cpp import Llama

from summarize import RunSettings, run
from summarize.evaluate import evaluate
from summarize.local import EMBEDDED, EmbeddedServer, embedded_model
from summarize.prompt import DEFAULT_PROMPT, load_prompt
from summarize.runner import Outcome

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "data" / "gold.jsonl"


def read_gold(path: Path, n: int) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh][:n]


def raw_generation(gold: list[dict[str, Any]], runs: int) -> tuple[int, float]:
    """Completion tokens and seconds for `runs` abstracts, llama-cpp-python alone."""
    model = embedded_model()
    sampling = EmbeddedServer(model).endpoint()
    llm = Llama(
        model_path=str(model.path),
        n_ctx=4096,
        n_threads=os.cpu_count() or 1,
        chat_format=model.chat_format,
        verbose=False,
    )
    prompt = load_prompt(DEFAULT_PROMPT)
    tokens, seconds = 0, 0.0
    for paper in gold[:runs]:
        start = time.perf_counter()
        answer: Any = llm.create_chat_completion(
            messages=prompt.messages(title=paper["title"], abstract=paper["abstract"]),  # type: ignore[arg-type]
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            repeat_penalty=float(sampling.extra_body["repeat_penalty"]),
        )
        seconds += time.perf_counter() - start
        tokens += answer["usage"]["completion_tokens"]
    llm.close()
    return tokens, seconds


def job(gold: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """Run the batch job on `gold` with the embedded model; timings and output paths."""
    papers = workdir / "papers.jsonl"
    papers.write_text(
        "".join(json.dumps({"title": g["title"], "abstract": g["abstract"]}) + "\n" for g in gold),
        encoding="utf-8",
    )
    out = workdir / "out.jsonl"
    first: list[float] = []
    start = time.perf_counter()

    def on_outcome(outcome: Outcome) -> None:
        if outcome.record is not None and not first:
            first.append(time.perf_counter() - start)

    result = run(RunSettings(inputs=(str(papers),), output=out, local=True), on_outcome=on_outcome)
    wall = time.perf_counter() - start
    return {"result": result, "wall": wall, "first": first[0] if first else None, "out": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="abstracts for the job")
    parser.add_argument("--raw", type=int, default=3, help="abstracts for the raw baseline")
    parser.add_argument("--gold", type=Path, default=GOLD)
    args = parser.parse_args()
    gold = read_gold(args.gold, args.n)

    raw_tokens, raw_seconds = raw_generation(gold, args.raw)
    raw_rate = raw_tokens / raw_seconds
    with tempfile.TemporaryDirectory() as tmp:
        measured = job(gold, Path(tmp))
        records = [json.loads(line) for line in measured["out"].read_text().splitlines()]
    result, wall = measured["result"], measured["wall"]
    job_rate = result.completion_tokens / wall
    scores = evaluate(gold, records).table()

    print(f"model: {EMBEDDED.file_name} ({EMBEDDED.licence}), {os.cpu_count()} cores")
    print(
        f"raw llama-cpp-python: {raw_tokens} tokens in {raw_seconds:.1f}s "
        f"= {raw_rate:.1f} tok/s ({args.raw} abstracts, {raw_seconds / args.raw:.1f}s each)"
    )
    print(
        f"job: {len(gold)} abstracts in {wall:.1f}s = {60 * len(gold) / wall:.2f} abstracts/min, "
        f"{job_rate:.1f} tok/s generated ({result.requests} requests)"
    )
    first = measured["first"]
    print(
        f"time to first record (server start included): "
        f"{'none' if first is None else f'{first:.1f}s'}"
    )
    print(f"ratio job/raw generated tok/s: {job_rate / raw_rate:.2f}")
    print(
        f"valid records: {result.done}/{len(gold)} = {result.done / len(gold):.2f}; "
        f"failures: {result.failures or 'none'}"
    )
    for name, value in scores.items():
        print(f"  {name}: {'n/a' if value is None else f'{value:.2f}'}")


if __name__ == "__main__":
    main()
