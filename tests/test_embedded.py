"""The real embedded model, through the CLI, with no key and no endpoint configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from summarize.errors import ErrorType
from summarize.local import EMBEDDED, embedded_model
from summarize.schema import ErrorRecord, Record
from tests.conftest import PAPERS, read_jsonl

GOLD = Path(__file__).parent / "data" / "gold.jsonl"
SAMPLE = 3


def shared_input() -> str:
    """A real listing page when the shared data is here; else the gold set (same abstracts)."""
    listings = sorted(PAPERS.glob("*.txt")) if PAPERS.is_dir() else []
    return str(listings[0]) if listings else str(GOLD)


@pytest.mark.embedded
def test_embedded_model_turns_shared_abstracts_into_records_or_reasoned_errors(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run(
        [sys.executable, "-m", "summarize", "run", shared_input(), "--limit", str(SAMPLE),
         "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    records = [Record.model_validate(r) for r in read_jsonl(out)]
    errors = [ErrorRecord.model_validate(e) for e in read_jsonl(tmp_path / "out.errors.jsonl")]
    assert len(records) + len(errors) == SAMPLE
    assert len({r.id for r in records} | {e.id for e in errors}) == SAMPLE
    for record in records:
        assert record.model.startswith(EMBEDDED.file_name)
        assert record.model.split("sha256:")[1] == EMBEDDED.sha256[:12]
        assert record.completion_tokens > 0
    for error in errors:
        assert error.error_type in set(ErrorType)
        assert error.message
    assert f"{len(records)} done" in done.stdout


@pytest.mark.embedded
def test_embedded_server_survives_latex_quotes_in_the_request_schema(tmp_path: Path) -> None:
    """`Nystr\\"om` in a sentence once broke llama.cpp's grammar and killed the server."""
    gold = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    paper = next(g for g in gold if '\\"' in g["abstract"])
    papers = tmp_path / "p.jsonl"
    papers.write_text(json.dumps({"title": paper["title"], "abstract": paper["abstract"]}) + "\n")
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "summarize", "run", str(papers), "-o", str(out),
         "--max-reasks", "0"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert [e["error_type"] for e in errors] in ([], ["validation"], ["truncated"]), errors


@pytest.mark.embedded
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # llama_cpp's quiet mode leaks /dev/null
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_shared_abstracts_request_schema_compiles_to_a_llama_grammar() -> None:
    import llama_cpp  # noqa: PLC0415 - the local extra
    from instructor.v2.providers.openai.schema import generate_openai_schema  # noqa: PLC0415
    from llama_cpp.llama_grammar import LlamaGrammar  # noqa: PLC0415

    from summarize.job import read_items  # noqa: PLC0415
    from summarize.schema import summary_model_for  # noqa: PLC0415

    llm = llama_cpp.Llama(str(embedded_model().path), vocab_only=True, verbose=False)
    vocab = llm._model.vocab
    listings = sorted(str(p) for p in PAPERS.glob("*.txt")) or [str(GOLD)]
    items, _ = read_items(listings)
    broken = []
    for item in items:
        schema = generate_openai_schema(summary_model_for(item.abstract))["parameters"]
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode(), grammar._root.encode()
        )
        if not sampler:
            broken.append(item.title)
        else:
            llama_cpp.llama_sampler_free(sampler)
    llm.close()
    assert broken == []
