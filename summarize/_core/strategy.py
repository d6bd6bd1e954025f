"""Strategies: how one abstract is put to a model, and how its answer becomes a `Summary`.

- `abstractive` (`prompts/summarize.md`): the model writes problem, method and
  result in its own words and quotes the sentence of each gain. The answer is a
  `Summary`. For capable models, remote or local.
- `extractive` (`prompts/extract.md`): the abstract is shown as numbered sentences
  followed by its candidate figures (`figures.figures`), each with a letter. The
  model answers with numbers and letters (`Extraction`), and the summary is made of
  the sentences and figures it chose, verbatim: grounded by construction, a few
  dozen generated tokens. For small local models, which copy and cut sentences when
  asked to write them.

The prompt file names its strategy; a run picks the prompt (`plan.choose_prompt`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .. import _figures as figures
from .. import _grounding as grounding
from .. import _picks as picks
from .._extraction import Extraction, extraction_model_for
from .._figures import Figure
from .._items import Item
from .._prompt import Prompt
from .._schema import QUOTE_MAX, ClaimedGain, Summary, summary_model_for

Finish = Callable[[Any], Summary]
# Sentences offered for each of problem, method and result (see `sentence_choices`).
OFFERED = 1
_NONE = "(none states a figure)"


@dataclass(frozen=True, slots=True)
class Question:
    """One abstract as a strategy asks about it: the messages, the answer's model, and how
    a validated answer becomes a `Summary`."""

    messages: list[dict[str, str]]
    answer_model: type[BaseModel]
    finish: Finish


def question(prompt: Prompt, item: Item, *, constrain_quotes: bool = False) -> Question:
    """How `prompt`'s strategy asks about `item`."""
    if prompt.strategy == "extractive":
        return _extractive(prompt, item)
    model = (
        summary_model_for(item.abstract, _figure_texts(item.abstract))
        if constrain_quotes
        else Summary
    )
    messages = prompt.messages(title=item.title, abstract=item.abstract)
    return Question(messages, model, _as_summary)


def _figure_texts(abstract: str) -> list[str]:
    """The abstract's candidate gain figures as a gain's value states them (`50%`)."""
    sentences = [grounding.plain_text(s) for s in grounding.sentences(abstract)]
    start = picks.own_voice_starts(sentences)
    return [f.text for f in figures.figures(sentences, max_quote=QUOTE_MAX, start=start)]


def _as_summary(answer: Any) -> Summary:
    summary: Summary = answer
    return summary


def _extractive(prompt: Prompt, item: Item) -> Question:
    sentences = [" ".join(s.split()) for s in grounding.sentences(item.abstract)]
    found = figures.figures(sentences, max_quote=QUOTE_MAX, start=picks.own_voice_starts(sentences))
    choices = sentence_choices(sentences)
    shown = list(range(1, len(sentences) + 1))
    if all(len(numbers) == 1 for numbers in choices.values()):
        # The rule has chosen the parts; the model chooses only among the figures, and
        # needs only their sentences (prompt tokens are most of a local request's time).
        shown = sorted({f.sentence for f in found})
    numbered = "\n".join(f"{number}. {sentences[number - 1]}" for number in shown) or _NONE
    listed = "".join(f"\n{f.label}: {f.text} in {f.sentence}" for f in found)
    messages = prompt.messages(
        title=item.title,
        abstract=item.abstract,
        sentences=numbered,
        figures=f"\n\nFigures:{listed}" if found else "",
    )
    model = extraction_model_for(choices, [f.label for f in found])

    def finish(answer: Any) -> Summary:
        return from_extraction(answer, sentences, found, abstract=item.abstract, title=item.title)

    return Question(messages, model, finish)


def sentence_choices(sentences: list[str], *, offered: int | None = None) -> dict[str, list[int]]:
    """The sentences each field may be: the `offered` best of `picks.ranked`, best first.

    A small model chooses far better among a few than among all, and on the gold set
    no better than the rule's first choice (`bench/embedded.py`): by default the rule
    alone picks, and the model's answer for these fields is forced.
    """
    top = OFFERED if offered is None else offered
    return {name: ranked[:top] for name, ranked in picks.ranked(sentences).items()}


def from_extraction(
    answer: Extraction, sentences: list[str], found: list[Figure], *, abstract: str, title: str = ""
) -> Summary:
    """The summary an extraction stands for: the chosen sentences and figures, verbatim.

    A figure chosen twice counts once; its metric is named from its sentence's words
    (`figures.metric`). With no figure chosen, an advantage the abstract claims in words
    is its `qualitative` (`picks.claim`). The sentence caps of `Summary` are rules for
    written sentences, so the summary is constructed, not validated; its gains are
    validated against the abstract like any other.
    """
    by_label = {f.label: f for f in found}
    gains = [
        {
            "quote": sentences[f.sentence - 1],
            "metric": figures.metric(sentences[f.sentence - 1], f.text),
            "value": f.text,
        }
        for f in (by_label[label] for label in dict.fromkeys(answer.gains))
    ]
    qualitative = None if gains else picks.claim(sentences, title=title)
    claimed = ClaimedGain.model_validate(
        {"gains": gains, "qualitative": qualitative}, context={"abstract": abstract}
    )
    return Summary.model_construct(
        problem=sentences[answer.problem - 1],
        method=sentences[answer.method - 1],
        result=sentences[answer.result - 1],
        claimed_gain=claimed,
    )
