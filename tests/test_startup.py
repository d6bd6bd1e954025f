"""Start-up: the CLI loads click and little else; each command imports what it uses.

How fast is measured in `bench/startup.py`, not here: these tests check what is loaded.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import summarize
from tests.conftest import ABSTRACTS

# Dependencies that `summarize --help` must not pay for: the OpenAI SDK (only the batch
# commands use it) and the HTTP and retry stacks (only a run sends requests).
HEAVY = ("openai", "httpx", "aiohttp", "tenacity", "jinja2")


def python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout


def test_importing_the_cli_loads_no_sdk_nor_http_stack() -> None:
    loaded = python(
        "import sys, summarize._cli\n"
        f"print(' '.join(name for name in {HEAVY!r} if name in sys.modules))"
    )
    assert loaded.split() == []


def test_the_batch_commands_do_load_the_sdk_when_they_run() -> None:
    """The check above can fail: the SDK is imported, where it is used."""
    loaded = python("import sys, summarize.batch\nprint('openai' in sys.modules)")
    assert loaded.strip() == "True"


def test_a_live_run_of_either_strategy_loads_no_sdk(tmp_path: Path) -> None:
    # The SDK serves only the Batch API: its import was ~3 s of each `summarize run`.
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"title": "t", "abstract": ABSTRACTS[0][1]}) + "\n")
    loaded = python(
        "import sys\n"
        "from summarize import EndpointSettings, RunSettings, run\n"
        "from summarize.testing import MockTransport\n"
        "from summarize.testing.server import FakeOpenAI\n"
        "for strategy in ('abstractive', 'extractive'):\n"
        f"    settings = RunSettings(inputs=({str(papers)!r},), strategy=strategy,\n"
        f"        output={str(tmp_path)!r} + f'/{{strategy}}.jsonl',\n"
        "        endpoint=EndpointSettings(api_key='sk-test'))\n"
        "    assert run(settings, transport=MockTransport(FakeOpenAI().answer)).requests > 0\n"
        "print(' '.join(name for name in ('openai', 'instructor') if name in sys.modules))"
    )
    assert loaded.split() == []


def test_summarize_help_works_and_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "summarize", "--help"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    commands = done.stdout.split("Commands:")[1].split()
    for name in ("batch", "diff", "eval", "export", "model", "report", "run", "schema",
                 "validate"):  # fmt: skip
        assert name in commands


def test_every_public_name_resolves_on_first_use() -> None:
    for name in summarize.__all__:
        assert getattr(summarize, name) is not None, name
    assert set(summarize.__all__) <= set(dir(summarize))


def test_no_public_name_is_also_a_submodule() -> None:
    """A lazily exported name and a submodule of the same name would fight over one
    attribute: importing the module would replace the function (`summarize.estimate`
    was both before the private names). The modules' underscores keep them apart."""
    submodules = {info.name for info in pkgutil.iter_modules(summarize.__path__)}
    assert submodules & set(summarize.__all__) == set()
    kind = python(
        "import summarize._estimate, summarize\nprint(type(summarize.estimate).__name__)"
    )
    assert kind.strip() == "function"
