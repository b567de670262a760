"""The web form in headless Chromium against the local stack: submit with progress, live list, download, refusals,
retry without retyping, a 360 px phone, and the keyboard.

Every test opens a fresh page on the module's stack, signed in as the module's user (the `page` fixture); jobs
created by one test may appear in another's list, so tests find their own job by its file name.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from local.app import Credentials
from local.client import ApiClient, access_token
from tests.browser.conftest import SETTINGS, open_form, page_pause, sign_in
from tests.local.harness import DELETE_INPUT_MARKER
from tests.records import wait_for_final
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

MAX_BYTES = SETTINGS.max_file_bytes
JOB_TIMEOUT_MS = 30_000
UPLOAD_BYTES_PER_SECOND = 400 * 1024
"""Chromium's upload throttle, so a 600 KB upload lasts long enough to show intermediate progress on loopback."""

WATCH_PROGRESS = """() => {
  window.__progress = [];
  window.__announced = [];
  const bar = document.getElementById("upload-progress");
  const region = document.getElementById("announcer");
  new MutationObserver(() => window.__progress.push(Number(bar.value)))
    .observe(bar, { attributes: true, attributeFilter: ["value"] });
  new MutationObserver(() => region.textContent && window.__announced.push(region.textContent))
    .observe(region, { childList: true, characterData: true, subtree: true });
}"""


def a_file(name: str, data: bytes, mime: str = "text/plain") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


def throttle_uploads(page: Any, bytes_per_second: int) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second,
    })


def requests_to(page: Any, method: str, pattern: str) -> list[str]:
    """A live list of the URLs the page requests with this method whose URL matches `pattern`."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url)
            if request.method == method and re.search(pattern, request.url) else None)
    return seen


def was_announced(page: Any, start: str) -> None:
    """Wait until the live region has said a message starting with `start` (messages are read one at a time)."""
    try:
        page.wait_for_function("start => window.__announced.some((m) => m.startsWith(start))", arg=start,
                               timeout=5000)
    except Exception as error:
        raise AssertionError(f"never announced {start!r}: {page.evaluate('window.__announced')}") from error


def job_row(page: Any, file_name: str) -> Any:
    return page.locator(".job", has=page.locator("[data-slot=file]", has_text=re.compile(f"^{re.escape(file_name)}$")))


def assert_fits(page: Any, width: int, selectors: tuple[str, ...]) -> None:
    """No horizontal scrolling, and each of `selectors` displayed within the viewport's width."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width}px wide on a {width}px screen"
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is not displayed"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{selector} sticks out: {box}"


def follow_download(page: Any, link: Any, timeout: float = 10) -> bytes:
    """Click the link; return the bytes the browser got, saved as a download or (for a type it shows) the page."""
    href = link.get_attribute("href")
    assert href and href.startswith("http"), f"the download link has no presigned URL: {href!r}"
    downloads: list[Any] = []
    shown: list[Any] = []

    def keep_download(download: Any) -> None:
        downloads.append(download)

    def keep_response(response: Any) -> None:
        if response.url == href:
            shown.append(response)

    page.on("download", keep_download)
    page.on("response", keep_response)
    link.click()
    wait_for(lambda: downloads or (shown and page.url == href), timeout,
             f"clicking the download link to download or open {href}", pause=page_pause(page))
    if downloads:
        return Path(downloads[0].path()).read_bytes()
    assert shown[0].status == 200, f"GET {href} answered {shown[0].status}"
    return bytes(shown[0].body())


PHASES = r"^took \d+ s \(waited \d+ s, ran \d+ s\)$"
"""A finished job's elapsed time: total, and how long it waited for its VM and ran on it."""


def test_a_failed_job_shows_the_workers_reason(page: Any, site: str, user: Credentials) -> None:
    """The input vanishes before the VM runs (see `deleting_inputs`): the list says FAILED and why, no download."""
    page.evaluate(WATCH_PROGRESS)
    page.fill("#input-text", DELETE_INPUT_MARKER)
    page.set_input_files("#input-file", files=[a_file("vanishing.csv", b"a,b\n1,2\n", "text/csv")])
    page.click("#submit-button")
    row = job_row(page, "vanishing.csv")
    expect(row).to_have_attribute("data-status", "FAILED", timeout=JOB_TIMEOUT_MS)
    job = ApiClient.signed_in(site, user.email, user.password).job(row.get_attribute("data-job-id"))
    assert job["error"], job
    expect(row.locator("[data-slot=status]")).to_have_text("Failed")
    expect(row.locator("[data-slot=error]")).to_have_text(job["error"])
    expect(row.locator("[data-slot=download]")).to_be_hidden()
    expect(row.locator("[data-slot=elapsed]")).to_have_text(re.compile(PHASES))
    was_announced(page, "vanishing.csv: failed.")


