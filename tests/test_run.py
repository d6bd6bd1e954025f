"""`summarize run` end to end, against the fake OpenAI endpoint: in-process through a
`MockTransport` where answers, faults, re-asks and records are the subject; over real
HTTP where the command line, the key on the wire, or the socket (a hang, a drop, a dead
port) is."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from summarize import EndpointSettings, RunResult, RunSettings, run
from summarize._cli import cli
from summarize._core.records import Record
from summarize.testing import MockTransport
from summarize.testing.server import FakeOpenAI
from tests.conftest import (
    ABSTRACTS,
    FAKE_KEY,
    mock_endpoint,
    numbered_abstracts,
    read_jsonl,
    run_through,
    write_jsonl,
)
from tests.faultsuite import FAULTS, PERSISTENT_ENDS, TERMINAL

# Faults only a socket shows the client: a hang ends at its timeout, a drop mid-body.
WIRE_FAULTS = ("hang", "drop")
ANSWER_FAULTS = tuple(kind for kind in FAULTS if kind not in WIRE_FAULTS)
RUN_FIELDS = frozenset(RunSettings.model_fields)

RECORD_KEYS = list(Record.model_fields)


def summarize_cli(server: FakeOpenAI, *args: str, key: str = FAKE_KEY) -> Result:
    return CliRunner().invoke(
        cli,
        ["run", "--base-url", server.base_url, "--max-retries", "3", *args],
        env={"OPENAI_API_KEY": key},
        catch_exceptions=False,
    )


def summarize_in_process(fake: FakeOpenAI, papers: Path, out: Path, **flags: Any) -> RunResult:
    """`summarize run PAPERS -o OUT --max-retries 3 [flags]` as the library runs it, the
    fake endpoint answering in-process; `flags` are fields of `RunSettings` or of its
    `EndpointSettings`, as the command line's flags are."""
    endpoint = {"max_retries": 3, **{k: v for k, v in flags.items() if k not in RUN_FIELDS}}
    options = {k: v for k, v in flags.items() if k in RUN_FIELDS}
    return run_through(MockTransport(fake.answer), papers, out,
                       endpoint=mock_endpoint(**endpoint), **options)  # fmt: skip


