"""Tokens, cost, caps, dry runs and learned limits, end to end against the fake endpoint:
in-process where records and usage are the subject, over sockets where the command
line's summary or the rate limit's timing is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from summarize import EndpointSettings, RunSettings, estimate, run
from summarize._live.pacer import Pacer
from summarize._tokens import TokenEstimator
from summarize.testing.server import DEFAULT_MODEL, FakeOpenAI
from tests.conftest import FAKE_KEY, mock_endpoint, numbered_abstracts, read_jsonl, write_jsonl
from tests.test_run import summarize_cli, summarize_in_process

FAKE_PRICES = f'[models."{DEFAULT_MODEL}"]\ninput = 1.0\ncached_input = 0.5\noutput = 2.0\n'


def priced(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(FAKE_PRICES, encoding="utf-8")
    return path


def test_summary_line_and_manifest_give_tokens_and_cost(server: FakeOpenAI, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(4))
    out = tmp_path / "out.jsonl"
    result = summarize_cli(server, str(papers), "-o", str(out), "--model", DEFAULT_MODEL,
                           "--prices", str(priced(tmp_path)))  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    tokens_in = sum(int(r["prompt_tokens"]) for r in read_jsonl(out))  # type: ignore[call-overload]
    tokens_out = sum(int(r["completion_tokens"]) for r in read_jsonl(out))  # type: ignore[call-overload]
    expected = (tokens_in * 1.0 + tokens_out * 2.0) / 1_000_000
    assert manifest["prompt_tokens"] == tokens_in and manifest["completion_tokens"] == tokens_out
    assert manifest["cost_usd"] == round(expected, 6)
    assert manifest["done"] == 4 and manifest["model"] == DEFAULT_MODEL
    assert f"${expected:.4f}" in result.output


def test_an_unpriced_model_shows_tokens_and_no_made_up_cost(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = summarize_cli(server, str(papers), "-o", str(out), "--model", "my-own-model")
    assert result.exit_code == 0
    assert "$" not in result.output
    assert json.loads((tmp_path / "out.manifest.json").read_text())["cost_usd"] is None


def test_token_cap_holds_under_the_default_concurrency_and_a_rerun_continues(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(40))
    one = tmp_path / "one.jsonl"
    assert summarize_in_process(fake, papers, one, limit=1).exit_code == 0
    per_record = sum(int(str(r[k])) for r in read_jsonl(one)
                     for k in ("prompt_tokens", "completion_tokens"))  # fmt: skip
    cap = int(per_record * 10.5)
    out = tmp_path / "out.jsonl"
    first = summarize_in_process(fake, papers, out, max_tokens_total=cap)
    assert first.exit_code == 4
    assert first.left > 0 and str(first.stopped).startswith("token cap: the next abstract")
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["prompt_tokens"] + manifest["completion_tokens"] <= cap
    assert 8 <= manifest["done"] <= 10
    second = summarize_in_process(fake, papers, out)
    assert second.exit_code == 0
    assert len(read_jsonl(out)) == 40


def test_cost_cap_needs_a_price(server: FakeOpenAI, papers: Path, tmp_path: Path) -> None:
    result = summarize_cli(server, str(papers), "-o", str(tmp_path / "o.jsonl"),
                           "--model", "unknown-model", "--max-cost", "1")  # fmt: skip
    assert result.exit_code == 2
    assert "--max-cost needs a price for model 'unknown-model'" in result.output
    assert server.stats.requests == 0


def test_max_cost_holds_under_the_default_concurrency(server: FakeOpenAI, tmp_path: Path) -> None:
    # The run of the bug report: 300 abstracts, gpt-4o-mini's list price, no --concurrency.
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(300))
    out = tmp_path / "out.jsonl"
    result = summarize_cli(server, str(papers), "-o", str(out), "--model", "gpt-4o-mini",
                           "--max-cost", "0.01")  # fmt: skip
    assert result.exit_code == 4, result.output
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    records = read_jsonl(out)
    spent = sum(0.15 * int(str(r["prompt_tokens"])) + 0.6 * int(str(r["completion_tokens"]))
                for r in records) / 1_000_000  # fmt: skip
    assert spent <= 0.01 * 1.1
    assert spent == pytest.approx(manifest["cost_usd"], abs=1e-6)
    assert f"${manifest['cost_usd']:.4f}" in result.output
    assert "left (spend cap: the next abstract" in result.output
    assert 20 <= len(records) < 300 and manifest["done"] == len(records)
    assert manifest["limits"]["peak_in_flight"] > 1  # the gate did open: this is no pinned run
    rerun = summarize_cli(server, str(papers), "-o", str(out), "--model", "gpt-4o-mini",
                          "--max-cost", "0.01")  # fmt: skip
    assert rerun.exit_code == 4
    assert len(read_jsonl(out)) > len(records)  # the next run continues where it stopped


def test_dry_run_estimates_and_sends_and_writes_nothing(server: FakeOpenAI, tmp_path: Path) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(6))
    out = tmp_path / "out.jsonl"
    result = summarize_cli(server, str(papers), "-o", str(out), "--dry-run",
                           "--model", "gpt-4o-mini")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("dry run: 6 of 6 abstracts to send to gpt-4o-mini")
    assert "~$" in result.output
    assert server.stats.requests == 0
    assert not out.exists() and not (tmp_path / "out.manifest.json").exists()


def test_dry_run_counts_only_what_is_left_and_learns_completion_size(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(6))
    out = tmp_path / "out.jsonl"
    assert summarize_in_process(fake, papers, out, limit=4).exit_code == 0
    guess = estimate(RunSettings(inputs=(str(papers),), output=out, endpoint=mock_endpoint()))
    assert (guess.unique, guess.pending) == (6, 2)
    mean = sum(int(r["completion_tokens"]) for r in read_jsonl(out)) / 4  # type: ignore[call-overload]
    assert guess.completion_tokens == 2 * round(mean)
    assert "mean of 4 records" in guess.completion_basis


def run_settings(server: FakeOpenAI, papers: Path, out: Path) -> RunSettings:
    """`papers` into `out` through `server`, with no flag set."""
    endpoint = EndpointSettings(base_url=server.base_url, api_key=FAKE_KEY)
    return RunSettings(inputs=(str(papers),), output=out, endpoint=endpoint)


def test_the_rate_limit_is_learned_from_the_servers_headers(tmp_path: Path) -> None:
    # Pacing runs on the real clock at both ends (no fake clock reaches the client's
    # sockets), so the margins are made wide instead. The gate is sized to the learned
    # 3.88/s x the latency the client sees x 1.5, + 1: 2 here; it would take answers 20
    # times slower than the server's (over a second) to reach the default 8, or to let
    # a stalled client send 5 at once into the bucket of 4.
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(12))
    with FakeOpenAI(rps_limit=4, latency=0.05) as server:
        result = run(run_settings(server, papers, tmp_path / "out.jsonl"))
    assert result.done == 12
    assert server.stats.rate_limited == 0
    limits = json.loads((tmp_path / "out.manifest.json").read_text())["limits"]
    assert limits["rpm"] == 4 * 60 * 0.97
    assert limits["concurrency"] < 8  # sized from the learned rate, not the default (below)


def test_with_no_limit_headers_the_limit_is_found_with_one_429_a_burst(tmp_path: Path) -> None:
    # Answers that come back together went out again together, and the burst that
    # found the limit earned a 429 for each request in it: 21 here without spaced sends,
    # against 5 with them (5 bursts, one 429 each, before the limit is learned).
    # Whether a 429 comes back before the next send is a race against the real clock, no
    # event can stand in for it: the sends are spaced 0.5 s / 8 / 4 = 16 ms apart here, so
    # a loaded machine that is slow to return a 429 adds a few, and the bound is twice 5.
    papers = write_jsonl(tmp_path / "p.jsonl", numbered_abstracts(30))
    with FakeOpenAI(rps_limit=5, latency=0.5, limit_headers=False, retry_after=0.5) as server:
        result = run(run_settings(server, papers, tmp_path / "out.jsonl"))
    assert result.done == 30
    assert server.stats.rate_limited <= 10


async def answered(pacer: Pacer, latency: float) -> None:
    """One abstract in flight for `latency` seconds of its answered request."""
    await pacer.enter()
    pacer.leave(latency)


async def test_the_gate_is_sized_from_rate_times_latency() -> None:
    pacer = Pacer(rpm=240, width=8, maximum=256)  # 4 requests a second
    assert pacer.width == 1  # one request first: its headers may tell the limit
    await answered(pacer, 0.25)
    assert pacer.width == 3  # 4/s x 0.25 s x 1.5, rounded up, + 1
    await answered(pacer, 0.25)
    assert pacer.width == 3
    unknown = Pacer(width=8, maximum=256)
    await answered(unknown, 0.25)
    assert unknown.width == 8  # no known rate: the default width


def test_token_estimates_learn_from_reported_usage() -> None:
    estimator = TokenEstimator(max_tokens=500)
    messages = [{"role": "user", "content": "x" * 4000}]
    first = estimator.prompt_tokens(messages)
    assert first == 1004  # 4 characters a token, plus the message's overhead
    for _ in range(30):  # this endpoint's tokenizer counts half as many
        estimator.learn(estimated_prompt=estimator.prompt_tokens(messages), prompt=first // 2,
                        completion=200)  # fmt: skip
    assert abs(estimator.prompt_tokens(messages) - first // 2) <= 3
    assert estimator.completion_tokens() == 200
