"""axe-core on every view of the page, in the light and the dark colour scheme (see `tests.browser.a11y`): signed
out (sign in, sign up, forgotten password), signed in with no jobs (with refused fields, a chosen file, while
submitting and after a failed submission), and signed in with a finished and a failed job.

No serious or critical violation is allowed; the failure lists each with its rule, impact, help and nodes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from local.app import Credentials, LocalPipeline
from local.client import ApiClient
from tests.browser.a11y import assert_accessible, blocking_violations
from tests.browser.conftest import sign_in
from tests.browser.test_form import a_file, job_row
from tests.local.harness import DELETE_INPUT_MARKER
from tests.records import wait_for_final

pytestmark = pytest.mark.browser


def test_the_signed_out_views_have_no_serious_violation(signed_out_page: Any) -> None:
    page = signed_out_page
    page.click("[data-panel=sign-in] button[type=submit]")  # the view with its message and a field marked invalid
    expect(page.locator("#auth-message")).to_have_text("Type your email address.")
    assert_accessible(page, "sign in")

    page.click("#sign-up-link")
    expect(page.locator("#auth-heading")).to_have_text("Create an account")
    assert_accessible(page, "sign up")

    page.click("[data-panel=sign-up] [data-go=sign-in]")
    page.click("[data-go=forgot]")
    expect(page.locator("#auth-heading")).to_have_text("Reset your password")
    assert_accessible(page, "forgotten password")


def test_the_form_with_no_jobs_has_no_serious_violation(signed_out_page: Any, pipeline: LocalPipeline) -> None:
    page = signed_out_page
    sign_in(page, pipeline.create_user("no-jobs@example.com"))
    expect(page.locator("#jobs-empty")).to_be_visible()
    assert_accessible(page, "signed in, no jobs")

    page.click("#submit-button")  # both fields refused, with their messages
    expect(page.locator("#file-error")).to_be_visible()
    assert_accessible(page, "signed in, no jobs, fields refused")

    page.fill("#input-text", "held at the first step")
    page.set_input_files("#input-file", files=[a_file("chosen.txt", b"chosen")])
    expect(page.locator("#file-summary")).to_contain_text("chosen.txt")
    assert_accessible(page, "signed in, a file chosen")

    held: list[Any] = []

    def hold(route: Any) -> None:  # the upload request waits here: the form stays busy, its drop zone disabled
        held.append(route)

    page.route("**/api/uploads", hold)
    with page.expect_request("**/api/uploads"):
        page.click("#submit-button")
    expect(page.locator("#dropzone")).to_have_class(re.compile(r"\bdropzone--disabled\b"))
    assert_accessible(page, "signed in, submitting")

    held[0].abort()
    expect(page.locator("#submit-error-title")).to_have_text("Step 1 of 3 failed: preparing the upload.")
    assert_accessible(page, "signed in, a submission failed")


def test_the_list_with_a_finished_and_a_failed_job_has_no_serious_violation(
    page: Any, site: str, user: Credentials,
) -> None:
    client = ApiClient.signed_in(site, user.email, user.password)
    finished = client.submit("finished.txt", b"some bytes", "a finished job", "text/plain")
    failed = client.submit("failed.txt", b"gone before the VM runs", DELETE_INPUT_MARKER, "text/plain")
    assert wait_for_final(client, finished["id"])["status"] == "SUCCEEDED"
    assert wait_for_final(client, failed["id"])["status"] == "FAILED"
    page.click("#refresh-button")
    expect(job_row(page, "finished.txt")).to_have_attribute("data-status", "SUCCEEDED")
    expect(job_row(page, "failed.txt")).to_have_attribute("data-status", "FAILED")
    expect(job_row(page, "failed.txt").locator("[data-slot=error]")).to_be_visible()
    assert_accessible(page, "signed in, a finished and a failed job")


def test_a_violation_fails_with_its_rule_impact_help_and_node(signed_out_page: Any) -> None:
    """The check is not blind: a grey-on-grey paragraph and a button without a name are reported, as a developer
    needs them to fix the page."""
    page = signed_out_page
    page.evaluate("""() => {
      const faint = document.createElement("p");
      faint.id = "faint";
      faint.textContent = "hard to read";
      faint.style.color = "#777";
      faint.style.background = "#888";
      const nameless = document.createElement("button");
      nameless.id = "nameless";
      document.querySelector("#auth-view .card").append(faint, nameless);
    }""")
    found = {violation["id"]: violation for violation in blocking_violations(page)}
    assert set(found) == {"color-contrast", "button-name"}, found.keys()
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page, "a broken sign-in view")
    message = str(failure.value)
    for scheme in ("light", "dark"):
        assert f"a broken sign-in view, {scheme} colour scheme:" in message
    assert "- color-contrast (serious): Elements must meet minimum color contrast ratio thresholds" in message
    assert "at #faint: Fix any of the following:" in message
    assert "- button-name (critical): Buttons must have discernible text" in message
    assert "at #nameless:" in message