def test_a_failed_step_can_be_retried_without_retyping(page: Any) -> None:
    """Creating the job fails once (network): Retry creates it from the same upload, with the text as typed."""
    uploads = requests_to(page, "POST", r"/api/uploads$")
    attempts: list[str] = []

    def fail_once(route: Any) -> None:
        attempts.append(route.request.url)
        if len(attempts) == 1:
            route.abort("failed")
        else:
            route.continue_()

    page.route("**/api/jobs", lambda route: fail_once(route) if route.request.method == "POST" else route.continue_())
    text = "typed only once"
    page.fill("#input-text", text)
    page.set_input_files("#input-file", files=[a_file("retry-me.txt", b"retry payload")])
    page.click("#submit-button")

    expect(page.locator("#submit-error-title")).to_have_text("Step 3 of 3 failed: creating the job.")
    expect(page.locator("#submit-error-message")).to_contain_text("could not be reached")
    expect(page.locator("#submit-button")).to_have_text("Retry")
    expect(page.locator("#submit-button")).to_be_focused()
    expect(page.locator("#input-text")).to_have_value(text)
    expect(page.locator("#file-summary")).to_have_text("retry-me.txt · 13 bytes")

    page.click("#submit-button")
    expect(page.locator("#submit-error")).to_be_hidden()
    expect(job_row(page, "retry-me.txt")).to_have_attribute("data-status", "SUCCEEDED", timeout=JOB_TIMEOUT_MS)
    assert len(attempts) == 2
    assert len(uploads) == 1, "the retry uploaded the file again although it was already in storage"


def test_a_job_goes_from_submit_to_download(page: Any, artifacts: Path) -> None:
    """The whole flow a user sees: progress while uploading, the job live in the list, then the output's bytes."""
    text = "reviewed by Ana — ok ✓"
    data = bytes(range(256)) * 2400  # 600 KB holding every byte value
    page.evaluate(WATCH_PROGRESS)
    jobs_polled = requests_to(page, "GET", r"/api/jobs/[A-Za-z0-9_-]{21}$")

    page.fill("#input-text", text)
    page.set_input_files("#input-file", files=[a_file("field-notes.txt", data)])
    expect(page.locator("#file-summary")).to_have_text("field-notes.txt · 600 KB")
    expect(page.locator("#text-counter")).to_have_text(f"{len(text)} / {SETTINGS.max_text_length}")

    throttle_uploads(page, UPLOAD_BYTES_PER_SECOND)
    page.click("#submit-button")
    expect(page.locator("#submit-button")).to_be_disabled()
    expect(page.locator("#progress")).to_be_visible()
    expect(page.locator("#progress-text")).to_contain_text(re.compile(r"Uploading… .* of 600 KB \(\d+%\)"))

    row = job_row(page, "field-notes.txt")
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#submit-button")).to_be_enabled()
    expect(page.locator("#submit-button")).to_have_text("Submit")
    expect(page.locator("#progress-text")).to_have_text("Uploaded 600 KB (100%). Job created: follow it in the list.")
    progress = page.evaluate("window.__progress")
    assert any(0 < value < 100 for value in progress), f"no intermediate progress was shown: {progress}"
    assert max(progress) == 100, f"progress never reached 100%: {progress}"
    expect(page.locator("#input-text")).to_have_value("")  # the form is ready for the next job

    expect(row.locator("[data-slot=status]")).to_have_text("Succeeded")
    expect(row.locator("[data-slot=text]")).to_have_text(text)
    expect(row.locator("[data-slot=elapsed]")).to_have_text(re.compile(PHASES))
    expect(row.locator("[data-slot=error]")).to_be_hidden()
    link = row.locator("[data-slot=download]")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("aria-label", "Download field-notes.out.txt")
    was_announced(page, "field-notes.txt: succeeded.")

    job_id = row.get_attribute("data-job-id")
    expect(page.locator(".job").first).to_have_attribute("data-job-id", job_id)  # newest first
    polls_at_end = sum(job_id in url for url in jobs_polled)
    assert polls_at_end >= 1, "the job was never polled: its status cannot have been live"
    page.wait_for_timeout(1500)  # a change resets the delay to 1 s: a job still watched would be polled by now
    assert sum(job_id in url for url in jobs_polled) == polls_at_end, "a finished job is still being polled"

    shot = artifacts / "jobs.png"
    page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot of the finished job list: {shot}")

    assert follow_download(page, link) == data + b" : " + text.encode("utf-8")


