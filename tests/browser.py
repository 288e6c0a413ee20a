"""The real browser that the browser tests drive: Debian's chromium through Playwright.

Playwright never downloads a browser here (no `playwright install`); tests/test_browser.py and
tests/test_hub.py launch this one.
"""

import os
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def why_no_browser() -> str:
    """'' when the browser and the playwright package are there, else what is missing and how to get it."""
    try:
        import playwright  # noqa: F401 (imported only to see whether it is installed)
    except ImportError:
        return "the Python package playwright is not installed (it is in requirements.txt: run `make setup`)"
    if not os.access(CHROMIUM, os.X_OK):
        return (f"no browser: {CHROMIUM} is missing; install Debian's chromium package "
                "(`apt-get install chromium`, as root)")
    return ""


def launch(playwright):
    """Headless chromium, started by a sync_playwright() instance."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
