"""What the extractive strategy asks a model for: numbers of sentences, letters of figures.

The model picks; the summary is made of the sentences and figures it picked, verbatim
(`_core.strategy.from_extraction`). `extraction_model_for` narrows each field to the
choices one abstract has, so a constrained decoder can answer only with those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema


class Extraction(BaseModel):
    """What the extractive strategy asks for: numbers of sentences, letters of figures.

    The abstract is shown as numbered sentences followed by its candidate figures
    (`figures.figures`), each with a letter. `extraction_model_for` narrows every
    field to the choices this abstract has, so a constrained decoder can only
    answer with sentences and figures that are really there.
    """

    model_config = ConfigDict(extra="forbid")

    problem: int = Field(description="the sentence that states the problem addressed.")
    method: int = Field(description="the sentence that states what the authors do.")
    result: int = Field(description="the sentence that states the main result.")
    gains: list[str] = Field(
        default_factory=list,
        description=(
            "the figures that measure an improvement over a baseline or prior work "
            '("2x faster", "40% less memory"); never a size, count or plain score. '
            "Empty if none."
        ),
        max_length=4,
    )


def extraction_model_for(
    choices: Mapping[str, Sequence[int]], letters: list[str]
) -> type[Extraction]:
    """`Extraction` with enums of the sentence numbers each field may take (`choices`, by
    field name) and of this abstract's figure letters."""
    fields: dict[str, Any] = {
        name: (Literal[tuple(choices[name])], Extraction.model_fields[name])
        for name in ("problem", "method", "result")
    }
    if letters:
        letter = Literal[tuple(letters)]  # type: ignore[valid-type]
        described = Field(description=Extraction.model_fields["gains"].description, max_length=4)
        fields["gains"] = (list[letter], described)  # type: ignore[valid-type]
    else:
        # No figure, no gain: the property is left out rather than offered empty.
        fields["gains"] = (SkipJsonSchema[list[str]], Field(default_factory=list, max_length=0))
    model: type[Extraction] = create_model("Extraction", __base__=Extraction, **fields)
    return model
