"""The embedded model: the job's speed against one naive call and against the runtime's
floor, and its picks against rules that need no model.

    .venv/bin/python bench/embedded.py                # the 39 gold abstracts, ~8 min on 2 cores
    .venv/bin/python bench/embedded.py --offered 3    # the model chooses among the rule's top 3
    .venv/bin/python bench/embedded.py --n 10 --strategy abstractive
    .venv/bin/python bench/embedded.py --no-model     # the rules alone, in seconds
    .venv/bin/python bench/embedded.py --score FILE   # rescore records kept with --keep

The gold set (tests/data/gold.jsonl) is split in two by id: `dev` (last hex digit of
the id even, 18 abstracts), on which the rules of `summarize.picks` were tuned, and
`held-out` (odd, 21), which they never saw. The job runs on the first N abstracts of
`--split` (all 39 by default), and the sentence-pick table is printed for each split.

In one run:
1. naive: the same GGUF through llama-cpp-python in-process, one unconstrained chat
   call per abstract ("summarise this abstract in three sentences", at most 160
   tokens, temperature 0), on the first --naive abstracts, before the job and again
   after it (the machine's load moves; both passes are printed, their mean is used);
2. floor: in the same process, right after each naive call, the job's own prompt
   evaluated (reusing the prefix the previous prompt shares, as llama.cpp's server
   does) and as many tokens decoded as the job's answer used, with no grammar: the
   least this runtime can take for the job's request;
3. job: `summarize.run` on the embedded model (server start and weight check
   included): seconds per abstract against the naive call (goal: at most 1.0) and
   against the floor;
4. prompt tokens beyond the abstract, per request, as the server counted them, and
   for every abstract of the shared pages (rendered, no request sent);
5. sentence picks: ROUGE-L F1 (`summarize._evaluate.rouge_l`) of the job's problem,
   method and result against the gold fields, beside the rule's first choice alone
   (`summarize.picks`, no model), the lead baseline (sentences 1, 2, last), the
   position baseline (first sentence; first "we/our/this paper" sentence; last
   sentence) and the oracle (the best single sentence);
6. the rest, scored by `summarize.evaluate` (no code shared with the validators):
   records, invented numbers, gain precision and recall, no-claim accuracy; the claim's
   kind (figures, words only, none) against the gold's; the ROUGE-L of each gain's
   metric against the gold metric of the gain with the same figure; beside it the
   candidate figures alone, no model choosing; on each split.

`--no-model` prints steps 5 and 6 for what the rules alone give (the rule's sentences,
the first four candidate figures as the gains), with no model loaded: the cheap loop
for tuning `summarize._picks` and `summarize._figures` on dev. `--score FILE` prints
them for the records of an earlier run (`--keep FILE`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from llama_cpp import Llama
from llama_cpp.llama_chat_format import format_chatml

from summarize import Outcome, RunSettings, read_items, run
from summarize import _grounding as grounding
from summarize import _picks as picks
from summarize._core import strategy
from summarize._core.strategy import question
from summarize._embedded.weights import EMBEDDED, embedded_model
from summarize._evaluate import TEXT_FIELDS, evaluate, figures_in, rouge_l
from summarize._figures import figures, metric
from summarize._items import Item
from summarize._prompt import EXTRACT_PROMPT, load_prompt
from summarize._schema import QUOTE_MAX

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "data" / "gold.jsonl"
SHARED = ROOT.parent / "shared" / "data" / "papers"
NAIVE_PROMPT = "Summarise this abstract in three sentences.\n\n{abstract}"
SPLITS = ("dev", "held-out", "all")
# The position baseline's method: the first sentence in the authors' voice.
_AUTHORS = re.compile(r"\b(?:we|our|this paper)\b", re.IGNORECASE)


def read_gold(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def in_split(paper: dict[str, Any], split: str) -> bool:
    """`dev`: the id's last hex digit is even; `held-out`: odd; `all`: both."""
    even = int(paper["id"][-1], 16) % 2 == 0
    return split == "all" or even == (split == "dev")


def sentences_of(abstract: str) -> list[str]:
    return [" ".join(s.split()) for s in grounding.sentences(abstract)]


