"""What is sent for one abstract: the same request body whichever transport sends it.

Live calls and Batch API lines carry the same messages, the same function tool
(the answer model's JSON Schema, compacted: structure, caps and patterns only)
forced by `tool_choice`, and the same sampling settings. A rejected
answer is re-asked with the same turns (`prompts/repair.md`). So a record means
the same thing whichever way it was made, and one fingerprint names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from .._items import Item
from .._prompt import Prompt, RepairPrompt
from .._settings import EndpointSettings
from .._tokens import TokenEstimator, schema_chars
from .strategy import Question, question

Messages = Sequence[dict[str, str]]
# Stands in for the abstract when a request is fingerprinted: what decides the answer,
# less the abstract itself.
_PLACEHOLDER = Item(id="", title="{title}", abstract="{abstract}")


# Small: models made for one abstract (constrained quotes, extraction choices) are new
# classes each time, and must not pile up.
@lru_cache(maxsize=8)
def tool_for(model: type[BaseModel]) -> dict[str, Any]:
    """The function tool asking for `model`: its name and its JSON Schema (instructor's
    `openai_schema` parameters, made here: instructor's import loads the OpenAI SDK, ~3 s
    of each `summarize run`'s start-up; `tests/test_request.py` holds the two equal),
    compacted.

    The words are in the prompt (`$fields`, from the same models' descriptions), so the
    tool carries only the shape a constrained decoder needs: types, required fields,
    enums, `maxItems` and patterns, with `$defs` inlined and a nullable field written as
    a type list. Titles, descriptions, string lengths and `additionalProperties` are
    left out: the model's validation still enforces them (the prompt asks for one short
    sentence), and a tool's JSON is paid for on every request.
    """
    schema = _parameters(model)
    parameters = _compact(schema, schema.get("$defs", {}))
    return {"type": "function", "function": {"name": model.__name__, "parameters": parameters}}


def _parameters(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema as instructor's `openai_schema` gives its parameters: no
    title or description at the top, `required` sorted (and present, if empty)."""
    schema = model.model_json_schema()
    parameters = {k: v for k, v in schema.items() if k not in ("title", "description")}
    parameters["required"] = sorted(schema.get("required", []))
    return parameters


# JSON Schema keywords a tool leaves out (see `tool_for`).
_LEFT_OUT = frozenset(
    {"$defs", "title", "description", "minLength", "maxLength", "additionalProperties"}
)


def _compact(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with its `$ref`s inlined and the keywords of `_LEFT_OUT` dropped."""
    if isinstance(node, list):
        return [_compact(value, defs) for value in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        node = {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    node = _nullable(node)
    return {
        key: (
            {name: _compact(spec, defs) for name, spec in value.items()}
            if key == "properties"  # field names, not keywords: a field may be called `title`
            else _compact(value, defs)
        )
        for key, value in node.items()
        if key not in _LEFT_OUT
    }


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """`{"anyOf": [{"type": T, ...}, {"type": "null"}]}` as `{"type": [T, "null"], ...}`."""
    options = node.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return node
    (other,) = [option for option in options if option != {"type": "null"}]
    if not isinstance(other.get("type"), str):
        return node
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**rest, **other, "type": [other["type"], "null"]}


@lru_cache(maxsize=8)
def tool_chars(model: type[BaseModel]) -> int:
    """Characters of the tool list asking for `model`, for token estimates."""
    return schema_chars([tool_for(model)])


def tools_for(model: type[BaseModel]) -> dict[str, Any]:
    """The `tools` and `tool_choice` that make the model answer with `model`."""
    tool = tool_for(model)
    choice = {"type": "function", "function": {"name": tool["function"]["name"]}}
    return {"tools": [tool], "tool_choice": choice}


def prompt_tokens(prompt: Prompt, item: Item, estimator: TokenEstimator) -> int:
    """Estimated prompt tokens of the first request about `item`."""
    asked = question(prompt, item)
    return estimator.prompt_tokens(asked.messages, tool_chars(asked.answer_model))


def chat_request(asked: Question, messages: Messages, endpoint: EndpointSettings) -> dict[str, Any]:
    """The JSON body of one chat-completions request."""
    return {
        "model": endpoint.model,
        "messages": list(messages),
        **tools_for(asked.answer_model),
        **endpoint.sampling(),
        **endpoint.extra_body,
    }


def request_hash(prompt: Prompt, endpoint: EndpointSettings, repair: RepairPrompt) -> str:
    """A hash of everything that decides an answer but the abstract: the rendered
    messages, the tool's JSON, the sampling settings and the re-ask turns.

    Not `max_tokens`: it decides only whether an answer is finished, and a cut-off
    answer makes no record (it is asked again with more room)."""
    asked = question(prompt, _PLACEHOLDER, constrain_quotes=endpoint.constrain_quotes)
    same = endpoint.model_copy(update={"model": "", "max_tokens": None})
    decided = {
        "request": chat_request(asked, asked.messages, same),
        "repair": repair.messages(answer="{answer}", error="{error}",
                                  with_answer=endpoint.reask_with_answer),
    }
    text = json.dumps(decided, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
