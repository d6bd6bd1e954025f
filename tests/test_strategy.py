"""How a model is asked: the extractive strategy for small local models, the abstractive one
for capable endpoints, and records that say which made them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from summarize import _figures as figures
from summarize import _grounding as grounding
from summarize import _picks as picks
from summarize._core import strategy
from summarize._core.plan import choose_prompt
from summarize._core.records import Record
from summarize._core.strategy import question, sentence_choices
from summarize._errors import ConfigError
from summarize._items import Item
from summarize._prompt import EXTRACT_PROMPT, load_prompt
from summarize._review import validate_file
from summarize._schema import QUOTE_MAX
from summarize._settings import RunSettings
from summarize.testing.server import FakeOpenAI
from tests.conftest import ABSTRACTS, read_jsonl
from tests.test_run import summarize_in_process

ABSTRACT = (
    "Training large models is costly. We introduce TinyTrain, a schedule that skips "
    "redundant steps. TinyTrain reduces training cost by 50\\% and reaches 17.5times "
    "higher throughput on 8 benchmarks. It was trained on 1.2M images with 7B parameters."
)
ITEM = Item("x", "TinyTrain", ABSTRACT)


def extractive() -> Any:
    return question(load_prompt(EXTRACT_PROMPT), ITEM)


@pytest.mark.parametrize(
    ("sentence", "found"),
    [
        ("It cuts memory by 40% and is 3.3x faster.", ["40%", "3.3x"]),
        ("Training is 5-fold faster and 40 times cheaper.", ["5-fold", "40x"]),
        ("PN outperforms LN by 0.4/0.6 BLEU on WMT14.", ["0.4/0.6 BLEU"]),
        ("It improves the FID by up to 72\\% on CIFAR-10.", ["72%"]),
        ("It runs 17.5times faster.", ["17.5x"]),
        ("It speeds decoding 2 to 10 times.", ["2 to 10x"]),
        ("We train on 1.2M images with 7B parameters in 2024.", []),
        ("Images of 64times64 pixels and GPT-4 outputs.", []),
        ("It reaches 50.2 mAP in 12 epochs (1x schedule), better than DETR.", []),
        ("GPT-4 admits uncertainty more often (35.8%) than others.", []),
        ("It achieves 87.3% top-1 accuracy, better than ViT.", []),
        ("It gives up to 2% accuracy improvements over ViT.", ["2%"]),
    ],
)
def test_candidate_figures_are_relative_changes_not_sizes_or_names(
    sentence: str, found: list[str]
) -> None:
    assert [f.text for f in figures.figures([sentence], max_quote=QUOTE_MAX)] == found


def test_extractive_question_numbers_the_sentences_and_letters_the_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(strategy, "OFFERED", 3)  # the model chooses the parts too
    asked = extractive()
    system, user = (m["content"] for m in asked.messages)
    assert "\n1. Training large models is costly.\n" in user
    assert "\n3. TinyTrain reduces training cost by 50\\%" in user
    assert "\nA: 50% in 3\nB: 17.5x in 3" in user
    assert ABSTRACT not in system and "- gains: the figures that measure" in system
    schema = asked.answer_model.model_json_schema()
    assert schema["properties"]["gains"]["items"]["enum"] == ["A", "B"]


def test_when_the_rule_picks_the_parts_the_model_is_shown_only_the_figures_sentences() -> None:
    user = extractive().messages[1]["content"]
    assert user.startswith("Sentences:\n3. TinyTrain reduces training cost by 50\\%")
    assert "1. Training" not in user and "4. It was trained" not in user
    assert "\nA: 50% in 3\nB: 17.5x in 3" in user
    survey = question(load_prompt(EXTRACT_PROMPT), Item("s", "Survey", ABSTRACTS[1][1]))
    assert survey.messages[1]["content"] == "Sentences:\n(none states a figure)"


def test_each_field_is_offered_the_rules_best_sentence_by_default() -> None:
    properties = extractive().answer_model.model_json_schema()["properties"]
    assert choices(properties["problem"]) == [1]  # background, before "We introduce"
    assert choices(properties["method"]) == [2]
    assert choices(properties["result"]) == [3]  # the finding, not the sizes after it
    assert sentence_choices(["In this paper we study X.", "It works."]) == {
        "problem": [1], "method": [1], "result": [2]
    }  # fmt: skip


def test_the_model_may_be_offered_the_rules_top_few_best_first() -> None:
    ranked = sentence_choices(GAP_ABSTRACT, offered=3)
    assert all(len(numbers) == 3 for numbers in ranked.values())
    assert ranked == {name: picks.ranked(GAP_ABSTRACT)[name][:3] for name in picks.FIELDS}


# Background, the gap, the method, how it works, a finding, an outlook.
GAP_ABSTRACT = [
    "Transformers based on attention have achieved impressive success in many areas.",
    "However, attention has quadratic complexity, which limits long inputs.",
    "We propose LinAttn, a linear attention.",
    "LinAttn uses a kernel feature map via random projections to approximate softmax.",
    "Experiments show that LinAttn outperforms prior linear attentions on five benchmarks.",
    "We hope this work inspires further research.",
]


def test_the_problem_is_the_gap_before_the_method_not_the_opening_background() -> None:
    assert picks.ranked(GAP_ABSTRACT)["problem"][0] == 2


def test_the_method_is_how_the_authors_do_it_and_never_comes_before_their_voice() -> None:
    ranked = picks.ranked(GAP_ABSTRACT)["method"]
    assert ranked[0] in (3, 4)
    assert ranked.index(1) > ranked.index(3) and ranked.index(2) > ranked.index(3)


def test_the_result_is_a_finding_after_the_method_not_the_proposal_or_an_outlook() -> None:
    ranked = picks.ranked(GAP_ABSTRACT)["result"]
    assert ranked[0] == 5
    assert ranked.index(3) > ranked.index(6) > ranked.index(5)


def test_without_the_authors_voice_every_sentence_is_still_ranked() -> None:
    plain = ["Cats purr.", "Dogs bark loudly.", "Birds sing at dawn."]
    assert {name: sorted(r) for name, r in picks.ranked(plain).items()} == {
        name: [1, 2, 3] for name in picks.FIELDS
    }


def test_the_static_part_of_the_extractive_prompt_comes_first_and_is_short() -> None:
    other = question(load_prompt(EXTRACT_PROMPT), Item("y", "T", ABSTRACTS[0][1]))
    assert other.messages[0] == extractive().messages[0]
    # Overhead beyond the abstract, in characters (~4 a token): the 250-token goal.
    overhead = sum(len(m["content"]) for m in extractive().messages) - len(ABSTRACT)
    assert overhead < 250 * 4


def test_an_abstract_without_figures_is_offered_no_gains_at_all() -> None:
    asked = question(load_prompt(EXTRACT_PROMPT), Item("s", "Survey", ABSTRACTS[1][1]))
    assert "Figures:" not in asked.messages[1]["content"]
    assert "gains" not in asked.answer_model.model_json_schema()["properties"]


def test_an_extraction_becomes_verbatim_sentences_and_grounded_gains() -> None:
    asked = extractive()
    answer = asked.answer_model.model_validate(
        {"problem": 1, "method": 2, "result": 3, "gains": ["B", "A", "B"]}
    )
    summary = asked.finish(answer)
    sentences = grounding.sentences(ABSTRACT)
    assert (summary.problem, summary.method, summary.result) == tuple(sentences[:3])
    assert [g.value for g in summary.claimed_gain.gains] == ["17.5x", "50%"]
    assert all(g.quote == sentences[2] for g in summary.claimed_gain.gains)
    metrics = [g.metric for g in summary.claimed_gain.gains]
    assert metrics == ["higher throughput on 8 benchmarks", "training cost"]


@pytest.mark.parametrize(
    "answer",
    [
        {"problem": 5, "method": 2, "result": 3, "gains": []},
        {"problem": 1, "method": 2, "result": 3, "gains": ["C"]},
        {"problem": 1, "method": 2, "result": 3, "gains": ["A", "B", "A", "B", "A"]},
        {"problem": 1, "method": 2, "gains": []},
    ],
)
def test_an_extraction_outside_the_abstracts_choices_is_rejected(answer: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        extractive().answer_model.model_validate(answer)


def test_a_local_model_asks_extractively_and_an_endpoint_abstractively() -> None:
    settings = RunSettings(inputs=("p.jsonl",))
    assert choose_prompt(settings, local=True).strategy == "extractive"
    assert choose_prompt(settings, local=False).strategy == "abstractive"
    chosen = RunSettings(inputs=("p.jsonl",), strategy="extractive")
    assert choose_prompt(chosen, local=False).strategy == "extractive"


def test_a_prompt_file_that_contradicts_the_strategy_flag_is_refused(tmp_path: Path) -> None:
    settings = RunSettings(inputs=("p.jsonl",), prompt=EXTRACT_PROMPT, strategy="abstractive")
    with pytest.raises(ConfigError, match="strategy is extractive, not --strategy abstractive"):
        choose_prompt(settings, local=False)
    bad = tmp_path / "p.md"
    bad.write_text('+++\nversion = "1"\nstrategy = "poetic"\n+++\n[system]\nx\n[user]\ny\n')
    with pytest.raises(ConfigError, match="strategy must be one of"):
        load_prompt(bad)


def choices(spec: dict[str, Any]) -> list[Any]:
    """The values a JSON Schema property allows: its enum, or its one const."""
    return list(spec["enum"]) if "enum" in spec else [spec["const"]]


def pick_from_the_schema(body: dict[str, Any]) -> dict[str, Any]:
    """A model that reads its choices from the request's tool schema, as a grammar does."""
    props = body["tools"][0]["function"]["parameters"]["properties"]
    answer: dict[str, Any] = {
        "problem": choices(props["problem"])[0],
        "method": choices(props["method"])[0],
        "result": choices(props["result"])[-1],
    }
    if "gains" in props:
        answer["gains"] = props["gains"]["items"]["enum"][:1]
    return answer


