"""The package's shape (`.ci/structure.py`): no import cycle, the core under the
transports, live mode never importing batch mode, the Ray package sending through live
mode alone, short modules and functions.

The script reads the source with `ast`; here it runs on this repository (which must
pass) and on small trees planted with each fault (which must not).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "structure.py"


def structure(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip


def plant(root: Path, files: dict[str, str]) -> Path:
    """A package `summarize` under `root` holding `files` (path -> source)."""
    for name, source in {"__init__.py": "", **files}.items():
        path = root / "summarize" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


def test_this_repository_has_the_shape_it_should() -> None:
    checked = structure(ROOT)
    assert checked.returncode == 0, checked.stderr
    assert "no import cycle" in checked.stdout


def test_a_cycle_is_found_even_when_one_side_imports_only_for_the_type_checker(
    tmp_path: Path,
) -> None:
    tree = plant(tmp_path, {
        "_a.py": "from ._b import B\n\nA = B\n",
        "_b.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                 "    from ._a import A\n\nB = 1\n",
    })  # fmt: skip
    checked = structure(tree)
    assert checked.returncode == 1
    assert "import cycle: summarize._a -> summarize._b -> summarize._a" in checked.stderr


def test_a_cycle_through_a_package_init_is_found(tmp_path: Path) -> None:
    # Importing `_batch.options` runs `_batch/__init__.py` first, which imports the plan.
    tree = plant(tmp_path, {
        "_batch/__init__.py": "from .collect import collect\n",
        "_batch/collect.py": "from .._core.plan import plan\n\ncollect = plan\n",
        "_batch/options.py": "",
        "_core/__init__.py": "",
        "_core/plan.py": "def plan() -> None:\n    from .._batch import options  # noqa\n",
    })  # fmt: skip
    checked = structure(tree)
    assert checked.returncode == 1
    assert ("import cycle: summarize._batch -> summarize._batch.collect -> "
            "summarize._core.plan -> summarize._batch") in checked.stderr


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ({"_live/__init__.py": "", "_live/pool.py": "from .._batch import state\n",
          "_batch/__init__.py": "", "_batch/state.py": ""},
         "live mode never imports batch mode"),
        ({"_live/__init__.py": "", "_live/pool.py": "",
          "_batch/__init__.py": "", "_batch/submit.py": "from .._live.pool import x\n"},
         "batch mode reaches live mode only in summarize._batch.live_repair"),
        ({"_core/__init__.py": "", "_core/plan.py": "from .._live import pool\n",
          "_live/__init__.py": "", "_live/pool.py": ""},
         "the core sits under the transports"),
        ({"_live/__init__.py": "", "_live/pool.py": "from ..ray import _worker\n",
          "ray/__init__.py": "", "ray/_worker.py": ""},
         "live and batch mode never import the Ray package"),
        ({"_batch/__init__.py": "", "_batch/submit.py": "from ..ray._parts import x\n",
          "ray/__init__.py": "", "ray/_parts.py": ""},
         "live and batch mode never import the Ray package"),
        ({"ray/__init__.py": "", "ray/_job.py": "from .._batch import state\n",
          "_batch/__init__.py": "", "_batch/state.py": ""},
         "the Ray package sends through live mode; it imports neither batch mode nor the CLI"),
        ({"ray/__init__.py": "", "ray/_job.py": "from .._cli.common import fail\n",
          "_cli/__init__.py": "", "_cli/common.py": ""},
         "the Ray package sends through live mode; it imports neither batch mode nor the CLI"),
        ({"_core/__init__.py": "", "_core/plan.py": "from ..ray import _parts\n",
          "ray/__init__.py": "", "ray/_parts.py": ""},
         "the core sits under the transports"),
        ({"_long.py": "x = 1\n" * 301}, "301 lines, over 300"),
        ({"_work.py": "def work() -> None:\n" + "    x = 1\n" * 50},
         "work is 51 lines, over 50"),
    ],
)  # fmt: skip
def test_each_rule_is_held(tmp_path: Path, files: dict[str, str], said: str) -> None:
    checked = structure(plant(tmp_path, files))
    assert checked.returncode == 1 and said in checked.stderr


def test_the_ray_package_may_send_through_live_mode(tmp_path: Path) -> None:
    tree = plant(tmp_path, {
        "_live/__init__.py": "", "_live/pool.py": "", "_core/__init__.py": "",
        "_core/plan.py": "", "ray/__init__.py": "",
        "ray/_worker.py": "from .._live.pool import x\nfrom .._core.plan import plan\n",
    })  # fmt: skip
    checked = structure(tree)
    assert checked.returncode == 0, checked.stderr


def test_a_live_repair_may_send_through_live_mode(tmp_path: Path) -> None:
    tree = plant(tmp_path, {
        "_live/__init__.py": "", "_live/pool.py": "",
        "_batch/__init__.py": "", "_batch/live_repair.py": "from .._live.pool import x\n",
    })  # fmt: skip
    checked = structure(tree)
    assert checked.returncode == 0, checked.stderr
