"""A fake OpenAI-compatible chat-completions and Batch API server for tests and benchmarks.

Installed with the `testing` extra (`pip install "summarize[testing]"`), and served from
the command line by `python -m summarize.testing.server --port 8000`.

`FakeOpenAI` is a real HTTP server (aiohttp) on 127.0.0.1 and a free port, run
in a background thread with its own event loop, so sync and async tests talk to
it over real sockets with the real `openai` client:

    with FakeOpenAI(latency=0.05, rps_limit=20) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        server.enqueue("http_500", "bad_json")   # the next two requests fail
        ...
        server.requests   # the JSON bodies received
        server.stats      # a snapshot of the counters

What each request gets, in order: 400 for a body that is not a JSON object (or
asks for streaming); 401 when `require_key` is set and the bearer token differs;
429 when the `rps_limit` token bucket is empty; else the fault chosen by the
`FaultPlan` (a scripted queue first, then the `fault_for` rule, then the seeded
random mix, else "ok"), after `latency` (+ up to `jitter`) seconds.

The Batch API speaks OpenAI's wire format: `/v1/files` (multipart upload, retrieve,
content) and `/v1/batches` (create, retrieve, cancel, list with an `after`
cursor). A batch moves only when it is retrieved, one step every `batch_polls`
retrieves: validating -> in_progress -> finalizing -> completed. Leaving "validating"
it checks its input lines as OpenAI does ("failed" with `errors`); on the last step it
answers every line, in order, through the same `FaultPlan` and responder as chat (no
rate limit, no latency): 200 answers go to the output file, failed requests to the
error file. `enqueue_batch_outcome` scripts batches that expire, fail or are cancelled
part-way; `cancel` moves a batch to "cancelling", then "cancelled":

    file = client.files.create(file=("in.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    server.enqueue_batch_outcome("expired", answered=10)  # the next batch expires ...

An "ok" answer is a tool call with the `responder`'s arguments when the request
has `tools`, else (`response_format` json_schema / json_object, or plain JSON
prompting) the same JSON in `message.content`, cut at the request's `max_tokens` (4
characters a token) with finish_reason "length", as a model's answer is. `malformed`
answers 200 with a body that is no chat completion (one of four shapes in turn);
`object_arguments` sends the tool's arguments as a JSON object, not a string. The
default responder is deterministic and grounded in the abstract of the prompt, so its
answers pass `summarize._schema.Summary` validation with the grounding context.

The chat endpoint also answers without a socket: `MockTransport(server.answer)` (from
`summarize.testing`) sends each request of a run to the same faults, counters and
`requests`, in-process, on a server that need not be started. What needs the wire
(a "drop" reaches the client as a dropped connection, a "hang" as its timeout) is
for the started server.
"""

from .._answers import (
    DEFAULT_MODEL,
    JSON,
    default_responder,
    grounded_summary,
    prompt_parts,
    prompt_tokens,
)
from ._batch_input import BATCH_ENDPOINT, BATCH_OUTCOMES, BatchOutcome
from ._faults import FAULT_KINDS, FaultKind, FaultPlan, FaultRule, Responder, ServerStats
from ._server import FakeOpenAI

__all__ = [
    "BATCH_ENDPOINT",
    "BATCH_OUTCOMES",
    "DEFAULT_MODEL",
    "FAULT_KINDS",
    "JSON",
    "BatchOutcome",
    "FakeOpenAI",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "Responder",
    "ServerStats",
    "default_responder",
    "grounded_summary",
    "prompt_parts",
    "prompt_tokens",
]
