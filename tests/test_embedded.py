"""The real embedded model, through the CLI, with no key and no endpoint configured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from summarize import _grounding as grounding
from summarize._core.records import ErrorRecord, Record
from summarize._embedded.weights import EMBEDDED, embedded_model
from summarize._evaluate import evaluate, rouge_l
from summarize._review import validate_file
from tests.conftest import PAPERS, read_jsonl

GOLD = Path(__file__).parent / "data" / "gold.jsonl"
SAMPLE = 3


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`summarize ARGS` as a user runs it: no key and no endpoint, so the embedded model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, "-m", "summarize", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip


@pytest.mark.embedded
def test_the_readmes_first_command_makes_grounded_records_on_the_shared_pages(
    tmp_path: Path,
) -> None:
    listings = sorted(str(p) for p in PAPERS.glob("*.txt")) if PAPERS.is_dir() else []
    if not listings:
        pytest.skip(f"no shared papers at {PAPERS}")
    done = run_cli("run", *listings, "--limit", str(SAMPLE), cwd=tmp_path)
    out = tmp_path / "outputs" / "summaries.jsonl"
    records = [Record.model_validate(r) for r in read_jsonl(out)]
    error_lines = read_jsonl(out.with_name("summaries.errors.jsonl"))
    errors = [ErrorRecord.model_validate(e) for e in error_lines]
    assert len(records) + len(errors) == SAMPLE
    assert len(records) >= SAMPLE - 1, errors  # at least 2 of 3 records, not errors
    assert done.returncode == (0 if not errors else 1), done.stderr
    assert f"{len(records)} done" in done.stdout
    assert "loading model" in done.stderr
    for record in records:
        assert record.model.startswith(EMBEDDED.file_name)
        assert record.model.split("sha256:")[1] == EMBEDDED.sha256[:12]
        assert record.strategy == "extractive" and record.completion_tokens > 0
    assert validate_file(out) == []  # sentences of the abstract, gains grounded


@pytest.mark.embedded
def test_the_embedded_model_tells_claimed_gains_from_none_on_gold_abstracts(
    tmp_path: Path,
) -> None:
    gold = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    with_gains = [g for g in gold if g["claimed_gain"]["gains"]][:3]
    without = [g for g in gold if not g["claimed_gain"]["gains"]][:3]
    sample = with_gains + without
    papers = tmp_path / "gold.jsonl"
    papers.write_text("".join(json.dumps({"title": g["title"], "abstract": g["abstract"]})
                              + "\n" for g in sample))  # fmt: skip
    done = run_cli("run", str(papers), "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(tmp_path / "out.jsonl")
    scores = evaluate(sample, records, embeddings=False)
    assert scores.matched == len(sample)
    assert scores.faithful == len(sample)  # no invented number
    assert scores.none_correct >= 4  # claims a gain where gold does, none where not
    assert scores.gain_tp >= 2


@pytest.mark.embedded
def test_embedded_server_survives_latex_quotes_in_the_request_schema(tmp_path: Path) -> None:
    """`Nystr\\"om` in a sentence once broke llama.cpp's grammar and killed the server."""
    gold = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    paper = next(g for g in gold if '\\"' in g["abstract"])
    papers = tmp_path / "p.jsonl"
    papers.write_text(json.dumps({"title": paper["title"], "abstract": paper["abstract"]}) + "\n")
    out = tmp_path / "out.jsonl"
    done = run_cli("run", str(papers), "-o", str(out), "--max-reasks", "0",
                   "--strategy", "abstractive", cwd=tmp_path)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert [e["error_type"] for e in errors] in ([], ["validation"], ["truncated"]), errors


@pytest.mark.embedded
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # llama_cpp's quiet mode leaks /dev/null
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_shared_abstracts_request_schema_compiles_to_a_llama_grammar() -> None:
    import llama_cpp  # noqa: PLC0415 - the local extra
    from llama_cpp.llama_grammar import LlamaGrammar  # noqa: PLC0415

    from summarize._core.request import tool_for  # noqa: PLC0415
    from summarize._readers import read_items  # noqa: PLC0415
    from summarize._schema import summary_model_for  # noqa: PLC0415

    llm = llama_cpp.Llama(str(embedded_model().path), vocab_only=True, verbose=False)
    vocab = llm._model.vocab
    listings = sorted(str(p) for p in PAPERS.glob("*.txt")) or [str(GOLD)]
    items, _ = read_items(listings)
    broken = []
    for item in items:
        # What is sent: the tool's parameters, with each abstract's quotes as an enum.
        schema = tool_for(summary_model_for(item.abstract))["function"]["parameters"]
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


# Gold abstracts with a clear gap, method and findings, one claiming in words only.
PICK_SAMPLE = ("HyperAttention", "PowerNorm", "InfoBatch", "DuoAttention", "Layer Normalization")


@pytest.mark.embedded
def test_the_embedded_picks_are_the_right_kind_of_sentence_on_gold_abstracts(
    tmp_path: Path,
) -> None:
    gold = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    sample = [next(g for g in gold if g["title"].startswith(name)) for name in PICK_SAMPLE]
    papers = tmp_path / "gold.jsonl"
    papers.write_text("".join(json.dumps({"title": g["title"], "abstract": g["abstract"]})
                              + "\n" for g in sample))  # fmt: skip
    done = run_cli("run", str(papers), "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    position, picked = [], []
    for paper in sample:
        record = records[paper["id"]]
        sentences = [" ".join(s.split()) for s in grounding.sentences(paper["abstract"])]
        where = {name: sentences.index(record[name]) for name in ("problem", "method", "result")}
        # The gap before the method, the findings after it: never the same sentence.
        assert where["problem"] <= where["method"] < where["result"], (paper["title"], where)
        assert not re.search(r"\bwe (?:propose|introduce|present)\b", record["result"], re.I)
        for gain in record["claimed_gain"]["gains"]:  # the quote's words, not the figure alone
            quoted = grounding.plain_text(gain["quote"])
            assert all(word in quoted for word in gain["metric"].split()), gain
            assert gain["metric"] != gain["value"]
        own = next(s for s in sentences if re.search(r"\b(?:we|our|this paper)\b", s, re.I))
        baseline = {"problem": sentences[0], "method": own, "result": sentences[-1]}
        for name in ("problem", "method", "result"):
            picked.append(rouge_l(record[name], paper[name]))
            position.append(rouge_l(baseline[name], paper[name]))
    # At least as close to the hand-written fields as the position rule, on the whole.
    assert sum(picked) >= sum(position)
    words_only = records[sample[-1]["id"]]["claimed_gain"]
    assert words_only["gains"] == [] and words_only["qualitative"]
