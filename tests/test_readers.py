"""Tests for summarize.readers: three input formats, whole-file errors and per-entry problems."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from summarize._errors import InputError
from summarize._items import Entry, Source, abstract_key, collect_items, index_items
from summarize._readers import MAX_LINE_BYTES, MIN_ABSTRACT_CHARS, read_entries
from tests.conftest import PAPERS

ABSTRACT = (
    "We study how a small model summarises research abstracts. We find that a careful "
    "prompt and a strict schema make the output stable across runs, and that grounding "
    "each claim in a quoted span of the abstract catches most invented numbers. Code and "
    "data are public."
)
assert len(ABSTRACT) >= MIN_ABSTRACT_CHARS


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return str(path)


def read(path: str, stdin: io.StringIO | None = None) -> tuple[list[Entry], list[InputError]]:
    problems: list[InputError] = []
    entries = list(read_entries(path, problems=problems, stdin=stdin))
    return entries, problems


def read_error(path: str) -> InputError:
    with pytest.raises(InputError) as caught:
        read(path)
    return caught.value


def assert_names(error: InputError, path: str, line: int | None) -> None:
    """The message is one line that starts with the file (and line, when there is one)."""
    message = str(error)
    assert "\n" not in message
    assert len(message) < 300
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(where), message
    assert (error.path, error.line) == (path, line)


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(value) + "\n" for value in objects)


# --- the real listing pages ----------------------------------------------------------------

needs_papers = pytest.mark.skipif(not PAPERS.is_dir(), reason="shared paper listings absent")


def paper_files() -> list[Path]:
    return sorted(PAPERS.glob("*.txt"))


@needs_papers
def test_shared_listings_give_703_entries_and_666_unique_items() -> None:
    problems: list[InputError] = []
    entries = [e for f in paper_files() for e in read_entries(str(f), problems=problems)]
    assert problems == []
    assert len(entries) == 703
    assert len(collect_items(entries)) == 666


@needs_papers
def test_shared_listing_entry_source_is_its_title_line() -> None:
    path = str(PAPERS / "000_395348c374228ab2.txt")
    entries, _ = read(path)
    by_title = {e.title: e.source.line for e in entries}
    assert by_title["Flowformer: Linearizing Transformers with Conservation Flows"] == 11
    assert by_title["PowerNorm: Rethinking Batch Normalization in Transformers"] == 15
    assert all(e.source.path == path and e.id is None for e in entries)


@needs_papers
def test_shared_listing_title_glued_to_subscribe_is_cleaned() -> None:
    entries, _ = read(str(PAPERS / "002_62886259b498fcd8.txt"))
    first = entries[0]
    assert first.title == (
        "Unsupervised Corpus Aware Language Model Pre-training for Dense Passage Retrieval"
    )
    assert first.source.line == 3
    assert first.abstract.startswith("Recent research demonstrates")


@needs_papers
def test_shared_listing_pairs_each_title_with_the_next_paragraph() -> None:
    furniture = ("Subscribe", "trending papers", "byAK", "email inbox")
    for path in paper_files():
        lines = path.read_text(encoding="utf-8").split("\n")
        entries, _ = read(str(path))
        for entry in entries:
            after = [line for line in lines[entry.source.line :] if line.strip()]
            assert after[0] == entry.abstract, entry.source
            assert lines[entry.source.line - 1].endswith(entry.title)
            assert len(entry.title) < MIN_ABSTRACT_CHARS
            assert not any(word in entry.title + entry.abstract for word in furniture)


# --- listings --------------------------------------------------------------------------------

LISTING = f"""new

Get trending papers in your email inbox!

Subscribe

byAK and the research community

Mar 14

First Paper Title

