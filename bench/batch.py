"""Nightly mode (Batch API) beside a live run, on the shared abstracts, over real HTTP.

    .venv/bin/python bench/batch.py

Both talk to the fake OpenAI server (`summarize.testing.server`), which
answers batch lines with the same deterministic responder as chat requests, so
the records can be compared field by field. Printed:

1. the records: how many, and how many are identical to the live run's in every
   field but the volatile ones (`summarize diff` ignores the same);
2. tokens and cost at gpt-4o-mini's price, live against batch (the fake server
   counts tokens as characters / 4, so the two request formats differ a little);
3. faults: the first batch expires with part of it answered, and a share of the
   answers are invalid, failed by the provider, or refused; with `--repair batch`
   and with `--repair live`: batches used, live requests, records, error lines,
   abstracts lost and lines doubled.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonlines

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from summarize import EndpointSettings, RunSettings, run  # noqa: E402
from summarize._review import VOLATILE, read_json_lines  # noqa: E402
from summarize.batch import BatchOptions, collect, submit  # noqa: E402
from summarize.testing.server import FakeOpenAI  # noqa: E402

PAPERS = sorted((ROOT.parent / "shared" / "data" / "papers").glob("*.txt"))
MODEL = "gpt-4o-mini"
FAULTS = {"invented_number": 0.04, "bad_schema": 0.02, "http_500": 0.03, "refusal": 0.003}


def settings(server: FakeOpenAI, out: Path) -> RunSettings:
    endpoint = EndpointSettings(base_url=server.base_url, api_key="sk-bench", model=MODEL)
    return RunSettings(inputs=tuple(map(str, PAPERS)), output=out, endpoint=endpoint)


def lasting(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in VOLATILE}


def nightly(server: FakeOpenAI, out: Path, repair: str) -> tuple[Any, Any, float, float]:
    started = time.perf_counter()
    sent = submit(settings(server, out))
    submitted = time.perf_counter() - started
    started = time.perf_counter()
    options = BatchOptions(repair=repair, wait=True, poll_s=0.05)  # type: ignore[arg-type]
    got = collect(settings(server, out), options)
    return sent, got, submitted, time.perf_counter() - started


def same_records(work: Path) -> None:
    with FakeOpenAI(latency=0.2) as server:
        started = time.perf_counter()
        live = run(settings(server, work / "live.jsonl"))
        live_s = time.perf_counter() - started
    with FakeOpenAI(batch_polls=2) as server:
        sent, got, submit_s, collect_s = nightly(server, work / "nightly.jsonl", "batch")
    day = {r["id"]: r for r in read_json_lines(work / "live.jsonl")}
    night = {r["id"]: r for r in read_json_lines(work / "nightly.jsonl")}
    same = sum(1 for i, r in night.items() if i in day and lasting(r) == lasting(day[i]))
    print("1. records")
    print(f"   live: {live.done} records in {live_s:.1f}s (latency 0.2 s, concurrency auto)")
    print(f"   batch: {sent.submitted} submitted in {submit_s:.1f}s; collect --wait "
          f"{got.done} records in {collect_s:.1f}s")  # fmt: skip
    print(f"   identical to the live record in every lasting field: {same} of {len(night)}")
    print("2. tokens and cost at gpt-4o-mini prices")
    print(f"   live:  {live.prompt_tokens} in, {live.completion_tokens} out, ${live.cost_usd:.4f}")
    print(f"   batch: {got.prompt_tokens} in, {got.completion_tokens} out, ${got.cost_usd:.4f}")
    print(f"   cost batch/live: {got.cost_usd / live.cost_usd:.2f}; "
          f"prompt tokens batch/live: {got.prompt_tokens / live.prompt_tokens:.2f}")  # fmt: skip


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with jsonlines.open(path) as reader:
        return list(reader)


def faults(work: Path, repair: str) -> None:
    out = work / f"faults-{repair}.jsonl"
    with FakeOpenAI() as server:
        server.set_fault_mix(FAULTS, seed=7)
        server.enqueue_batch_outcome("expired", answered=500)
        _, got, _, _ = nightly(server, out, repair)
        batches, live_requests = len(server.batches), server.stats.requests
        statuses = [b["status"] for b in server.batches]
    records = lines(out)
    errors = lines(out.with_name(f"{out.stem}.errors.jsonl"))
    ids = {r["id"] for r in records} | {e["id"] for e in errors}
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(got.failures.items())) or "none"
    doubled = len(records) + len(errors) - len(ids)
    print(f"   --repair {repair}: {batches} batches ({', '.join(statuses)}), "
          f"{live_requests} live requests, {len(records)} records, {len(errors)} error lines "
          f"({kinds}); lost {666 - len(ids)}, doubled {doubled}")  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        same_records(work)
        print(f"3. faults: first batch expires after 500 answers; answers drawn from {FAULTS}")
        for repair in ("batch", "live"):
            faults(work, repair)


if __name__ == "__main__":
    main()
