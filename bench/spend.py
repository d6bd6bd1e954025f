"""Spend caps under the default concurrency, on the shared abstracts, over real HTTP.

    .venv/bin/python bench/spend.py

The bug report's run: 300 abstracts, `--model gpt-4o-mini`, `--max-cost` and no
`--concurrency`, against the fake OpenAI server of the tests (0.2 s latency; then
again with a limit of 300 requests/s in its headers, so the gate opens wide). For
each cap it prints what the records say was spent (tokens x gpt-4o-mini's list
price) over the cap, the run's own figure, the widest the gate opened, and whether
the next run continued. Goal: spent <= 1.1x the cap, exit 4, and a next run that
adds records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `--tree DIR` measures the summarize of another checkout (e.g. a `git worktree` of an
# older commit) with this bench and this server.
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv else ROOT
sys.path.insert(0, str(ROOT))

from summarize.testing.server import FakeOpenAI  # noqa: E402

PAPERS = sorted((ROOT.parent / "shared" / "data" / "papers").glob("*.txt"))
PRICE_IN, PRICE_OUT = 0.15, 0.60  # gpt-4o-mini, USD per million tokens


def capped_run(server: FakeOpenAI, out: Path, cap: float) -> int:
    command = [sys.executable, "-m", "summarize", "run", *map(str, PAPERS), "-o", str(out),
               "--limit", "300",
               "--model", "gpt-4o-mini", "--max-cost", str(cap)]  # fmt: skip
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-bench", "PATH": "",
           "PYTHONPATH": str(TREE)}  # fmt: skip
    return subprocess.run(command, env=env, cwd=TREE, capture_output=True, check=False).returncode


def spent(out: Path) -> tuple[int, float]:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    dollars = sum(PRICE_IN * r["prompt_tokens"] + PRICE_OUT * r["completion_tokens"] for r in lines)
    return len(lines), dollars / 1_000_000


def main() -> None:
    for limit in (None, 300.0):
        print(f"server: latency 0.2 s, rate limit {f'{limit:g} req/s' if limit else 'none'}")
        with FakeOpenAI(latency=0.2, rps_limit=limit) as server:
            caps(server)


def caps(server: FakeOpenAI) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for cap in (0.002, 0.01, 0.03):
            out = Path(tmp) / f"cap-{cap}.jsonl"
            code = capped_run(server, out, cap)
            records, dollars = spent(out)
            manifest = json.loads(out.with_name(f"{out.stem}.manifest.json").read_text())
            again = capped_run(server, out, cap * 2)
            more, _ = spent(out)
            print(f"--max-cost {cap:<6g} exit {code}: {records:3d} records, spent ${dollars:.4f}"
                  f" = {dollars / cap:.2f}x the cap (goal <= 1.10); the run says "
                  f"${manifest['cost_usd']:.4f}; gate opened to "
                  f"{manifest['limits']['peak_in_flight']}; next run (cap x2): exit {again}, "
                  f"{more - records} more records")  # fmt: skip


if __name__ == "__main__":
    main()