{ABSTRACT}
SubscribeSecond Paper Title
{ABSTRACT}second
"""


def test_listing_skips_page_furniture_and_dates(tmp_path: Path) -> None:
    entries, problems = read(write(tmp_path, "page.txt", LISTING))
    assert [e.title for e in entries] == ["First Paper Title", "Second Paper Title"]
    assert problems == []


def test_listing_abstract_may_follow_a_blank_line_or_come_next(tmp_path: Path) -> None:
    entries, _ = read(write(tmp_path, "page.txt", LISTING))
    assert [(e.source.line, e.abstract) for e in entries] == [
        (11, ABSTRACT.strip()),
        (14, f"{ABSTRACT}second".strip()),
    ]


def test_listing_title_glued_to_subscribe_is_cleaned(tmp_path: Path) -> None:
    path = write(tmp_path, "page.txt", f"SubscribeGlued Title\n{ABSTRACT}\n")
    entries, _ = read(path)
    assert [(e.title, e.source.line) for e in entries] == [("Glued Title", 1)]


def test_listing_keeps_a_title_that_starts_with_the_word_subscriber(tmp_path: Path) -> None:
    entries, _ = read(write(tmp_path, "page.txt", f"Subscriber Churn Models\n{ABSTRACT}\n"))
    assert entries[0].title == "Subscriber Churn Models"


def test_listing_title_without_abstract_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "page.txt", f"Orphan Title\nReal Title\n\n{ABSTRACT}\nLast Title\n")
    entries, problems = read(path)
    assert [e.title for e in entries] == ["Real Title"]
    assert [p.line for p in problems] == [1, 5]
    assert "Orphan Title" in str(problems[0])
    assert_names(problems[0], path, 1)


def test_listing_paragraph_without_title_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "page.txt", f"{ABSTRACT}\nTitle\n{ABSTRACT}\n")
    entries, problems = read(path)
    assert [e.source.line for e in entries] == [2]
    assert_names(problems[0], path, 1)


# --- JSONL -----------------------------------------------------------------------------------


def test_jsonl_reads_title_abstract_and_id(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", jsonl({"id": "p1", "title": "T", "abstract": "A."}))
    entries, problems = read(path)
    assert entries == [Entry("T", "A.", entries[0].source, "p1")]
    assert (entries[0].source.path, entries[0].source.line) == (path, 1)
    assert problems == []


def test_jsonl_numeric_id_is_stringified_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    text = "\n" + jsonl({"id": 7, "title": "T", "abstract": "A."}) + "\n\n"
    entries, _ = read(write(tmp_path, "in.ndjson", text))
    assert [(e.id, e.source.line) for e in entries] == [("7", 2)]


def test_jsonl_bom_and_crlf_are_stripped(tmp_path: Path) -> None:
    text = "\ufeff" + jsonl({"title": "T", "abstract": "A."}).replace("\n", "\r\n")
    entries, _ = read(write(tmp_path, "in.jsonl", text))
    assert [(e.title, e.abstract) for e in entries] == [("T", "A.")]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"title": "T", "abstract": ', "malformed JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"title": "Only a title"}', "'abstract' is missing"),
        ('{"title": "T", "abstract": "   "}', "'abstract' is empty"),
        ('{"title": 3, "abstract": "A."}', "'title' must be text"),
        ('{"id": true, "abstract": "A."}', "'id' must be text or a number"),
        ('{"abstract": "\\ud800"}', "lone surrogate"),
        ("[" * 100_000, "malformed JSON"),
    ],
)
def test_jsonl_bad_line_is_a_problem_naming_its_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    good = jsonl({"title": "T", "abstract": "A."})
    path = write(tmp_path, "in.jsonl", good + line + "\n" + good)
    entries, problems = read(path)
    assert [e.source.line for e in entries] == [1, 3]
    assert len(problems) == 1
    assert_names(problems[0], path, 2)
    assert reason in problems[0].reason


def test_jsonl_with_only_bad_lines_raises_naming_the_first(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", "not json\n[1]\n")
    error = read_error(path)
    assert_names(error, path, None)
    assert "no entries found; 2 problem(s), the first at line 1: malformed JSON" in str(error)


# --- CSV -------------------------------------------------------------------------------------


def test_csv_reads_quoted_multiline_field_at_the_line_where_its_row_starts(
    tmp_path: Path,
) -> None:
    text = 'id,title,abstract\n1,"First, with comma","line one\nline two"\n2,Second,Plain.\n'
    entries, problems = read(write(tmp_path, "in.csv", text))
    assert [(e.id, e.title, e.abstract, e.source.line) for e in entries] == [
        ("1", "First, with comma", "line one\nline two", 2),
        ("2", "Second", "Plain.", 4),
    ]
    assert problems == []


def test_csv_header_is_case_insensitive_and_bom_is_stripped(tmp_path: Path) -> None:
    entries, _ = read(write(tmp_path, "in.csv", "\ufeffABSTRACT, Title\nA.,T\n"))
    assert [(e.title, e.abstract, e.id) for e in entries] == [("T", "A.", None)]


def test_csv_row_without_abstract_value_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "title,abstract\nT1,A.\nT2\nT3,\nT4,A4.\n")
    entries, problems = read(path)
    assert [e.title for e in entries] == ["T1", "T4"]
    assert [p.line for p in problems] == [3, 4]
    assert "'T2'" in str(problems[0])
    assert_names(problems[0], path, 3)


def test_csv_unclosed_quote_is_a_problem_at_the_row_start(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", 'title,abstract\nT1,A.\nT2,"never closed\nmore\n')
    entries, problems = read(path)
    assert [e.title for e in entries] == ["T1"]
    assert_names(problems[0], path, 3)


def test_csv_without_abstract_column_raises_naming_the_header_line(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "\n\ntitle,summary\nT,S\n")
    error = read_error(path)
    assert_names(error, path, 3)
    assert "no 'abstract' column" in str(error)


# --- stdin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "\n" + jsonl({"title": "T", "abstract": "A."}),
        "title,abstract\nT,A.\n",
        f"Subscribe\nT\n\n{ABSTRACT}\n",
    ],
    ids=["jsonl", "csv", "listing"],
)
def test_stdin_format_is_sniffed_from_the_first_text_line(text: str) -> None:
    entries, problems = read("-", stdin=io.StringIO(text))
    assert [(e.title, e.source.path) for e in entries] == [("T", "-")]
    assert problems == []


def test_stdin_defaults_to_sys_stdin_read_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b"title,abstract\nT,A.\nT2,caf\xe9\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    with pytest.raises(InputError) as caught:
        read("-")
    assert_names(caught.value, "-", 3)
    assert "byte 0xe9 at column 7" in str(caught.value)


def test_stdin_text_with_smuggled_bad_bytes_is_not_utf8() -> None:
    stdin = io.StringIO("title,abstract\nT,caf\udce9\n")
    with pytest.raises(InputError) as caught:
        read("-", stdin=stdin)
    assert_names(caught.value, "-", 2)


# --- whole-file errors ----------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\n"], ids=["empty", "blank"])
@pytest.mark.parametrize("name", ["in.jsonl", "in.csv", "in.txt"])
def test_empty_file_raises(tmp_path: Path, content: bytes, name: str) -> None:
    path = write(tmp_path, name, content)
    error = read_error(path)
    assert_names(error, path, None)
    assert "empty" in str(error)


def test_binary_file_raises_naming_the_line_of_the_nul_byte(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", b'{"abstract": "A."}\n\n\x89PNG\x00\x01\n')
    error = read_error(path)
    assert_names(error, path, 3)
    assert "NUL byte" in str(error)


def test_utf16_file_is_reported_as_binary(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "title,abstract\nT,A.\n".encode("utf-16"))
    assert_names(read_error(path), path, 1)


def test_non_utf8_byte_raises_naming_line_and_byte(tmp_path: Path) -> None:
    path = write(tmp_path, "in.txt", b"Title\n" + ABSTRACT.encode() + b"\nCaf\xe9 Title\n")
    error = read_error(path)
    assert_names(error, path, 3)
    assert "not UTF-8 text (byte 0xe9 at column 4)" in str(error)


def test_directory_raises_when_called(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_entries(str(tmp_path), problems=[])
    assert_names(caught.value, str(tmp_path), None)
    assert "directory" in str(caught.value)


def test_missing_file_raises_when_called(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.jsonl")
    with pytest.raises(InputError) as caught:
        read_entries(path, problems=[])
    assert_names(caught.value, path, None)
    assert "no such file" in str(caught.value)


@pytest.mark.parametrize("name", ["in.jsonl", "in.csv", "in.txt"])
def test_ten_megabyte_line_is_skipped_as_a_problem(tmp_path: Path, name: str) -> None:
    huge = json.dumps({"title": "T", "abstract": "x" * 10_000_000})
    path = write(tmp_path, name, huge + "\n")
    error = read_error(path)
    assert_names(error, path, None)
    assert f"the first at line 1: line longer than {MAX_LINE_BYTES} bytes" in str(error)


def test_ten_megabyte_line_does_not_hide_its_neighbours(tmp_path: Path) -> None:
    good = jsonl({"title": "T", "abstract": "A."})
    path = write(tmp_path, "in.jsonl", good + "y" * 10_000_000 + "\n" + good)
    entries, problems = read(path)
    assert [e.source.line for e in entries] == [1, 3]
    assert_names(problems[0], path, 2)


def test_problems_from_an_earlier_file_do_not_leak_into_the_next_message(tmp_path: Path) -> None:
    problems = [InputError("old", path="other.jsonl", line=9)]
    path = write(tmp_path, "in.csv", "title,abstract\n")
    with pytest.raises(InputError) as caught:
        list(read_entries(path, problems=problems))
    assert str(caught.value) == f"{path}: no entries found"


# --- properties ------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(
    pairs=st.lists(st.tuples(st.text(), st.text().filter(str.strip)), min_size=1, max_size=8),
    ensure_ascii=st.booleans(),
)
def test_jsonl_round_trips_any_text(pairs: list[tuple[str, str]], ensure_ascii: bool) -> None:
    lines = [
        json.dumps({"title": title, "abstract": abstract}, ensure_ascii=ensure_ascii)
        for title, abstract in pairs
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "in.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8")
        entries, problems = read(str(path))
    assert problems == []
    assert [(e.title, e.abstract) for e in entries] == [(t.strip(), a.strip()) for t, a in pairs]


# Single bytes and fragments that steer random input toward each parser's edge cases.
TOKENS = [bytes([byte]) for byte in b'{}[",: \n\r\x00\xff\xe9'] + [
    b"\xef\xbb\xbf",
    b'"abstract"',
    b'"title"',
    b'"id"',
    b"title,abstract\n",
    b"Subscribe",
    b"1e999",
    b"null",
    ABSTRACT.encode(),
]
INPUT_BYTES = st.one_of(
    st.binary(max_size=4000),
    st.text(max_size=2000).map(str.encode),
    st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join),
)


@PROPERTY_SETTINGS
@given(data=INPUT_BYTES, name=st.sampled_from(["in.jsonl", "in.csv", "in.txt"]))
def test_arbitrary_bytes_raise_nothing_but_input_error(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(data)
        try:
            entries, problems = read(str(path))
        except InputError as error:
            assert "\n" not in str(error)
            return
    assert all(isinstance(e, Entry) and e.abstract for e in entries)
    assert all("\n" not in str(p) for p in problems)


@PROPERTY_SETTINGS
@given(text=st.text(max_size=2000))
def test_arbitrary_stdin_text_raises_nothing_but_input_error(text: str) -> None:
    try:
        read("-", stdin=io.StringIO(text))
    except InputError as error:
        assert str(error).startswith("-")


FIRST, SECOND = "First abstract.", "Second abstract."


def _entry(abstract: str, line: int, item_id: str | None = None) -> Entry:
    return Entry(title="t", abstract=abstract, source=Source("p.jsonl", line), id=item_id)


@pytest.mark.parametrize(
    "entries",
    [
        # an explicit id used again for another abstract
        [_entry("First abstract.", 1, "a"), _entry("Second abstract.", 2, "a")],
        # an explicit id that is another abstract's own id (its key), either way round
        [_entry(FIRST, 1), _entry(SECOND, 2, abstract_key(FIRST))],
        [_entry(FIRST, 1, abstract_key(SECOND)), _entry(SECOND, 2)],
    ],
)
def test_an_id_naming_two_abstracts_is_a_problem_of_the_later_entry(entries: list[Entry]) -> None:
    problems: list[InputError] = []
    index = index_items(entries, problems=problems)
    assert len(index) == 1 and len(problems) == 1
    assert "already used for a different abstract" in str(problems[0])
    assert problems[0].line == 2


def test_the_same_abstract_under_its_explicit_id_twice_is_one_item() -> None:
    entries = [_entry("First abstract.", 1, "a"), _entry("First  abstract.", 2, "a")]
    problems: list[InputError] = []
    (item,) = index_items(entries, problems=problems).values()
    assert problems == [] and item.id == "a" and len(item.sources) == 2
