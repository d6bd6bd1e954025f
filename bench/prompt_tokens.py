"""Prompt tokens beyond the abstract, per instructor mode, on the requests really sent.

    .venv/bin/python bench/prompt_tokens.py [--n 39]

For each mode, instructor sends the gold set's abstracts to the fake server of the
tests (over HTTP); the server keeps the request bodies. Each body's text (message
contents, plus the tools or response_format JSON) is counted with the embedded
model's tokenizer (Qwen2.5, via llama-cpp-python with the vocabulary only), and
so is the abstract alone: the difference is what a request costs on top of the
abstract. Chat-template tokens a provider adds (a few per message) are not
counted. Also printed: how many of those prompt tokens are byte-identical across
requests (the prefix a provider's prompt cache can reuse).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import instructor  # noqa: E402
from llama_cpp import Llama  # noqa: E402

from summarize.live.local import embedded_model  # noqa: E402
from tests.fakeserver import FakeOpenAI  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from throughput import instructor_loop  # noqa: E402

GOLD = ROOT / "tests" / "data" / "gold.jsonl"
MODES = {"tools (the job's)": instructor.Mode.TOOLS, "json_schema": instructor.Mode.JSON_SCHEMA,
         "json (schema in the prompt)": instructor.Mode.JSON}  # fmt: skip


def bodies(mode: instructor.Mode, papers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with FakeOpenAI() as server:
        instructor_loop(server.base_url, papers, mode, retries=0)
        return server.requests


def body_text(body: dict[str, Any]) -> str:
    """What the model reads, schema first: providers render tools and response formats
    ahead of the messages, and that is the order their prompt caches see."""
    text = ""
    for key in ("tools", "tool_choice", "response_format"):
        if key in body:
            text += json.dumps(body[key], separators=(",", ":"))
    return text + "".join(str(m.get("content") or "") for m in body["messages"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=39)
    args = parser.parse_args()
    papers = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    papers = papers[: args.n]
    vocab = Llama(model_path=str(embedded_model().path), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    abstract_tokens = sum(count(p["abstract"]) for p in papers) / len(papers)
    print(f"{len(papers)} gold abstracts, {abstract_tokens:.0f} tokens each on average "
          f"(Qwen2.5 tokenizer)")  # fmt: skip
    for name, mode in MODES.items():
        texts = [body_text(b) for b in bodies(mode, papers)]
        total = sum(count(t) for t in texts) / len(texts)
        cacheable = count(os.path.commonprefix(texts))  # noqa: RUF071 - characters are meant
        print(f"{name:<28} {total:7.0f} prompt tokens a request, {total - abstract_tokens:5.0f} "
              f"beyond the abstract ({total / abstract_tokens:.2f}x the abstract); "
              f"{cacheable} in a byte-identical prefix")  # fmt: skip


if __name__ == "__main__":
    main()
