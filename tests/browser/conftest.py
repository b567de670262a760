"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, against the local stack on a free port.

Playwright's own browser download does not work on these machines, so the tests drive the system Chromium
(`chromium` on PATH, or `FILEPIPE_CHROMIUM`). Without one they skip with the reason, unless
`FILEPIPE_REQUIRE_BROWSER=1` (CI sets it), where a missing browser is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from local.app import Credentials, LocalPipeline
from stackspec.settings import StackSettings
from tests.local.harness import UPLOADS_UNBOUNDED, deleting_inputs

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, retention_days=3, upload_grants_per_hour=UPLOADS_UNBOUNDED)
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
def pipeline(browser: Any) -> Iterator[LocalPipeline]:
    """The local stack (moto with Cognito, web server, stream poller, VM host) on a free port.

    Depends on `browser` so that a machine without Chromium skips before paying for the stack.
    """
    with LocalPipeline(port=0, settings=SETTINGS, wrap_launcher=deleting_inputs) as started:
        yield started


@pytest.fixture(scope="module")
def site(pipeline: LocalPipeline) -> str:
    """The site's URL."""
    return pipeline.url


@pytest.fixture(scope="module")
def user(pipeline: LocalPipeline) -> Credentials:
    """A confirmed account of the module's stack, as an operator creates one; the `page` fixture signs in as it."""
    return pipeline.create_user("browser-user@example.com")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


IGNORED_CONSOLE = "Failed to load resource"
"""Chromium logs every 4xx answer and aborted request; the tests assert on those outcomes themselves."""


class PageErrors(list[str]):
    """Uncaught exceptions and console errors of a page's own code; a test fails if any occurred."""


def new_context(browser: Any, **options: Any) -> Any:
    """A browser context as the tests' pages use it (desktop size, downloads kept, British English, UTC)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                              locale="en-GB", timezone_id="UTC", **options)
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return ctx


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = new_context(browser)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def signed_out_page(context: Any, site: str, page_errors: PageErrors) -> Iterator[Any]:
    """The page, loaded and wired (main.js sets `data-ready` on <html>) and showing the sign-in view, with errors
    collected."""
    opened = context.new_page()
    watch_errors(opened, page_errors)
    open_form(opened, site)
    yield opened
    assert not page_errors, f"the page reported errors: {page_errors}"


@pytest.fixture(scope="module")
def signed_in_state(browser: Any, site: str, user: Credentials) -> dict[str, Any]:
    """The browser storage of a page signed in as `user`, typed into the page once per module: what it keeps is the
    refresh token in localStorage, so a page opened with it signs itself in, as after a reload. (Signing out would
    revoke that token: the tests that sign out sign in on their own, from `signed_out_page`.)"""
    ctx = new_context(browser)
    errors = PageErrors()
    try:
        opened = ctx.new_page()
        watch_errors(opened, errors)
        open_form(opened, site)
        sign_in(opened, user)
        assert not errors, f"the page reported errors: {errors}"
        return dict(ctx.storage_state())
    finally:
        ctx.close()


@pytest.fixture
def page(browser: Any, site: str, user: Credentials, signed_in_state: dict[str, Any],
         page_errors: PageErrors) -> Iterator[Any]:
    """The form and job list, signed in as `user` (from the module's saved sign-in), with errors collected."""
    ctx = new_context(browser, storage_state=signed_in_state)
    try:
        opened = ctx.new_page()
        watch_errors(opened, page_errors)
        open_form(opened, site)
        expect(opened.locator("#account-email")).to_have_text(user.email)
        expect(opened.locator("#app-view")).to_be_visible()
        yield opened
        assert not page_errors, f"the page reported errors: {page_errors}"
    finally:
        ctx.close()


def watch_errors(page: Any, errors: list[str]) -> None:
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("console", lambda message: errors.append(f"console.{message.type}: {message.text}")
            if message.type == "error" and not message.text.startswith(IGNORED_CONSOLE) else None)


def page_pause(page: Any) -> Callable[[float], None]:
    """A pause for `wait_for` that lets the page's events through (`time.sleep` would hold them back)."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def open_form(page: Any, site: str) -> None:
    page.goto(site)
    page.wait_for_selector("html[data-ready='true']", state="attached")


def sign_in(page: Any, credentials: Credentials) -> None:
    """Type the email and password into the sign-in view; return once the form and job list show."""
    page.fill("#signin-email", credentials.email)
    page.fill("#signin-password", credentials.password)
    page.click("[data-panel=sign-in] button[type=submit]")
    expect(page.locator("#account-email")).to_have_text(credentials.email)
    expect(page.locator("#app-view")).to_be_visible()
