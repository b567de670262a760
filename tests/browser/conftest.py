"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, against the local stack on a free port.

Playwright's own browser download does not work on these machines, so the tests drive the system Chromium
(`chromium` on PATH, or `FILEPIPE_CHROMIUM`). Without one they skip with the reason, unless
`FILEPIPE_REQUIRE_BROWSER=1` (CI sets it), where a missing browser is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from components.settings import StackSettings
from local.app import LocalPipeline
from tests.local.harness import deleting_inputs

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, retention_days=3)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DEFAULT_TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    if os.environ.get("FILEPIPE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (FILEPIPE_REQUIRE_BROWSER=1: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    override = os.environ.get("FILEPIPE_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module, closed with it: Playwright's sync API keeps its own event loop on this
    thread while it runs, which must not outlive the browser tests into others that use asyncio (Pulumi mocks)."""
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium found: install Debian's `chromium` (apt-get install chromium) "
                     "or set FILEPIPE_CHROMIUM to its path")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def site(browser: Any) -> Iterator[str]:
    """The local stack (moto, web server, stream poller, VM host) on a free port; yields the site's URL.

    Depends on `browser` so that a machine without Chromium skips before paying for the stack.
    """
    with LocalPipeline(port=0, settings=SETTINGS, wrap_launcher=deleting_inputs) as pipeline:
        yield pipeline.url


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


IGNORED_CONSOLE = "Failed to load resource"
"""Chromium logs every 4xx answer and aborted request; the tests assert on those outcomes themselves."""


class PageErrors(list[str]):
    """Uncaught exceptions and console errors of a page's own code; a test fails if any occurred."""


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                              locale="en-GB", timezone_id="UTC")
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(context: Any, site: str, page_errors: PageErrors) -> Iterator[Any]:
    """The form, loaded and wired (main.js sets `data-ready` on <html>), with errors collected."""
    opened = context.new_page()
    opened.on("pageerror", lambda error: page_errors.append(f"uncaught: {error}"))
    opened.on("console", lambda message: page_errors.append(f"console.{message.type}: {message.text}")
              if message.type == "error" and not message.text.startswith(IGNORED_CONSOLE) else None)
    open_form(opened, site)
    yield opened
    assert not page_errors, f"the page reported errors: {page_errors}"


def open_form(page: Any, site: str) -> None:
    page.goto(site)
    page.wait_for_selector("html[data-ready='true']", state="attached")
