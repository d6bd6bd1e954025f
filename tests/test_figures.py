"""Which figures of a sentence are candidate gains: the rules that tell a level, a size or
a price from a claimed improvement, each on a sentence from a real abstract."""

from __future__ import annotations

import pytest

from summarize import _figures as figures
from summarize._schema import QUOTE_MAX


def found(sentence: str) -> list[str]:
    return [f.text for f in figures.figures([sentence], max_quote=QUOTE_MAX)]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # "More than" says how large a share is; it compares nothing (LLM.int8()).
        (
            "However, for the emergent outliers, we also include a new mixed-precision "
            "decomposition scheme, which isolates the outlier feature dimensions into a 16-bit "
            "matrix multiplication while still more than 99.9% of values are multiplied in "
            "8-bit.",
            [],
        ),
        # A level reached, "over" its size (Large Language Monkeys).
        (
            "When solving math word problems from GSM8K and MATH, coverage with Llama-3 models "
            "grows to over 95% with 10,000 samples.",
            [],
        ),
        # A comparison far after the figure is about something else (CodeNet).
        (
            "Additionally, CodeNet provides sample input and output test sets for 98.5% of the "
            "code samples, which can be used as an oracle for determining code correctness and "
            "potentially guide reinforcement learning for code quality improvements.",
            [],
        ),
        # A comparison before the figure, or right after it, makes it a change (PixArt-alpha).
        (
            "Moreover, compared with a larger SOTA model, RAPHAEL, our training cost is merely 1%.",
            ["1%"],
        ),
        (
            "For example, HyperAttention makes the inference time of ChatGLM2 50% faster on 32k "
            "context length while perplexity increases from 5.6 to 6.3.",
            ["50%"],
        ),
        # Figures joined by "and" share the words after the last one.
        (
            "Our approaches show a 5%, 5% and 10% rise in performance in fairness, synthetic "
            "sample quality and data utility, respectively, than the state-of-the-art fair "
            "generative model.",
            ["5%", "10%"],
        ),
    ],
)
def test_a_percentage_is_a_change_only_when_a_comparison_governs_it(
    sentence: str, expected: list[str]
) -> None:
    assert found(sentence) == expected


def test_the_score_of_what_is_beaten_is_not_a_gain() -> None:
    sentence = (
        "When we apply repeated sampling to SWE-bench Lite, the fraction of issues solved "
        "with DeepSeek-V2-Coder-Instruct increases from 15.9% with one sample to 56% with 250 "
        "samples, outperforming the single-attempt state-of-the-art of 43% which uses more "
        "capable frontier models."
    )
    assert found(sentence) == ["15.9%", "56%"]


def test_a_speedup_over_the_state_of_the_art_is_still_a_gain() -> None:
    sentence = (
        "Our evaluation shows that FastSwitch outperforms the state-of-the-art LLM serving "
        "system vLLM with speedups of 1.4-11.2x across different tail TTFT and TBT."
    )
    assert found(sentence) == ["1.4-11.2x"]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # What Matters in Transformers?: the speedup is the gain, the drop its price.
        (
            "For instance, Llama-2-70B achieved a 48.4\\% speedup with only a 2.4\\% performance "
            "drop by pruning half of the attention layers.",
            ["48.4%"],
        ),
        # INT2.1: an overhead stated as an increase.
        (
            "The overhead of our method is merely a 1.05 times increase in model size, which "
            "translates to an effective precision of INT2.1.",
            [],
        ),
        # ... but an overhead cut is a gain.
        ("Our scheduler cuts the communication overhead by 3x.", ["3x"]),
    ],
)
def test_a_price_paid_is_not_a_gain(sentence: str, expected: list[str]) -> None:
    assert found(sentence) == expected
