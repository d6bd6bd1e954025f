"""The embedded model's start: its weights assembled once, cleanly, and hashed once per
version of the file; the server started without `preexec_fn` and dying with its parent.

Small fake weights stand for the 491 MB: two "packages" on `sys.path` whose `data/*.bin`
parts concatenate to a file of known sha256.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from summarize._cli import cli
from summarize._embedded import server as local_server
from summarize._embedded import weights as local
from summarize._embedded.server import LAUNCHER, EmbeddedServer, die_with_parent
from summarize._embedded.weights import ModelFile, Weights, embedded_model, model_file
from summarize._errors import ConfigError
from summarize._settings import EndpointSettings, resolve_settings
from tests.conftest import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
PARTS = (b"GGUF" + b"a" * 1000, b"b" * 777)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of the test's own, where assembled weights and digest records go."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SUMMARIZE_CACHE", str(root))
    return root


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Weights:
    """Tiny weights in two installed "packages", as the embedded model's are in six."""
    site = tmp_path / "site"
    for number, content in enumerate(PARTS, start=1):
        package = site / f"tiny_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{number}.bin").write_bytes(content)
    monkeypatch.syspath_prepend(str(site))
    return Weights(
        file_name="tiny.gguf",
        packages=("tiny_part1", "tiny_part2"),
        sha256=hashlib.sha256(b"".join(PARTS)).hexdigest(),
        chat_format="chatml",
        licence="Apache-2.0",
    )


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file read whole to hash it."""
    seen: list[Path] = []
    real: Callable[[Path], str] = local.file_sha256

    def counting(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(local, "file_sha256", counting)
    return seen


def leftovers(folder: Path) -> list[str]:
    """What is in the models folder besides the weights and the assembly's lock."""
    return sorted(
        p.name for p in folder.iterdir() if p.name not in ("tiny.gguf", ".tiny.gguf.lock")
    )


# The digest: hashed once per version of the file.


def test_the_weights_are_hashed_once_and_then_known_by_their_record(
    weights: Weights, hashes: list[Path], cache: Path
) -> None:
    first = embedded_model(weights, into=cache / "models")
    again = [embedded_model(weights, into=cache / "models") for _ in range(3)]
    assert first.sha256 == weights.sha256 and all(m == first for m in again)
    assert hashes == [cache / "models" / "tiny.gguf"]  # before: 4 hashes of the file


def test_a_file_that_changed_is_hashed_again(tmp_path: Path, hashes: list[Path]) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF one")
    first = model_file(gguf)
    assert model_file(gguf) == first and len(hashes) == 1
    stat = gguf.stat()
    gguf.write_bytes(b"GGUF two")  # same size; the old mtime put back: the ctime still moves
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = model_file(gguf)
    assert second.sha256 == hashlib.sha256(b"GGUF two").hexdigest() != first.sha256
    assert len(hashes) == 2
    gguf.unlink()
    gguf.write_bytes(b"GGUF three")  # a new inode
    assert model_file(gguf).sha256 == hashlib.sha256(b"GGUF three").hexdigest()
    assert len(hashes) == 3


def test_a_wrong_hash_is_refused_and_the_file_and_its_record_are_forgotten(
    weights: Weights, cache: Path, hashes: list[Path]
) -> None:
    embedded_model(weights, into=cache / "models")
    target = cache / "models" / "tiny.gguf"
    target.write_bytes(b"tampered")
    with pytest.raises(ConfigError, match="does not match the pinned"):
        embedded_model(weights, into=cache / "models")
    assert not target.exists() and not list((cache / "digests").iterdir())
    assert embedded_model(weights, into=cache / "models").sha256 == weights.sha256


def test_an_unwritable_cache_costs_a_hash_not_an_error(
    tmp_path: Path, hashes: list[Path], cache: Path
) -> None:
    cache.mkdir()
    (cache / "digests").write_text("a file where the folder would be")
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_file(gguf) == model_file(gguf) and len(hashes) == 2


# Assembly: nothing left behind.


def test_a_failed_assembly_leaves_no_temporary_file(weights: Weights, cache: Path) -> None:
    part = next((cache.parent / "site" / "tiny_part2" / "data").iterdir())
    part.unlink()
    part.mkdir()  # the second part cannot be read, after the first was written
    with pytest.raises(IsADirectoryError):
        embedded_model(weights, into=cache / "models")
    assert leftovers(cache / "models") == []  # before: one temporary file of 1,004 bytes


def test_a_killed_assemblys_leftover_is_removed_by_the_next(weights: Weights, cache: Path) -> None:
    models = cache / "models"
    models.mkdir(parents=True)
    (models / ".tiny.gguf.k1ll3d.part").write_bytes(b"half")
    (models / "notes.txt").write_text("the user's, not an assembly's")
    embedded_model(weights, into=models)
    assert leftovers(models) == ["notes.txt"]