def test_run_writes_one_validated_record_per_abstract_in_fixed_key_order(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = summarize_cli(server, str(papers), "-o", str(out))
    assert result.exit_code == 0, result.output
    records = read_jsonl(out)
    assert len(records) == 3
    for line in out.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert list(record) == RECORD_KEYS
        assert record["model"] == "gpt-4o-mini"
        line_number = [t for t, _ in ABSTRACTS].index(record["title"]) + 1
        assert record["sources"] == [f"{papers}:{line_number}"]
        assert record["prompt_tokens"] > 0 and record["attempts"] == 1
        Record.model_validate(record)
    assert "3 abstracts: 3 done, 0 skipped, 0 failed" in result.output
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []


def test_second_run_sends_no_request(server: FakeOpenAI, papers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert summarize_cli(server, str(papers), "-o", str(out)).exit_code == 0
    server.reset()
    result = summarize_cli(server, str(papers), "-o", str(out))
    assert result.exit_code == 0
    assert server.stats.requests == 0
    assert "0 done, 3 skipped" in result.output
    assert len(read_jsonl(out)) == 3


def test_another_model_redoes_and_replaces_records(
    fake: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    summarize_in_process(fake, papers, out)
    again = summarize_in_process(fake, papers, out, model="other-model")
    assert again.exit_code == 0
    records = read_jsonl(out)
    assert [r["model"] for r in records] == ["other-model"] * 3


def test_force_redoes_everything_without_doubling_lines(
    fake: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    summarize_in_process(fake, papers, out)
    fake.reset()
    assert summarize_in_process(fake, papers, out, force=True).exit_code == 0
    assert fake.stats.requests == 3
    assert len({r["id"] for r in read_jsonl(out)}) == len(read_jsonl(out)) == 3


@pytest.mark.parametrize("fault", ANSWER_FAULTS)
def test_a_fault_met_once_is_cured_or_ends_as_its_error_line(
    fake: FakeOpenAI, tmp_path: Path, fault: str
) -> None:
    fake.enqueue(fault)
    fake.retry_after = 0.01
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(1))
    out = tmp_path / "out.jsonl"
    result = summarize_in_process(fake, papers, out, timeout=0.5)
    if fault in TERMINAL:  # a refusal is an answer: not asked again
        assert result.exit_code == 1
        assert [e["error_type"] for e in read_jsonl(tmp_path / "out.errors.jsonl")] == ["refused"]
        return
    assert result.exit_code == 0
    (record,) = read_jsonl(out)
    assert record["attempts"] == 2 and fake.stats.requests == 2


@pytest.mark.parametrize("fault", WIRE_FAULTS)
def test_a_fault_on_the_wire_met_once_is_cured(
    server: FakeOpenAI, tmp_path: Path, fault: str
) -> None:
    server.enqueue(fault)
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(1))
    out = tmp_path / "out.jsonl"
    result = summarize_cli(server, str(papers), "-o", str(out), "--timeout", "0.5")
    assert result.exit_code == 0, result.output
    (record,) = read_jsonl(out)
    assert record["attempts"] == 2 and server.stats.requests == 2


def test_invalid_answers_are_reasked_with_the_validation_error(
    fake: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    fake.enqueue("invented_number", "bad_schema")
    result = summarize_in_process(fake, papers, tmp_path / "out.jsonl", concurrency=1)
    assert result.exit_code == 0
    rejected, reask = fake.requests[1]["messages"][-2:]
    assert rejected["role"] == "assistant" and "87.3%" in rejected["content"]
    assert reask["role"] == "user" and reask["content"].startswith("Your answer above was rejected")
    assert "does not occur in the abstract" in reask["content"]


@pytest.mark.parametrize("fault", ANSWER_FAULTS)
def test_a_fault_that_persists_ends_as_an_error_line_of_its_type(
    fake: FakeOpenAI, tmp_path: Path, fault: str
) -> None:
    fake.enqueue("ok")  # the endpoint answers once: a dead one stops the run (exit 3)
    fake.set_fault_mix({fault: 1.0})
    fake.retry_after = 0.01
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(2))
    out = tmp_path / "out.jsonl"
    result = summarize_in_process(fake, papers, out, concurrency=1, max_reasks=1,
                                  max_retries=1, timeout=0.5)  # fmt: skip
    assert result.exit_code == 1
    assert len(read_jsonl(out)) == 1
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["error_type"] == PERSISTENT_ENDS[fault]
    assert error["message"] and error["abstract"]
    assert result.failed == 1


@pytest.mark.parametrize("fault", WIRE_FAULTS)
def test_a_fault_on_the_wire_that_persists_ends_as_an_error_line_of_its_type(
    server: FakeOpenAI, tmp_path: Path, fault: str
) -> None:
    server.enqueue("ok")  # the endpoint answers once: a dead one stops the run (exit 3)
    server.set_fault_mix({fault: 1.0})
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(2))
    out = tmp_path / "out.jsonl"
    budgets = ("--max-reasks", "1", "--max-retries", "1", "--timeout", "0.5")
    result = summarize_cli(server, str(papers), "-o", str(out), *budgets, "--concurrency", "1")
    assert result.exit_code == 1, result.output
    assert len(read_jsonl(out)) == 1
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["error_type"] == PERSISTENT_ENDS[fault]
    assert error["message"] and error["abstract"]
    assert "1 failed" in result.output


def test_no_invented_number_ever_reaches_a_record(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.set_fault_mix({"invented_number": 0.5}, seed=7)
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(20))
    out = tmp_path / "out.jsonl"
    summarize_in_process(fake, papers, out, max_reasks=0)
    records = read_jsonl(out)
    assert records, "some answers were honest"
    assert len(records) + len(read_jsonl(tmp_path / "out.errors.jsonl")) == 20
    for record in records:
        for gain in record["claimed_gain"]["gains"]:  # type: ignore[index]
            assert gain["quote"] in record["abstract"]  # type: ignore[operator]
        assert "87.3" not in json.dumps(record)


def test_retries_do_not_multiply(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.set_fault_mix({"http_500": 1.0})
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(1))
    result = summarize_in_process(fake, papers, tmp_path / "o.jsonl", max_retries=2,
                                  max_reasks=5)  # fmt: skip
    assert result.exit_code == 1
    assert fake.stats.requests == 3  # 1 + 2 retries; the transport adds none


def test_failed_abstracts_are_retried_on_the_next_run(fake: FakeOpenAI, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(4))
    out = tmp_path / "out.jsonl"
    fake.set_fault_rule(lambda body: "refusal" if "M2," in json.dumps(body) else None)
    assert summarize_in_process(fake, papers, out).exit_code == 1
    assert len(read_jsonl(out)) == 3 and len(read_jsonl(tmp_path / "out.errors.jsonl")) == 1
    fake.set_fault_rule(None)
    fake.reset()
    assert summarize_in_process(fake, papers, out).exit_code == 0
    assert fake.stats.requests == 1
    assert len(read_jsonl(out)) == 4
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []


def test_torn_last_line_is_dropped_and_redone(
    fake: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    summarize_in_process(fake, papers, out)
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:40], encoding="utf-8")
    fake.reset()
    assert summarize_in_process(fake, papers, out).exit_code == 0
    assert fake.stats.requests == 1
    assert len(read_jsonl(out)) == 3


