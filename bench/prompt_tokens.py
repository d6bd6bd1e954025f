"""Prompt tokens beyond the abstract, on the requests the job really sends.

    .venv/bin/python bench/prompt_tokens.py [--n 39] [--strategy abstractive] [--show]

`summarize.run` sends the gold set's abstracts (tests/data/gold.jsonl) to the fake
server of the tests (over HTTP) with the remote defaults (the strategy an endpoint
gets, `abstractive` unless --strategy says otherwise); the server keeps the request
bodies. Each first request's text (the tools JSON and the message contents, in the
order a chat template renders them: system prompt, tools, then the user turn) is
counted with the embedded model's tokenizer (Qwen2.5, via llama-cpp-python with the
vocabulary only), and so is the abstract alone: the difference is what a request
costs on top of the abstract (goal: at most 250). Chat-template tokens a provider
adds (a few per message) and `tool_choice` are not counted. Re-asks, if the fake
server's answers were rejected, are counted apart. Also printed: how many tokens are
byte-identical across requests (the prefix a provider's prompt cache can reuse).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llama_cpp import Llama  # noqa: E402

from summarize import EndpointSettings, RunSettings, run  # noqa: E402
from summarize._embedded.weights import embedded_model  # noqa: E402
from summarize.testing.server import FakeOpenAI  # noqa: E402

GOLD = ROOT / "tests" / "data" / "gold.jsonl"
KEY = "sk-bench"


def bodies(papers: list[dict[str, Any]], strategy: str | None) -> list[dict[str, Any]]:
    """Every request body the job sends for `papers`, in the order sent."""
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as server:
        inputs = Path(tmp) / "papers.jsonl"
        inputs.write_text("".join(json.dumps({"title": p["title"], "abstract": p["abstract"]})
                                  + "\n" for p in papers), encoding="utf-8")  # fmt: skip
        endpoint = EndpointSettings(base_url=server.base_url, api_key=KEY, model="fake-model")
        run(RunSettings(inputs=(str(inputs),), output=Path(tmp) / "out.jsonl",
                        endpoint=endpoint, strategy=strategy))  # type: ignore[arg-type]  # fmt: skip
        return list(server.requests)


def body_text(body: dict[str, Any]) -> str:
    """What the model reads: the system prompt, then the tools (where a chat template such
    as Qwen's puts them), then the other turns."""
    messages = [str(m.get("content") or "") for m in body["messages"]]
    tools = json.dumps(body["tools"], separators=(",", ":")) if "tools" in body else ""
    return messages[0] + tools + "".join(messages[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=39)
    parser.add_argument("--strategy", choices=["abstractive", "extractive"], default=None,
                        help="default: the endpoint's (abstractive)")  # fmt: skip
    parser.add_argument("--show", action="store_true", help="print the first request's text")
    args = parser.parse_args()
    papers = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    papers = papers[: args.n]
    vocab = Llama(model_path=str(embedded_model().path), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    sent = bodies(papers, args.strategy)
    first: dict[str, dict[str, Any]] = {}
    reasks = 0
    for body in sent:
        if len(body["messages"]) > 2:  # system and user: a first request; more: a re-ask
            reasks += 1
            continue
        user = str(body["messages"][-1].get("content") or "")
        for paper in papers:
            if paper["abstract"] in user and paper["id"] not in first:
                first[paper["id"]] = body
    texts = {pid: body_text(body) for pid, body in first.items()}
    abstract = {p["id"]: count(p["abstract"]) for p in papers}
    overhead = [count(text) - abstract[pid] for pid, text in texts.items()]
    prefix = os.path.commonprefix(list(texts.values()))  # noqa: RUF071 - characters are meant
    tools = count(json.dumps(next(iter(first.values())).get("tools", []), separators=(",", ":")))
    system = count(str(next(iter(first.values()))["messages"][0]["content"]))
    if args.show:
        print(next(iter(texts.values())), end="\n\n")
    print(f"{len(papers)} gold abstracts, {statistics.mean(abstract.values()):.0f} tokens each "
          f"on average (Qwen2.5 tokenizer); {len(sent)} requests, {len(first)} first, "
          f"{reasks} re-asks")  # fmt: skip
    print(f"prompt tokens beyond the abstract, per first request: mean "
          f"{statistics.mean(overhead):.0f}, max {max(overhead)} (goal <= 250)")  # fmt: skip
    print(f"  system prompt {system}, tools JSON {tools}; byte-identical prefix "
          f"{count(prefix)} tokens")  # fmt: skip


if __name__ == "__main__":
    main()
