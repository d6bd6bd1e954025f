"""`summarize_rows`: a batch of rows in, one line per unique abstract out, no files."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from summarize import (
    EndpointSettings,
    ErrorRecord,
    InputError,
    Record,
    RunSettings,
    summarize_rows,
)
from summarize.testing import FakeAnswer, FakeSummarizer, MockTransport
from tests.conftest import ABSTRACTS, FAKE_KEY

SETTINGS = RunSettings(inputs=(), endpoint=EndpointSettings(api_key=FAKE_KEY, model="fake-model"))


def test_rows_come_back_as_one_record_per_unique_abstract_through_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = [{"title": t, "abstract": a} for t, a in ABSTRACTS]
    rows.append({"title": "Listed twice", "abstract": "  " + ABSTRACTS[0][1]})
    transport = MockTransport()
    lines = summarize_rows(rows, SETTINGS, transport=transport)
    assert [line["title"] for line in lines] == [t for t, _ in ABSTRACTS]
    assert all(Record.model_validate(line) for line in lines)
    assert len(transport.requests) == len(ABSTRACTS)
    assert list(tmp_path.iterdir()) == []  # no output, lock or manifest


def test_a_row_without_an_abstract_is_refused_by_number_before_any_request() -> None:
    rows = [{"title": "ok", "abstract": ABSTRACTS[0][1]}, {"title": "no abstract"}]
    transport = MockTransport()
    with pytest.raises(InputError, match=r"<rows>:2: 'abstract' is missing"):
        summarize_rows(rows, SETTINGS, transport=transport)
    assert transport.requests == []


def test_a_failed_abstract_is_an_error_line_in_its_place() -> None:
    fake = FakeSummarizer([FakeAnswer(), FakeAnswer(error="validation")])
    rows = [{"id": "a", "abstract": "One abstract."}, {"id": "b", "abstract": "Another."}]
    first, second = summarize_rows(rows, summarizer=fake)
    assert Record.model_validate(first).id == "a"
    assert ErrorRecord.model_validate(second).error_type == "validation"


def test_no_rows_send_nothing() -> None:
    fake = FakeSummarizer()
    assert summarize_rows([], summarizer=fake) == [] and fake.calls == []


def test_a_row_that_is_not_a_mapping_is_refused_by_number() -> None:
    with pytest.raises(InputError, match=r"<rows>:1: expected a mapping with 'abstract', got str"):
        summarize_rows(["abstract"], summarizer=FakeSummarizer())  # type: ignore[list-item]


class _Cycle:
    """Garbage only the collector's full pass can free: it refers to itself."""

    def __init__(self) -> None:
        self.itself = self


@pytest.mark.usefixtures("unfrozen_heap")
def test_garbage_left_before_a_batch_is_freed_not_frozen_with_the_heap() -> None:
    # A worker summarising batch after batch must not keep each batch's garbage.
    assert gc.get_freeze_count() == 0
    old = _Cycle()
    gone = weakref.ref(old)
    gc.collect()  # old enough that only a full pass will look at it again
    del old
    rows = [{"id": "a", "abstract": "One abstract."}]
    summarize_rows(rows, summarizer=FakeSummarizer([FakeAnswer()]))
    assert gone() is None


@pytest.mark.usefixtures("unfrozen_heap")
def test_a_heap_the_caller_froze_stays_frozen_after_a_batch() -> None:
    # The caller's freeze is theirs to thaw: a run neither thaws it nor freezes more.
    gc.freeze()
    frozen = gc.get_freeze_count()
    summarize_rows([{"id": "a", "abstract": "One abstract."}], summarizer=FakeSummarizer())
    assert gc.get_freeze_count() == frozen
