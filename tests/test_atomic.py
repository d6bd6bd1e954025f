"""Files replaced whole (`summarize/atomic.py`): links, modes and planted temporary names.

Through the CLI against the fake server: a rerun under `--force` supersedes every
line, so closing the output rewrites (compacts) it through the atomic writer.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from summarize._atomic import replace_file
from summarize._cli import cli
from summarize._errors import OutputError
from summarize._output import Output
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, read_jsonl


def run_twice(server: FakeOpenAI, papers: Path, out: Path) -> Result:
    """A first run, then a `--force` rerun whose close rewrites `out` whole."""
    args = ["run", str(papers), "-o", str(out), "--base-url", server.base_url]
    env = {"OPENAI_API_KEY": FAKE_KEY}
    first = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, [*args, "--force"], env=env, catch_exceptions=False)
    assert second.exit_code == 0, second.output
    return second


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_symlinked_output_stays_a_link_and_its_target_holds_the_records(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    target = volume / "records.jsonl"
    target.touch()
    out = tmp_path / "out.jsonl"
    out.symlink_to(target)
    run_twice(server, papers, out)
    assert out.is_symlink() and out.resolve() == target
    records = read_jsonl(target)
    assert len(records) == 3 and len({r["id"] for r in records}) == 3
    assert server.stats.requests == 6  # the rerun redid all three: 6 lines compacted to 3
    assert list(volume.iterdir()) == [target]  # no temporary left beside the target


def test_planted_link_at_the_old_temporary_name_is_never_written_through(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    planted = [tmp_path / ".out.jsonl.tmp", tmp_path / ".out.errors.jsonl.tmp"]
    for link in planted:
        link.symlink_to(victim)
    run_twice(server, papers, out)
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not out.is_symlink() and len(read_jsonl(out)) == 3
    assert all(link.is_symlink() for link in planted)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p not in planted]


def test_a_run_removes_the_temporaries_a_killed_run_left_and_nothing_else(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    left = [
        tmp_path / ".out.jsonl.0123456789abcdef.tmp",
        tmp_path / ".out.errors.jsonl.fedcba9876543210.tmp",
    ]
    for path in left:
        path.write_bytes(b'{"id":"half a compaction')  # what kill -9 during a rewrite leaves
    others = [tmp_path / ".out.jsonl.tmp", tmp_path / ".notes.0123456789abcdef.tmp"]
    for path in others:
        path.write_text("not ours\n", encoding="utf-8")
    run_twice(server, papers, out)
    assert not [path for path in left if path.exists()]
    assert all(path.read_text(encoding="utf-8") == "not ours\n" for path in others)


@pytest.mark.parametrize("mode", [0o600, 0o640], ids=["0600", "0640"])
def test_output_mode_is_kept_when_it_is_rewritten(
    server: FakeOpenAI, papers: Path, tmp_path: Path, umask_022: None, mode: int
) -> None:
    out = tmp_path / "out.jsonl"
    out.touch()
    out.chmod(mode)
    run_twice(server, papers, out)
    assert len(read_jsonl(out)) == 3
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_new_report_file_gets_the_umask_mode_like_a_plain_open(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    run_twice(server, papers, out)
    old = os.umask(0o027)
    try:
        result = CliRunner().invoke(cli, ["report", str(out), "--md", str(tmp_path / "d.md")])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "d.md").stat().st_mode) == 0o640


def test_export_into_a_named_pipe_writes_into_it_and_keeps_the_pipe(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    run_twice(server, papers, out)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so opening to write won't block
    try:
        result = CliRunner().invoke(cli, ["export", str(out), "--csv", str(pipe)])
        received = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    assert received.startswith(b"id,title,") and received.count(b"\r\n") == 4


def test_a_failed_write_leaves_the_file_as_it_was_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old\n", encoding="utf-8")

    def chunks() -> Iterator[bytes]:
        yield b"half"
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"state.json: cannot write \(No space left on device\)"):
        replace_file(path, chunks())
    assert path.read_text(encoding="utf-8") == "old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_a_dangling_link_at_the_old_temporary_name_is_not_created_through(
    tmp_path: Path,
) -> None:
    path = tmp_path / "manifest.json"
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / ".manifest.json.tmp").symlink_to(elsewhere)
    replace_file(path, [b"{}\n"])
    assert path.read_bytes() == b"{}\n" and not path.is_symlink()
    assert not elsewhere.exists()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_planted_at_the_random_temporary_name_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dangling: bool
) -> None:
    # The name is random: the test makes it known, to plant a link exactly there.
    names = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr("summarize._atomic.secrets.token_hex", lambda _: next(names))
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_text("precious")
    out = tmp_path / "out.json"
    (tmp_path / f".out.json.{'0' * 16}.tmp").symlink_to(victim)
    replace_file(out, [b"new\n"])
    assert out.read_text() == "new\n" and not out.is_symlink()
    if dangling:
        assert not victim.exists()  # not created through the link
    else:
        assert victim.read_text() == "precious"


def test_an_output_reached_by_a_link_and_by_its_target_is_locked_once(tmp_path: Path) -> None:
    target = tmp_path / "volume" / "out.jsonl"
    target.parent.mkdir()
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    with Output(link), pytest.raises(OutputError, match="another summarize run"):
        Output(target).open()
