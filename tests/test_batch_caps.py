"""Nightly mode holds the spend caps, names the settings it ignores, does not pay twice after
a crash, and tells the provider no local path: against the local server's Batch API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from summarize import RunSettings
from summarize._batch.live_repair import Journaled, journaled_ids
from summarize._batch.state import BatchState, StateDir
from summarize._cli import cli
from summarize._core.records import ErrorRecord
from summarize._output import Output
from summarize._settings import EndpointSettings
from summarize.batch import BatchOptions, collect, submit
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl
from tests.test_redo import line

ENV = {"OPENAI_API_KEY": FAKE_KEY}
WAIT = ("--wait", "--poll", "0")
# gpt-4o-mini, USD per million tokens, and the Batch API's half price: written out here
# so the test does not grade the code with its own table.
INPUT, OUTPUT, BATCH = 0.15, 0.60, 0.5


def batch_cli(server: FakeOpenAI, command: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["batch", command, "--base-url", server.base_url, *args], env=ENV,
        catch_exceptions=False,
    )  # fmt: skip


def settings(server: FakeOpenAI, out: Path, *inputs: Path) -> RunSettings:
    endpoint = EndpointSettings(base_url=server.base_url, api_key=FAKE_KEY, max_retries=2)
    return RunSettings(inputs=tuple(str(i) for i in inputs), output=out, endpoint=endpoint)


def uploaded_requests(server: FakeOpenAI) -> list[dict[str, Any]]:
    """Every request line of every batch input file the server received."""
    lines: list[dict[str, Any]] = []
    for file in server.files:
        if file["purpose"] == "batch":
            content = server.file_content(file["id"]).decode()
            lines += [json.loads(line) for line in content.splitlines() if line.strip()]
    return lines


def batch_cost(records: list[dict[str, Any]]) -> float:
    prompt = sum(int(r["prompt_tokens"]) for r in records)
    completion = sum(int(r["completion_tokens"]) for r in records)
    return BATCH * (prompt * INPUT + completion * OUTPUT) / 1e6


def tokens(records: list[dict[str, Any]]) -> int:
    return sum(int(r["prompt_tokens"]) + int(r["completion_tokens"]) for r in records)


def errors_of(out: Path) -> list[dict[str, Any]]:
    return read_jsonl(out.with_name(f"{out.stem}.errors.jsonl"))  # type: ignore[return-value]


def submit_invalid_answers(server: FakeOpenAI, papers: Path, out: Path) -> None:
    """Submit `papers` to a server whose every answer fails validation: all need a repair."""
    server.set_fault_rule(lambda body: "invented_number")
    assert batch_cli(server, "submit", str(papers), "-o", str(out)).exit_code == 0


def records_of(out: Path) -> list[dict[str, Any]]:
    return read_jsonl(out)  # type: ignore[return-value]


@pytest.fixture
def ten(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "ten.jsonl", numbered_abstracts(10))


@pytest.mark.parametrize(("flag", "spend"), [("--max-cost", batch_cost),
                                             ("--max-tokens-total", tokens)])  # fmt: skip
def test_submit_under_a_cap_it_cannot_meet_sends_only_what_it_can_pay_for(
    server: FakeOpenAI, ten: Path, tmp_path: Path, flag: str, spend: Any
) -> None:
    whole = tmp_path / "whole.jsonl"  # what all ten spend, as the server bills them
    assert batch_cli(server, "submit", str(ten), "-o", str(whole)).exit_code == 0
    assert batch_cli(server, "collect", "-o", str(whole), *WAIT).exit_code == 0
    order = [r["custom_id"] for r in uploaded_requests(server)]
    cap = spend(records_of(whole)) / 2
    server.reset()
    out = tmp_path / "out.jsonl"
    value = f"{cap:.8f}" if flag == "--max-cost" else str(int(cap))
    capped = batch_cli(server, "submit", str(ten), "-o", str(out), flag, value)
    sent = [r["custom_id"] for r in uploaded_requests(server)]
    assert 1 <= len(sent) < 10
    assert sent == order[: len(sent)]  # in input order: the same cap sends the same ones
    assert capped.exit_code == 4, capped.output
    (note,) = [line for line in capped.output.splitlines() if "left for the next submit" in line]
    assert note.startswith("summarize: batch submit: 10 pending abstracts would ")
    assert f"allows {len(sent)}: submitting {len(sent)}, {10 - len(sent)} left" in note
    assert batch_cli(server, "collect", "-o", str(out), *WAIT).exit_code == 0
    assert spend(records_of(out)) <= cap  # what the provider billed is within the cap
    server.reset()
    rest = batch_cli(server, "submit", str(ten), "-o", str(out))  # the next night, no cap
    assert rest.exit_code == 0, rest.output
    assert sorted(r["custom_id"] for r in uploaded_requests(server)) == sorted(order[len(sent) :])


def test_submit_refuses_when_the_config_files_cap_cannot_pay_for_one_abstract(
    server: FakeOpenAI, ten: Path, tmp_path: Path
) -> None:
    (tmp_path / "summarize.toml").write_text("max_cost = 0.0000001\n")  # cwd is tmp_path
    out = tmp_path / "out.jsonl"
    refused = batch_cli(server, "submit", str(ten), "-o", str(out))
    assert refused.exit_code == 2, refused.output
    assert "--max-cost 1e-07 allows not even the first: nothing submitted" in refused.output
    assert uploaded_requests(server) == [] and server.batches == []


def test_collect_repair_live_reasks_nothing_the_cap_cannot_pay_for(
    server: FakeOpenAI, ten: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    submit_invalid_answers(server, ten, out)
    result = batch_cli(server, "collect", "-o", str(out), "--repair", "live",
                       "--max-cost", "0.000001", *WAIT)  # fmt: skip
    assert server.requests == []  # not one live re-ask
    assert result.exit_code == 1, result.output
    errors = errors_of(out)
    assert len(errors) == 10
    assert all("not re-asked live: spend cap" in str(e["message"]) for e in errors)
    assert all(e["error_type"] == "validation" for e in errors)
    (note,) = [line for line in result.output.splitlines() if "not sent again" in line]
    assert note.startswith("summarize: batch collect: 10 abstracts not sent again (spend cap")
    server.set_fault_rule(None)
    again = batch_cli(server, "submit", str(ten), "-o", str(out))
    assert again.exit_code == 0, again.output
    assert len(uploaded_requests(server)) == 20  # the ten are pending again


def test_collect_repair_live_trims_its_reasks_to_the_cap(
    server: FakeOpenAI, ten: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    # Every batch answer invents a number; every live re-ask (it carries the rejected
    # answer: four messages) is good.
    server.set_fault_rule(lambda body: "invented_number" if len(body["messages"]) < 4 else None)
    assert batch_cli(server, "submit", str(ten), "-o", str(out)).exit_code == 0
    cap = 0.0012  # about three live re-asks at the live price
    result = batch_cli(server, "collect", "-o", str(out), "--repair", "live",
                       "--max-cost", str(cap), *WAIT)  # fmt: skip
    asked = len(server.requests)
    assert 1 <= asked < 10, result.output
    live = [r for r in records_of(out) if r["batch_id"] is None]
    assert len(live) == asked
    (batch,) = server.batches  # a live record counts its batch answer too: take it off
    answered = server.file_content(batch["output_file_id"]).decode().splitlines()
    in_batch = {a["custom_id"]: a["response"]["body"]["usage"] for a in map(json.loads, answered)}
    spent = (
        sum(
            INPUT * (r["prompt_tokens"] - in_batch[r["id"]]["prompt_tokens"])
            + OUTPUT * (r["completion_tokens"] - in_batch[r["id"]]["completion_tokens"])
            for r in live
        )
        / 1e6
    )
    assert 0 < spent <= cap  # at the live price
    errors = errors_of(out)
    assert len(errors) == 10 - asked
    assert all("not re-asked live" in str(e["message"]) for e in errors)


def test_collect_follow_up_batches_hold_the_cap(
    server: FakeOpenAI, ten: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    submit_invalid_answers(server, ten, out)
    result = batch_cli(server, "collect", "-o", str(out), "--max-tokens-total", "10", *WAIT)
    assert len(server.batches) == 1  # no follow-up batch
    assert result.exit_code == 1, result.output
    errors = errors_of(out)
    assert len(errors) == 10
    assert all("not resent: token cap" in str(e["message"]) for e in errors)


def test_submit_and_collect_name_the_settings_they_ignore(
    server: FakeOpenAI, ten: Path, tmp_path: Path
) -> None:
    (tmp_path / "summarize.toml").write_text("rpm = 100\nconcurrency = 4\nmax_reasks = 1\n")
    out = tmp_path / "out.jsonl"
    submitted = batch_cli(server, "submit", str(ten), "-o", str(out))
    assert submitted.exit_code == 0, submitted.output
    (line,) = [x for x in submitted.output.splitlines() if "ignoring" in x]
    assert line == ("summarize: batch submit: ignoring concurrency, rpm (for live requests: run, "
                    "collect --repair live); max_reasks (for collect)")  # fmt: skip
    collected = batch_cli(server, "collect", "-o", str(out), "--tpm", "9000", *WAIT)
    (line,) = [x for x in collected.output.splitlines() if "ignoring" in x]
    assert line == ("summarize: batch collect: ignoring concurrency, rpm, tpm (for live "
                    "requests: run, collect --repair live)")  # fmt: skip
    live = batch_cli(server, "collect", "-o", str(out), "--tpm", "9000", "--repair", "live")
    assert "ignoring" not in live.output  # a live repair reads them all


class Killed(BaseException):
    """A kill: nothing catches it, as nothing catches SIGKILL."""


def test_a_collect_killed_after_its_live_repair_does_not_pay_for_those_abstracts_again(
    server: FakeOpenAI, papers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    server.set_fault_rule(lambda body: "invented_number" if "Gadgets" in json.dumps(body) else None)
    submit(settings(server, out, papers))
    save = StateDir.save

    def killed_before_the_state_is_saved(self: StateDir, state: BatchState) -> None:
        if any(chunk.status == "collected" for chunk in state.chunks):
            raise Killed
        save(self, state)

    monkeypatch.setattr(StateDir, "save", killed_before_the_state_is_saved)
    live = BatchOptions(repair="live", wait=True, poll_s=0)
    with pytest.raises(Killed):
        collect(settings(server, out), live)
    paid = len(server.requests)
    assert paid >= 1  # Gadgets was re-asked live, and failed again
    (error,) = errors_of(out)
    monkeypatch.setattr(StateDir, "save", save)
    result = collect(settings(server, out), live)
    assert len(server.requests) == paid  # not re-asked: nothing paid twice
    assert result.open == {}
    assert errors_of(out) == [error] and len(records_of(out)) == 2


def test_the_batch_metadata_holds_no_local_path(server: FakeOpenAI, papers: Path,
                                                tmp_path: Path) -> None:  # fmt: skip
    outs = [tmp_path / "jane-private-project" / "out.jsonl", tmp_path / "other.jsonl"]
    for out in outs:
        assert batch_cli(server, "submit", str(papers), "-o", str(out)).exit_code == 0
    tags = []
    for batch in server.batches:
        values = [str(v) for v in batch["metadata"].values()]
        assert not any("jane-private-project" in v or "/" in v or ".jsonl" in v for v in values)
        tags.append(batch["metadata"].get("summarize_output"))
    assert len(set(tags)) == 2  # two outputs' batches can still be told apart


def test_a_torn_journal_line_costs_no_crash_and_is_cut_before_the_next_append(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "chunk.repaired.jsonl"
    journal.write_bytes(b'"id-1"\n"id-2"\n"id-')  # the last write torn by a full disk
    assert journaled_ids(journal) == {"id-1", "id-2"}
    with Output(tmp_path / "out.jsonl") as output:
        sink = Journaled(output, journal)
        sink.write_error(ErrorRecord.model_validate_json(line(ErrorRecord, "id-3", "2026-01-01")))
        sink.close()
    assert journaled_ids(journal) == {"id-1", "id-2", "id-3"}
    journal.write_bytes(b'"id-1"\n"id-2"id-3"\n')  # torn, then appended to by an older run
    assert journaled_ids(journal) == {"id-1"}
