"""Drive a report page in headless Chromium (Debian's package) with Playwright.

.venv/bin/python -m tests.browser outputs/report.html docs/report.png   # a screenshot

Playwright is imported only when a page is opened: a test module that imports this one
still collects without it, and only the browser test is skipped (or fails, under CI).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system Chromium, if installed (`apt-get install chromium`)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def playwright_api() -> ModuleType:
    """`playwright.sync_api`; without it the calling test is skipped, unless
    SUMMARIZE_REQUIRE_BROWSER is set (CI), where the ImportError fails it."""
    if os.environ.get("SUMMARIZE_REQUIRE_BROWSER"):
        return importlib.import_module("playwright.sync_api")
    api: ModuleType = pytest.importorskip("playwright.sync_api", reason="no Playwright (dev)")
    return api


@contextmanager
def open_page(html: Path, problems: list[str]) -> Iterator[Page]:
    """`html` loaded in Chromium; console errors and page errors land in `problems`."""
    with playwright_api().sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith("file:") else problems.append(r.url))
        page.goto(html.resolve().as_uri())
        try:
            yield page
        finally:
            browser.close()


def main() -> None:
    html, png = Path(sys.argv[1]), Path(sys.argv[2])
    problems: list[str] = []
    with open_page(html, problems) as page:
        page.screenshot(path=str(png))
    print(f"{png}: written; page problems: {problems or 'none'}")


if __name__ == "__main__":
    main()
