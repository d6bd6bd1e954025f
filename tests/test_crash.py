"""`kill -9`, re-runs and concurrent runs: the output stays exact."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from summarize._items import abstract_key
from summarize.testing.server import FakeOpenAI, prompt_parts
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl


def start_run(server: FakeOpenAI, papers: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": server.base_url}
    return subprocess.Popen(
        [sys.executable, "-m", "summarize", "run", str(papers), "-o", str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def whole_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def wait_for_lines(path: Path, count: int, timeout: float = 120.0) -> None:
    """Wait until `path` holds `count` whole lines; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while len(whole_lines(path)) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{path} held {len(whole_lines(path))} of {count} lines after {timeout}s")
        time.sleep(0.05)


def hang_after_one_answer(server: FakeOpenAI) -> None:
    """One answer, then requests that hang far longer than a test: a run that has written
    its first line is still running, at any speed of the machine, until it is killed."""
    server.enqueue("ok")
    server.set_fault_mix({"hang": 1.0})


def test_kill_9_then_rerun_leaves_exactly_one_record_per_abstract(tmp_path: Path) -> None:
    total, kills, concurrency = 200, 20, 4
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(total))
    out = tmp_path / "out.jsonl"
    rng = random.Random(11)
    with FakeOpenAI(latency=0.02) as server:
        for _ in range(kills):
            done_before = {line["id"] for line in whole_lines(out)}
            sent_before = len(server.requests)
            run = start_run(server, papers, out, "--concurrency", str(concurrency))
            wait_for_lines(out, min(total, len(done_before) + rng.randint(1, 8)))
            run.send_signal(signal.SIGKILL)
            run.communicate()
            resent = {requested_id(body) for body in server.requests[sent_before:]}
            assert not resent & done_before, "a finished abstract was requested again"
        final = start_run(server, papers, out, "--concurrency", str(concurrency))
        _, stderr = final.communicate(timeout=120)
        requests = server.stats.requests
    assert final.returncode == 0, stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == total
    assert len({r["id"] for r in records}) == total
    # Only requests in flight at a kill can be repeated.
    assert total <= requests <= total + kills * concurrency
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []


def requested_id(body: dict[str, object]) -> str:
    return abstract_key(prompt_parts(body)[1])


def test_second_concurrent_run_refuses_and_a_killed_runs_lock_does_not_block(
    tmp_path: Path,
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(20))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI() as server:
        hang_after_one_answer(server)
        first = start_run(server, papers, out, "--concurrency", "1")
        wait_for_lines(out, 1)
        second = start_run(server, papers, out)
        _, err = second.communicate(timeout=60)
        assert first.poll() is None, "the first run must still hold its lock"
        assert second.returncode == 2
        assert "another summarize run is writing this output" in err
        first.send_signal(signal.SIGKILL)
        first.communicate()
        server.clear_faults()
        third = start_run(server, papers, out)
        _, err = third.communicate(timeout=60)
    assert third.returncode == 0, err
    assert len(read_jsonl(out)) == 20


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(30))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI() as server:
        hang_after_one_answer(server)
        run = start_run(server, papers, out, "--concurrency", "1")
        wait_for_lines(out, 1)
        run.send_signal(signal.SIGTERM)
        out_text, err = run.communicate(timeout=30)
    # The hanging request outlives the grace: it is cancelled, and asked again next time.
    assert run.returncode == 143
    assert "summarize: stopping: 1 in flight; Ctrl-C again to stop now" in err
    assert "1 done, 0 skipped, 0 failed, 29 left (interrupted)" in out_text
    assert "Traceback" not in err
    assert all(line["id"] for line in whole_lines(out))
