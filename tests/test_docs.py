"""The docs name only commands and flags the CLI has.

Every `summarize ...` command in a fenced shell block (bash, sh, console, cron or no
language) of the README, `examples/` and `docs/` must name a subcommand that
`summarize --help` lists and flags that `summarize <cmd> --help` lists. The help text is
what is read, as a user reads it, not the code that builds it: a renamed or removed flag
then fails here, not in a reader's terminal. Output shown in the docs is fenced as `text`
and is not read.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "examples").rglob("*.md"), *(ROOT / "docs").rglob("*.md")]
)
SHELL = {"", "bash", "sh", "shell", "console", "cron"}
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
SEPARATORS = {"&&", "||", ";", "|", "&"}
PREFIXES = {"{", "(", "!", "time", "exec", "nohup", "then", "do", "else"}
# A flag in a help line's option column: `-o, --output PATH`, `--wait / --no-wait`.
HELP_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


@dataclass(frozen=True)
class Command:
    """One `summarize` invocation found in a page: where, and its arguments."""

    where: str
    args: tuple[str, ...]
    unreadable: str = ""


@dataclass(frozen=True)
class Help:
    """What one `--help` lists: its subcommands (a group's) and its flags."""

    commands: frozenset[str]
    flags: frozenset[str]


def fenced_shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced block in a shell language."""
    blocks: list[tuple[int, list[str]]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence, language, lines = opened.group(1), opened.group(2).lower(), []
            if language in SHELL:
                blocks.append((number + 1, lines))
        elif fence is not None and line.strip().startswith(fence[0] * len(fence)):
            fence = None
        elif fence is not None:
            lines.append(line)
    return blocks


def logical_lines(first: int, lines: list[str]) -> list[tuple[int, str]]:
    """Join `\\` continuations, and synopsis lines that go on with an indented `[` or `-`."""
    joined: list[tuple[int, str]] = []
    for offset, line in enumerate(lines):
        goes_on = joined and (
            joined[-1][1].endswith("\\") or re.match(r"\s+[\[-]", line) is not None
        )
        if goes_on:
            number, previous = joined[-1]
            joined[-1] = (number, previous.removesuffix("\\") + " " + line.strip())
        else:
            joined.append((first + offset, line.strip()))
    return joined


def commands_in(line: str) -> list[tuple[str, ...]]:
    """The arguments of each `summarize` command on one shell line (after the program)."""
    line = line.removeprefix("$ ")
    # `;` and `&` are words of their own even when glued to one (`--flag;`, `2>&1`); `|`
    # is not, since a synopsis writes choices as `batch|live|none`.
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    found: list[tuple[str, ...]] = []
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token not in SEPARATORS:
            words.append(token)
            continue
        words = program_and_arguments(words)
        if words and Path(words[0]).name == "summarize":
            found.append(tuple(words[1:]))
        elif len(words) >= 3 and words[1:3] == ["-m", "summarize"]:
            found.append(tuple(words[3:]))
        words = []
    return found


def program_and_arguments(words: list[str]) -> list[str]:
    """Drop what comes before the program: cron's schedule, `VAR=value`, `timeout 5h`, ..."""
    if words and words[0].startswith("@"):
        words = words[1:]  # @daily
    elif len(words) > 5 and all(re.fullmatch(r"[\d*/,-]+", word) for word in words[:5]):
        words = words[5:]  # 0 2 * * *
    while words:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]) or words[0] in PREFIXES:
            words = words[1:]
        elif words[0] == "timeout":
            words = words[1:]
            while words and words[0].startswith("-"):
                words = words[1:]  # timeout's own flags
            words = words[1:]  # its duration
        else:
            break
    return words


def documented_commands() -> list[Command]:
    commands: list[Command] = []
    for page in PAGES:
        name = page.relative_to(ROOT).as_posix()
        for first, lines in fenced_shell_blocks(page.read_text(encoding="utf-8")):
            for number, line in logical_lines(first, lines):
                try:
                    found = commands_in(line)
                except ValueError as exc:  # unbalanced quotes: output fenced as a shell block?
                    commands.append(Command(f"{name}:{number}", (), f"{exc}: {line}"))
                    continue
                commands += [Command(f"{name}:{number}", args) for args in found]
    return commands