# The dry run: nothing assembled, nothing written.


def test_a_dry_run_names_the_model_without_assembling_it(weights: Weights, cache: Path) -> None:
    planned = embedded_model(weights, into=cache / "models", assemble=False)
    assembled = embedded_model(weights, into=cache / "models")
    assert planned.label == assembled.label


def test_the_dry_run_of_the_default_writes_nothing_and_says_the_model_is_not_assembled(
    papers: Path, cache: Path, hashes: list[Path]
) -> None:
    result = CliRunner().invoke(cli, ["run", str(papers), "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "to send to qwen2.5-coder-0.5b-instruct-q4_k_m.gguf@sha256:1d9614638d18" in result.output
    assert "the embedded model is not assembled yet" in result.output
    assert not cache.exists() and hashes == []  # before: 491 MB assembled, then hashed
    assert read_jsonl(papers.with_name("outputs") / "summaries.jsonl") == []


def test_the_dry_run_of_a_model_file_records_no_digest(
    papers: Path, tmp_path: Path, cache: Path
) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    result = CliRunner().invoke(cli, ["run", str(papers), "--model-file", str(gguf), "--dry-run"],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "not assembled" not in result.output and not cache.exists()


# The server's start: no preexec_fn, and it dies with its parent.


class Recorded(subprocess.Popen[bytes]):
    calls: list[dict[str, Any]] = []  # noqa: RUF012 - one test's record

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Recorded.calls.append(kwargs)
        super().__init__(*args, **kwargs)


class SleepingServer(EmbeddedServer):
    """Starts `sleep` in place of llama.cpp's server, and is never ready."""

    def _command(self) -> list[str]:
        return ["sleep", "60"]


def test_the_server_is_started_without_preexec_fn(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorded.calls = []
    monkeypatch.setattr(local_server.subprocess, "Popen", Recorded)
    server = SleepingServer(ModelFile(Path("x.gguf"), "0" * 64), startup_timeout=0.01)
    with pytest.raises(ConfigError, match="did not answer"):
        server.start()
    assert len(Recorded.calls) == 1 and Recorded.calls[0].get("preexec_fn") is None


PARENT = """
import subprocess, sys, time
from summarize._embedded.server import die_with_parent
child = subprocess.Popen(die_with_parent(["sleep", "60"]))
print(child.pid, flush=True)
time.sleep(60)
"""


def state(pid: int) -> str | None:
    """The process's state letter (Z: a zombie, dead), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_launched_server_dies_when_its_parent_is_killed() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, env=env
    ) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            # The launcher has become `sleep` (exec'd): the signal is asked for by then.
            assert wait_for(
                lambda: Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep")
            )
            parent.send_signal(signal.SIGKILL)
            parent.wait()
            assert wait_for(lambda: state(child) in (None, "Z")), f"{child} outlived its parent"
        finally:
            parent.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_launcher_runs_nothing_when_its_parent_is_already_gone(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    launched = subprocess.run(
        [sys.executable, "-I", str(LAUNCHER), "1", "touch", str(marker)], check=False
    )
    assert launched.returncode == 127 and not marker.exists()
    assert die_with_parent(["touch", str(marker)])[-2:] == ["touch", str(marker)]


def test_the_embedded_model_keeps_the_tuning_the_user_gave_and_its_own_for_the_rest(
    tmp_path: Path,
) -> None:
    model = ModelFile(tmp_path / "x.gguf", "0" * 64)
    flags = {"inputs": ("a.txt",), "max_tokens": 300, "max_reasks": 0, "timeout": 30.0}
    given = resolve_settings(flags, env={}, cwd=tmp_path).endpoint
    endpoint = local_server.local_endpoint(model, "http://127.0.0.1:1/v1", given=given)
    assert (endpoint.max_tokens, endpoint.max_reasks, endpoint.timeout) == (300, 0, 30.0)
    # What was not given stays as suits a small local model, not the remote defaults.
    suited = local_server.local_endpoint(model, "http://127.0.0.1:1/v1")
    assert endpoint.max_retries == suited.max_retries == 2
    assert endpoint.model == "local" and endpoint.constrain_quotes
    # A small model shown its own rejected answer writes it again: it is asked afresh.
    assert not endpoint.reask_with_answer and EndpointSettings().reask_with_answer
    untouched = local_server.local_endpoint(
        model, None, given=resolve_settings({"inputs": ("a.txt",)}, env={}, cwd=tmp_path).endpoint
    )
    assert untouched.max_tokens == suited.max_tokens == 512
