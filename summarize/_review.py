"""Record files as people meet them: read, check after hand edits, and compare two nights.

`validate_file` checks each line against the record schema and its grounding (the same
Pydantic models and checks as a run), and ids for duplicates; `diff_records` lists the
records added, removed and changed, field by field.

A record whose redo failed later (`_output.failed_redos`) is sound but not current:
`kept_records` names each as a notice, not a problem, and `diff_records` marks it `!`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import _grounding as grounding
from ._core.records import Record
from ._errors import InputError
from ._jsonl import BadLine, Line, read_jsonl
from ._output import errors_path_for, failed_redos
from ._parts import part_paths, read_parts
from ._schema import ClaimedGain, Summary

SUMMARY_FIELDS = tuple(Summary.model_fields)
REQUIRED = frozenset({"id", "abstract", *SUMMARY_FIELDS})
# Provenance that changes on every run without the record meaning anything new.
VOLATILE = frozenset(
    {
        "created_at",
        "latency_s",
        "attempts",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "batch_id",
    }
)

# What a line written before a field existed stands for: the field's default. An older
# line is not "changed" for lacking a field a newer one has at its default.
_DEFAULTS = {name: spec.get_default(call_default_factory=True)
             for name, spec in Record.model_fields.items() if not spec.is_required()}  # fmt: skip


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Record (or gold) lines; a line that is not one is an `InputError` naming it."""
    lines: list[dict[str, Any]] = []
    for line in read_jsonl(path, expect=dict):
        if missing := REQUIRED - line.value.keys():
            raise InputError(f"missing {', '.join(sorted(missing))}", path=path, line=line.number)
        lines.append(line.value)
    return lines


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one line of a records file."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def validate_file(path: Path) -> list[Problem]:
    """Every problem in a records file: JSON, schema, grounding, duplicate ids."""
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for line in read_jsonl(path, expect=dict, bad="skip"):
        if isinstance(line, BadLine):
            problems.append(Problem(path, line.number, line.reason))
            continue
        number, record = line.number, line.value
        if number == 1 and "error_type" in record and "problem" not in record:
            raise InputError(
                "this is an errors file: its lines are abstracts that failed, with why; "
                "validate the records file beside it",
                path=path,
            )
        problems.extend(Problem(path, number, message) for message in check_record(record))
        record_id = record.get("id")
        if isinstance(record_id, str):
            if record_id in first_line:
                message = f"duplicate id {record_id} (first on line {first_line[record_id]})"
                problems.append(Problem(path, number, message))
            first_line.setdefault(record_id, number)
    return problems


def kept_records(path: Path) -> list[Problem]:
    """A notice for each record of `path` whose redo failed after it was made (an error
    line beside it, in OUT.errors.jsonl): kept, not current, and asked again next run."""
    failed = failed_redos(path)
    if not failed:
        return []
    last: dict[str, int] = {}
    for line in read_jsonl(path, expect=dict, bad="skip"):
        if isinstance(line, Line) and line.value.get("id") in failed:
            last[line.value["id"]] = line.number
    errors = errors_path_for(path).name
    return [
        Problem(path, number, f"notice: {record_id}: a redo failed after this record "
                f"({failed[record_id].get('error_type')}; see {errors}); the record is kept, "
                "and the abstract is asked again on the next run")
        for record_id, number in sorted(last.items(), key=lambda pair: pair[1])
    ]  # fmt: skip


def validate_output(path: Path) -> tuple[list[Problem], list[Problem]]:
    """The problems of an output, a JSONL file or a folder of parts, and its notices
    (records kept after a failed redo)."""
    if path.is_dir():
        return validate_folder(path)
    return validate_file(path), kept_records(path)


