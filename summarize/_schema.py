"""The contract with the model: what it must answer.

`Summary` (abstractive) and `_extraction.Extraction` (extractive) are what a model
is asked for; their field descriptions are the instructions the prompt gives for each
field (`prompt.field_instructions`), kept short because every request pays for
them. Fields with the same description share a line of the prompt. What a
line of the output holds is `_core.records`.

Grounding is checked by validators that read the abstract from the validation
context (`{"abstract": ..., "title": ...}`); without a context only the shape is
checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from . import _grounding as grounding

SENTENCE_MAX = 200
METRIC_MAX = 120
# llama.cpp's grammar builder gives up on string caps much above this.
QUOTE_MAX = 600
VALUE_PATTERN = r'^[^"\\]{0,24}[0-9][^"\\]{0,24}$'
TITLE_COPY_OVERLAP = 0.9
# What problem, method and result each are; the names say what each is about. Every cap
# the validator holds a field to is stated in its description: the prompt says it once.
_OWN_SENTENCE = f"one sentence in your own words, ≤{SENTENCE_MAX} characters."
# Of the sentences that state a value, how many a re-ask names.
_NAMED_SENTENCES = 2


# The abstract a summary must be grounded in. A context variable rather than
# instructor's `context=`: instructor renders messages as Jinja templates when a
# context is passed, and abstracts are untrusted text.
_GROUNDING: ContextVar[dict[str, str] | None] = ContextVar("summarize_grounding", default=None)


@contextmanager
def grounded_in(*, abstract: str, title: str) -> Iterator[None]:
    """Validate every `Summary` built inside this block against this abstract."""
    token = _GROUNDING.set({"abstract": abstract, "title": title})
    try:
        yield
    finally:
        _GROUNDING.reset(token)


def _context(info: ValidationInfo) -> dict[str, Any]:
    if isinstance(info.context, dict):
        return info.context
    return _GROUNDING.get() or {}


class Gain(BaseModel):
    """One quantitative improvement the authors claim."""

    model_config = ConfigDict(extra="forbid")

    # The quote comes first: a model that has copied the sentence then takes
    # the value from it, instead of inventing a figure and a quote to match.
    quote: str = Field(
        description="its whole sentence.",
        min_length=1,
        max_length=QUOTE_MAX,
    )
    # Its name says what it is: only its cap is described (every word costs prompt tokens).
    metric: str = Field(
        description=f"≤{METRIC_MAX} characters.",
        min_length=1,
        max_length=METRIC_MAX,
    )
    value: str = Field(
        description="its figure.",
        # A digit is required and quotes/backslashes are not: under a constrained
        # decoder this stops words ("linear") and runaway JSON in the value.
        pattern=VALUE_PATTERN,
    )

    @field_validator("value", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        # A figure copied from a LaTeX abstract (`39\%`) is the figure: kept as plain text.
        return grounding.plain_text(value) if isinstance(value, str) and "\\" in value else value

    @model_validator(mode="after")
    def _grounded(self, info: ValidationInfo) -> Gain:
        abstract = _context(info).get("abstract")
        if abstract is None:
            return self
        if grounding.quoted_sentence(abstract, self.quote) is None:
            if grounding.contains_quote(abstract, self.quote):
                raise ValueError(
                    f"the quote {self.quote!r} is a fragment: quote the whole sentence of "
                    "the abstract that states the value" + where_stated(abstract, self.value)
                )
            raise ValueError(
                f"the quote {self.quote!r} does not occur in the abstract"
                + where_stated(abstract, self.value)
            )
        if not grounding.numbers_in(self.value):
            raise ValueError(
                f"the value {self.value!r} has no number: a qualitative advantage "
                "belongs in `qualitative`, not in `gains`"
            )
        missing = grounding.unsupported_numbers(self.value, self.quote)
        if missing:
            raise ValueError(
                f"the value {self.value!r} has numbers that its quote does not state: "
                + ", ".join(f"{n:g}" for n in sorted(missing))
                + where_stated(abstract, self.value)
            )
        # Free text, so a model's own figures ("on 8 GPUs", "vs 2023 SOTA") hide here.
        invented = grounding.unsupported_numbers(self.metric, abstract)
        if invented:
            raise ValueError(
                f"the metric {self.metric!r} states numbers the abstract does not: "
                + ", ".join(f"{n:g}" for n in sorted(invented))
            )
        return self


def where_stated(abstract: str, value: str) -> str:
    """What a re-ask adds to a quote's fault: the sentence of `abstract` that states every
    number of `value` (then it is the quote), the first few when several do, or that none
    does (then the value is not the abstract's). Sentences are named as plain text, the
    form the validator compares. Empty for a value without a number."""
    numbers = grounding.numbers_in(value)
    if not numbers:
        return ""
    holding = [grounding.plain_text(s) for s in grounding.sentences(abstract)
               if numbers <= grounding.numbers_in(s)]  # fmt: skip
    if not holding:
        return f"; no sentence of the abstract states {value!r}: give a figure it states"
    if len(holding) == 1:
        return f"; the sentence that states {value!r} is {holding[0]!r}"
    named = " or ".join(repr(s) for s in holding[:_NAMED_SENTENCES])
    return f"; {len(holding)} sentences state {value!r}: quote the one that claims it, {named}"


class ClaimedGain(BaseModel):
    """The improvement the authors claim: figures with their quotes, or words, or none."""

    model_config = ConfigDict(extra="forbid")

    gains: list[Gain] = Field(
        description="figures of improvement over a baseline, not sizes or counts.",
        max_length=4,
    )
    qualitative: str | None = Field(
        description=f"if no gains, the advantage, ≤{SENTENCE_MAX} characters; else null.",
        max_length=SENTENCE_MAX,
    )

    @property
    def kind(self) -> Literal["quantitative", "qualitative", "none"]:
        """Whether the claim is in figures, in words only, or absent."""
        if self.gains:
            return "quantitative"
        return "qualitative" if self.qualitative else "none"


class Summary(BaseModel):
    """A structured summary of one research abstract."""

    model_config = ConfigDict(extra="forbid")

    problem: str = Field(
        description=_OWN_SENTENCE,
        min_length=1,
        max_length=SENTENCE_MAX,
    )
    method: str = Field(
        description=_OWN_SENTENCE,
        min_length=1,
        max_length=SENTENCE_MAX,
    )
    result: str = Field(
        description=_OWN_SENTENCE,
        min_length=1,
        max_length=SENTENCE_MAX,
    )
    # No description of its own: its fields' descriptions say it.
    claimed_gain: ClaimedGain
    # Fields set from the abstract rather than by the model (`answer.repair_quotes`).
    _repaired: tuple[str, ...] = PrivateAttr(default=())

    @property
    def repaired(self) -> tuple[str, ...]:
        """The fields set from the abstract, not by the model: a gain's quote replaced by
        the one sentence that states its value (`claimed_gain.gains[0].quote`)."""
        return self._repaired

    def with_repaired(self, fields: tuple[str, ...]) -> Summary:
        """This summary, marked as having `fields` set from the abstract."""
        self._repaired = fields
        return self

    @field_validator("problem", "method", "result")
    @classmethod
    def _sentence(cls, value: str, info: ValidationInfo) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("must not be empty")
        if len(grounding.sentences(value)) > 1:
            raise ValueError("must be one short sentence in your own words, not a passage")
        title = _context(info).get("title")
        if (
            title
            and grounding.word_overlap(value, title) >= TITLE_COPY_OVERLAP
            and (len(value) <= len(title) * 1.2)
        ):
            raise ValueError("must say more than the title; it repeats the title")
        return value

    @model_validator(mode="after")
    def _no_invented_numbers(self, info: ValidationInfo) -> Summary:
        abstract = _context(info).get("abstract")
        if abstract is None:
            return self
        fields = {"problem": self.problem, "method": self.method, "result": self.result}
        fields["claimed_gain.qualitative"] = self.claimed_gain.qualitative or ""
        for name, text in fields.items():
            missing = grounding.unsupported_numbers(text, abstract)
            if missing:
                raise ValueError(
                    f"{name} states numbers the abstract does not: "
                    + ", ".join(f"{n:g}" for n in sorted(missing))
                )
        return self


def summary_model_for(abstract: str, values: Sequence[str] | None = None) -> type[Summary]:
    """A `Summary` whose quotes must be one of the abstract's own sentences, and whose
    gains' values, when `values` is given, one of them (the abstract's candidate figures,
    `figures.figures`).

    Sent as the request schema, the `enum`s let a constrained decoder (llama.cpp's
    grammar, OpenAI strict mode) emit only real sentences and figures: grounded by
    construction. With no candidate figure, no gain is offered at all: a small model
    asked for a gain where the abstract states none writes one ("10%").
    """
    # Offered as plain text, and never with a double quote: llama.cpp's grammar
    # converter leaves the backslash of a JSON-escaped quote unescaped, which breaks
    # the grammar and kills the server. Validation compares quotes as plain text too.
    plain = (grounding.plain_text(s) for s in grounding.sentences(abstract))
    choices = tuple(dict.fromkeys(s for s in plain if '"' not in s))
    if not choices:
        return Summary
    figures = tuple(dict.fromkeys(v for v in values or () if '"' not in v and "\\" not in v))
    narrowed: dict[str, Any] = {
        "quote": (Literal[choices], Field(description=Gain.model_fields["quote"].description))
    }
    if figures:
        narrowed["value"] = (Literal[figures], Gain.model_fields["value"])
    gain = create_model("Gain", __base__=Gain, **narrowed)
    gains: Any = (
        (list[gain], ClaimedGain.model_fields["gains"])  # type: ignore[valid-type]
        if figures or values is None
        else (SkipJsonSchema[list[Gain]], Field(default_factory=list, max_length=0))
    )
    claimed = create_model("ClaimedGain", __base__=ClaimedGain, gains=gains)
    return create_model(
        "Summary",
        __base__=Summary,
        claimed_gain=(claimed, Summary.model_fields["claimed_gain"]),
    )


Strategy = Literal["abstractive", "extractive"]
