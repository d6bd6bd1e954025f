"""The embedded model: the job's speed against one naive call, and what its records are worth.

    .venv/bin/python bench/embedded.py            # the 39 gold abstracts, ~6 min on 2 cores
    .venv/bin/python bench/embedded.py --n 10 --strategy abstractive

In one run, on the first N abstracts of the gold set (tests/data/gold.jsonl):
1. naive: the same GGUF through llama-cpp-python in-process, one unconstrained
   chat call per abstract ("summarise this abstract in three sentences", at most 160
   tokens, temperature 0): seconds per abstract, on the first --naive abstracts;
2. job: `summarize.run` on the embedded model (server start and weight check
   included): seconds per abstract, time to the first record, and the ratio to 1
   (goal: at most 1.5);
3. prompt tokens beyond the abstract, per request (the abstract counted alone with
   the model's own tokenizer; goal: at most 250), as the server counted them for the
   job, and for every abstract of the shared pages (rendered with the same chat
   template, no request sent);
4. quality against the gold summaries (`summarize.evaluate`): records, invented
   numbers, gain precision and recall, no-claim accuracy, ROUGE-L; and beside it,
   the same scores for the candidate figures alone with no model choosing (what
   the model adds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from llama_cpp import Llama
from llama_cpp.llama_chat_format import format_chatml

from summarize import RunSettings, grounding, read_items, run
from summarize.evaluate import evaluate
from summarize.figures import figures
from summarize.live.local import EMBEDDED, embedded_model
from summarize.live.runner import Outcome
from summarize.prompt import EXTRACT_PROMPT, load_prompt
from summarize.schema import QUOTE_MAX
from summarize.strategy import question

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "data" / "gold.jsonl"
SHARED = ROOT.parent / "shared" / "data" / "papers"
NAIVE_PROMPT = "Summarise this abstract in three sentences.\n\n{abstract}"


def read_gold(path: Path, n: int) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh][:n]


def naive_calls(gold: list[dict[str, Any]]) -> list[float]:
    """Seconds of one plain chat call per abstract, llama-cpp-python alone."""
    model = embedded_model()
    llm = Llama(model_path=str(model.path), n_ctx=4096, n_threads=os.cpu_count() or 1,
                chat_format=model.chat_format, verbose=False)  # fmt: skip
    seconds = []
    for paper in gold:
        start = time.perf_counter()
        llm.create_chat_completion(
            messages=[{"role": "user", "content": NAIVE_PROMPT.format(abstract=paper["abstract"])}],
            max_tokens=160,
            temperature=0.0,
        )
        seconds.append(time.perf_counter() - start)
    llm.close()
    return seconds


def tokenizer() -> Llama:
    """The embedded model's tokenizer alone (no weights loaded)."""
    return Llama(model_path=str(embedded_model().path), vocab_only=True, verbose=False)


def count(vocab: Llama, text: str) -> int:
    return len(vocab.tokenize(text.encode(), add_bos=False, special=True))


def shared_overhead(vocab: Llama, pages: list[str]) -> list[int]:
    """Prompt tokens beyond the abstract of every shared abstract's extractive request."""
    prompt = load_prompt(EXTRACT_PROMPT)
    items, _ = read_items(pages)
    return [count(vocab, format_chatml(messages=question(prompt, item).messages).prompt)
            - count(vocab, item.abstract) for item in items]  # fmt: skip


def job(gold: list[dict[str, Any]], workdir: Path, strategy: str) -> dict[str, Any]:
    """Run the batch job on `gold` with the embedded model; timings and the records."""
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

    settings = RunSettings(inputs=(str(papers),), output=out, local=True, strategy=strategy)
    result = run(settings, on_outcome=on_outcome)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return {"result": result, "wall": wall, "first": first[0] if first else None,
            "records": records}  # fmt: skip


