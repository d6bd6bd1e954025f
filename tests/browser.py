"""Drive a report page in headless Chromium (Debian's package) with Playwright.

.venv/bin/python -m tests.browser outputs/report.html docs/report.png   # a screenshot
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

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


@contextmanager
def open_page(html: Path, problems: list[str]) -> Iterator[Page]:
    """`html` loaded in Chromium; console errors and page errors land in `problems`."""
    with sync_playwright() as playwright:
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
