"""`summarize run --engine ray`: what the command line says before Ray is involved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from summarize._cli import cli


def test_engine_ray_without_an_endpoint_says_so_in_one_line(papers: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", str(papers), "--engine", "ray",
                                      "-o", str(tmp_path / "out.jsonl")])  # fmt: skip
    assert result.exit_code == 2
    assert result.output == (
        "summarize: error: --engine ray needs an endpoint (--base-url or OPENAI_BASE_URL): "
        "the embedded model is not for a cluster\n"
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_ray_flags_need_engine_ray(papers: Path) -> None:
    result = CliRunner().invoke(cli, ["run", str(papers), "--workers", "4"])
    assert result.exit_code == 2
    assert "--workers: only with --engine ray" in result.output


def test_engine_ray_writes_a_folder_not_over_a_file(papers: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="without Ray, the missing extra is said first")
    out = tmp_path / "out.jsonl"
    out.write_text("")
    result = CliRunner().invoke(cli, ["run", str(papers), "--engine", "ray", "-o", str(out),
                                      "--base-url", "http://127.0.0.1:9/v1"])  # fmt: skip
    assert result.exit_code == 2
    assert "is a file; --engine ray writes a folder of parts there" in result.output


def test_the_cli_does_not_import_ray() -> None:
    # `summarize --help` must not pay for Ray's import, nor need it installed; nor load
    # `summarize.ray` (and the HTTP stack under it) before `--engine ray` asks for it.
    code = "import sys, summarize._cli; print('summarize.ray' in sys.modules, 'ray' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)  # fmt: skip
    assert shown.stdout.split() == ["False", "False"]
