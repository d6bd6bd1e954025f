"""Ctrl-C and SIGTERM: say so at once, finish what is in flight, record it, exit 130 / 143.

The run is a real process against the local server, whose chat replies are held: the
abstracts in flight at the signal are exactly the held ones, however fast the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from summarize import Record, RunSettings, Stop, run
from summarize._core.outcome import Outcome
from summarize.testing import FakeAnswer, FakeSummarizer
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl
from tests.test_crash import requested_id

TOTAL, WIDTH = 10, 3


def start_run(server: FakeOpenAI, papers: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": server.base_url}
    command = [sys.executable, "-m", "summarize", "run", str(papers), "-o", str(out),
               "--concurrency", str(WIDTH)]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def wait_until_held(server: FakeOpenAI, count: int, run: subprocess.Popen[str]) -> None:
    """Wait for `count` replies to be held (the run's width in flight); fail if it ends."""
    while server.held_replies < count:
        assert run.poll() is None, run.communicate()
        time.sleep(0.01)


def line_saying(run: subprocess.Popen[str], words: str) -> str:
    """The first line of the run's stderr holding `words` (read as it comes)."""
    assert run.stderr is not None
    for line in run.stderr:
        if words in line:
            return line.rstrip("\n")
    pytest.fail(f"the run ended without saying {words!r}")


def manifest(out: Path) -> dict[str, object]:
    return dict(json.loads(out.with_name("out.manifest.json").read_text(encoding="utf-8")))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_lets_the_abstracts_in_flight_finish_and_records_them(
    tmp_path: Path, signum: int, code: int
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(TOTAL))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI() as server:
        server.hold_replies(chat=True)
        run = start_run(server, papers, out)
        wait_until_held(server, WIDTH, run)
        run.send_signal(signum)
        said = line_saying(run, "stopping")
        server.release_replies()
        stdout, stderr = run.communicate(timeout=60)
        in_flight = {requested_id(body) for body in server.requests}
    assert said == f"summarize: stopping: {WIDTH} in flight; Ctrl-C again to stop now"
    assert run.returncode == code, stderr
    assert "Traceback" not in stderr
    assert len(in_flight) == WIDTH  # no abstract was taken after the signal
    records = read_jsonl(out)
    assert {r["id"] for r in records} == in_flight
    for record in records:
        Record.model_validate(record)
    assert f"{WIDTH} done, 0 skipped, 0 failed, {TOTAL - WIDTH} left (interrupted)" in stdout
    written = manifest(out)
    assert written["stopped"] == "interrupted"
    assert (written["done"], written["left"]) == (WIDTH, TOTAL - WIDTH)


def test_a_second_ctrl_c_stops_now_and_the_next_run_asks_again(tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(TOTAL))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI() as server:
        server.hold_replies(chat=True)
        run = start_run(server, papers, out)
        wait_until_held(server, WIDTH, run)
        run.send_signal(signal.SIGINT)
        line_saying(run, "stopping:")
        run.send_signal(signal.SIGINT)
        said = line_saying(run, "stopping now")
        _, stderr = run.communicate(timeout=60)
        server.release_replies()
        in_flight = {requested_id(body) for body in server.requests}
        assert run.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert read_jsonl(out) == []  # what was in flight has no line...
        written = manifest(out)
        assert (written["stopped"], written["done"], written["left"]) == ("interrupted", 0, TOTAL)
        server.reset()
        again = start_run(server, papers, out)
        _, stderr = again.communicate(timeout=120)
        asked_again = {requested_id(body) for body in server.requests}
    assert said == "summarize: stopping now; what is in flight is asked again next run"
    assert again.returncode == 0, stderr
    assert in_flight <= asked_again  # ...and the next run asks for it
    assert len(read_jsonl(out)) == TOTAL


def test_a_signal_before_anything_is_sent_stops_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    run = subprocess.Popen(
        [sys.executable, "-m", "summarize", "run", "-", "-o", str(out), "--log-level", "info"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    line_saying(run, "reading")  # then it waits for the end of its input, which never comes
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 143
    assert "interrupted; run the same command again to continue" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()


# The library: `run(stop=...)`, asked from a hook, in-process.


def fake_run(tmp_path: Path, times: int) -> tuple[int, int, str | None]:
    """Ten abstracts, three at a time: the first answers at once, the others in 0.2 s; a
    stop is asked `times` times as the first one's line is written."""
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(TOTAL))
    settings = RunSettings(inputs=(str(papers),), output=tmp_path / "out.jsonl",
                           concurrency=WIDTH)  # fmt: skip
    fake = FakeSummarizer([FakeAnswer(latency=0.0)], default=FakeAnswer(latency=0.2))
    stop = Stop()

    def on_outcome(outcome: Outcome) -> None:
        if stop.requests == 0:
            for _ in range(times):
                stop.request()

    result = run(settings, summarizer=fake, stop=stop, on_outcome=on_outcome)
    return result.done, len(fake.calls), result.stopped


def test_a_stop_asked_once_lets_the_abstracts_in_flight_finish(tmp_path: Path) -> None:
    done, sent, stopped = fake_run(tmp_path, times=1)
    assert (done, sent, stopped) == (WIDTH, WIDTH, "interrupted")


def test_a_stop_asked_twice_waits_for_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grace far longer than the answers: had the second request been ignored, the two
    # abstracts in flight would have finished within it.
    monkeypatch.setattr("summarize._live.pool.GRACE_S", 120.0)
    done, sent, stopped = fake_run(tmp_path, times=2)
    assert (done, sent, stopped) == (1, WIDTH, "interrupted")