@cache
def help_of(path: tuple[str, ...]) -> Help:
    """Run `summarize PATH... --help` through the installed console entry point."""
    (entry,) = entry_points(group="console_scripts", name="summarize")
    main = entry.load()
    out = io.StringIO()
    argv = sys.argv
    sys.argv = ["summarize", *path, "--help"]
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = argv
    assert exited.value.code in (0, None), f"summarize {' '.join(path)} --help failed"
    return parse_help(out.getvalue())


def parse_help(text: str) -> Help:
    """A click help page's `Commands:` names and `Options:` flags."""
    commands: set[str] = set()
    flags: set[str] = set()
    section = ""
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line.strip().rstrip(":")
            continue
        if section == "Commands" and re.match(r"  \S", line):
            commands.add(line.split()[0])
        elif section == "Options" and re.match(r"  -", line):
            column = re.split(r"\s{2,}", line.strip())[0]
            flags.update(HELP_FLAG.findall(column))
    return Help(frozenset(commands), frozenset(flags))


def problems(args: tuple[str, ...]) -> list[str]:
    """What in one documented command the CLI's help does not list."""
    path: list[str] = []
    rest = list(args)
    while rest and not rest[0].startswith("-"):
        listed = help_of(tuple(path)).commands
        if not listed:
            break  # a command's arguments, not a subcommand
        if rest[0] not in listed:
            where = " ".join(["summarize", *path])
            return [f"`{where}` has no subcommand {rest[0]!r} (it lists {sorted(listed)})"]
        path.append(rest.pop(0))
    if not path and not any(word.startswith("-") for word in rest):
        return ["names no subcommand"]
    flags = help_of(tuple(path)).flags
    found = []
    for word in rest:
        flag = word.strip("[]()").split("=")[0]
        if re.fullmatch(r"--?[A-Za-z][\w-]*", flag) and flag not in flags:
            found.append(f"`summarize {' '.join(path)} --help` lists no {flag}")
    return found


COMMANDS = documented_commands()


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_is_in_the_help(command: Command) -> None:
    assert not command.unreadable, "fence output as `text`, not as a shell block"
    assert problems(command.args) == [], " ".join(["summarize", *command.args])


def test_the_docs_are_read() -> None:
    """The scan finds the README's first command and commands on every docs page it should."""
    readme = [c for c in COMMANDS if c.where.startswith("README.md:")]
    assert readme, "no summarize command found in the README"
    assert readme[0].args[:2] == ("run", "examples/papers/*.txt")
    assert {c.where.split(":")[0] for c in COMMANDS} >= {
        "README.md",
        "docs/nightly.md",
        "docs/running.md",
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("summarize run x.txt --no-such-flag", "lists no --no-such-flag"),
        ("cd /srv && summarize batch collect --wiat", "lists no --wiat"),
        ("summarize summarise x.txt", "no subcommand 'summarise'"),
        ("summarize batch fetch -o out.jsonl", "no subcommand 'fetch'"),
    ],
)
def test_a_made_up_command_or_flag_is_caught(line: str, problem: str) -> None:
    (args,) = commands_in(line)
    assert any(problem in found for found in problems(args))


@pytest.mark.parametrize(
    "line",
    [
        "0 2 * * * cd /srv && summarize run in/*.txt -o out.jsonl --limit 5 >> log 2>&1",
        "0 2 * * * timeout --preserve-status 5h .venv/bin/summarize run in/*.txt --no-such",
        "{ KEY=x python -m summarize run in/*.txt --no-such; echo $?; } >> log",
    ],
)
def test_the_program_is_found_after_what_precedes_it(line: str) -> None:
    (args,) = commands_in(line)
    assert args[0] == "run"
    assert ("--no-such" in args) == any("--no-such" in found for found in problems(args))