def test_an_extractive_run_writes_records_that_name_their_strategy(
    papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=pick_from_the_schema)
    result = summarize_in_process(fake, papers, out, strategy="extractive", max_retries=6)
    sent = fake.requests[0]["messages"][1]["content"]
    assert result.exit_code == 0
    assert sent.startswith("Sentences:\n")
    records = [Record.model_validate(r) for r in read_jsonl(out)]
    assert len(records) == 3
    assert {r.strategy for r in records} == {"extractive"}
    for record in records:
        sentences = grounding.sentences(record.abstract)
        choices = sentence_choices(sentences)
        assert (record.problem, record.method, record.result) == (
            sentences[choices["problem"][0] - 1],
            sentences[choices["method"][0] - 1],
            sentences[choices["result"][-1] - 1],
        )
    gains = {r.title: [g.value for g in r.claimed_gain.gains] for r in records}
    assert gains == {"Fast Widgets": ["4.2%"], "A Survey of Gadgets": [], "Latex Gains": ["50%"]}
    assert validate_file(out) == []


def test_an_abstractive_record_says_so(papers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    summarize_in_process(FakeOpenAI(), papers, out, max_retries=6)
    assert {r["strategy"] for r in read_jsonl(out)} == {"abstractive"}


def test_validate_rejects_an_extractive_record_whose_sentence_is_not_the_abstracts(
    papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI(responder=pick_from_the_schema)
    summarize_in_process(fake, papers, out, strategy="extractive", max_retries=6)
    records = read_jsonl(out)
    records[0]["method"] = "A sentence the abstract never wrote."
    out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    problems = [str(p) for p in validate_file(out)]
    assert len(problems) == 1
    assert re.search(r":1: method: not a sentence of the abstract", problems[0])


def test_a_reask_that_repeats_the_rejected_answer_is_not_sent_again(
    papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    fake = FakeOpenAI()
    fake.set_fault_rule(lambda body: "invented_number")
    result = summarize_in_process(fake, papers, out, max_reasks=3, limit=1, max_retries=6)
    sent = len(fake.requests)
    assert result.exit_code == 1
    assert sent == 2  # the answer, then one re-ask that got the same answer: no third
    assert [e["attempts"] for e in read_jsonl(tmp_path / "out.errors.jsonl")] == [2]


def test_a_sentence_that_announces_code_is_never_a_part() -> None:
    sentences = ["A is hard.", "We propose B.", "B wins by 3%.",
                 "Our code is available at https://github.com/x/y."]  # fmt: skip
    assert sentence_choices(sentences)["result"] == [3]


@pytest.mark.parametrize(
    ("sentence", "figure", "metric"),
    [
        ("In particular, PN outperforms LN by 0.4/0.6 BLEU on IWSLT14/WMT14 and 5.6/3.0 PPL "
         "on PTB/WikiText-103.", "0.4/0.6 BLEU", "BLEU on IWSLT14/WMT14"),
        ("In particular, PN outperforms LN by 0.4/0.6 BLEU on IWSLT14/WMT14 and 5.6/3.0 PPL "
         "on PTB/WikiText-103.", "5.6/3.0 PPL", "PPL on PTB/WikiText-103"),
        ("We propose 1-bit Adam that reduces the communication volume by up to 5times, offers "
         "much better scalability.", "5x", "communication volume"),
        ("Experiments show that 1-bit Adam enables up to 3.3times higher throughput for "
         "BERT-Large pre-training.", "3.3x", "higher throughput for BERT-Large pre-training"),
        ("Moreover, our model achieves an absolute improvement up to 52.5% over GPT-4.",
         "52.5%", "absolute improvement"),
        ("In addition, we show that model size can be reduced by over 50\\%, and inference "
         "times improved.", "50%", "model size"),
        ("InfoBatch can respectively save 24.8\\% and 27\\% cost on MAE pretraining.",
         "24.8%", "cost on MAE pretraining"),
        ("PIXART-alpha only takes 10.8\\% of Stable Diffusion v1.5's training time (675 vs. "
         "6,250 A100 GPU days).", "10.8%", "Stable Diffusion v1.5's training time"),
        ("When solving GSM8K, coverage with Llama-3 models grows to over 95% with 10,000 "
         "samples.", "95%", "coverage with Llama-3 models grows to over 95% with 10,000 samples"),
        ("GPT-4V reached the highest accuracy (58%) in counting nodes.", "58%",
         "GPT-4V reached the highest accuracy (58%) in counting nodes"),
    ],
)  # fmt: skip
def test_a_figures_metric_names_what_improved_in_a_whole_phrase_of_its_sentence(
    sentence: str, figure: str, metric: str
) -> None:
    assert figures.metric(sentence, figure) == metric


def test_figures_before_the_authors_voice_are_background_not_candidates() -> None:
    sentences = ["Quantization can cut memory by 16x in theory.", "We propose Q.",
                 "Q reduces memory by 4x."]  # fmt: skip
    start = picks.own_voice_starts(sentences)
    assert start == 2
    found = figures.figures(sentences, max_quote=QUOTE_MAX, start=start)
    assert [f.text for f in found] == ["4x"] and found[0].label == "A"
    asked = question(load_prompt(EXTRACT_PROMPT), Item("b", "Q", " ".join(sentences)))
    assert "16x" not in asked.messages[1]["content"]


def test_two_differences_in_one_sentence_are_two_candidate_figures() -> None:
    sentence = ("In particular, PN outperforms LN by 0.4/0.6 BLEU on IWSLT14/WMT14 and 5.6/3.0 "
                "PPL on PTB/WikiText-103.")  # fmt: skip
    found = figures.figures([sentence], max_quote=QUOTE_MAX)
    assert [f.text for f in found] == ["0.4/0.6 BLEU", "5.6/3.0 PPL"]


def test_an_advantage_claimed_in_words_with_no_figure_is_the_records_qualitative() -> None:
    abstract = (
        "Training recurrent networks is slow. We propose layer normalization, which "
        "normalizes the summed inputs of a layer. Empirically, we show that layer "
        "normalization can substantially reduce the training time compared with "
        "previously published techniques."
    )
    asked = question(load_prompt(EXTRACT_PROMPT), Item("q", "Layer Normalization", abstract))
    summary = asked.finish(asked.answer_model.model_validate({"problem": 1, "method": 2,
                                                              "result": 3}))  # fmt: skip
    assert summary.claimed_gain.kind == "qualitative"
    assert summary.claimed_gain.qualitative == grounding.sentences(abstract)[2]


def test_a_survey_claims_no_advantage_in_words() -> None:
    claimed = "We show that MoE substantially improves efficiency over dense models."
    survey = ["Mixture of experts has become popular.", "In this survey, we review MoE.", claimed]
    method = ["Mixture of experts has become popular.", "We propose SparseMoE.", claimed]
    assert picks.claim(survey, title="Mixture of Experts") is None
    assert picks.claim(method, title="A Survey on Mixture of Experts") is None
    assert picks.claim(method, title="SparseMoE") == claimed


@pytest.mark.parametrize(
    ("sentence", "found"),
    [
        ("The model reaches an accuracy of 78.49% on the test set.", []),
        ("Labels cover 98.5% of the samples.", []),
        ("It reaches 87.3% accuracy, outperforming ViT by 2.0%.", ["2.0%"]),  # a score, a gain
        ("It is 3x cheaper to train.", ["3x"]),
    ],
)
def test_a_percentage_is_a_candidate_only_in_a_sentence_that_compares(
    sentence: str, found: list[str]
) -> None:
    assert [f.text for f in figures.figures([sentence], max_quote=QUOTE_MAX)] == found


def test_a_code_sentence_before_the_authors_voice_does_not_shift_the_choices() -> None:
    sentences = ["Code is at https://x.y/z.", "A is hard.", "B is slow.", "We propose C.",
                 "C wins."]  # fmt: skip
    assert sentence_choices(sentences, offered=2) == {
        "problem": [3, 2], "method": [4, 5], "result": [5, 3]
    }  # fmt: skip


def test_the_result_is_not_the_methods_sentence_when_a_later_one_exists() -> None:
    # Swin Transformer V2's shape: the sentence that proposes also has every finding cue.
    sentences = ["Large vision models are hard to train.",
                 "This paper aims to explore large-scale models in computer vision.",
                 "Experiments show that our techniques achieve better results via a new method.",
                 "The model is large."]  # fmt: skip
    ranked = picks.ranked(sentences)
    assert ranked["result"][0] != ranked["method"][0]
    assert ranked["result"][0] > ranked["method"][0]
