"""Tests for summarize._jsonl: one JSONL reader, its policies (strict, skip, offsets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from summarize._errors import InputError, OutputError
from summarize._jsonl import (
    BadLine,
    Fault,
    Line,
    LineFault,
    drop_torn_tail,
    line_at,
    parse_line,
    read_jsonl,
)

GOOD = b'{"id": "a"}\n'
# One of each fault, between good lines: blank lines first, which are no fault.
MIXED = (
    GOOD
    + b"\n   \n"  # lines 2-3: blank
    + b'{"id": \n'  # 4: malformed
    + b'["a list"]\n'  # 5: not an object
    + b'{"id": "caf\xe9"}\n'  # 6: Latin-1, not UTF-8
    + b"null\n"  # 7: null is no object either
    + b'{"id": "b"}\n'  # 8
    + b'{"id": "c"'  # 9: the last line, with no newline
)


def write(tmp_path: Path, data: bytes, name: str = "f.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def skip(path: Path, **options: Any) -> list[Line[dict[str, Any]] | BadLine]:
    return list(read_jsonl(path, expect=dict, bad="skip", **options))


def test_strict_reads_objects_with_their_line_numbers_and_passes_over_blank_lines(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, GOOD + b"\n  \r\n" + b'{"id": "b"}\r\n' + b'\xef\xbb\xbf{"id": "c"}')
    lines = list(read_jsonl(path, expect=dict))
    assert [(line.number, line.value) for line in lines] == [
        (1, {"id": "a"}),
        (4, {"id": "b"}),
        (5, {"id": "c"}),  # a byte-order mark is no fault; nor is a last line with no newline
    ]


def test_strict_raises_the_users_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, MIXED)
    with pytest.raises(InputError) as caught:
        list(read_jsonl(path, expect=dict))
    assert (caught.value.path, caught.value.line) == (str(path), 4)
    assert str(caught.value).startswith(f"{path}:4: malformed JSON: ")


def test_skip_yields_each_bad_line_typed_by_its_fault(tmp_path: Path) -> None:
    path = write(tmp_path, MIXED)
    found = skip(path)
    good = [(x.number, x.value) for x in found if isinstance(x, Line)]
    bad = [(x.number, x.fault) for x in found if isinstance(x, BadLine)]
    assert good == [(1, {"id": "a"}), (8, {"id": "b"})]
    assert bad == [
        (4, Fault.MALFORMED),
        (5, Fault.WRONG_TYPE),
        (6, Fault.NOT_UTF8),
        (7, Fault.WRONG_TYPE),
        (9, Fault.MALFORMED),  # torn, and read as a line: it is no JSON
    ]
    reasons = {x.number: str(x) for x in found if isinstance(x, BadLine)}
    assert reasons[5] == f"{path}:5: expected a JSON object, got list"
    assert reasons[6] == f"{path}:6: not UTF-8 text (byte 0xe9 at column 12)"
    assert reasons[7] == f"{path}:7: expected a JSON object, got null"


def test_torn_makes_a_last_line_without_newline_a_torn_write_even_if_it_parses(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, GOOD + b'{"id": "b"}')
    assert [x.value for x in read_jsonl(path, expect=dict)] == [{"id": "a"}, {"id": "b"}]
    found = skip(path, torn=True)
    assert isinstance(found[1], BadLine) and found[1].fault is Fault.TORN
    with pytest.raises(InputError, match=r":2: torn: the last line has no newline"):
        list(read_jsonl(path, expect=dict, torn=True))


def test_offsets_find_each_line_again(tmp_path: Path) -> None:
    path = write(tmp_path, MIXED)
    found = skip(path)
    data = path.read_bytes()
    for x in found:
        assert data[x.offset :].startswith(data.splitlines(keepends=True)[x.number - 1])
    with path.open("rb") as fh:
        for x in found:
            if isinstance(x, Line):
                assert line_at(fh, x.offset, path=path, expect=dict) == x.value
        bad = next(x for x in found if isinstance(x, BadLine))
        with pytest.raises(InputError, match=rf"at byte {bad.offset}: malformed JSON"):
            line_at(fh, bad.offset, path=path, expect=dict)


def test_a_journal_of_strings_is_read_with_its_own_type(tmp_path: Path) -> None:
    path = write(tmp_path, b'"id-1"\n7\n"id-2"\n"id-')
    found = list(read_jsonl(path, expect=str, bad="skip", torn=True))
    assert [x.value for x in found if isinstance(x, Line)] == ["id-1", "id-2"]
    assert [(x.number, x.fault, x.reason) for x in found if isinstance(x, BadLine)] == [
        (2, Fault.WRONG_TYPE, "expected a JSON string, got int"),
        (4, Fault.TORN, "torn: the last line has no newline (a write was cut off)"),
    ]


def test_a_line_over_the_cap_is_read_past_not_held(tmp_path: Path) -> None:
    huge = json.dumps({"id": "x" * 5_000_000}).encode() + b"\n"
    path = write(tmp_path, GOOD + huge + GOOD)
    found = skip(path, max_line_bytes=1 << 20)
    assert [(x.number, type(x).__name__) for x in found] == [(1, "Line"), (2, "BadLine"),
                                                             (3, "Line")]  # fmt: skip
    assert isinstance(found[1], BadLine) and found[1].fault is Fault.TOO_LONG
    assert found[1].reason == f"line longer than {1 << 20} bytes; not read"
    assert found[2].offset == len(GOOD) + len(huge)
    # Without a cap the same line is an ordinary one.
    assert len(list(read_jsonl(path, expect=dict))) == 3


def test_nesting_too_deep_is_a_malformed_line_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, b"[" * 100_000 + b"\n" + GOOD)
    found = skip(path)
    assert isinstance(found[0], BadLine) and found[0].fault is Fault.MALFORMED
    assert "nested too deeply" in found[0].reason
    assert isinstance(found[1], Line)


def test_a_missing_file_is_an_error_unless_missing_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "none.jsonl"
    assert list(read_jsonl(path, expect=dict, missing_ok=True)) == []
    with pytest.raises(InputError, match=r"none\.jsonl: no such file"):
        list(read_jsonl(path, expect=dict))
    with pytest.raises(InputError, match="is a directory"):
        list(read_jsonl(tmp_path, expect=dict, missing_ok=True))


@pytest.mark.parametrize(
    ("text", "fault"),
    [("{", Fault.MALFORMED), ("[]", Fault.WRONG_TYPE), ("true", Fault.WRONG_TYPE)],
)
def test_parse_line_says_why_a_line_is_not_the_expected_value(text: str, fault: Fault) -> None:
    assert parse_line('{"a": 1}\n', expect=dict) == {"a": 1}
    with pytest.raises(LineFault) as caught:
        parse_line(text, expect=dict)
    assert caught.value.fault is fault


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        (b"", b""),
        (GOOD, GOOD),
        (GOOD + b'{"id": "b"', GOOD),
        (b'{"id": "b"', b""),
        (GOOD + b"x" * 200_000, GOOD),  # the torn part longer than one block read back
    ],
)
def test_drop_torn_tail_keeps_the_whole_lines(tmp_path: Path, data: bytes, kept: bytes) -> None:
    path = write(tmp_path, data)
    drop_torn_tail(path)
    assert path.read_bytes() == kept


def test_drop_torn_tail_of_a_missing_file_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot repair"):
        drop_torn_tail(tmp_path / "none.jsonl")
