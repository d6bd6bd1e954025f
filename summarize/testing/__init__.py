"""Test doubles for code that runs summarize, from the model caller down to the wire.

A `FakeSummarizer` stands for the whole model caller: each abstract gets the next
queued answer, and nothing is sent or checked, so a test of the live pool's logic
(spend caps, concurrency, stop reasons, order) runs in milliseconds:

    from summarize import RunSettings, run
    from summarize.testing import FakeAnswer, FakeSummarizer

    fake = FakeSummarizer([FakeAnswer(latency=0.01), FakeAnswer(error="validation")])
    result = run(RunSettings(inputs=("papers.jsonl",)), summarizer=fake)

A `MockTransport` stands for the endpoint, at the wire, as httpx's does: the real
client builds each request and judges each answer (validation, grounding, re-asks,
retries, usage), and a function of yours answers in-process:

    from summarize import EndpointSettings, RunSettings, run
    from summarize.testing import MockTransport, error_reply

    transport = MockTransport()  # a valid summary of each abstract asked about
    settings = RunSettings(inputs=("papers.jsonl",), endpoint=EndpointSettings(api_key="sk-test"))
    result = run(settings, transport=transport)
    assert len(transport.requests) == result.requests

`summarize.testing.server` (the `testing` extra) is a whole fake OpenAI endpoint over
real sockets, for what only sockets show: timeouts, dropped connections, TLS, the
Batch API, a `summarize` process. `python -m summarize.testing.server` serves it.
"""

from .._live.transport import Reply
from ._answers import grounded_summary
from ._replies import completion_reply, error_reply, json_reply
from ._summarizer import FakeAnswer, FakeSummarizer, plain_summary
from ._transport import ChatRequest, Handler, MockTransport, grounded_reply

__all__ = [
    "ChatRequest",
    "FakeAnswer",
    "FakeSummarizer",
    "Handler",
    "MockTransport",
    "Reply",
    "completion_reply",
    "error_reply",
    "grounded_reply",
    "grounded_summary",
    "json_reply",
    "plain_summary",
]
