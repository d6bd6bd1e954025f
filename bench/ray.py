"""`--engine ray` against one process, and against `ray.data.llm`: issue 27's figures.

    .venv/bin/python bench/ray.py            # everything, about 10 minutes on 2 cores
    .venv/bin/python bench/ray.py --only records,rate

Needs the ray extra. The test server (`summarize.testing.server`) runs in its own process and
counts, server-side, every request, every 429 and the time of every answer; rates are
answers over the time from the first answer to the last, so Ray's start-up (7-10 s) is
not counted (the wall time beside each includes the actors' start). Inputs are the 666
shared abstracts (with numbered variants where more are needed). One local Ray
(`num_cpus=8`) serves every Ray run; `summarize run` runs as its own process.

1. records: the 666 through `--engine ray`, 2 workers, against `summarize run`: lines
   that differ on a lasting field (`_review.diff_records`; sources included);
2. throughput: 0.2 s latency, 8 in flight per process: 2 workers over twice one process
   (goal >= 0.9);
3. rate: a 20 req/s limit (told in headers), 2 workers: the rate over the limit (goal
   >= 0.95) and 429s per 1,000 requests (goal < 5);
4. cap: --max-tokens-total 20,000: spent over the cap (goal <= 1.1), lines for all 666;
5. faults: a worker killed mid-run (requests paid again, goal <= one batch; duplicate
   lines, goal 0); a rerun (requests, goal 0); a changed prompt (requests, goal 666);
6. anchor: the same fault mix through `summarize.ray` and through `ray.data.llm`'s HTTP
   processor (`build_processor` + `HttpRequestProcessorConfig`, retries at their
   default): records, error rows, requests and time for each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is named ray.py: its folder must not be on the path, here or (Ray copies the
# driver's script folder to its workers' path) in the workers, or `import ray` finds it.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402

from summarize import EndpointSettings, RunSettings, read_items  # noqa: E402
from summarize._prompt import PROMPT_FOR, load_prompt  # noqa: E402
from summarize._review import diff_records, read_json_lines  # noqa: E402
from summarize.ray import read_parts  # noqa: E402
from summarize.ray._job import RayOptions, coordinator_name, run_on_ray  # noqa: E402

PAPERS = sorted(str(p) for p in (ROOT.parent / "shared" / "data" / "papers").glob("*.txt"))
KEY = "sk-bench"
FAULTS = {"http_500": 0.05, "refusal": 0.05}  # 429s: see the rate figure


# ------------------------------------------------------------------ the server process


def _serve(conn: Any, options: dict[str, Any]) -> None:
    from summarize.testing.server import FakeOpenAI, default_responder  # noqa: PLC0415

    answered: list[float] = []

    def responder(body: dict[str, Any]) -> dict[str, Any]:
        answered.append(time.monotonic())
        return default_responder(body)

    with FakeOpenAI(responder=responder, **options) as server:
        conn.send(server.base_url)
        while True:
            command, argument = conn.recv()
            if command == "mix":
                server.set_fault_mix(argument, seed=1)
            elif command == "stats":
                stats = server.stats
                window = answered[-1] - answered[0] if len(answered) > 1 else 0.0
                conn.send({"requests": stats.requests, "rate_limited": stats.rate_limited,
                           "answered": len(answered), "window_s": window})  # fmt: skip
                continue
            elif command == "reset":
                server.reset()
                answered.clear()
            elif command == "stop":
                return
            conn.send(None)


class Server:
    """The test server in a process of its own, asked for its counters over a pipe."""

    def __init__(self, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, options), daemon=True)
        self._process.start()
        self.base_url: str = self._conn.recv()

    def ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return self._conn.recv()

    def stats(self) -> dict[str, Any]:
        return self.ask("stats")  # type: ignore[no-any-return]

    def rate(self) -> float:
        stats = self.stats()
        return (stats["answered"] - 1) / stats["window_s"] if stats["window_s"] else 0.0

    def stop(self) -> None:
        self._conn.send(("stop", None))
        self._process.join(timeout=10)


@contextmanager
def server(**options: Any) -> Iterator[Server]:
    running = Server(**options)
    try:
        yield running
    finally:
        running.stop()


# ------------------------------------------------------------------ runs


def settings(url: str, inputs: list[str], out: Path, **options: Any) -> RunSettings:
    endpoint = EndpointSettings(base_url=url, api_key=KEY, model="fake-model")
    return RunSettings(inputs=tuple(inputs), output=out, endpoint=endpoint, **options)


def on_ray(url: str, inputs: list[str], out: Path, *, workers: int = 2, batch: int = 64,
           **options: Any) -> tuple[Any, float]:  # fmt: skip
    started = time.perf_counter()
    result = run_on_ray(settings(url, inputs, out, **options), RayOptions(workers=workers,
                                                                          batch_size=batch))
    return result, time.perf_counter() - started


def local(url: str, inputs: list[str], out: Path, *flags: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "summarize"), "run", *inputs, "-o", str(out),
                    "--base-url", url, "--model", "fake-model", *flags], check=False,
                   capture_output=True,
                   env={**os.environ, "OPENAI_API_KEY": KEY})  # fmt: skip
    return time.perf_counter() - started


def variants(count: int, into: Path) -> list[str]:
    items, _ = read_items(PAPERS)
    with into.open("w", encoding="utf-8") as fh:
        for n in range(count):
            item, round_ = items[n % len(items)], n // len(items)
            suffix = f" This is variant {round_}." if round_ else ""
            fh.write(json.dumps({"title": item.title, "abstract": item.abstract + suffix}) + "\n")
    return [str(into)]


# ------------------------------------------------------------------ the figures


def records(work: Path) -> None:
    with server() as fake:
        local(fake.base_url, PAPERS, work / "local.jsonl")
        on_ray(fake.base_url, PAPERS, work / "ray.jsonl")
    mine = read_json_lines(work / "local.jsonl")
    theirs = list(read_parts(work / "ray.jsonl").records.values())
    changes = diff_records(mine, theirs, {})
    print(f"records: {len(mine)} from summarize run, {len(theirs)} from --engine ray; "
          f"{len(changes)} differ on a lasting field (goal 0)")  # fmt: skip
    for change in changes[:5]:
        print(f"  {change}")


def throughput(work: Path) -> None:
    inputs = variants(1332, work / "twice.jsonl")
    with server(latency=0.2) as fake:
        wall_one = local(fake.base_url, inputs, work / "one.jsonl", "--concurrency", "8")
        one = fake.rate()
        fake.ask("reset")
        _, wall_two = on_ray(fake.base_url, inputs, work / "two.jsonl", concurrency=8)
        two = fake.rate()
    print(f"throughput at 0.2 s, 8 in flight a process, 1,332 abstracts: one process "
          f"{one:.1f}/s ({wall_one:.1f} s wall), 2 workers {two:.1f}/s ({wall_two:.1f} s wall, "
          f"actors' start included): {two / (2 * one):.2f} of 2x (goal >= 0.9)")  # fmt: skip


def rate(work: Path) -> None:
    with server(latency=0.05, rps_limit=20) as fake:
        result, wall = on_ray(fake.base_url, PAPERS, work / "rate.jsonl")
        achieved, stats = fake.rate(), fake.stats()
    per_thousand = 1000 * stats["rate_limited"] / stats["requests"]
    print(f"rate limit 20/s (headers), 2 workers: {achieved:.2f}/s = {achieved / 20:.3f} of it "
          f"(goal >= 0.95), {stats['rate_limited']} 429s in {stats['requests']} requests = "
          f"{per_thousand:.1f} per 1,000 (goal < 5); {result.done} done, {wall:.1f} s wall")


def cap(work: Path) -> None:
    with server() as fake:
        result, _ = on_ray(fake.base_url, PAPERS, work / "cap.jsonl", max_tokens_total=20_000)
    spent = result.prompt_tokens + result.completion_tokens
    parts = read_parts(work / "cap.jsonl")
    unsent = sum(1 for e in parts.errors.values() if e["error_type"] == "not_sent")
    print(f"cap 20,000 tokens: spent {spent:,} = {spent / 20_000:.3f} of it (goal <= 1.1); "
          f"{len(parts.ids())} of 666 with a line ({len(parts.records)} records, "
          f"{unsent} not_sent)")  # fmt: skip


def faults(work: Path) -> None:
    out = work / "faults.jsonl"
    with server(latency=0.1) as fake:

        def kill() -> None:
            while fake.stats()["requests"] < 250:
                time.sleep(0.05)
            pids = ray.get(ray.get_actor(coordinator_name(out)).pids.remote())
            os.kill(sorted(pids.values())[0], signal.SIGKILL)

        killer = threading.Thread(target=kill, daemon=True)
        killer.start()
        result, _ = on_ray(fake.base_url, PAPERS, out, concurrency=8)
        killer.join(timeout=1)
        paid = fake.stats()["requests"]
        parts = read_parts(out)
        print(f"a worker killed at request 250: {result.done} done, {paid - 666} requests paid "
              f"again (goal <= one batch, 64), {parts.lines - len(parts.ids())} duplicate "
              f"lines (goal 0)")  # fmt: skip
        fake.ask("reset")
        on_ray(fake.base_url, PAPERS, out, concurrency=8)
        print(f"a rerun: {fake.stats()['requests']} requests (goal 0)")
        prompt = work / "changed.md"
        prompt.write_text(Path(PROMPT_FOR["abstractive"]).read_text() + "\nBe brief.\n")
        on_ray(fake.base_url, PAPERS, out, concurrency=8, prompt=prompt)
        print(f"a changed prompt: {fake.stats()['requests']} requests (goal 666)")


def anchor(work: Path) -> None:
    with server(latency=0.02) as fake:
        fake.ask("mix", FAULTS)
        result, wall = on_ray(fake.base_url, PAPERS, work / "mine.jsonl", concurrency=8)
        mine = fake.stats()["requests"]
        print(f"fault mix {FAULTS}, 666 abstracts, 2 workers:")
        print(f"  summarize.ray:  {result.done} records, {result.failed} error rows, "
              f"{mine} requests, {wall:.1f} s")  # fmt: skip
        fake.ask("reset")
        fake.ask("mix", FAULTS)
        found, error, wall = _anchor_run(fake.base_url)
        print(f"  ray.data.llm:   {found} records, 0 error rows, {fake.stats()['requests']} "
              f"requests, {wall:.1f} s{error}")  # fmt: skip


def _anchor_run(url: str) -> tuple[int, str, float]:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor  # noqa: PLC0415

    from summarize._core.request import chat_request  # noqa: PLC0415
    from summarize._core.strategy import question  # noqa: PLC0415

    items, _ = read_items(PAPERS)
    prompt = load_prompt(PROMPT_FOR["abstractive"])
    endpoint = EndpointSettings(base_url=url, api_key=KEY, model="fake-model")
    bodies = []
    for item in items:
        asked = question(prompt, item)
        bodies.append({"id": item.id, "body": json.dumps(chat_request(asked, asked.messages,
                                                                      endpoint))})
    config = HttpRequestProcessorConfig(url=f"{url}/chat/completions", batch_size=64,
                                        concurrency=2,
                                        headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    processor = build_processor(
        config,
        preprocess=lambda row: {"id": row["id"], "payload": json.loads(row["body"])},
        postprocess=_answer,
    )
    started = time.perf_counter()
    try:
        found = len(processor(ray.data.from_items(bodies)).take_all())
    except Exception as exc:  # noqa: BLE001 - the figure is that it died, and how
        said = [line.strip() for line in str(exc).splitlines()
                if re.search(r"\w+(Error|Exception)\b", line) and "RayTaskError" not in line]
        why = said[-1][:160] if said else type(exc).__name__
        return 0, f" (the job died: {why})", time.perf_counter() - started
    return found, "", time.perf_counter() - started


def _answer(row: dict[str, Any]) -> dict[str, Any]:
    """As the documentation's postprocess does: the answer's text, or the job fails."""
    call = row["http_response"]["choices"][0]["message"]["tool_calls"][0]
    return {"id": row["id"], "answer": call["function"]["arguments"]}


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False,
                           capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    return found.stdout.strip()


FIGURES = {"records": records, "throughput": throughput, "rate": rate, "cap": cap,
           "faults": faults, "anchor": anchor}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures")
    wanted = parser.parse_args().only.split(",")
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    print(f"ray {ray.__version__}, {os.cpu_count()} cores, commit {_commit()}")
    with tempfile.TemporaryDirectory() as folder:
        for name in wanted:
            started = time.perf_counter()
            FIGURES[name](Path(folder))
            print(f"  ({name}: {time.perf_counter() - started:.0f} s)", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
