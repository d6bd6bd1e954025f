"""`summarize batch submit/status/collect` end to end against the local server's Batch API."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from summarize import RunSettings, run
from summarize._batch.answers import Answers
from summarize._cli import cli
from summarize._core.records import Record
from summarize._cost import PriceTable
from summarize._prompt import load_prompt
from summarize._review import VOLATILE
from summarize._schema import VALUE_PATTERN
from summarize._settings import EndpointSettings
from summarize.batch import BatchOptions, collect, submit
from summarize.testing.server import FakeOpenAI, prompt_tokens
from tests.conftest import ABSTRACTS, FAKE_KEY, PAPERS, numbered_abstracts, read_jsonl, write_jsonl

ENV = {"OPENAI_API_KEY": FAKE_KEY}


def batch_cli(server: FakeOpenAI, command: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["batch", command, "--base-url", server.base_url, *args], env=ENV,
        catch_exceptions=False,
    )  # fmt: skip


def settings(server: FakeOpenAI, out: Path, *inputs: Path, **extra: Any) -> RunSettings:
    endpoint = EndpointSettings(base_url=server.base_url, api_key=FAKE_KEY, max_retries=2,
                                **extra.pop("endpoint", {}))  # fmt: skip
    return RunSettings(inputs=tuple(str(i) for i in inputs), output=out, endpoint=endpoint,
                       **extra)  # fmt: skip


def state_of(out: Path) -> dict[str, Any]:
    return json.loads((out.parent / f"{out.stem}.batches" / "state.json").read_text())


def by_id(path: Path) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in read_jsonl(path)}


def lasting(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in VOLATILE | {"batch_id"}}


WAIT = ("--wait", "--poll", "0")


@pytest.mark.skipif(not PAPERS.is_dir(), reason="shared papers not present")
def test_the_shared_pages_live_then_nightly_give_the_same_666_records(tmp_path: Path) -> None:
    papers = [str(p) for p in sorted(PAPERS.glob("*.txt"))]
    with FakeOpenAI() as server:
        live = tmp_path / "live.jsonl"
        ran = CliRunner().invoke(cli, ["run", *papers, "-o", str(live), "--concurrency", "32"],
                                 env={**ENV, "OPENAI_BASE_URL": server.base_url})  # fmt: skip
        assert ran.exit_code == 0, ran.output
        assert server.stats.requests == 666
        records = read_jsonl(live)
        assert len(records) == len({r["id"] for r in records}) == 666
        assert sum(len(r["sources"]) for r in records) == 703  # type: ignore[arg-type]
        out = tmp_path / "nightly.jsonl"
        server.reset()
        submitted = batch_cli(server, "submit", *papers, "-o", str(out))
        assert submitted.exit_code == 0, submitted.output
        assert "666 abstracts: 666 submitted in 1 batch (batch_" in submitted.output
        collected = batch_cli(server, "collect", "-o", str(out), *WAIT)
        assert server.stats.requests == 0  # no live call: every answer came from the batch
    assert collected.exit_code == 0, collected.output
    assert "1 batch collected: 666 done, 0 resubmitted, 0 failed" in collected.output
    nightly, daytime = by_id(out), by_id(live)
    assert len(nightly) == 666 and nightly.keys() == daytime.keys()
    for record_id, record in nightly.items():
        assert list(record) == list(Record.model_fields)
        assert lasting(record) == lasting(daytime[record_id])
        assert (
            str(record["batch_id"]).startswith("batch_") and daytime[record_id]["batch_id"] is None
        )
        Record.model_validate(record)
    assert read_jsonl(tmp_path / "nightly.errors.jsonl") == []
    assert all(c["status"] == "collected" for c in state_of(out)["chunks"])


def test_a_batch_request_is_the_live_request_and_makes_the_same_request_hash(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    submit(settings(server, out, papers))
    collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    run(settings(server, tmp_path / "live.jsonl", papers, concurrency=1))
    prompt = load_prompt()
    assert len(server.batch_requests) == 3 and len(server.requests) == 3
    for batch, live, (title, abstract) in zip(server.batch_requests, server.requests, ABSTRACTS,
                                               strict=True):  # fmt: skip
        assert batch["messages"] == prompt.messages(title=title, abstract=abstract)
        assert batch == live
        tool = batch["tools"][0]["function"]
        assert batch["tool_choice"]["function"]["name"] == tool["name"]
        gain = tool["parameters"]["properties"]["claimed_gain"]["properties"]["gains"]["items"]
        assert gain["properties"]["value"]["pattern"] == VALUE_PATTERN  # the patterns too
    hashes = {r["request_hash"] for r in [*read_jsonl(out), *read_jsonl(tmp_path / "live.jsonl")]}
    assert len(hashes) == 1


def test_submitting_twice_does_not_submit_twice(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    first = batch_cli(server, "submit", str(papers), "-o", str(out))
    second = batch_cli(server, "submit", str(papers), "-o", str(out))
    assert first.exit_code == second.exit_code == 0
    assert "0 submitted in 0 batches" in second.output and "3 already in a batch" in second.output
    assert len(server.batches) == 1


def test_abstracts_already_in_the_output_are_not_submitted(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    run(settings(server, out, papers, limit=2))
    result = submit(settings(server, out, papers))
    assert (result.done, result.submitted) == (2, 1)
    assert len(server.batch_requests) == 0  # not answered yet: the batch is only created
    collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    assert len(server.batch_requests) == 1
    assert len(by_id(out)) == 3


def test_batches_are_cut_at_the_batch_size(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = batch_cli(server, "submit", str(papers), "-o", str(out), "--batch-size", "2")
    assert "3 submitted in 2 batches" in result.output
    assert [c["count"] for c in state_of(out)["chunks"]] == [2, 1]
    assert batch_cli(server, "collect", "-o", str(out), *WAIT).exit_code == 0
    assert len(by_id(out)) == 3


def test_collect_before_the_batch_ends_exits_5_and_a_later_collect_finishes(
    papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(batch_polls=2) as server:
        batch_cli(server, "submit", str(papers), "-o", str(out))
        early = batch_cli(server, "collect", "-o", str(out))
        status = batch_cli(server, "status", "-o", str(out))
        codes = [batch_cli(server, "collect", "-o", str(out)).exit_code for _ in range(8)]
    assert early.exit_code == 5 and "1 batch still open" in early.output
    assert "0/3 answered" in status.output and "1 batch open holding 3 abstracts" in status.output
    assert codes[-1] == 0 and 5 in codes
    assert len(by_id(out)) == 3


def test_invalid_answers_go_to_a_follow_up_batch_with_the_validation_error(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("invented_number", "bad_schema")  # the first two answers of the batch
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 0, result.output
    assert "2 batches collected: 3 done, 2 resubmitted, 0 failed" in result.output
    followup = server.batch_requests[3:]
    assert len(followup) == 2
    assert [m["role"] for m in followup[0]["messages"]] == ["system", "user", "assistant", "user"]
    assert "87.3% over the strongest prior work" in followup[0]["messages"][-1]["content"]
    assert "method" in followup[1]["messages"][-1]["content"]
    records = by_id(out)
    assert sorted(r["attempts"] for r in records.values()) == [1, 2, 2]
    assert len({r["batch_id"] for r in records.values()}) == 2


def test_a_batch_submitted_to_reask_without_the_answer_follows_up_without_it(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("invented_number")
    submit(settings(server, out, papers, endpoint={"reask_with_answer": False}))
    # Collect asks as the batch was submitted, whatever its own settings say.
    result = collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    assert result.done == 3
    (followup,) = server.batch_requests[3:]
    assert [m["role"] for m in followup["messages"]] == ["system", "user", "user"]
    assert "87.3%" in followup["messages"][-1]["content"]


def test_submit_and_collect_log_each_batch_status_and_the_live_reasks_to_a_log_file(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out, log = tmp_path / "out.jsonl", tmp_path / "nightly.log"
    logs = ("--log-level", "info", "--log-file", str(log))
    server.enqueue("ungrounded_quote")
    assert batch_cli(server, "submit", str(papers), "-o", str(out), *logs).exit_code == 0
    (batch_id,) = [chunk["batch_id"] for chunk in state_of(out)["chunks"]]
    assert f"INFO summarize.batch: batch {batch_id}: validating (3 requests)" in log.read_text()
    result = batch_cli(server, "collect", "-o", str(out), "--repair", "live", *logs, *WAIT)
    assert result.exit_code == 0, result.output
    lines = log.read_text().splitlines()
    statuses = [line.rsplit(": ", 2)[-1] for line in lines if f"batch {batch_id}:" in line]
    assert statuses == [f"{s} (3 requests)" for s in ("validating", "in_progress",
                                                      "finalizing", "completed")]  # fmt: skip
    assert any("INFO summarize.batch: re-ask" in line and " live: " in line for line in lines)


def test_repair_live_reasks_at_once_with_the_validation_error(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("ungrounded_quote")
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), "--repair", "live", *WAIT)
    assert result.exit_code == 0, result.output
    assert "3 done (1 re-asked live), 0 resubmitted" in result.output
    (asked,) = server.requests  # one live chat request
    assert asked["messages"][2]["role"] == "assistant"
    assert "does not occur in the abstract" in asked["messages"][3]["content"]
    records = by_id(out).values()
    assert sorted(str(r["batch_id"]) for r in records).count("None") == 1
    assert len(server.batches) == 1


def test_provider_errors_and_expired_requests_are_resent_and_nothing_is_lost(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue_batch_outcome("expired", answered=1)
    server.enqueue("ok", "http_500")  # the second request of the follow-up fails too
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 0, result.output
    assert [b["status"] for b in server.batches] == ["expired", "completed", "completed"]
    assert [b["request_counts"]["total"] for b in server.batches] == [3, 2, 1]
    assert len(by_id(out)) == 3


def test_a_batch_completed_with_only_an_error_file_is_resubmitted(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("http_500", "http_503", "hang")
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    first = server.batches[0]
    assert first["status"] == "completed" and first["output_file_id"] is None
    assert result.exit_code == 0, result.output
    assert len(by_id(out)) == 3


def test_a_failed_batch_is_resubmitted(server: FakeOpenAI, papers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue_batch_outcome("failed")
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 0, result.output
    assert [b["status"] for b in server.batches] == ["failed", "completed"]
    assert len(by_id(out)) == 3


def test_repair_none_writes_error_lines_that_say_why_with_the_batch_id(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("invented_number", "refusal")
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), "--repair", "none", *WAIT)
    assert result.exit_code == 1
    assert "1 refused, 1 validation" in result.output
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert sorted(str(e["error_type"]) for e in errors) == ["refused", "validation"]
    assert all(str(e["batch_id"]).startswith("batch_") for e in errors)
    assert len(by_id(out)) + len(errors) == 3


def test_answers_that_stay_invalid_end_as_error_lines_after_the_reask_budget(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.set_fault_rule(lambda body: "invented_number" if "Gadgets" in json.dumps(body) else None)
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), "--max-reasks", "1", *WAIT)
    assert result.exit_code == 1
    assert len(server.batches) == 2  # the first try and one re-ask
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["error_type"] == "validation" and error["attempts"] == 2
    assert len(by_id(out)) == 2


def test_a_refusal_is_not_resubmitted(server: FakeOpenAI, papers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("refusal")
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 1 and len(server.batches) == 1
    assert "1 refused" in result.output


def test_a_submit_cut_short_after_the_batch_was_created_finds_it_instead_of_creating_another(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    submit(settings(server, out, papers))
    # What state.json holds when the process dies between "create" and "save".
    path = out.parent / "out.batches" / "state.json"
    state = json.loads(path.read_text())
    batch_id = state["chunks"][0]["batch_id"]
    state["chunks"][0].update(batch_id=None, status="creating")
    path.write_text(json.dumps(state))
    again = submit(settings(server, out, papers))
    assert again.submitted == 0 and len(server.batches) == 1
    assert state_of(out)["chunks"][0]["batch_id"] == batch_id
    collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    assert len(by_id(out)) == 3


def test_a_collect_cut_short_before_saving_writes_each_record_once(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    submit(settings(server, out, papers))
    before = tmp_path / "saved"
    shutil.copytree(out.parent / "out.batches", before)
    first = collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    # Records written, state not saved: as if killed just before the save.
    shutil.rmtree(out.parent / "out.batches")
    shutil.copytree(before, out.parent / "out.batches")
    second = collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    assert (first.done, second.done) == (3, 0)
    lines = out.read_text().splitlines()
    assert len(lines) == len({json.loads(line)["id"] for line in lines}) == 3


def test_collect_reports_cost_at_the_batch_discount(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    submit(settings(server, out, papers, endpoint={"model": "gpt-4o-mini"}))
    result = collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    price = PriceTable.load().get("gpt-4o-mini")
    assert price is not None and price.batch == 0.5
    full = price.cost(prompt=result.prompt_tokens, cached=result.cached_tokens,
                      completion=result.completion_tokens)  # fmt: skip
    assert result.cost_usd == pytest.approx(full * 0.5)
    assert all(r["model"] == "gpt-4o-mini" for r in by_id(out).values())


def test_batch_mode_needs_an_endpoint_and_says_so_in_one_line(papers: Path) -> None:
    result = CliRunner().invoke(cli, ["batch", "submit", str(papers)], env={})
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "needs a provider with the Batch API" in result.output


def test_a_rejected_key_is_a_one_line_config_error(papers: Path, tmp_path: Path) -> None:
    with FakeOpenAI(require_key="sk-other") as server:
        result = batch_cli(server, "submit", str(papers), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert "rejected the API key" in result.output and FAKE_KEY not in result.output


def test_an_unreachable_provider_is_exit_3_and_the_chunk_is_sent_by_the_next_call(
    papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    with FakeOpenAI() as server:
        url = server.base_url
    gone = CliRunner().invoke(cli, ["batch", "submit", str(papers), "-o", str(out),
                                    "--base-url", url], env=ENV)  # fmt: skip
    assert gone.exit_code == 3 and "cannot upload" in gone.output
    assert state_of(out)["chunks"][0]["status"] == "unsent"
    with FakeOpenAI() as server:
        collected = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert collected.exit_code == 0, collected.output
    assert len(by_id(out)) == 3


def test_a_corrupt_state_file_is_a_one_line_error_naming_it(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.batches").mkdir()
    (tmp_path / "out.batches" / "state.json").write_text('{"chunks": [{"key": 1}]}')
    result = batch_cli(server, "collect", "-o", str(out))
    assert result.exit_code == 2
    assert "out.batches/state.json: not a batch state file" in result.output


def held_or_ended(server: FakeOpenAI, job: subprocess.Popen[bytes]) -> bool:
    """Wait until the server holds a reply to `job` (True) or `job` has ended (False)."""
    deadline = time.monotonic() + 120  # an event's deadline: only a broken job reaches it
    while server.held_replies == 0:
        if job.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the job neither called the server nor ended"
        time.sleep(0.01)
    return True


def test_kill_9_during_submit_and_collect_loses_and_doubles_nothing(tmp_path: Path) -> None:
    total = 300
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(total))
    out = tmp_path / "out.jsonl"
    rng = random.Random(5)
    killed_while_held = 0
    with FakeOpenAI(batch_polls=2) as server:
        server.set_fault_mix({"invented_number": 0.1, "http_500": 0.05}, seed=3)
        env = {**os.environ, **ENV, "OPENAI_BASE_URL": server.base_url}
        base = [sys.executable, "-m", "summarize", "batch"]
        submit_cmd = [*base, "submit", str(papers), "-o", str(out), "--batch-size", "10"]
        collect_cmd = [*base, "collect", "-o", str(out), "--wait", "--poll", "0.1"]
        for round_ in range(12):
            cmd = submit_cmd if round_ % 2 == 0 else collect_cmd
            # The kill lands at a point set by events, not by the clock: once the server
            # has done the job's n-th Files or Batch API call and holds its reply (an upload
            # or a batch made that the job never hears of), or, every other time, just
            # after that reply reaches the job (in the job's own work on it).
            server.hold_replies(after=rng.randint(1, 8))
            job = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            held = held_or_ended(server, job)
            if held and rng.random() < 0.5:
                job.send_signal(signal.SIGKILL)
                killed_while_held += job.wait() == -signal.SIGKILL
            server.release_replies()
            job.send_signal(signal.SIGKILL)
            job.wait()
        for cmd in (submit_cmd, collect_cmd):
            final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                                   check=False)  # fmt: skip
        keys = [b["metadata"]["summarize_key"] for b in server.batches]
    assert killed_while_held >= 4, "the kills must land while the jobs run"
    assert final.returncode in {0, 1}, final.stderr
    assert len(keys) == len(set(keys)), "one chunk was created as two batches"
    records, errors = read_jsonl(out), read_jsonl(tmp_path / "out.errors.jsonl")
    ids = [r["id"] for r in records] + [e["id"] for e in errors]
    assert len(ids) == len(set(ids)) == total


def test_a_lost_create_response_is_found_by_key_not_created_again(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.lose_create_responses = 1  # created at the provider, the answer is a 502
    result = submit(settings(server, out, papers))
    assert len(server.batches) == 1 and result.batches == [server.batches[0]["id"]]
    collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    assert len(by_id(out)) == 3


def test_a_chunk_whose_items_are_lost_is_released_and_the_others_are_collected(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    batch_cli(server, "submit", str(papers), "-o", str(out), "--batch-size", "1")
    key = state_of(out)["chunks"][1]["key"]
    (tmp_path / "out.batches" / f"{key}.items.jsonl").unlink()
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 3
    assert "items.jsonl is missing; its 1 abstracts without a record are released" in result.output
    assert len(by_id(out)) == 2
    again = batch_cli(server, "submit", str(papers), "-o", str(out))
    assert "1 submitted in 1 batch" in again.output
    assert batch_cli(server, "collect", "-o", str(out), *WAIT).exit_code == 0
    assert len(by_id(out)) == 3


def test_follow_ups_are_sent_by_the_collect_that_makes_them(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("bad_schema")
    submit(settings(server, out, papers))
    collected = [collect(settings(server, out)).collected for _ in range(3)]
    assert collected == [0, 0, 1]  # validating -> in_progress -> finalizing -> completed
    followup = state_of(out)["chunks"][-1]
    assert followup["parent"] and followup["batch_id"] is not None


def test_follow_ups_use_the_prompt_and_settings_of_the_submit(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    custom = tmp_path / "mine.md"
    source = Path(__file__).resolve().parents[1] / "prompts" / "summarize.md"
    custom.write_text(re.sub(r'version = "\d+"', 'version = "mine-1"', source.read_text()))
    server.enqueue("bad_schema")
    batch_cli(server, "submit", str(papers), "-o", str(out), "--prompt", str(custom),
              "--model", "gpt-4o-mini")  # fmt: skip
    custom.unlink()  # moved away before the collect
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 0, result.output
    followup = server.batch_requests[-1]
    assert followup["model"] == "gpt-4o-mini"
    assert followup["messages"][0] == server.batch_requests[0]["messages"][0]
    assert {r["prompt_version"] for r in by_id(out).values()} == {"mine-1"}


def test_repair_live_keeps_the_budget_and_counts_what_the_batch_spent(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.set_fault_rule(lambda body: "invented_number" if "Gadgets" in json.dumps(body) else None)
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), "--repair", "live", "--max-reasks", "1",
                       *WAIT)  # fmt: skip
    assert result.exit_code == 1
    assert len(server.requests) == 1  # the batch's answer, then one live re-ask: the budget
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["attempts"] == 2
    asked = [b for b in server.batch_requests if "Gadgets" in json.dumps(b)] + server.requests
    assert error["prompt_tokens"] == sum(prompt_tokens(body) for body in asked)


def test_a_batch_that_fails_as_a_whole_is_created_again_without_using_the_abstracts_budget(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue_batch_outcome("failed")
    server.enqueue_batch_outcome("failed")
    batch_cli(server, "submit", str(papers), "-o", str(out))
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 0, result.output
    assert [b["status"] for b in server.batches] == ["failed", "failed", "completed"]
    assert len({b["input_file_id"] for b in server.batches}) == 1
    assert {r["attempts"] for r in by_id(out).values()} == {1}


def test_the_state_of_one_output_is_not_used_for_another(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    submit(settings(server, tmp_path / "out.jsonl", papers))
    result = batch_cli(server, "collect", "-o", str(tmp_path / "out.json"))
    assert result.exit_code == 2
    assert "holds the batches of out.jsonl, not of out.json" in result.output


def test_explicit_ids_already_out_are_counted_as_out(server: FakeOpenAI, tmp_path: Path) -> None:
    rows = [{"id": f"paper-{i}", "title": t, "abstract": a} for i, (t, a) in enumerate(ABSTRACTS)]
    papers = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out.jsonl"
    submit(settings(server, out, papers))
    again = submit(settings(server, out, papers))
    assert (again.out, again.submitted, again.left) == (3, 0, 0)


def test_open_batches_take_precedence_over_failures_in_the_exit_code(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue("refusal")
    batch_cli(server, "submit", str(papers), "-o", str(out), "--limit", "1")
    for _ in range(2):  # the first batch moves to "finalizing"
        batch_cli(server, "collect", "-o", str(out))
    batch_cli(server, "submit", str(papers), "-o", str(out))
    mixed = batch_cli(server, "collect", "-o", str(out))
    assert "1 failed (1 refused" in mixed.output and "1 batch still open" in mixed.output
    assert mixed.exit_code == 5


def test_cancel_stops_the_batches_and_their_abstracts_are_released_not_resubmitted(
    papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(batch_polls=5) as server:
        batch_cli(server, "submit", str(papers), "-o", str(out))
        cancelled = batch_cli(server, "cancel", "-o", str(out))
        collected = batch_cli(server, "collect", "-o", str(out), *WAIT)
        assert [b["status"] for b in server.batches] == ["cancelled"]
        again = batch_cli(server, "submit", str(papers), "-o", str(out))
    assert "1 batch cancelled" in cancelled.output
    assert collected.exit_code == 0 and "3 released" in collected.output
    assert by_id(out) == {}
    assert "3 submitted in 1 batch" in again.output


def test_constrained_quotes_are_sent_as_an_enum_and_checked_the_same_way(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    # The fake server does not decode under the schema: its quote of the third abstract
    # keeps LaTeX (`50\\%`) that the enum offers as plain text, and is rejected, as live.
    rows = [{"title": t, "abstract": a} for t, a in ABSTRACTS]
    papers = write_jsonl(tmp_path / "p.jsonl", rows)
    submit(settings(server, out, papers, endpoint={"constrain_quotes": True}))
    result = collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    schema = server.batch_requests[0]["tools"][0]["function"]["parameters"]
    gains = schema["properties"]["claimed_gain"]["properties"]["gains"]
    quote = gains["items"]["properties"]["quote"]
    assert "Widget detection is slow on edge devices." in quote["enum"]
    assert (result.done, result.failures) == (2, {"validation": 1})
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["title"] == "Latex Gains" and "claimed_gain.gains.0.quote" in str(error["message"])
    live = run(
        settings(server, tmp_path / "live.jsonl", papers, endpoint={"constrain_quotes": True})
    )
    assert (live.done, live.failures) == (2, {"validation": 1})


def test_batches_are_cut_at_the_byte_limit_too(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    submit(settings(server, out, papers), BatchOptions(max_bytes=2_500))
    chunks = state_of(out)["chunks"]
    assert len(chunks) > 1 and all(c["bytes"] <= 2_500 for c in chunks)
    assert sum(c["count"] for c in chunks) == 3
    collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    assert len(by_id(out)) == 3


def test_a_batch_created_again_after_failing_is_not_mistaken_for_the_failed_one(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    server.enqueue_batch_outcome("failed")
    submit(settings(server, out, papers))
    server.lose_create_responses = 1  # the second create happens, its answer is lost
    result = collect(settings(server, out), BatchOptions(wait=True, poll_s=0))
    assert [b["status"] for b in server.batches] == ["failed", "completed"]
    assert result.done == 3


def test_a_batch_the_provider_does_not_know_is_kept_unless_released_explicitly(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    batch_cli(server, "submit", str(papers), "-o", str(out))
    path = tmp_path / "out.batches" / "state.json"
    path.write_text(path.read_text().replace(server.batches[0]["id"], "batch_gone"))
    kept = path.read_bytes()
    result = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert result.exit_code == 3 and "batch_gone" in result.output
    assert "--release-lost" in result.output and path.read_bytes() == kept
    assert "0 submitted" in batch_cli(server, "submit", str(papers), "-o", str(out)).output
    released = batch_cli(server, "collect", "-o", str(out), "--release-lost", *WAIT)
    assert released.exit_code == 3 and "3 released" in released.output
    assert "3 submitted" in batch_cli(server, "submit", str(papers), "-o", str(out)).output


def test_collect_at_another_endpoint_is_refused_and_the_state_left_as_it_was(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(50))
    out = tmp_path / "out.jsonl"
    assert batch_cli(server, "submit", str(papers), "-o", str(out)).exit_code == 0
    path = tmp_path / "out.batches" / "state.json"
    before = path.read_bytes()
    with FakeOpenAI() as elsewhere:
        for command in ("collect", "status", "cancel"):
            refused = batch_cli(elsewhere, command, "-o", str(out))
            assert refused.exit_code == 2, refused.output
            assert f"was sent to {server.base_url.rstrip('/')}, not {elsewhere.base_url}" in (
                refused.output
            )
            assert len(refused.output.strip().splitlines()) == 1
        assert elsewhere.stats.requests == 0 and not elsewhere.batches
    assert path.read_bytes() == before
    done = batch_cli(server, "collect", "-o", str(out), *WAIT)
    assert done.exit_code == 0, done.output
    assert len(read_jsonl(out)) == 50 and len(server.batches) == 1


def test_collect_with_another_key_is_refused_and_the_state_never_holds_a_key(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    batch_cli(server, "submit", str(papers), "-o", str(out))
    state = (tmp_path / "out.batches" / "state.json").read_text()
    assert FAKE_KEY not in state and '"key_id": "sha256:' in state
    command = ["batch", "collect", "--base-url", server.base_url, "-o", str(out)]
    other = CliRunner().invoke(cli, command, env={"OPENAI_API_KEY": "sk-other-project"})
    assert other.exit_code == 2 and "was sent to key sha256:" in other.output
    assert "sk-other-project" not in other.output and FAKE_KEY not in other.output


def test_an_answer_in_the_output_file_wins_over_an_error_line_for_the_same_request(
    tmp_path: Path,
) -> None:
    errors = tmp_path / "errors.jsonl"
    output = tmp_path / "output.jsonl"
    failed = {"custom_id": "a", "response": None,
              "error": {"code": "server_error", "message": "try again"}}  # fmt: skip
    answered = {"custom_id": "a", "response": {"status_code": 200, "body": {"id": "x"}}}
    other = {"custom_id": "b", "response": {"status_code": 200, "body": {"id": "y"}}}
    write_jsonl(errors, [failed])
    write_jsonl(output, [other, answered])
    answers = Answers([errors, output])
    a, b = answers.get("a"), answers.get("b")
    assert a is not None and a.status_code == 200 and a.body == {"id": "x"}
    assert b is not None and b.body == {"id": "y"}
    assert answers.get("c") is None
    answers.close()


@pytest.mark.parametrize(
    ("signum", "sigint", "code"),
    [
        (signal.SIGINT, signal.default_int_handler, 130),
        (signal.SIGTERM, signal.default_int_handler, 143),
        (signal.SIGTERM, signal.SIG_IGN, 143),  # started as `cmd &`, which ignores SIGINT
    ],
)
def test_a_signal_stops_a_batch_command_with_the_shells_code_like_run(
    tmp_path: Path, signum: int, sigint: Any, code: int
) -> None:
    # The input is a pipe nobody writes: the command waits on it until the signal.
    papers = tmp_path / "papers.jsonl"
    os.mkfifo(papers)
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    ours = signal.signal(signal.SIGINT, sigint)  # what the command inherits
    try:
        job = subprocess.Popen(
            [sys.executable, "-m", "summarize", "batch", "submit", str(papers), "-o",
             str(tmp_path / "out.jsonl")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, ours)
    writer = open_when_read(papers)
    try:
        job.send_signal(signum)
        _, err = job.communicate(timeout=60)
    finally:
        os.close(writer)
        job.kill()
        job.communicate()
    assert job.returncode == code, err
    assert "interrupted; run the same command again to continue" in err


def open_when_read(fifo: Path, timeout: float = 60.0) -> int:
    """The pipe's writing end, once a reader has opened it; fail the test if none does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it yet
            if time.monotonic() > deadline:
                pytest.fail(f"nothing opened {fifo} within {timeout}s")
            time.sleep(0.05)
