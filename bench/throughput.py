"""Throughput at the rate limit, client CPU and memory, and peers, side by side in one run.

    .venv/bin/python bench/throughput.py            # everything, about 8 minutes
    .venv/bin/python bench/throughput.py --quick    # smaller sizes, about 1 minute

Every measurement talks over real HTTP to the fake OpenAI server of the tests
(`python -m summarize.testing.server`), started in its own process so that its CPU is
not counted as the client's. Inputs are the shared abstracts (666 unique),
extended with numbered variants where a measurement needs more. Printed:

1. latency-bound: achieved requests/s over the ideal concurrency / latency
   (400 abstracts, 0.4 s, 32 in flight), the best a fixed pool can do when the
   last wave is part full, and what a bare aiohttp client that only posts the
   same requests reaches on the same server (the machine's own ceiling);
2. rate-bound: a server that answers 429 past R requests/s, with and without
   `x-ratelimit-*` headers, no --rpm and no --concurrency given: achieved rate
   over R, and 429s per 1,000 requests (the ones that find the limit included),
   over three runs of 1,000 (each run's figures printed too);
3. client CPU per record, user+sys (marginal: the difference of two run sizes,
   so that imports and start-up are not counted), and the rate of the larger;
4. peak memory (RSS) of a whole run on 10,000 abstracts over one on 1,000, and
   of one on 100,000; and the RSS of one process calling `summarize_rows` on 40
   batches of 200 rows, after the 5th batch and after the last;
5. peers on the same server and abstracts at the same concurrency: curator
   (`bespokelabs-curator`, if `bench/setup_curator.sh` installed it) at 0.2 s latency
   and at zero latency (CPU-bound), and a plain sequential `instructor` loop;
6. prompt tokens beyond the abstract, per request (`bench/prompt_tokens.py`).

Each line names its goal (issue #18). The fake server's latency runs from a
request's arrival and includes building its answer, as a provider's does. On a
machine with more than one CPU the server gets a CPU of its own and the client
the others: a provider does not share the client's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from summarize import (  # noqa: E402
    EndpointSettings,
    RunResult,
    RunSettings,
    read_items,
    run,
    summarize_rows,
)
from summarize._live.transport import HTTPTransport, Reply, Request  # noqa: E402
from summarize._prompt import load_prompt  # noqa: E402

PAPERS = ROOT.parent / "shared" / "data" / "papers"
CURATOR_PYTHON = ROOT / "bench" / ".venv-curator" / "bin" / "python"
KEY = "sk-bench"


def _split_cpus() -> tuple[set[int], set[int]] | None:
    """(the client's CPUs, the server's): a provider does not share the client's cores,
    so the fake server gets one of its own. None on one core."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (set(cpus[:-1]), {cpus[-1]}) if len(cpus) > 1 else None


SPLIT = _split_cpus()


