"""Prompts are files: `prompts/NAME.md`, TOML front matter then `[system]` and `[user]`.

The front matter names the prompt's `version` and its `strategy`: `abstractive`
(the model writes the summary, `prompts/summarize.md`) or `extractive` (the model
picks sentences and figures, `prompts/extract.md`). The strategy decides which
model's field descriptions fill `$fields`. The system part is rendered once per run
and stays byte-identical for every request, so provider prompt caching (and
llama.cpp's prefix reuse) applies; the abstract comes last, in the user part.
Rendering fails loudly on a missing variable. Every record stores the prompt's
version, strategy and the hash of the file that made it.

The bundled prompts ship inside the package as `summarize.prompts`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any, get_args

from pydantic import BaseModel

from ._errors import ConfigError
from ._extraction import Extraction
from ._schema import Strategy, Summary


def _bundled_prompts() -> Path:
    """`summarize/prompts` in an installed package; the repository's `prompts/` in a checkout."""
    installed = Path(str(files("summarize"))) / "prompts"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / "prompts"


PROMPTS = _bundled_prompts()
DEFAULT_PROMPT = PROMPTS / "summarize.md"
EXTRACT_PROMPT = PROMPTS / "extract.md"
REPAIR_PROMPT = PROMPTS / "repair.md"
# The bundled prompt of each strategy.
PROMPT_FOR: dict[str, Path] = {"abstractive": DEFAULT_PROMPT, "extractive": EXTRACT_PROMPT}
STRATEGIES: tuple[str, ...] = get_args(Strategy)
# What each strategy asks the model for: its fields' descriptions feed the prompt.
ANSWER_MODELS: dict[str, type[BaseModel]] = {"abstractive": Summary, "extractive": Extraction}
_FRONT_MATTER = re.compile(r"\A\+\+\+\n(?P<meta>.*?)\n\+\+\+\n", re.DOTALL)
_SECTION = re.compile(r"^\[(system|user|again)\]\n", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A parsed prompt file: its version, hash and the two templates."""

    path: Path
    version: str
    hash: str
    system: str
    user_template: Template
    strategy: Strategy = "abstractive"

    def messages(self, **values: str) -> list[dict[str, str]]:
        """The chat messages for one abstract: fixed system part first, abstract last.

        `values` fill the user template: `title` and `abstract` for an abstractive
        prompt, `sentences` and `figures` for an extractive one.
        """
        try:
            user = self.user_template.substitute(values)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{self.path}: user template needs {exc}") from exc
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def field_instructions(model: type[BaseModel] = ANSWER_MODELS["abstractive"]) -> str:
    """One line per described field of the answer, from the models' descriptions.

    This is the only place the words reach the model (the tool carries the bare schema,
    see `request.tool_for`), so it is kept short: a nested field is named by its own
    name, bare (backticks cost a token or two a name), consecutive fields with the same
    description share a line (`problem, method, result`), and a field without a
    description is left out.
    """
    schema = model.model_json_schema()
    described: list[tuple[str, str]] = []
    _describe(schema, schema.get("properties", {}), described)
    lines: list[tuple[list[str], str]] = []
    for name, description in described:
        if lines and lines[-1][1] == description:
            lines[-1][0].append(name)
        else:
            lines.append(([name], description))
    return "\n".join(f"- {', '.join(names)}: {description}" for names, description in lines)


def _describe(root: dict[str, Any], props: dict[str, Any], out: list[tuple[str, str]]) -> None:
    for name, raw_spec in props.items():
        # The field's own description, not its class's docstring.
        if raw_spec.get("description"):
            out.append((name, raw_spec["description"]))
        spec = _resolve(root, raw_spec)
        nested = spec
        if spec.get("type") == "array":
            nested = _resolve(root, spec.get("items", {}))
        if "properties" in nested:
            _describe(root, nested["properties"], out)


def _resolve(root: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = spec.get("$ref")
    if ref is None:
        return spec
    resolved: dict[str, Any] = root["$defs"][ref.rsplit("/", 1)[-1]]
    return {**resolved, **{k: v for k, v in spec.items() if k != "$ref"}}


def load_prompt(path: Path = DEFAULT_PROMPT) -> Prompt:
    """Read, check and pre-render a prompt file."""
    raw, meta, sections = _parse(path, {"system", "user"})
    strategy = meta.get("strategy", "abstractive")
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"{path}: strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}"
        )
    fields = field_instructions(ANSWER_MODELS[strategy])
    try:
        system = Template(sections["system"]).substitute(fields=fields).strip()
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: system template has unknown variable {exc}") from exc
    return Prompt(
        path=path,
        version=str(meta["version"]),
        hash=hashlib.sha256(raw).hexdigest()[:12],
        system=system,
        user_template=Template(sections["user"].strip()),
        strategy=strategy,
    )


@dataclass(frozen=True, slots=True)
class RepairPrompt:
    """What follows a rejected answer (`prompts/repair.md`): the answer and why it failed
    (`[user]`), or why only (`[again]`, for endpoints with `reask_with_answer` off)."""

    path: Path
    version: str
    user_template: Template
    again_template: Template

    def messages(
        self, *, answer: str, error: str, with_answer: bool = True
    ) -> list[dict[str, str]]:
        """The turns of a re-ask: the rejected answer as the assistant's turn and the
        user's request to fix it, or only the faults to avoid in asking again."""
        template, section = (
            (self.user_template, "user") if with_answer else (self.again_template, "again")
        )
        try:
            user = template.substitute(error=error)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{self.path}: {section} template needs {exc}") from exc
        asked = {"role": "user", "content": user}
        return [{"role": "assistant", "content": answer}, asked] if with_answer else [asked]


def load_repair_prompt(path: Path = REPAIR_PROMPT) -> RepairPrompt:
    """Read and check the repair prompt file."""
    _, meta, sections = _parse(path, {"user", "again"})
    return RepairPrompt(
        path,
        str(meta["version"]),
        Template(sections["user"].strip()),
        Template(sections["again"].strip()),
    )


def _parse(path: Path, wanted: set[str]) -> tuple[bytes, dict[str, Any], dict[str, str]]:
    """The raw bytes, the front matter and the sections of a prompt file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read prompt file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: prompt file is not UTF-8 (byte {exc.start})") from None
    front = _FRONT_MATTER.match(text)
    if front is None:
        raise ConfigError(f"{path}:1: prompt file must start with +++ TOML front matter +++")
    try:
        meta = tomllib.loads(front.group("meta"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: bad front matter: {exc}") from exc
    if "version" not in meta:
        raise ConfigError(f"{path}: front matter needs a `version`")
    parts = _SECTION.split(text[front.end() :])
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    if set(sections) != wanted:
        names = " and ".join(f"one [{name}]" for name in sorted(wanted))
        raise ConfigError(f"{path}: needs exactly {names} section")
    return raw, meta, sections