def candidates_only(gold: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records whose gains are the first four candidate figures, no model choosing."""
    records = []
    for g in gold:
        sentences = [" ".join(s.split()) for s in grounding.sentences(g["abstract"])]
        found = figures(sentences, max_quote=QUOTE_MAX)[:4]
        gains = [{"quote": sentences[f.sentence - 1], "value": f.text, "metric": f.text}
                 for f in found]  # fmt: skip
        records.append({"id": g["id"], "abstract": g["abstract"], "problem": sentences[0],
                        "method": sentences[1 % len(sentences)], "result": sentences[-1],
                        "claimed_gain": {"gains": gains, "qualitative": None}})  # fmt: skip
    return records


def quality(gold: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    scores = evaluate(gold, records, embeddings=False)
    table = scores.table()
    table["invented"] = scores.matched - scores.faithful
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=39, help="gold abstracts for the job")
    parser.add_argument("--naive", type=int, default=5, help="abstracts for the naive calls")
    parser.add_argument("--strategy", default="extractive",
                        choices=["extractive", "abstractive"])  # fmt: skip
    parser.add_argument("--gold", type=Path, default=GOLD)
    args = parser.parse_args()
    gold = read_gold(args.gold, args.n)

    naive = statistics.mean(naive_calls(gold[: args.naive]))
    with tempfile.TemporaryDirectory() as tmp:
        measured = job(gold, Path(tmp), args.strategy)
    result, records = measured["result"], measured["records"]
    per_abstract = measured["wall"] / len(gold)
    vocab = tokenizer()
    counts = {g["id"]: count(vocab, g["abstract"]) for g in gold}
    overhead = [r["prompt_tokens"] / r["attempts"] - counts[r["id"]] for r in records]
    pages = sorted(str(p) for p in SHARED.glob("*.txt"))
    shared = shared_overhead(vocab, pages) if pages else []
    vocab.close()

    print(f"model: {EMBEDDED.file_name} ({EMBEDDED.licence}), {os.cpu_count()} cores, "
          f"strategy {args.strategy}")  # fmt: skip
    print(f"naive call: {naive:.1f} s/abstract (mean of {args.naive}; 160 tokens at most)")
    print(f"job: {len(gold)} abstracts in {measured['wall']:.1f}s = {per_abstract:.1f} s/abstract, "
          f"{60 / per_abstract:.1f}/min ({result.requests} requests)")  # fmt: skip
    print(f"ratio job/naive per abstract: {per_abstract / naive:.2f} (goal <= 1.5)")
    first = measured["first"]
    print(f"time to first record (server start included): "
          f"{'none' if first is None else f'{first:.1f}s'} (goal <= 60s)")  # fmt: skip
    if overhead:
        mean = statistics.mean(overhead)
        print(f"prompt tokens beyond the abstract, per request: mean {mean:.0f}, "
              f"max {max(overhead):.0f} (goal <= 250)")  # fmt: skip
    if shared:
        print(f"  and over the {len(shared)} shared abstracts (no request): mean "
              f"{statistics.mean(shared):.0f}, max {max(shared)}, "
              f"{sum(n > 250 for n in shared)} over 250")  # fmt: skip
    print(f"failures: {result.failures or 'none'}")
    model_scores = quality(gold, records)
    alone = quality(gold, candidates_only(gold))
    print(f"{'':22} {'job':>6} {'figures alone':>14}")
    print(f"{'records':22} {len(records):>6} {len(gold):>14}")
    for name in ("invented", "gain_precision", "gain_recall", "no_claim_accuracy",
                 "problem_rouge_l", "method_rouge_l", "result_rouge_l"):  # fmt: skip
        values = [model_scores.get(name), alone.get(name)]
        cells = ["n/a" if v is None else (f"{v}" if isinstance(v, int) else f"{v:.2f}")
                 for v in values]  # fmt: skip
        print(f"{name:22} {cells[0]:>6} {cells[1]:>14}")


if __name__ == "__main__":
    main()