@contextmanager
def fake_server(*args: str) -> Iterator[str]:
    """`python -m summarize.testing.server` in its own process; yields its base URL."""
    pin = f"import os; os.sched_setaffinity(0, {SPLIT[1]}); " if SPLIT else ""
    serve = f"{pin}import runpy; runpy.run_module('summarize.testing.server', run_name='__main__')"
    process = subprocess.Popen(
        [sys.executable, "-c", serve, "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "serving http://127.0.0.1:PORT/v1 (Ctrl-C stops)"
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait()


def abstracts(count: int, into: Path) -> Path:
    """A JSONL file of `count` distinct abstracts: the shared ones, then variants."""
    items, _ = read_items([str(p) for p in sorted(PAPERS.glob("*.txt"))])
    with into.open("w", encoding="utf-8") as fh:
        for n in range(count):
            item = items[n % len(items)]
            round_ = n // len(items)
            suffix = f" This is variant {round_}." if round_ else ""
            title = f"{item.title} ({round_})" if round_ else item.title
            fh.write(json.dumps({"title": title, "abstract": item.abstract + suffix}) + "\n")
    return into


def job(url: str, papers: Path, out: Path, **settings: object) -> RunResult:
    for stale in out.parent.glob(f"{out.stem}*"):
        stale.unlink()
    return run(
        RunSettings(
            inputs=(str(papers),),
            output=out,
            endpoint=EndpointSettings(base_url=url, api_key=KEY, model="fake-model"),
            **settings,  # type: ignore[arg-type]
        )
    )


def latency_bound(work: Path, n: int, latency: float, concurrency: int) -> None:
    papers = abstracts(n, work / "latency.jsonl")
    with fake_server("--latency", str(latency)) as url, timed_requests() as (timings, bodies):
        result = job(url, papers, work / "latency-out.jsonl", concurrency=concurrency)
    with fake_server("--latency", str(latency)) as url:
        bare = bare_client(url, bodies, concurrency)
    ideal = concurrency / latency
    # With a fixed pool, the last wave may be part full: no schedule beats this.
    waves = -(-n // concurrency)
    best = n / (waves * latency) / ideal
    print(f"latency-bound   {n} abstracts, latency {latency} s, {concurrency} in flight: "
          f"{result.requests_per_second:.1f} req/s of ideal {ideal:.1f} "
          f"-> {result.requests_per_second / ideal:.3f} (goal >= 0.95; "
          f"{best:.3f} at best with {waves} waves)")  # fmt: skip
    print(f"                a bare aiohttp client posting the same requests to the same "
          f"server: {bare / ideal:.3f}")  # fmt: skip
    service = [end - start for task in timings.values() for start, end in task]
    gaps = [b[0] - a[1] for task in timings.values() for a, b in itertools.pairwise(task)]
    print(f"                per request: {statistics.mean(service) * 1000:.0f} ms from send to "
          f"answer read; {statistics.mean(gaps) * 1000:.1f} ms from an answer to the same "
          f"worker's next send")  # fmt: skip


Timings = dict[int, list[tuple[float, float]]]


@contextmanager
def timed_requests() -> Iterator[tuple[Timings, list[bytes]]]:
    """(send, answer read) times of every request, by the task that sent it; the bodies."""
    timings: Timings = defaultdict(list)
    bodies: list[bytes] = []
    send = HTTPTransport.send

    async def timed(self: HTTPTransport, request: Request) -> Reply:
        started = time.perf_counter()
        reply = await send(self, request)
        timings[id(asyncio.current_task())].append((started, time.perf_counter()))
        bodies.append(request.content)
        return reply

    HTTPTransport.send = timed  # type: ignore[method-assign]
    try:
        yield timings, bodies
    finally:
        HTTPTransport.send = send  # type: ignore[method-assign]


def bare_client(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Requests/s of a client that only posts `bodies`, `concurrency` at a time: what
    this server and machine allow any client, before it reads a single answer."""

    async def main() -> float:
        queue = iter(bodies)
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def worker() -> None:
                for body in queue:
                    async with session.post(f"{url}/chat/completions", data=body) as answer:
                        await answer.read()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return len(bodies) / (time.perf_counter() - started)

    return asyncio.run(main())


def rate_bound(
    work: Path, n: int, rate: float, latency: float, *, headers: bool, repeats: int
) -> None:
    """`repeats` runs, each on a fresh server: a run's 429s are a handful, so one run
    is one small sample of them."""
    papers = abstracts(n, work / "rate.jsonl")
    flags = ["--latency", str(latency), "--rps", str(rate), "--retry-after", "1"]
    shares, rejected, sent = [], [], 0
    for _ in range(repeats):
        with fake_server(*flags, *([] if headers else ["--no-limit-headers"])) as url:
            result = job(url, papers, work / "rate-out.jsonl")
        shares.append(result.done / result.elapsed_s / rate)
        rejected.append(result.requests - result.done - result.failed)
        sent += result.requests
    how = "x-ratelimit headers" if headers else "no headers, 429s only"
    runs = ", ".join(f"{share:.2f}" for share in shares)
    counts = ", ".join(str(count) for count in rejected)
    print(f"rate-bound      {n} abstracts, limit {rate:g} req/s ({how}), default concurrency, "
          f"{repeats} runs: {statistics.mean(shares):.2f} of the limit ({runs}; goal >= 0.95); "
          f"{1000 * sum(rejected) / sent:.1f} 429s per 1000 requests ({counts} a run; "
          f"goal < 5)")  # fmt: skip


def client_cpu(work: Path, small: int, large: int, concurrency: int) -> float:
    seconds, rate = {}, 0.0
    with fake_server() as url:
        for n in (small, large):
            papers = abstracts(n, work / f"cpu{n}.jsonl")
            started = time.process_time()
            result = job(url, papers, work / f"cpu{n}-out.jsonl", concurrency=concurrency)
            seconds[n] = time.process_time() - started
            rate = result.requests_per_second
    per_record = (seconds[large] - seconds[small]) / (large - small) * 1000
    print(f"client CPU      {per_record:.2f} ms per record (user+sys, runs of {large} and "
          f"{small} abstracts at zero latency, {concurrency} in flight, difference) "
          f"(goal <= 1.5 ms); {rate:.0f} req/s in the larger run, the server on the "
          f"other core (goal >= 500)")  # fmt: skip
    return per_record


def run_peak_mb(url: str, work: Path, n: int) -> float:
    """Peak RSS of a whole run of `n` abstracts in its own process, in MB."""
    papers = abstracts(n, work / f"mem{n}.jsonl")
    out = work / f"mem{n}-out.jsonl"
    child = subprocess.run(
        [sys.executable, __file__, "--child-memory", url, str(papers), str(out)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    papers.unlink()
    return int(child.stdout.split()[-1]) / 1024


def peak_memory(work: Path, small: int, large: int, huge: int) -> None:
    with fake_server() as url:
        peaks = {n: run_peak_mb(url, work, n) for n in (small, large)}
        print(f"peak memory     {large} abstracts {peaks[large]:.0f} MB, {small} abstracts "
              f"{peaks[small]:.0f} MB -> {peaks[large] / peaks[small]:.2f}x "
              f"for {large // small}x the input (goal <= 1.10x)")  # fmt: skip
        if huge:
            print(f"                {huge} abstracts {run_peak_mb(url, work, huge):.0f} MB "
                  f"(goal < 250 MB)")  # fmt: skip
    batches_memory(work, batches=40, size=200)


def child_memory(url: str, papers: str, out: str) -> None:
    job(url, Path(papers), Path(out), concurrency=32)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def batches_memory(work: Path, batches: int, size: int) -> None:
    """RSS of one process calling `summarize_rows` batch after batch, as a worker of a
    distributed map does: after the 5th batch and after the last."""
    papers = abstracts(batches * size, work / "batches.jsonl")
    with fake_server() as url:
        child = subprocess.run(
            [sys.executable, __file__, "--child-batches", url, str(papers), str(size)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    after_5th, after_last = (float(mb) for mb in child.stdout.split())
    per_row = (after_last - after_5th) * 2**20 / ((batches - 5) * size)
    print(f"                summarize_rows, {batches} batches of {size} rows in one process: "
          f"{after_5th:.0f} MB after the 5th, {after_last:.0f} MB after the last "
          f"({per_row:.0f} bytes a row)")  # fmt: skip


def child_batches(url: str, papers: str, size: str) -> None:
    rows = [json.loads(line) for line in Path(papers).read_text().splitlines()]
    endpoint = EndpointSettings(base_url=url, api_key=KEY, model="fake-model")
    settings = RunSettings(inputs=(), endpoint=endpoint, concurrency=32)
    resident = []
    for start in range(0, len(rows), int(size)):
        summarize_rows(rows[start : start + int(size)], settings)
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        resident.append(pages * os.sysconf("SC_PAGE_SIZE") / 2**20)
    print(resident[4], resident[-1])


def instructor_loop(url: str, rows: list[dict[str, str]], mode: Any, retries: int) -> int:
    """A plain loop: `instructor.from_openai`, one abstract after the other; valid answers."""
    import instructor  # noqa: PLC0415 - the peers, not the job, use it directly
    import openai  # noqa: PLC0415

    from summarize._schema import Summary, grounded_in  # noqa: PLC0415

    client = instructor.from_openai(openai.OpenAI(base_url=url, api_key=KEY), mode=mode)
    prompt = load_prompt()
    for row in rows:
        with grounded_in(abstract=row["abstract"], title=row["title"]):
            client.chat.completions.create(
                model="fake-model", response_model=Summary, max_retries=retries,
                messages=prompt.messages(title=row["title"], abstract=row["abstract"]),  # type: ignore[arg-type]
            )  # fmt: skip
    return len(rows)


def sequential_instructor(url: str, papers: Path) -> tuple[int, float, float]:
    """The sequential peer: valid answers, wall seconds, CPU seconds."""
    import instructor  # noqa: PLC0415

    rows = [json.loads(line) for line in papers.read_text(encoding="utf-8").splitlines()]
    wall, cpu = time.perf_counter(), time.process_time()
    valid = instructor_loop(url, rows, instructor.Mode.TOOLS, retries=2)
    return valid, time.perf_counter() - wall, time.process_time() - cpu


def curator(url: str, papers: Path, concurrency: int) -> dict[str, float] | None:
    if not CURATOR_PYTHON.exists():
        return None
    child = subprocess.run(
        [str(CURATOR_PYTHON), str(ROOT / "bench" / "curator_peer.py"),
         "--base-url", url, "--input", str(papers), "--concurrency-hint", str(concurrency)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    result: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def peers(work: Path, n: int, latency: float, concurrency: int, *, sequential: bool) -> None:
    """summarize and curator on the same server and abstracts at the same concurrency."""
    papers = abstracts(n, work / f"peers{latency}.jsonl")
    with fake_server("--latency", str(latency)) as url:
        cpu = time.process_time()
        with timed_requests() as (_, bodies):
            ours = job(url, papers, work / "peers-out.jsonl", concurrency=concurrency)
        ours_cpu = (time.process_time() - cpu) / n * 1000
        ours_rate = ours.done / ours.elapsed_s
        ideal = f" = {ours_rate * latency / concurrency:.3f} of ideal" if latency else ""
        print(f"peers           {n} abstracts, latency {latency} s, {concurrency} in flight: "
              f"summarize {ours_rate:.1f} records/s{ideal}, {ours.done} valid, "
              f"{ours_cpu:.1f} ms CPU/record")  # fmt: skip
        if latency:
            bare = bare_client(url, bodies, concurrency) * latency / concurrency
            print(f"                a bare aiohttp client posting the same requests: "
                  f"{bare:.3f} of ideal")  # fmt: skip
        if sequential:
            valid, wall, seq_cpu = sequential_instructor(url, papers)
            print(f"                sequential instructor loop {valid / wall:.1f} records/s, "
                  f"{valid} valid, {seq_cpu / n * 1000:.1f} ms CPU/record")  # fmt: skip
        other = curator(url, papers, concurrency)
    if other is None:
        print("                curator: not installed (bash bench/setup_curator.sh)")
        return
    rate = other["valid"] / other["wall_s"]
    ideal = f" = {rate * latency / concurrency:.3f} of ideal" if latency else ""
    goal = "goal: summarize >= 0.95 of ideal" if latency else "goal >= 3x"
    print(f"                bespokelabs-curator {rate:.1f} records/s{ideal}, "
          f"{other['valid']:.0f} valid, {other['cpu_s'] / n * 1000:.1f} ms CPU/record "
          f"-> summarize is {ours_rate / rate:.2f}x its rate ({goal})")  # fmt: skip


def prompt_overhead() -> None:
    """`bench/prompt_tokens.py`: tokens a request costs beyond its abstract (needs the
    local extra for the tokenizer)."""
    child = subprocess.run([sys.executable, str(ROOT / "bench" / "prompt_tokens.py")],
                           check=False, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    lines = child.stdout.strip().splitlines() or [f"not measured: {child.stderr.strip()[-200:]}"]
    print("\n".join(("prompt          " if n == 0 else "                ") + line
                    for n, line in enumerate(lines)))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the latency-bound measurement, at full size")  # fmt: skip
    parser.add_argument("--child-memory", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-batches", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        child_memory(*args.child_memory)
        return
    if args.child_batches:
        child_batches(*args.child_batches)
        return
    scale = 4 if args.quick else 1
    if SPLIT:
        os.sched_setaffinity(0, SPLIT[0])
        print(f"CPUs            client (and peers) {sorted(SPLIT[0])}, server {sorted(SPLIT[1])}")
    with tempfile.TemporaryDirectory(prefix="summarize-bench-") as tmp:
        work = Path(tmp)
        latency_bound(work, 400 // scale, latency=0.4, concurrency=32)
        if args.latency_only:
            latency_bound(work, 400, latency=0.2, concurrency=32)
            return
        repeats = 1 if args.quick else 3
        rate_bound(work, 1000 // scale, rate=20, latency=0.2, headers=True, repeats=repeats)
        rate_bound(work, 1000 // scale, rate=20, latency=0.2, headers=False, repeats=repeats)
        client_cpu(work, 600 // scale, 6000 // scale, concurrency=64)
        peak_memory(work, 1000 // scale, 10_000 // scale, 0 if args.quick else 100_000)
        peers(work, 400 // scale, latency=0.2, concurrency=32, sequential=not args.quick)
        peers(work, 2000 // scale, latency=0.0, concurrency=32, sequential=False)
        prompt_overhead()


if __name__ == "__main__":
    main()
