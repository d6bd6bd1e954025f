"""The live pool's own logic, through `run(summarizer=FakeSummarizer(...))`: no server, no model.

Spend caps, concurrency sizing, pacing and stop reasons are decided here, whatever
answers the summarizer; an in-memory one makes each of these tests take milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from summarize import RunSettings, run
from summarize._cost import Price, SpendCap
from summarize._items import Item
from summarize._live.budget import Budget
from summarize._usage import Usage
from summarize.testing import FakeAnswer, FakeSummarizer
from tests.conftest import numbered_abstracts, read_jsonl, write_jsonl

PRICES = '[models."fake-model"]\ninput = 1.0\noutput = 2.0\n'  # USD per million tokens


def settings(tmp_path: Path, count: int, **options: object) -> RunSettings:
    papers = write_jsonl(tmp_path / "papers.jsonl", numbered_abstracts(count))
    return RunSettings(inputs=(str(papers),), output=tmp_path / "out.jsonl", **options)


def test_a_token_cap_holds_under_the_widest_gate(tmp_path: Path) -> None:
    fake = FakeSummarizer(default=FakeAnswer(latency=0.01))  # 500 tokens an abstract
    result = run(settings(tmp_path, 50, max_tokens_total=5_250, concurrency=256), summarizer=fake)
    assert result.total_tokens <= 5_250
    # Stopped with less than one first guess (~1,450 tokens: the prompt and 300 out) unused.
    assert 5_250 - result.total_tokens < 1_500
    assert result.done == len(fake.calls) and result.exit_code == 4 and result.left > 0
    assert result.stopped is not None and result.stopped.startswith("token cap: the next abstract")


def test_a_cost_cap_holds_under_the_default_concurrency(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES, encoding="utf-8")
    fake = FakeSummarizer(default=FakeAnswer(latency=0.01))  # $0.0006 an abstract
    run_settings = settings(tmp_path, 100, max_cost=0.0063, prices=prices)
    result = run(run_settings, summarizer=fake)
    assert result.cost_usd is not None and result.cost_usd <= 0.0063
    assert result.done >= 7 and result.exit_code == 4
    assert fake.peak_in_flight > 1
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["cost_usd"] == pytest.approx(result.cost_usd)
    assert manifest["stopped"] == result.stopped


def test_error_lines_spend_too(tmp_path: Path) -> None:
    fake = FakeSummarizer(default=FakeAnswer(error="validation", attempts=3))
    result = run(settings(tmp_path, 20, max_tokens_total=2_600), summarizer=fake)
    assert result.total_tokens <= 2_600 and result.failed >= 3 and result.done == 0
    assert result.stopped is not None and "token cap" in result.stopped
    assert result.exit_code == 1  # error lines outrank the stop


def test_a_run_stopped_at_a_cap_is_continued_by_the_next(tmp_path: Path) -> None:
    first = run(settings(tmp_path, 12, max_tokens_total=3_000), summarizer=FakeSummarizer())
    assert first.done >= 4 and first.exit_code == 4
    second = run(settings(tmp_path, 12), summarizer=(fake := FakeSummarizer()))
    assert second.skipped == first.done and second.done == 12 - first.done
    assert second.exit_code == 0 and len(fake.calls) == 12 - first.done
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 12


def test_a_cap_too_small_for_one_abstract_sends_nothing(tmp_path: Path) -> None:
    fake = FakeSummarizer()
    result = run(settings(tmp_path, 3, max_tokens_total=10), summarizer=fake)
    assert fake.calls == [] and result.done == 0 and result.exit_code == 4


def test_an_injected_summarizer_widens_the_gate_from_its_measured_latency(tmp_path: Path) -> None:
    fake = FakeSummarizer(default=FakeAnswer(latency=0.02))
    result = run(settings(tmp_path, 40), summarizer=fake)
    assert result.done == 40
    assert fake.peak_in_flight == 8  # the default width, once the first answer came back


def test_a_fixed_concurrency_is_never_exceeded(tmp_path: Path) -> None:
    fake = FakeSummarizer(default=FakeAnswer(latency=0.01))
    run(settings(tmp_path, 30, concurrency=3), summarizer=fake)
    assert fake.peak_in_flight == 3


def test_abstracts_are_sent_in_input_order(tmp_path: Path) -> None:
    fake = FakeSummarizer()
    run(settings(tmp_path, 10, concurrency=1), summarizer=fake)
    titles = [line["title"] for line in read_jsonl(tmp_path / "out.jsonl")]
    assert titles == [f"Paper {i}" for i in range(10)]
    assert len(fake.calls) == 10 and fake.closed


def test_rpm_paces_an_injected_summarizer(tmp_path: Path) -> None:
    sent: list[float] = []

    class Timed(FakeSummarizer):
        async def summarize(self, item: Item):  # type: ignore[no-untyped-def]
            sent.append(time.monotonic())
            return await FakeSummarizer.summarize(self, item)

    run(settings(tmp_path, 6, rpm=1_200), summarizer=Timed())
    # 1,200 a minute: one each 50 ms. The span, not each gap: one late wake-up on a
    # loaded machine shortens the gap after it, not the pace.
    assert len(sent) == 6 and sent[-1] - sent[0] >= 5 * 0.05 * 0.95


def test_queued_answers_come_first_then_the_default(tmp_path: Path) -> None:
    fake = FakeSummarizer([FakeAnswer(error="refused"), FakeAnswer(error="truncated")])
    result = run(settings(tmp_path, 5, concurrency=1), summarizer=fake)
    assert result.failures == {"refused": 1, "truncated": 1} and result.done == 3


def test_the_budget_waits_for_abstracts_in_flight_rather_than_overspend() -> None:
    item = Item(id="a", title="t", abstract="x" * 400)
    budget = Budget(SpendCap(max_tokens=1_000), Price(1, 1, 1), guess=lambda _: Usage(300, 100))

    async def scenario() -> tuple[bool, bool]:
        first = await budget.admit(item)
        second = await budget.admit(item)
        assert first is not None and second is not None
        third = asyncio.create_task(budget.admit(item))
        await asyncio.sleep(0.01)
        waited = not third.done()  # 800 promised + 400 would pass 1,000: it waits
        await budget.settle(first, Usage(150, 50))  # came in under its estimate
        return waited, await third is not None

    assert asyncio.run(scenario()) == (True, True)


def test_one_cheap_answer_does_not_lower_the_estimate_of_the_crowd_behind_it() -> None:
    item = Item(id="a", title="t", abstract="x")
    budget = Budget(SpendCap(max_tokens=10**6), guess=lambda _: Usage(900, 100))

    async def answers(count: int) -> int:
        for _ in range(count):
            ticket = await budget.admit(item)
            assert ticket is not None
            await budget.settle(ticket, Usage(200, 50))
        return budget.expected(item).tokens

    assert asyncio.run(answers(1)) == 1_000  # one answer back: still the guess
    assert asyncio.run(answers(30)) == 250  # enough answers: what they really spend
