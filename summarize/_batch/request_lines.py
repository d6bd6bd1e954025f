"""A batch input file's lines: the live request body, with the abstract's id.

A request line carries the same body as a live call (`summarize._core.request`): the
same messages, function tool and sampling, so a batch record means what a live one
means and has the same fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from .._core.request import chat_request
from .._core.strategy import Question, question
from .._items import Item
from .._prompt import Prompt
from .._settings import EndpointSettings

BATCH_ENDPOINT: Final = "/v1/chat/completions"


def asked_about(item: Item, prompt: Prompt, endpoint: EndpointSettings) -> Question:
    """How the chunk's prompt asks about `item`, as a live call would."""
    return question(prompt, item, constrain_quotes=endpoint.constrain_quotes)


def request_line(
    item: Item,
    *,
    prompt: Prompt,
    endpoint: EndpointSettings,
    repair: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """One line of a batch input file; `custom_id` is the record id."""
    asked = asked_about(item, prompt, endpoint)
    body = chat_request(asked, [*asked.messages, *repair], endpoint)
    return {"custom_id": item.id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}
