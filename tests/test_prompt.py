"""The prompt file: fields come from the schema, the abstract goes last, bad files are named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from summarize import ClaimedGain, Extraction, Gain, Summary
from summarize._core.request import tool_for
from summarize._errors import ConfigError
from summarize._prompt import DEFAULT_PROMPT, EXTRACT_PROMPT, load_prompt, load_repair_prompt


def test_field_instructions_come_from_the_schema_descriptions() -> None:
    system = load_prompt(DEFAULT_PROMPT).messages(title="T", abstract="A.")[0]["content"]
    own = Summary.model_fields["problem"].description
    assert f"- problem, method, result: {own}" in system  # one line for the same words
    nested = {**ClaimedGain.model_fields, **Gain.model_fields}
    for name, spec in nested.items():
        if spec.description:
            assert f"- {name}: {spec.description}" in system
    assert "- claimed_gain" not in system  # no words, no line


def test_the_words_are_said_once_and_the_tool_is_the_bare_schema() -> None:
    system = load_prompt(DEFAULT_PROMPT).system
    tool = json.dumps(tool_for(Summary))
    for spec in {**Summary.model_fields, **ClaimedGain.model_fields, **Gain.model_fields}.values():
        if spec.description:
            assert spec.description in system
            assert spec.description not in tool
    assert '"title"' not in tool and "$defs" not in tool and "$ref" not in tool


def test_the_extractive_field_list_is_one_line_a_field() -> None:
    system = load_prompt(EXTRACT_PROMPT).system
    for name, spec in Extraction.model_fields.items():
        assert f"- {name}: {spec.description}" in system


def test_the_fixed_part_is_byte_identical_and_the_abstract_comes_last() -> None:
    prompt = load_prompt(DEFAULT_PROMPT)
    first = prompt.messages(title="One", abstract="First abstract.")
    second = prompt.messages(title="Two", abstract="Second abstract.")
    assert first[0] == second[0]
    assert first[-1]["content"].rstrip().endswith("First abstract.\n</abstract>")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[system]\nx\n[user]\n$abstract\n", ":1: prompt file must start with"),
        ('+++\nname = "x"\n+++\n[system]\nx\n[user]\ny\n', "needs a `version`"),
        ('+++\nversion = "1"\n+++\n[system]\nx\n', "one [system] and one [user]"),
        ('+++\nversion = "1"\n+++\n[system]\n$nope\n[user]\ny\n', "unknown variable"),
    ],
)
def test_a_bad_prompt_file_is_a_config_error_naming_it(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "p.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(reason)) as caught:
        load_prompt(path)
    assert str(path) in str(caught.value)


def test_an_unreadable_prompt_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_prompt(tmp_path / "missing.md")
    binary = tmp_path / "b.md"
    binary.write_bytes(b"+++\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_prompt(binary)


def test_the_prompt_hash_changes_with_the_file(tmp_path: Path) -> None:
    copy = tmp_path / "p.md"
    copy.write_text(DEFAULT_PROMPT.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert load_prompt(copy).hash != load_prompt(DEFAULT_PROMPT).hash


def test_a_reask_sends_the_answer_back_or_names_only_its_faults() -> None:
    repair = load_repair_prompt()
    answer, fault = '{"result": "..."}', "result: 352 characters, over the cap"
    rejected, fix = repair.messages(answer=answer, error=fault)
    assert (rejected, fix["role"]) == ({"role": "assistant", "content": answer}, "user")
    (again,) = repair.messages(answer=answer, error=fault, with_answer=False)
    assert again["role"] == "user" and fault in again["content"] and answer not in again["content"]


def test_a_repair_file_without_its_again_part_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "repair.md"
    path.write_text('+++\nversion = "1"\n+++\n[user]\nRejected: $error\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"one \[again\] and one \[user\]") as caught:
        load_repair_prompt(path)
    assert str(path) in str(caught.value)