def validate_folder(folder: Path) -> tuple[list[Problem], list[Problem]]:
    """A folder of parts read as one output: each bad line by part and line, an id twice
    in one part (a part holds one line per id), and the current records' schema and
    grounding (lines later parts superseded are not checked: no reader sees them). Then
    a notice for each record a failed redo came after."""
    parts = read_parts(folder, bad="skip")
    if not parts.files:
        raise InputError("a folder with no parts (part-*.jsonl): not an output", path=folder)
    problems = [Problem(Path(bad.path), bad.number, bad.reason) for bad in parts.bad]
    problems += _twice_in_a_part(folder)
    for item_id, record in parts.records.items():
        part, number = parts.where[item_id, False]
        problems.extend(Problem(part, number, message) for message in check_record(record))
    notices = []
    for item_id, error in parts.errors.items():
        if item_id in parts.records:
            part, number = parts.where[item_id, False]
            error_part, error_number = parts.where[item_id, True]
            notices.append(Problem(part, number, f"notice: {item_id}: a redo failed after this "
                                   f"record ({error.get('error_type')}; see {error_part.name}:"
                                   f"{error_number}); the record is kept, and the abstract is "
                                   "asked again on the next run"))  # fmt: skip
    return sorted(problems, key=_place), sorted(notices, key=_place)


def _twice_in_a_part(folder: Path) -> list[Problem]:
    problems = []
    for part in part_paths(folder):
        first: dict[str, int] = {}
        for line in read_jsonl(part, expect=dict, bad="skip"):
            if isinstance(line, Line) and isinstance(line.value.get("id"), str):
                key = line.value["id"]
                if key in first:
                    message = f"duplicate id {key} in one part (first on line {first[key]})"
                    problems.append(Problem(part, line.number, message))
                first.setdefault(key, line.number)
    return problems


def _place(problem: Problem) -> tuple[str, int]:
    return str(problem.path), problem.line


def check_record(record: dict[str, Any]) -> list[str]:
    """Why one record breaks the schema or its grounding; empty when it is sound."""
    context = {"abstract": record.get("abstract"), "title": record.get("title")}
    if not all(isinstance(v, str) for v in context.values()):
        context = {}
    try:
        Record.model_validate(record, context=context)
        if record.get("strategy") == "extractive":
            return _extracted(record, context)
        Summary.model_validate({k: record[k] for k in SUMMARY_FIELDS}, context=context)
    except ValidationError as exc:
        return [_message(error) for error in exc.errors(include_url=False)]
    return []


def _extracted(record: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """An extractive record's sentences are the abstract's own; its gains as any other."""
    ClaimedGain.model_validate(record["claimed_gain"], context=context)
    return [
        f"{name}: not a sentence of the abstract"
        for name in ("problem", "method", "result")
        if not grounding.contains_quote(record["abstract"], record[name])
    ]


def _message(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


@dataclass(frozen=True, slots=True)
class Change:
    """One record that differs between two files."""

    kind: str  # "added" | "removed" | "changed" | "failed" (a redo failed; record kept)
    id: str
    title: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        mark = {"added": "+", "removed": "-", "changed": "~", "failed": "!"}[self.kind]
        changed = f"  [{', '.join(self.fields)}]" if self.fields else ""
        if self.kind == "failed":
            changed = f"  [redo failed: {', '.join(self.fields)}; record kept]"
        return f"{mark} {self.id}  {self.title}{changed}"


def diff_records(
    old: list[dict[str, Any]],
    new: list[dict[str, Any]],
    failed: dict[str, dict[str, Any]] | None = None,
) -> list[Change]:
    """Records added, removed and changed (ignoring per-run timings and token counts);
    then the records of `new` whose redo failed after them (`failed`, by id: the error
    line, as `_output.failed_redos` gives them), which are kept but not current."""
    changes = _changes(old, new)
    for record_id, record in {r["id"]: r for r in new}.items():
        if failed and record_id in failed:
            why = (str(failed[record_id].get("error_type")),)
            changes.append(Change("failed", record_id, str(record.get("title", "")), why))
    return changes


def _changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    before = {r["id"]: r for r in old}
    after = {r["id"]: r for r in new}
    changes = [Change("removed", i, str(r.get("title", ""))) for i, r in before.items()
               if i not in after]  # fmt: skip
    for record_id, record in after.items():
        previous = before.get(record_id)
        if previous is None:
            changes.append(Change("added", record_id, str(record.get("title", ""))))
            continue
        fields = tuple(
            key
            for key in dict.fromkeys([*previous, *record])
            if key not in VOLATILE
            and previous.get(key, _DEFAULTS.get(key)) != record.get(key, _DEFAULTS.get(key))
        )
        if fields:
            changes.append(Change("changed", record_id, str(record.get("title", "")), fields))
    return changes