def test_rejected_key_is_a_config_error_that_never_shows_the_key(
    tmp_path: Path, papers: Path
) -> None:
    with FakeOpenAI(require_key="sk-the-right-one") as server:
        result = summarize_cli(server, str(papers), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert "rejected the API key (HTTP 401)" in result.output
    assert FAKE_KEY not in result.output
    for path in tmp_path.iterdir():
        if path.is_file():
            assert FAKE_KEY not in path.read_text(encoding="utf-8", errors="replace")


def test_key_never_appears_in_records_or_errors(server: FakeOpenAI, tmp_path: Path) -> None:
    server.set_fault_mix({"ok": 0.5, "bad_schema": 0.5}, seed=3)
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(6))
    result = summarize_cli(server, str(papers), "-o", str(tmp_path / "o.jsonl"))
    assert FAKE_KEY not in result.output
    for name in ("o.jsonl", "o.errors.jsonl", "o.manifest.json"):
        path = tmp_path / name
        assert path.exists() and FAKE_KEY not in path.read_text(encoding="utf-8")


def test_credentials_in_the_base_url_stay_out_of_the_manifest(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    url = server.base_url.replace("http://", f"http://user:{FAKE_KEY}@")
    result = summarize_cli(server, str(papers), "-o", str(tmp_path / "o.jsonl"), "--base-url", url)
    assert result.exit_code == 0
    manifest = (tmp_path / "o.manifest.json").read_text(encoding="utf-8")
    assert FAKE_KEY not in manifest and server.base_url in manifest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "missing.jsonl"),
        (["papers.jsonl", "--concurrency", "0"], "concurrency"),
        (["papers.jsonl", "--rpm", "-1"], "rpm"),
        (["papers.jsonl", "-o", "."], "is a directory"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    server: FakeOpenAI, papers: Path, args: list[str], message: str
) -> None:
    result = summarize_cli(server, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_bad_config_file_is_named(server: FakeOpenAI, papers: Path) -> None:
    Path("summarize.toml").write_text("concurrency = 'many'\n", encoding="utf-8")
    result = summarize_cli(server, str(papers))
    assert result.exit_code == 2
    assert "summarize.toml: concurrency" in result.output


def test_config_file_sets_defaults_and_flags_override(server: FakeOpenAI, papers: Path) -> None:
    Path("pyproject.toml").write_text(
        '[tool.summarize]\nmodel = "from-config"\noutput = "cfg.jsonl"\n', encoding="utf-8"
    )
    assert summarize_cli(server, str(papers)).exit_code == 0
    assert {r["model"] for r in read_jsonl(Path("cfg.jsonl"))} == {"from-config"}
    assert summarize_cli(server, str(papers), "--model", "from-flag").exit_code == 0
    assert {r["model"] for r in read_jsonl(Path("cfg.jsonl"))} == {"from-flag"}


def test_default_output_is_outputs_summaries_jsonl(server: FakeOpenAI, papers: Path) -> None:
    assert summarize_cli(server, str(papers)).exit_code == 0
    assert len(read_jsonl(Path("outputs/summaries.jsonl"))) == 3


def test_limit_summarises_only_n_pending(server: FakeOpenAI, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(5))
    out = tmp_path / "out.jsonl"
    assert summarize_cli(server, str(papers), "-o", str(out), "--limit", "2").exit_code == 0
    second = summarize_cli(server, str(papers), "-o", str(out), "--limit", "2")
    assert second.exit_code == 0
    assert "5 abstracts: 2 done, 2 skipped, 0 failed, 1 left (--limit)" in second.output
    assert len(read_jsonl(out)) == 4


def test_library_api_runs_the_same_job(fake: FakeOpenAI, papers: Path, tmp_path: Path) -> None:
    settings = RunSettings(
        inputs=(str(papers),),
        output=tmp_path / "lib.jsonl",
        endpoint=EndpointSettings(base_url="https://llm.example/v1", api_key=FAKE_KEY, model="m"),
    )
    result = run(settings, transport=MockTransport(fake.answer))
    assert (result.done, result.failed, result.exit_code) == (3, 0, 0)
    assert result.requests == fake.stats.requests == 3


def test_schema_command_prints_the_record_json_schema() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    schema = json.loads(result.output)
    assert list(schema["properties"]) == RECORD_KEYS
    assert "claimed_gain" in schema["required"]


def test_stdin_is_read_once_and_summarised_like_a_file(server: FakeOpenAI, tmp_path: Path) -> None:
    rows = [{"title": t, "abstract": a} for t, a in ABSTRACTS]
    text = "".join(json.dumps(row) + "\n" for row in [*rows, rows[0]])
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli,
        ["run", "-", "-o", str(out), "--base-url", server.base_url],
        input=text,
        env={"OPENAI_API_KEY": FAKE_KEY},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    records = {r["title"]: r for r in read_jsonl(out)}
    assert len(records) == 3 and server.stats.requests == 3
    assert records[ABSTRACTS[0][0]]["sources"] == ["-:1", "-:4"]


def test_undecodable_stdin_is_one_line_naming_it(server: FakeOpenAI, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["run", "-", "-o", str(tmp_path / "o.jsonl"), "--base-url", server.base_url],
        input=b'{"title": "T", "abstract": "\xff\xfe bad"}\n',
        env={"OPENAI_API_KEY": FAKE_KEY},
    )
    assert result.exit_code == 2
    assert result.output.startswith("summarize: error: -")
    assert server.stats.requests == 0


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_endpoint_that_never_answers_stops_the_run_with_one_line_and_no_error_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("summarize._live.retries.UNREACHABLE_AFTER_S", 1.0)
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(200))
    url = f"http://127.0.0.1:{dead_port()}/v1"
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli, ["run", str(papers), "-o", str(out), "--base-url", url],
        env={"OPENAI_API_KEY": FAKE_KEY}, catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("summarize: error")]
    assert len(errors) == 1 and f"{url} cannot be reached" in errors[0]
    assert read_jsonl(out) == [] and read_jsonl(tmp_path / "out.errors.jsonl") == []


def test_an_endpoint_that_answered_once_is_retried_as_usual_when_it_drops(
    server: FakeOpenAI, papers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("summarize._live.retries.UNREACHABLE_AFTER_S", 0.0)
    server.enqueue("ok", "drop", "drop")
    out = tmp_path / "out.jsonl"
    result = summarize_cli(server, str(papers), "-o", str(out), "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out)) == 3