def test_a_job_loaded_with_the_page_downloads_through_a_fresh_link(page: Any, site: str, user: Credentials) -> None:
    """Rows loaded from the list carry no presigned URL (it would expire on a page left open): the click asks
    `GET /api/jobs/<id>` for a fresh one and follows it."""
    client = ApiClient.signed_in(site, user.email, user.password)
    job = client.submit("earlier.txt", b"made before the page opened", "text")
    assert wait_for_final(client, job["id"])["status"] == "SUCCEEDED"
    page.reload()
    page.wait_for_selector("html[data-ready='true']", state="attached")
    link = job_row(page, "earlier.txt").locator("[data-slot=download]")
    expect(link).to_have_attribute("href", f"#job-{job['id']}")
    with page.expect_download() as got:
        link.click()
    assert Path(got.value.path()).read_bytes() == b"made before the page opened : text"


def test_a_file_can_be_dropped_on_the_form(page: Any) -> None:
    drop = """([names]) => {
      const transfer = new DataTransfer();
      for (const name of names) transfer.items.add(new File(["dropped bytes"], name, { type: "text/plain" }));
      const zone = document.getElementById("dropzone");
      zone.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer, bubbles: true, cancelable: true }));
      const highlighted = zone.classList.contains("dropzone--over");
      zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
      return highlighted;
    }"""
    assert page.evaluate(drop, [["one.txt", "two.txt"]]), "the drop zone does not show that it takes the file"
    expect(page.locator("#file-error")).to_have_text("Drop one file: each job takes exactly one file.")
    page.evaluate(drop, [["dropped.txt"]])
    expect(page.locator("#file-summary")).to_have_text("dropped.txt · 13 bytes")
    expect(page.locator("#file-error")).to_be_hidden()
    assert page.eval_on_selector("#input-file", "input => input.files[0].name") == "dropped.txt"
    assert not page.eval_on_selector("#dropzone", "zone => zone.classList.contains('dropzone--over')")


def test_the_form_says_how_long_files_are_kept(page: Any) -> None:
    """Regression: the stack's `retentionDays` deletes uploads and results while the form says nothing (or says
    they are kept with no limit)."""
    expect(page.locator("#retention")).to_have_text(
        f"Files and results are deleted {SETTINGS.retention_days} days after upload."
    )


