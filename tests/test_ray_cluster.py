"""`--engine ray` on a real local Ray, against the test server over HTTP.

One `ray.init` for the session, with more logical CPUs than the machine has cores;
the workers take none. Each run is small: a Ray pipeline costs ~20 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from summarize import EndpointSettings, RunSettings
from summarize.ray import read_parts
from summarize.ray._job import RayOptions, coordinator_name, run_on_ray
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, numbered_abstracts, write_jsonl

if os.environ.get("SUMMARIZE_REQUIRE_RAY"):  # CI: a missing extra fails, never skips
    import ray
else:
    ray = pytest.importorskip(
        "ray", reason="no Ray: the ray extra is not installed (CI requires it)"
    )
# Ray warns of its own deprecated settings while it reads its defaults.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture(scope="session")
def local_ray() -> Iterator[Any]:
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def settings_for(server: FakeOpenAI, papers: Path, out: Path, **options: Any) -> RunSettings:
    endpoint = EndpointSettings(base_url=server.base_url, api_key=FAKE_KEY, model="fake-model")
    return RunSettings(inputs=(str(papers),), output=out, endpoint=endpoint, **options)


def ids_in(papers: Path) -> set[str]:
    from summarize import read_items  # noqa: PLC0415

    items, _ = read_items([str(papers)])
    return {item.id for item in items}


def assert_exactly_once(out: Path, ids: set[str]) -> None:
    """Every id has one line in the folder, and no part repeats another's id."""
    parts = read_parts(out)
    assert parts.ids() == ids
    assert parts.lines == len(ids)  # lines read, duplicates included


def test_a_fault_mix_ends_with_one_line_per_id_and_a_rerun_sends_nothing(
    local_ray: Any, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "papers.jsonl", numbered_abstracts(60))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(latency=0.02) as server:
        server.set_fault_mix({"http_500": 0.1, "refusal": 0.1, "bad_json_args": 0.05,
                              "http_429": 0.03}, seed=7)  # fmt: skip
        settings = settings_for(server, papers, out, concurrency=4)
        first = run_on_ray(settings, RayOptions(workers=2, batch_size=16))
        assert_exactly_once(out, ids_in(papers))
        assert first.done + first.failed == 60
        assert first.failures.get("refused", 0) > 0 and first.done > 0
        manifest = json.loads((tmp_path / "out.manifest.json").read_text())
        assert manifest["requests"] == server.stats.requests  # retries paid are counted
        assert manifest["engine"]["workers"] == 2

        server.clear_faults()
        sent = server.stats.requests
        second = run_on_ray(settings, RayOptions(workers=2, batch_size=16))
        assert second.skipped == first.done and second.done == first.failed
        assert server.stats.requests - sent == first.failed  # only the failed ones again
        assert_exactly_once(out, ids_in(papers))

        sent = server.stats.requests
        third = run_on_ray(settings, RayOptions(workers=2, batch_size=16))
        assert (third.skipped, server.stats.requests - sent) == (60, 0)


def test_one_spend_cap_holds_for_the_cluster_within_one_batch_s_estimate(
    local_ray: Any, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "papers.jsonl", numbered_abstracts(60))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(latency=0.02) as server:
        settings = settings_for(server, papers, out, max_tokens_total=12_000)
        result = run_on_ray(settings, RayOptions(workers=2, batch_size=6))
        assert_exactly_once(out, ids_in(papers))
        parts = read_parts(out)
        records = list(parts.records.values())
        unsent = [e for e in parts.errors.values() if e["error_type"] == "not_sent"]
        assert records and unsent and len(records) + len(unsent) == 60
        assert all("--max-tokens-total 12,000" in e["message"] for e in unsent)
        each = max(r["prompt_tokens"] + r["completion_tokens"] for r in records)
        spent = result.prompt_tokens + result.completion_tokens
        assert spent == sum(r["prompt_tokens"] + r["completion_tokens"] for r in records)
        assert spent <= 12_000 + 6 * each  # the cap, plus at most one batch in flight
        assert result.exit_code == 4  # STOPPED, as a local run at its cap


def kill_a_worker_after(server: FakeOpenAI, requests: int, out: Path) -> threading.Thread:
    """Once the server has seen `requests`, SIGKILL one worker process (Ray restarts it)."""

    def watch() -> None:
        while server.stats.requests < requests:
            time.sleep(0.01)
        coordinator = ray.get_actor(coordinator_name(out))
        pid = sorted(ray.get(coordinator.pids.remote()).values())[0]
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_worker_killed_mid_run_leaves_the_output_exactly_once_by_id(
    local_ray: Any, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "papers.jsonl", numbered_abstracts(96))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(latency=0.1) as server:
        killer = kill_a_worker_after(server, 40, out)
        settings = settings_for(server, papers, out, concurrency=4)
        result = run_on_ray(settings, RayOptions(workers=2, batch_size=16))
        killer.join(timeout=1)
        assert not killer.is_alive()
        assert_exactly_once(out, ids_in(papers))
        assert result.done == 96
        repaid = server.stats.requests - 96
        assert 0 < repaid <= 16  # one batch at most, sent again
        manifest = json.loads((tmp_path / "out.manifest.json").read_text())
        assert manifest["engine"]["batches_run_again"] == 1
        assert manifest["requests"] >= 96  # what was paid twice is in the spend


def test_two_workers_share_one_rate_limit(local_ray: Any, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "papers.jsonl", numbered_abstracts(160))
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(latency=0.05, rps_limit=20) as server:  # its answers say 1,200 a minute
        result = run_on_ray(settings_for(server, papers, out),
                            RayOptions(workers=2, batch_size=20))  # fmt: skip
        assert result.done == 160
        per_thousand = 1000 * server.stats.rate_limited / server.stats.requests
        assert per_thousand < 5, f"{server.stats.rate_limited} 429s in {server.stats.requests}"
