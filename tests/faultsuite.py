"""Fault injection against the local OpenAI-compatible server, with tallies per fault type.

    .venv/bin/python -m tests.faultsuite        # prints the table in the README

Two phases, each one run of the real job (library API, real HTTP) on its own output:
- transient: every request gets a random fault with probability `rate`, uniformly over
  every fault kind; each abstract's injected faults and final outcome are tallied;
- persistent: for each fault kind, one abstract gets that fault on every request.
"""

from __future__ import annotations

import itertools
import random
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from summarize import RunSettings, run
from summarize._items import abstract_key
from summarize._settings import EndpointSettings
from summarize.testing.server import FAULT_KINDS, FakeOpenAI, prompt_parts
from tests.conftest import FAKE_KEY, numbered_abstracts, read_jsonl, write_jsonl

# `object_arguments` is a good answer in another encoding, not a fault.
FAULTS = tuple(kind for kind in FAULT_KINDS if kind not in {"ok", "object_arguments"})
# Faults a retry or a re-ask can cure, and the error type each ends in when it persists.
PERSISTENT_ENDS = {
    "http_429": "rate_limit",
    "http_429_no_retry_after": "rate_limit",
    "http_500": "provider",
    "http_502": "provider",
    "http_503": "provider",
    "hang": "provider",
    "drop": "provider",
    "not_json": "provider",
    "malformed": "provider",
    "empty_choices": "provider",
    "bad_schema": "validation",
    "bad_json_args": "validation",
    "invented_number": "validation",
    "ungrounded_quote": "validation",
    "truncated": "truncated",
    "refusal": "refused",
}
HANG_TIMEOUT = 5.0  # the client's, in seconds; a hang lasts 30
TERMINAL = frozenset({"refusal"})  # a refusal is an answer: not retried
# Faults that are an answer failing validation, the same answer each time for an abstract:
# met twice in a row, the re-asks stop (the model repeats itself).
REPEATABLE = frozenset({"bad_schema", "bad_json_args", "invented_number", "ungrounded_quote"})
# A cut-off answer is asked again with twice the room, twice at most (4x the cap).
ROOM_DOUBLINGS = 2


@dataclass
class Tally:
    """What one phase injected and how each abstract ended."""

    abstracts: int = 0
    records: int = 0
    errors: int = 0
    exit_code: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    hit_by: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ended: dict[str, str] = field(default_factory=dict)  # abstract id -> "record" | type
    sequence: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def repeated(self, abstract_id: str) -> str | None:
        """The invalid answer an abstract got twice in a row before any good one, if any,
        or "truncated" when its answers were cut off more often than the room can grow."""
        kinds = self.sequence[abstract_id]
        answered = kinds[: kinds.index("ok")] if "ok" in kinds else kinds
        if answered.count("truncated") > ROOM_DOUBLINGS:
            return "truncated"
        invalid = [k for k in answered if k in REPEATABLE or k in TERMINAL]
        for first, second in itertools.pairwise(invalid):
            if first == second and first in REPEATABLE:
                return first
        return None

    def outcomes(self, kind: str) -> Counter[str]:
        """How the abstracts that got `kind` at least once ended."""
        return Counter(self.ended[i] for i in self.hit_by[kind])


def _settings(server: FakeOpenAI, papers: Path, out: Path, **endpoint: Any) -> RunSettings:
    return RunSettings(
        inputs=(str(papers),),
        output=out,
        concurrency=8,
        endpoint=EndpointSettings(
            model="fake-model",
            base_url=server.base_url,
            api_key=FAKE_KEY,
            # Only a clock tells a hang from a slow answer, and this server shares the
            # client's process and a loaded machine's CPU: a 1 s timeout could cut off an
            # answer that was merely slow, and change how the tally reads the abstract's
            # faults. A hang costs one timeout (the transient phase meets one): 5 s is cheap.
            timeout=HANG_TIMEOUT,
            max_backoff=0.2,
            **endpoint,
        ),
    )


def _finish(tally: Tally, out: Path, exit_code: int) -> Tally:
    records = read_jsonl(out)
    errors = read_jsonl(out.with_name(f"{out.stem}.errors.jsonl"))
    tally.records, tally.errors, tally.exit_code = len(records), len(errors), exit_code
    tally.ended = {str(r["id"]): "record" for r in records}
    tally.ended |= {str(e["id"]): str(e["error_type"]) for e in errors}
    return tally


def transient_phase(workdir: Path, *, abstracts: int = 200, rate: float = 0.25) -> Tally:
    """Random faults of every kind; retries and re-asks should cure nearly all."""
    rng = random.Random(20261122)
    tally = Tally(abstracts=abstracts)
    papers = write_jsonl(workdir / "transient.jsonl", numbered_abstracts(abstracts))

    def rule(body: dict[str, Any]) -> str:
        key = abstract_key(prompt_parts(body)[1])
        kind = "ok" if rng.random() >= rate else rng.choice(FAULTS)
        tally.sequence[key].append(kind)
        if kind != "ok":
            tally.injected[kind] += 1
            tally.hit_by[kind].add(key)
        return kind

    out = workdir / "transient-out.jsonl"
    with FakeOpenAI(retry_after=0.05, hang_seconds=30) as server:
        server.set_fault_rule(rule)
        result = run(_settings(server, papers, out, max_retries=10, max_reasks=4))
    return _finish(tally, out, result.exit_code)


def persistent_phase(workdir: Path) -> Tally:
    """One abstract per fault kind, that fault on every request."""
    papers_list = numbered_abstracts(len(FAULTS) + 1)
    kind_of = {
        abstract_key(p["abstract"]): kind for p, kind in zip(papers_list, FAULTS, strict=False)
    }
    tally = Tally(abstracts=len(papers_list))

    def rule(body: dict[str, Any]) -> str:
        key = abstract_key(prompt_parts(body)[1])
        kind = kind_of.get(key, "ok")
        if kind != "ok":
            tally.injected[kind] += 1
            tally.hit_by[kind].add(key)
        return kind

    papers = write_jsonl(workdir / "persistent.jsonl", papers_list)
    out = workdir / "persistent-out.jsonl"
    with FakeOpenAI(retry_after=0.05, hang_seconds=30) as server:
        server.set_fault_rule(rule)
        result = run(_settings(server, papers, out, max_retries=2, max_reasks=1))
    return _finish(tally, out, result.exit_code)


def table(transient: Tally, persistent: Tally) -> str:
    """The Markdown table of the README."""
    rows = [
        "| fault | injected (transient phase) | abstracts hit, ended as | "
        "when persistent, ended as |",
        "|---|---|---|---|",
    ]
    for kind in FAULTS:
        ended = ", ".join(f"{n} {what}" for what, n in sorted(transient.outcomes(kind).items()))
        final = ", ".join(sorted(persistent.outcomes(kind)))
        rows.append(f"| `{kind}` | {transient.injected[kind]} | {ended or '-'} | {final} |")
    lost = transient.abstracts - transient.records - transient.errors
    lost += persistent.abstracts - persistent.records - persistent.errors
    rows.append(
        f"\n{transient.abstracts} abstracts with faults on {sum(transient.injected.values())} "
        f"requests: {transient.records} records, {transient.errors} error lines; "
        f"records lost: {lost}."
    )
    return "\n".join(rows)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(table(transient_phase(Path(tmp)), persistent_phase(Path(tmp))))


if __name__ == "__main__":
    main()