def test_an_oversize_file_is_refused_next_to_the_field(page: Any) -> None:
    uploads = requests_to(page, "POST", r"/api/uploads$")
    page.fill("#input-text", "a fine text")
    page.set_input_files("#input-file", files=[a_file("big.bin", b"x" * (MAX_BYTES + 1), "application/octet-stream")])
    page.click("#submit-button")

    error = page.locator("#file-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(f"The file is {MAX_BYTES + 1:,} bytes; the limit is {MAX_BYTES:,} bytes (1 MB).")
    expect(page.locator("#input-file")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#input-file")).to_be_focused()
    expect(page.locator("#text-error")).to_be_hidden()
    expect(page.locator("#progress")).to_be_hidden()
    assert uploads == [], "the form asked the API for an upload of a file it knows is too large"

    page.set_input_files("#input-file", files=[a_file("small.txt", b"fits")])
    expect(error).to_be_hidden()  # the message goes as soon as the field is fixed


def test_empty_text_and_no_file_are_refused_next_to_their_fields(page: Any) -> None:
    uploads = requests_to(page, "POST", r"/api/uploads$")
    page.click("#submit-button")
    expect(page.locator("#text-error")).to_have_text("Type a text to append to the file.")
    expect(page.locator("#file-error")).to_have_text("Choose a file to process.")
    expect(page.locator("#input-text")).to_be_focused()

    page.fill("#input-text", "  \n\t  ")  # whitespace only is empty, as the server trims it
    page.set_input_files("#input-file", files=[a_file("notes.txt", b"content")])
    page.click("#submit-button")
    expect(page.locator("#text-error")).to_have_text("Type a text to append to the file.")
    expect(page.locator("#input-text")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#file-error")).to_be_hidden()
    assert uploads == []


def test_the_servers_own_message_is_shown_with_the_failed_step(page: Any) -> None:
    """A refusal the form did not foresee (here: the request altered on its way) shows the API's words."""

    def lie_about_size(route: Any) -> None:
        body = json.loads(route.request.post_data)
        route.continue_(post_data=json.dumps({**body, "size": MAX_BYTES + 1}))

    page.route("**/api/uploads", lie_about_size)
    page.fill("#input-text", "some text")
    page.set_input_files("#input-file", files=[a_file("small.txt", b"small")])
    with page.expect_response("**/api/uploads") as answered:
        page.click("#submit-button")
    refusal = answered.value
    assert refusal.status == 413
    server_message = refusal.json()["error"]["message"]

    expect(page.locator("#submit-error-title")).to_have_text("Step 1 of 3 failed: preparing the upload.")
    expect(page.locator("#submit-error-message")).to_have_text(server_message)
    expect(page.locator("#file-error")).to_have_text(server_message)
    expect(page.locator(".step[data-step=prepare]")).to_have_attribute("data-state", "failed")


def test_a_360px_phone_shows_the_whole_form_without_horizontal_scrolling(
    browser: Any, site: str, user: Credentials, artifacts: Path,
) -> None:
    phone = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True,
                                has_touch=True, locale="en-GB", timezone_id="UTC")
    try:
        page = phone.new_page()
        open_form(page, site)
        page.click("[data-panel=sign-in] button[type=submit]")  # signed out, with a message
        expect(page.locator("#auth-message")).to_have_text("Type your email address.")
        assert_fits(page, 360, ("#auth-view .card", "#signin-email", "#signin-password", "#auth-message",
                                "[data-panel=sign-in] button[type=submit]", "#sign-up-link"))
        page.screenshot(path=str(artifacts / "phone-signed-out.png"), full_page=True)

        sign_in(page, user)
        page.click("#submit-button")  # the error messages take room too
        page.set_input_files("#input-file", files=[a_file("a-very-long-file-name-" * 8 + ".txt", b"")])
        expect(page.locator("#file-error")).to_be_visible()

        assert_fits(page, 360, ("#input-text", "#dropzone", "#file-summary", "#text-error", "#file-error",
                                "#submit-button", ".jobs-card", "#jobs-heading", "#account-email", "#sign-out-button"))
        shot = artifacts / "phone.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot at 360 px: {shot}")
    finally:
        phone.close()


def test_the_form_is_usable_with_the_keyboard_and_shows_focus(page: Any) -> None:
    page.reload()  # signed in by the stored session, focus at the top of the page
    page.wait_for_selector("html[data-ready='true']", state="attached")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
    assert order[1:] == ["sign-out-button", "input-text", "input-file", "submit-button"], order

    outline = page.evaluate("""() => {
      const seen = {};
      for (const [name, id] of [["submit", "submit-button"], ["text", "input-text"]]) {
        document.getElementById(id).focus();
        seen[name] = getComputedStyle(document.getElementById(id)).outlineStyle;
      }
      return seen;
    }""")
    assert outline == {"submit": "solid", "text": "solid"}, f"focus is not visible: {outline}"
    page.focus("#submit-button")
    page.keyboard.press("Shift+Tab")  # keyboard focus on the invisible file input: the drop zone shows it
    expect(page.locator("#input-file")).to_be_focused()
    assert page.eval_on_selector("#dropzone", "el => getComputedStyle(el).outlineStyle") == "solid"

    page.focus("#input-text")
    page.keyboard.type("typed with the keyboard")
    page.keyboard.press("Control+Enter")  # submits from the text area
    expect(page.locator("#file-error")).to_have_text("Choose a file to process.")
    expect(page.locator("#input-file")).to_be_focused()


def test_the_page_loads_nothing_from_other_sites(browser: Any, site: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        hosts: set[str] = set()
        page.on("request", lambda request: hosts.add(re.sub(r"^(\w+://[^/]+).*$", r"\1", request.url)))
        open_form(page, site)
        page.wait_for_load_state("networkidle")
        assert hosts == {site}, f"the page fetched from elsewhere: {sorted(hosts - {site})}"
    finally:
        context.close()


def test_checks_in_the_page_agree_with_the_api(page: Any, site: str, user: Credentials) -> None:
    """validate.js mirrors the API: for each text and size, the page accepts exactly what the server accepts."""
    texts = ["ok", "   ", "a" * 200, "a" * 201, "😀" * 200, "😀" * 201, "tab\tand\nnewline", "bell\x07",
             "carriage\r\nreturn", "\x7f", " " + "b" * 200 + " ", "zero\u200bwidth"]
    sizes = [0, 1, MAX_BYTES, MAX_BYTES + 1]
    verdicts = page.evaluate("""async ([texts, sizes, maxText, maxBytes, token]) => {
      const { checkText, checkFile } = await import("/js/validate.js");
      const post = (path, body) => fetch(path, {
        method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      }).then(async (r) => [r.status, (await r.json()).error?.code ?? null]);
      const out = [];
      for (const text of texts) {
        const [, code] = await post("/api/jobs", { input_text: text, key: "not-a-key" });
        out.push({ text, page: checkText(text, maxText) === null, api: code === "invalid_key" });
      }
      for (const size of sizes) {
        const [status] = await post("/api/uploads", { filename: "f.txt", size });
        out.push({ size, page: checkFile({ size, name: "f.txt" }, maxBytes) === null, api: status === 201 });
      }
      return out;
    }""", [texts, sizes, SETTINGS.max_text_length, MAX_BYTES, access_token(site, user.email, user.password)])
    disagreements = [v for v in verdicts if v["page"] != v["api"]]
    assert not disagreements, f"page and API disagree: {disagreements}"
    assert sum(v["api"] for v in verdicts) >= 6, "the table should hold accepted cases too"


def test_polling_backs_off_and_resets_on_change(page: Any) -> None:
    delays = page.evaluate("""async () => {
      const { nextDelay, POLL_MAX_MS } = await import("/js/poller.js");
      const seen = [];
      let delay = 0;
      for (let i = 0; i < 9; i += 1) { delay = nextDelay(delay, false); seen.push(delay); }
      seen.push(nextDelay(delay, true));
      return { seen, max: POLL_MAX_MS };
    }""")
    seen = delays["seen"]
    assert seen[:3] == [1000, 1600, 2560]
    assert all(a <= b for a, b in itertools.pairwise(seen[:-1])), seen
    assert seen[-2] == delays["max"], "the delay never reaches its cap"
    assert seen[-1] == 1000, "a change does not bring the delay back to the start"


def test_elapsed_time_ticks_while_a_job_runs(page: Any) -> None:
    """An unfinished job's elapsed time counts up without a reload (a job held in LAUNCHING by the route)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 65))
    job = {"id": "T" * 21, "status": "LAUNCHING", "input_text": "held", "input_file_path": "b/inputs/x/held.txt",
           "created_at": created, "updated_at": created}
    page.route("**/api/jobs", lambda route: route.fulfill(json={"jobs": [job]})
               if route.request.method == "GET" else route.continue_())
    page.route(f"**/api/jobs/{job['id']}", lambda route: route.fulfill(json=job))
    page.reload()
    page.wait_for_selector("html[data-ready='true']", state="attached")
    elapsed = job_row(page, "held.txt").locator("[data-slot=elapsed]")
    expect(elapsed).to_have_text(re.compile(r"^1 min 0[5-9] s$"))
    first = elapsed.inner_text()
    expect(elapsed).not_to_have_text(first, timeout=3000)
    expect(job_row(page, "held.txt").locator("[data-slot=detail]")).to_have_text("Starting a VM for this job.")


def test_the_page_follows_the_systems_dark_mode(browser: Any, site: str, artifacts: Path) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            open_form(page, site)
            colours[scheme] = page.evaluate("""() => [document.body, document.querySelector(".card")]
              .map((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color])""")
            if scheme == "dark":
                page.screenshot(path=str(artifacts / "dark.png"), full_page=True)
        finally:
            context.close()
    assert colours["light"] != colours["dark"], colours
    for scheme, light_on_dark in (("light", False), ("dark", True)):
        for background, text in colours[scheme]:
            lighter, darker = sorted((luminance(text), luminance(background)), reverse=True)
            assert (luminance(text) > luminance(background)) is light_on_dark, (scheme, background, text)
            assert (lighter + 0.05) / (darker + 0.05) >= 4.5, f"{scheme}: {text} on {background} is hard to read"


def luminance(css_colour: str) -> float:
    """WCAG 2's relative luminance of a computed `rgb(r, g, b)` colour (4.5:1 is its minimum contrast for text)."""
    channels = [int(part) / 255 for part in re.findall(r"\d+", css_colour)[:3]]
    red, green, blue = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue
