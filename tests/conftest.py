"""Shared fixtures: the fake OpenAI endpoint (over sockets, or in-process through a
`MockTransport`), input files, a clean environment."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from summarize import EndpointSettings, RunResult, RunSettings, run
from summarize.testing import MockTransport
from summarize.testing.server import FakeOpenAI

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "papers"
FAKE_KEY = "sk-test-DO-NOT-LEAK-7f3a9c"

ABSTRACTS = [
    (
        "Fast Widgets",
        "Widget detection is slow on edge devices. We propose FastWidget, a pruned "
        "detector with shared anchors. FastWidget improves accuracy by 4.2% over the "
        "strongest baseline while running 3x faster. Code is released.",
    ),
    (
        "A Survey of Gadgets",
        "Gadgets are everywhere in modern systems. This survey reviews the literature "
        "on gadget design and organises it into a taxonomy. We discuss open problems "
        "and future directions for the community.",
    ),
    (
        "Latex Gains",
        "Training large models is costly. We introduce TinyTrain, a schedule that "
        "skips redundant steps. TinyTrain reduces training cost by 50\\% and reaches "
        "17.5times higher throughput on 8 benchmarks.",
    ),
]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze the heap once, as a process that runs again and again may: a run then leaves
    the caller's frozen heap alone, where it would otherwise collect pytest's whole heap
    (~130 ms) before each of the suite's hundreds of runs. The run's own collect is
    tested on a thawed heap (`unfrozen_heap`)."""
    gc.collect()
    gc.freeze()


@pytest.fixture
def unfrozen_heap() -> Iterator[None]:
    """The heap as a fresh process has it, nothing frozen; frozen again afterwards."""
    gc.unfreeze()
    try:
        yield
    finally:
        gc.freeze()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real endpoint or key leaks in from the developer's shell; cwd has no config."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SUMMARIZE_MODEL", "SUMMARIZE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def numbered_abstracts(count: int) -> list[dict[str, str]]:
    """`count` distinct abstracts, each with a quantitative gain."""
    return [
        {
            "title": f"Paper {i}",
            "abstract": (
                f"Problem number {i} is hard for current systems. We propose method M{i}, "
                f"a simple idea. M{i} improves recall by {i}.5% over the best prior system."
            ),
        }
        for i in range(count)
    ]


@pytest.fixture
def papers(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "papers.jsonl", [{"title": t, "abstract": a} for t, a in ABSTRACTS]
    )


def read_jsonl(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def mock_endpoint(**options: Any) -> EndpointSettings:
    """An endpoint with the test key (OpenAI's URL unless `base_url` says otherwise): what
    a `MockTransport` answers for, in place of the network."""
    return EndpointSettings(api_key=FAKE_KEY, **options)


def run_through(
    transport: MockTransport,
    papers: Path,
    out: Path,
    *,
    endpoint: EndpointSettings | None = None,
    **options: Any,
) -> RunResult:
    """`summarize run PAPERS -o OUT`, as the library runs it, with every request answered
    in-process by `transport`; `options` are `RunSettings` fields (`concurrency`, `force`)."""
    where = endpoint or EndpointSettings(api_key=FAKE_KEY)
    settings = RunSettings(inputs=(str(papers),), output=out, endpoint=where, **options)
    return run(settings, transport=transport)


@pytest.fixture
def fake() -> FakeOpenAI:
    """The fake OpenAI endpoint, not started: `MockTransport(fake.answer)` reaches its chat
    endpoint (faults, counters, `requests`) in-process, without a socket."""
    return FakeOpenAI()
