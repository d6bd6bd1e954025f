"""What a batch is made of, and the checks its input file and metadata pass at creation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from .._answers import JSON
from ._faults import FAULT_KINDS

BatchOutcome = Literal["completed", "expired", "failed", "cancelled"]
BATCH_OUTCOMES: Final[tuple[str, ...]] = get_args(BatchOutcome)
BATCH_ENDPOINT: Final = "/v1/chat/completions"
COMPLETION_WINDOW: Final = "24h"
_WINDOW_SECONDS: Final = 86_400
_METADATA_PAIRS: Final = 16
_METADATA_KEY_MAX: Final = 64
_METADATA_VALUE_MAX: Final = 512
_BATCH_DONE: Final = frozenset({"completed", "failed", "expired", "cancelled"})
# What the error file says of the requests a batch never ran, by how it ended.
_NOT_RUN: Final[dict[str, JSON]] = {
    "expired": {
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired.",
    },
    "cancelled": {
        "code": "batch_cancelled",
        "message": "This request could not be executed before the batch was cancelled.",
    },
}
_TIMED_OUT: Final[JSON] = {
    "code": "request_timeout",
    "message": "The request timed out before the model answered.",
}
# Kinds whose chat answer is a 200 completion; in a batch they go to the output file.
_ANSWERED_KINDS: Final = frozenset(FAULT_KINDS) - {
    "http_429", "http_429_no_retry_after", "http_500", "http_502", "http_503",
    "hang", "drop", "not_json",
}  # fmt: skip


def _check_outcome(outcome: str) -> str:
    if outcome not in BATCH_OUTCOMES:
        raise ValueError(
            f"unknown batch outcome {outcome!r}; expected one of {', '.join(BATCH_OUTCOMES)}"
        )
    return outcome


@dataclass(frozen=True)
class _Outcome:
    """How a batch ends, and how many of its requests are answered before that."""

    status: str
    answered: int = 0


@dataclass
class _Batch:
    """A batch's API object and what moves it on (guarded by the server's lock).

    The input is parsed at creation (a file cannot change), but its errors show only
    when the batch leaves "validating", as they do at OpenAI.
    """

    obj: JSON
    requests: list[JSON]
    errors: list[JSON]
    polls: int = 0
    outcome: _Outcome | None = None


def _batch_error(
    code: str, message: str, line: int | None = None, param: str | None = None
) -> JSON:
    return {"code": code, "message": message, "param": param, "line": line}


def _request_problem(line: Any, endpoint: str) -> tuple[str, str, str | None] | None:
    """`(code, message, param)` of the first thing wrong with one input line, or None."""
    if not isinstance(line, dict):
        return "invalid_json_line", "This line is not parseable as valid JSON.", None
    for key, kind in (("custom_id", str), ("method", str), ("url", str), ("body", dict)):
        if key not in line:
            return "missing_required_parameter", f"Missing required parameter: '{key}'.", key
        if not isinstance(line[key], kind):
            expected = "an object" if kind is dict else "a string"
            return "invalid_type", f"Invalid type for '{key}': expected {expected}.", key
    if line["method"] != "POST":
        message = f"Invalid value for 'method': {line['method']!r}; only 'POST' is supported."
        return "invalid_value", message, "method"
    if line["url"] != endpoint:
        message = f"The url {line['url']!r} does not match the batch's endpoint {endpoint!r}."
        return "url_mismatch", message, "url"
    return None


def _parse_batch_input(content: bytes, endpoint: str, limit: int) -> tuple[list[JSON], list[JSON]]:
    """`(requests, errors)` of a batch input file: the lines in order, or what is wrong.

    Blank lines (a trailing newline) are skipped but keep their number in `line`.
    """
    numbered = [(n, raw) for n, raw in enumerate(content.split(b"\n"), start=1) if raw.strip()]
    if not numbered:
        return [], [_batch_error("empty_file", "The batch input file is empty.")]
    if len(numbered) > limit:
        message = f"The input file has {len(numbered):,} requests; a batch takes at most {limit:,}."
        return [], [_batch_error("too_many_tasks", message)]
    requests: list[JSON] = []
    errors: list[JSON] = []
    seen: set[str] = set()
    model: Any = None
    for number, raw in numbered:
        try:
            line: Any = json.loads(raw)
        except ValueError:  # bad JSON and bad UTF-8 alike
            line = None
        problem = _request_problem(line, endpoint)
        if problem is not None:
            code, message, param = problem
            errors.append(_batch_error(code, message, number, param))
            continue
        if line["custom_id"] in seen:
            message = (
                "The custom_id for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each request in a batch."
            )
            errors.append(_batch_error("duplicate_custom_id", message, number, "custom_id"))
            continue
        seen.add(line["custom_id"])
        # One batch serves one model, as at OpenAI.
        line_model = line["body"].get("model")
        if model is None:
            model = line_model
        elif line_model != model:
            message = f"The model {line_model!r} differs from the batch's model {model!r}."
            errors.append(_batch_error("model_mismatch", message, number, "body.model"))
            continue
        requests.append(line)
    return ([] if errors else requests), errors


def _metadata_problem(metadata: Any) -> str | None:
    """Why `metadata` is not OpenAI's up to 16 string pairs (keys <= 64, values <= 512)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "Invalid type for 'metadata': expected an object."
    if len(metadata) > _METADATA_PAIRS:
        return f"Invalid 'metadata': at most {_METADATA_PAIRS} pairs are allowed."
    for key, value in metadata.items():
        if not isinstance(value, str):
            return f"Invalid type for 'metadata.{key}': expected a string."
        if len(key) > _METADATA_KEY_MAX or len(value) > _METADATA_VALUE_MAX:
            return f"Invalid 'metadata.{key}': keys take 64 characters, values 512."
    return None


def _creation_problem(body: JSON, file: JSON) -> tuple[str, str] | None:
    """What is wrong with a batch creation's body, and the parameter at fault."""
    endpoint, window = body.get("endpoint"), body.get("completion_window")
    if file["purpose"] != "batch":
        return f"File {file['id']} was not uploaded with purpose 'batch'.", "input_file_id"
    if endpoint != BATCH_ENDPOINT:
        return (
            f"Invalid endpoint {endpoint!r}; FakeOpenAI batches only {BATCH_ENDPOINT!r}.",
            "endpoint",
        )
    if window != COMPLETION_WINDOW:
        message = f"Invalid completion_window {window!r}; only {COMPLETION_WINDOW!r} is supported."
        return message, "completion_window"
    problem = _metadata_problem(body.get("metadata"))
    return (problem, "metadata") if problem is not None else None


def _batch_object(batch_id: str, body: JSON) -> JSON:
    """A new batch, "validating", as the API returns it."""
    now = int(time.time())
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": BATCH_ENDPOINT,
        "model": None,
        "errors": None,
        "input_file_id": body["input_file_id"],
        "completion_window": COMPLETION_WINDOW,
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + _WINDOW_SECONDS,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "usage": batch_usage([]),
        "metadata": body.get("metadata"),
    }


def batch_usage(outputs: list[JSON]) -> JSON:
    """OpenAI's batch `usage`: the token counts of the completions in the output file."""
    usages = [record["response"]["body"].get("usage") for record in outputs]
    prompt = sum(_tokens(usage, "prompt_tokens") for usage in usages)
    completion = sum(_tokens(usage, "completion_tokens") for usage in usages)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _tokens(usage: Any, key: str) -> int:
    """A count of a completion's usage; 0 where a malformed answer has none."""
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) else 0