def baselines(paper: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The fields each rule without a model picks, and the oracle's (the best sentence)."""
    s = sentences_of(paper["abstract"])
    own = next((x for x in s if _AUTHORS.search(x)), s[1 % len(s)])
    rule = {name: s[ranked[0] - 1] for name, ranked in picks.ranked(s).items()}
    oracle = {name: max(s, key=lambda x, n=name: rouge_l(x, paper[n])) for name in TEXT_FIELDS}
    return {
        "lead": {"problem": s[0], "method": s[1 % len(s)], "result": s[-1]},
        "position": {"problem": s[0], "method": own, "result": s[-1]},
        "rule": rule,
        "oracle": oracle,
    }


def pick_table(gold: list[dict[str, Any]], records: list[dict[str, Any]], split: str) -> None:
    """ROUGE-L F1 per field of the job's picks beside the baselines, on one split."""
    by_id = {r["id"]: r for r in records}
    papers = [g for g in gold if in_split(g, split) and g["id"] in by_id]
    if not papers:
        return
    columns = ("job", "rule", "lead", "position", "oracle")
    scores = {c: {f: [] for f in TEXT_FIELDS} for c in columns}  # type: ignore[var-annotated]
    for paper in papers:
        picked = {"job": by_id[paper["id"]], **baselines(paper)}
        for column in columns:
            for name in TEXT_FIELDS:
                scores[column][name].append(rouge_l(picked[column][name], paper[name]))
    print(f"\nROUGE-L F1 of the picks, {split} ({len(papers)} abstracts)")
    print(f"{'field':8}" + "".join(f"{c:>10}" for c in columns))
    means = {c: {f: statistics.mean(v) for f, v in scores[c].items()} for c in columns}
    for name in TEXT_FIELDS:
        print(f"{name:8}" + "".join(f"{means[c][name]:>10.3f}" for c in columns))
    print(f"{'mean':8}" + "".join(f"{statistics.mean(means[c].values()):>10.3f}" for c in columns))
    job, oracle = statistics.mean(means["job"].values()), statistics.mean(means["oracle"].values())
    last = means["position"]["result"]
    below = [f for f in TEXT_FIELDS if means["job"][f] < means["position"][f]] or "none"
    print(f"job/oracle {job / oracle:.2f} (goal >= 0.75); job result - last sentence "
          f"{means['job']['result'] - last:+.3f} (goal >= +0.05); fields below position: "
          f"{below}")  # fmt: skip


def load_llm() -> Llama:
    model = embedded_model()
    return Llama(model_path=str(model.path), n_ctx=4096, n_threads=os.cpu_count() or 1,
                 chat_format=model.chat_format, verbose=False)  # fmt: skip


def naive_call(llm: Llama, paper: dict[str, Any]) -> float:
    """Seconds of one plain chat call about `paper`."""
    start = time.perf_counter()
    llm.create_chat_completion(
        messages=[{"role": "user", "content": NAIVE_PROMPT.format(abstract=paper["abstract"])}],
        max_tokens=160,
        temperature=0.0,
    )
    return time.perf_counter() - start


def floor_call(llm: Llama, paper: dict[str, Any], answer_tokens: int) -> tuple[float, int]:
    """Seconds to evaluate the job's prompt about `paper` and decode `answer_tokens`, no
    grammar (the prefix shared with the previous prompt is not evaluated again), and the
    prompt's tokens."""
    item = Item(paper["id"], paper["title"], paper["abstract"])
    text = format_chatml(messages=question(load_prompt(EXTRACT_PROMPT), item).messages).prompt
    tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    start = time.perf_counter()
    cached = llm.input_ids[: llm.n_tokens].tolist()
    shared = 0
    while shared < min(len(cached), len(tokens) - 1) and cached[shared] == tokens[shared]:
        shared += 1
    llm.n_tokens = shared
    llm.eval(tokens[shared:])
    for _ in range(answer_tokens):
        llm.eval([llm.sample(temp=0.0)])
    return time.perf_counter() - start, len(tokens)


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


def job(gold: list[dict[str, Any]], workdir: Path, strategy_name: str) -> dict[str, Any]:
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

    settings = RunSettings(inputs=(str(papers),), output=out, local=True, strategy=strategy_name)
    result = run(settings, on_outcome=on_outcome)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return {"result": result, "wall": wall, "first": first[0] if first else None,
            "records": records}  # fmt: skip


def candidates_only(gold: list[dict[str, Any]], *, rule: bool = False) -> list[dict[str, Any]]:
    """Records whose gains are the first four candidate figures, no model choosing (and
    with none, the advantage claimed in words); their sentences are the lead baseline's,
    or with `rule` the rule's."""
    records = []
    for g in gold:
        sentences = sentences_of(g["abstract"])
        start = picks.own_voice_starts(sentences)
        found = figures(sentences, max_quote=QUOTE_MAX, start=start)[:4]
        gains = [{"quote": sentences[f.sentence - 1], "value": f.text,
                  "metric": metric(sentences[f.sentence - 1], f.text)} for f in found]  # fmt: skip
        words = None if gains else picks.claim(sentences, title=g["title"])
        parts = baselines(g)["rule" if rule else "lead"]
        records.append({"id": g["id"], "abstract": g["abstract"], **parts,
                        "claimed_gain": {"gains": gains, "qualitative": words}})  # fmt: skip
    return records


def quality(gold: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    scores = evaluate(gold, records, embeddings=False)
    table = scores.table()
    table["invented"] = scores.matched - scores.faithful
    by_id = {r["id"]: r for r in records}
    matched = [(g, by_id[g["id"]]) for g in gold if g["id"] in by_id]
    table["claim_kind_accuracy"] = (
        statistics.mean(kind(g) == kind(r) for g, r in matched) if matched else None
    )
    metrics = [rouge_l(mine["metric"], theirs["metric"]) for g, r in matched
               for mine in r["claimed_gain"]["gains"] for theirs in g["claimed_gain"]["gains"]
               if figures_in(mine["value"]) & figures_in(theirs["value"])]  # fmt: skip
    table["metric_rouge_l"] = statistics.mean(metrics) if metrics else None
    return table


def kind(record: dict[str, Any]) -> str:
    """What a record claims: figures, words only, or nothing."""
    claimed = record["claimed_gain"]
    return "figures" if claimed["gains"] else "words" if claimed["qualitative"] else "none"


def speeds(gold: list[dict[str, Any]], naive_n: int, tmp: Path, strategy_name: str
           ) -> dict[str, Any]:  # fmt: skip
    """Naive calls, the job, then naive calls and the floor again, in one process."""
    llm = load_llm()
    before = [naive_call(llm, g) for g in gold[:naive_n]]
    llm.close()  # both cores to the job's server
    measured = job(gold, tmp, strategy_name)
    answers = {r["id"]: r["completion_tokens"] // max(r["attempts"], 1)
               for r in measured["records"]}  # fmt: skip
    llm = load_llm()
    after, floor, floor_prompt, job_prompt = [], [], [], []
    prompts = {r["id"]: r["prompt_tokens"] // max(r["attempts"], 1) for r in measured["records"]}
    for g in gold[:naive_n]:
        after.append(naive_call(llm, g))
        if g["id"] in answers and strategy_name == "extractive":
            seconds, tokens = floor_call(llm, g, answers[g["id"]])
            floor.append(seconds)
            floor_prompt.append(tokens)
            job_prompt.append(prompts[g["id"]])
    llm.close()
    return {**measured, "naive_before": before, "naive_after": after, "floor": floor,
            "floor_prompt": floor_prompt, "job_prompt": job_prompt}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=39, help="gold abstracts for the job")
    parser.add_argument("--split", choices=SPLITS, default="all", help="the job's abstracts")
    parser.add_argument("--naive", type=int, default=6, help="abstracts for the naive calls")
    parser.add_argument("--offered", type=int, default=strategy.OFFERED,
                        help="sentences offered per field (1: the rule alone)")  # fmt: skip
    parser.add_argument("--strategy", default="extractive",
                        choices=["extractive", "abstractive"])  # fmt: skip
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--keep", type=Path, help="write the job's records to this file")
    parser.add_argument("--no-model", action="store_true",
                        help="only the rules' picks and figures, no model (seconds)")  # fmt: skip
    parser.add_argument("--score", type=Path, help="score the records of an earlier --keep")
    args = parser.parse_args()
    every = read_gold(args.gold)
    gold = [g for g in every if in_split(g, args.split)][: args.n]
    strategy.OFFERED = args.offered
    if args.no_model or args.score:
        records = candidates_only(gold, rule=True) if args.no_model else read_gold(args.score)
        print("the rules alone, no model" if args.no_model else f"records of {args.score}")
        scores(every, gold, records)
        return

    with tempfile.TemporaryDirectory() as tmp:
        measured = speeds(gold, args.naive, Path(tmp), args.strategy)
    result, records = measured["result"], measured["records"]
    if args.keep:
        args.keep.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    per_abstract = measured["wall"] / len(gold)
    naive = statistics.mean(measured["naive_before"] + measured["naive_after"])
    vocab = tokenizer()
    counts = {g["id"]: count(vocab, g["abstract"]) for g in gold}
    overhead = [r["prompt_tokens"] / r["attempts"] - counts[r["id"]] for r in records]
    pages = sorted(str(p) for p in SHARED.glob("*.txt"))
    shared = shared_overhead(vocab, pages) if pages else []
    vocab.close()

    print(f"model: {EMBEDDED.file_name} ({EMBEDDED.licence}), {os.cpu_count()} cores, "
          f"strategy {args.strategy}, {args.offered} sentence(s) offered per field, "
          f"split {args.split}")  # fmt: skip
    print(f"naive call: {naive:.2f} s/abstract (mean of {args.naive} before the job: "
          f"{statistics.mean(measured['naive_before']):.2f}, after: "
          f"{statistics.mean(measured['naive_after']):.2f}; 160 tokens at most)")  # fmt: skip
    if measured["floor"]:
        floor = statistics.mean(measured["floor"])
        print(f"floor (the job's prompt + its answer's tokens, no grammar, in-process): "
              f"{floor:.2f} s/abstract on the same {len(measured['floor'])} (prompt tokens: "
              f"{statistics.mean(measured['floor_prompt']):.0f}, as the server counted them "
              f"for the job: {statistics.mean(measured['job_prompt']):.0f})")  # fmt: skip
    print(f"job: {len(gold)} abstracts in {measured['wall']:.1f}s = {per_abstract:.2f} "
          f"s/abstract, {60 / per_abstract:.1f}/min ({result.requests} requests)")  # fmt: skip
    ratio = f"ratio job/naive per abstract: {per_abstract / naive:.2f} (goal <= 1.0)"
    if measured["floor"]:
        ratio += f"; job/floor: {per_abstract / statistics.mean(measured['floor']):.2f}"
    print(ratio)
    first = measured["first"]
    print(f"time to first record (server start included): "
          f"{'none' if first is None else f'{first:.1f}s'}")  # fmt: skip
    if overhead:
        mean = statistics.mean(overhead)
        answer = statistics.mean(r["completion_tokens"] / r["attempts"] for r in records)
        print(f"prompt tokens beyond the abstract, per request: mean {mean:.0f}, "
              f"max {max(overhead):.0f}; answer tokens per request: mean {answer:.0f}")  # fmt: skip
    if shared:
        print(f"  and over the {len(shared)} shared abstracts (no request): mean "
              f"{statistics.mean(shared):.0f}, max {max(shared)}, "
              f"{sum(n > 250 for n in shared)} over 250")  # fmt: skip
    print(f"failures: {result.failures or 'none'}")
    scores(every, gold, records)


def scores(every: list[dict[str, Any]], gold: list[dict[str, Any]],
           records: list[dict[str, Any]]) -> None:  # fmt: skip
    """The pick tables and the gains' table, on each split, of `records` about `gold`."""
    for split in SPLITS:
        pick_table(every, records, split)
    for split in SPLITS:
        part = [g for g in gold if in_split(g, split)]
        if not part:
            continue
        ids = {g["id"] for g in part}
        mine = [r for r in records if r["id"] in ids]
        model_scores = quality(part, mine)
        alone = quality(part, candidates_only(part))
        print(f"\n{split + f' ({len(part)})':22} {'job':>6} {'figures alone':>14}")
        print(f"{'records':22} {len(mine):>6} {len(part):>14}")
        for name in ("invented", "gain_precision", "gain_recall", "no_claim_accuracy",
                     "claim_kind_accuracy", "metric_rouge_l"):  # fmt: skip
            values = [model_scores.get(name), alone.get(name)]
            cells = ["n/a" if v is None else (f"{v}" if isinstance(v, int) else f"{v:.2f}")
                     for v in values]  # fmt: skip
            print(f"{name:22} {cells[0]:>6} {cells[1]:>14}")


if __name__ == "__main__":
    main()
