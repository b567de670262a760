"""Accounts in headless Chromium against the local stack's Cognito (moto): sign up with the emailed code, sign in,
wrong passwords, a forgotten password, an operator-made account's first password, sign out, a reload that keeps the
session, a second user who sees none of the first one's jobs, and a session the API stops accepting.

Locally any verification code confirms a sign-up, and any code not starting with `moto-confirmation-code:` resets a
password (moto does not email codes).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from playwright.sync_api import expect

from local.app import Credentials, LocalPipeline, new_password
from local.client import ApiClient
from stackspec.userpool import PASSWORD_POLICY
from tests.browser.conftest import open_form, sign_in, watch_errors
from tests.browser.test_form import a_file, assert_fits, follow_download, job_row

pytestmark = pytest.mark.browser

JOB_TIMEOUT_MS = 30_000
SIGN_IN_BUTTON = "[data-panel=sign-in] button[type=submit]"
_emails = itertools.count(1)


def new_email(name: str) -> str:
    return f"{name}-{next(_emails)}@example.com"


def cognito(site: str) -> tuple[Any, dict[str, str]]:
    """An unsigned Cognito client for the site's pool (as the page calls it), and the `auth` of its config.json."""
    auth = requests.get(f"{site}/config.json", timeout=10).json()["auth"]
    client = boto3.client("cognito-idp", region_name=auth["region"], endpoint_url=auth.get("endpoint"),
                          config=Config(signature_version=UNSIGNED))
    return client, auth


def stored_items(page: Any) -> dict[str, str]:
    return dict(page.evaluate("() => Object.fromEntries(Object.entries(localStorage))"))


def sign_up(page: Any, email: str, password: str) -> None:
    page.click("#sign-up-link")
    expect(page.locator("#auth-heading")).to_have_text("Create an account")
    expect(page.locator("#signup-email")).to_be_focused()
    page.fill("#signup-email", email)
    page.fill("#signup-password", password)
    page.click("[data-panel=sign-up] button[type=submit]")


def test_sign_up_with_the_emailed_code_then_submit_download_and_sign_out(signed_out_page: Any, site: str) -> None:
    page = signed_out_page
    email = new_email("new-user")
    sign_up(page, email, "short1A")
    expect(page.locator("#auth-message")).to_have_text(
        "This password is not accepted: Use at least 12 characters, with an upper-case letter, a lower-case letter "
        "and a digit.")
    expect(page.locator("#signup-password")).to_be_focused()

    password = new_password()
    page.fill("#signup-password", password)
    page.click("[data-panel=sign-up] button[type=submit]")
    expect(page.locator("#auth-heading")).to_have_text("Confirm your email")
    expect(page.locator("#auth-message")).to_have_text(f"We sent a verification code to {email}. Enter it below.")
    expect(page.locator("#confirm-code")).to_be_focused()
    page.fill("#confirm-code", "123456")
    page.click("[data-panel=confirm] button[type=submit]")  # confirmed, then signed in with the password typed
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.locator("#auth-view")).to_be_hidden()
    expect(page.locator("#jobs-empty")).to_be_visible()

    page.fill("#input-text", "first job")
    page.set_input_files("#input-file", files=[a_file("mine.txt", b"my bytes")])
    page.click("#submit-button")
    row = job_row(page, "mine.txt")
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=JOB_TIMEOUT_MS)
    assert follow_download(page, row.locator("[data-slot=download]")) == b"my bytes : first job"

    refresh_token = next(iter(stored_items(page).values()))
    page.click("#sign-out-button")
    expect(page.locator("#auth-heading")).to_have_text("Sign in")
    expect(page.locator("#auth-message")).to_have_text("You are signed out.")
    expect(page.locator("#signin-email")).to_be_focused()
    expect(page.locator("#app-view")).to_be_hidden()
    expect(page.locator(".job")).to_have_count(0)  # the list is emptied, not only hidden
    assert stored_items(page) == {}
    page.reload()
    page.wait_for_selector("html[data-ready='true']", state="attached")
    expect(page.locator("#auth-view")).to_be_visible()
    client, auth = cognito(site)
    with pytest.raises(client.exceptions.NotAuthorizedException):
        client.initiate_auth(ClientId=auth["clientId"], AuthFlow="REFRESH_TOKEN_AUTH",
                             AuthParameters={"REFRESH_TOKEN": refresh_token})

    sign_in(page, Credentials(email, password))  # and the new account signs in like any other
    expect(job_row(page, "mine.txt")).to_have_attribute("data-status", "SUCCEEDED")


def test_a_reload_keeps_the_session_with_only_the_refresh_token_stored(page: Any, user: Credentials) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.reload()
    page.wait_for_selector("html[data-ready='true']", state="attached")
    expect(page.locator("#account-email")).to_have_text(user.email)
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#auth-view")).to_be_hidden()
    expect(page.locator(".jobs-card")).to_have_attribute("aria-busy", "false")  # the list loaded, signed in

    stored = stored_items(page)
    assert len(stored) == 1, stored
    refresh_token = next(iter(stored.values()))
    tokens = page.evaluate("""async (refreshToken) => {
      const config = await (await fetch("/config.json")).json();
      const { CognitoClient } = await import("/js/cognito.js");
      const answer = await new CognitoClient(config.auth).refresh(refreshToken);
      return [answer.AuthenticationResult.AccessToken, answer.AuthenticationResult.IdToken];
    }""", refresh_token)
    assert all(token.count(".") == 2 for token in tokens)
    session_storage = page.evaluate("() => JSON.stringify(sessionStorage)")
    for token in (*tokens, refresh_token):
        assert not any(token in url for url in urls), "a token went into a URL"
        assert token not in session_storage
    assert not any(token in value for token in tokens for value in stored.values()), "an access or ID token was stored"


def test_a_second_user_sees_none_of_the_first_users_jobs(
    browser: Any, page: Any, site: str, user: Credentials, pipeline: LocalPipeline, page_errors: list[str],
) -> None:
    first = ApiClient.signed_in(site, user.email, user.password)
    job = first.submit("only-mine.txt", b"first user's bytes", "private")
    expect(job_row(page, "only-mine.txt")).to_have_count(0)
    page.click("#refresh-button")
    expect(job_row(page, "only-mine.txt")).to_have_count(1)

    second = pipeline.create_user(new_email("second"))
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        other_page = other.new_page()
        watch_errors(other_page, page_errors)
        open_form(other_page, site)
        with other_page.expect_response(re.compile(r"/api/jobs$")) as listed:
            sign_in(other_page, second)
        assert listed.value.status == 200 and listed.value.json()["jobs"] == []
        expect(other_page.locator("#jobs-empty")).to_be_visible()
        expect(other_page.locator(".job")).to_have_count(0)
        expect(other_page.locator("#account-email")).to_have_text(second.email)
        assert ApiClient.signed_in(site, second.email, second.password).get(f"/api/jobs/{job['id']}").status_code == 404
    finally:
        other.close()
    expect(page.locator("#account-email")).to_have_text(user.email)  # the first page is still the first user's


def test_a_wrong_password_and_an_unknown_email_get_the_same_sentence(signed_out_page: Any, user: Credentials) -> None:
    page = signed_out_page
    answers = []
    for email, password in ((user.email, user.password + "x"), (new_email("nobody"), user.password)):
        page.fill("#signin-email", email)
        page.fill("#signin-password", password)
        page.click(SIGN_IN_BUTTON)
        expect(page.locator("#auth-message")).to_have_text("The email or the password is wrong.")
        expect(page.locator(SIGN_IN_BUTTON)).to_be_enabled()
        answers.append(page.locator("#auth-message").inner_text())
        page.fill("#signin-email", "")  # the next try starts from an empty message
        page.click(SIGN_IN_BUTTON)
        expect(page.locator("#auth-message")).to_have_text("Type your email address.")
        expect(page.locator("#signin-email")).to_have_attribute("aria-invalid", "true")
    assert answers[0] == answers[1]
    expect(page.locator("#app-view")).to_be_hidden()
    assert stored_items(page) == {}


def test_an_email_that_has_an_account_cannot_sign_up_again(signed_out_page: Any, user: Credentials) -> None:
    sign_up(signed_out_page, user.email, new_password())
    expect(signed_out_page.locator("#auth-message")).to_have_text(
        "An account with this email already exists. Sign in, or reset its password.")


def test_a_forgotten_password_is_replaced_with_the_emailed_code(
    signed_out_page: Any, pipeline: LocalPipeline,
) -> None:
    page = signed_out_page
    account = pipeline.create_user(new_email("forgetful"))
    page.click("[data-go=forgot]")
    expect(page.locator("#auth-heading")).to_have_text("Reset your password")
    page.fill("#forgot-email", account.email)
    page.click("[data-panel=forgot] button[type=submit]")
    expect(page.locator("#auth-message")).to_have_text(f"If {account.email} has an account, we sent it a code.")
    expect(page.locator("#reset-code")).to_be_focused()

    page.fill("#reset-code", "moto-confirmation-code:0000")  # the code moto refuses, as Cognito refuses a stale one
    page.fill("#reset-password", "Another-password-2")
    page.click("[data-panel=reset] button[type=submit]")
    expect(page.locator("#auth-message")).to_have_text("That code has expired or was already used. Ask for a new one.")

    page.fill("#reset-code", "123456")
    page.click("[data-panel=reset] button[type=submit]")
    expect(page.locator("#account-email")).to_have_text(account.email)  # signed in with the new password
    page.click("#sign-out-button")
    page.fill("#signin-email", account.email)
    page.fill("#signin-password", account.password)
    page.click(SIGN_IN_BUTTON)
    expect(page.locator("#auth-message")).to_have_text("The email or the password is wrong.")


def test_an_account_made_by_an_operator_sets_its_own_password_first(
    signed_out_page: Any, pipeline: LocalPipeline,
) -> None:
    page = signed_out_page
    email = new_email("invited")
    temporary = new_password()
    pipeline.client("cognito-idp").admin_create_user(
        UserPoolId=pipeline.stack.user_pool_id, Username=email, TemporaryPassword=temporary, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}])
    page.fill("#signin-email", email)
    page.fill("#signin-password", temporary)
    page.click(SIGN_IN_BUTTON)
    expect(page.locator("#auth-heading")).to_have_text("Choose your password")
    expect(page.locator("#new-password")).to_be_focused()
    page.fill("#new-password", new_password())
    page.click("[data-panel=new-password] button[type=submit]")
    expect(page.locator("#account-email")).to_have_text(email)


def test_self_sign_up_off_hides_the_way_to_create_an_account(signed_out_page: Any, site: str) -> None:
    page = signed_out_page
    config = requests.get(f"{site}/config.json", timeout=10).json()
    page.route("**/config.json", lambda route: route.fulfill(json={**config, "selfSignUp": False}))
    page.reload()
    page.wait_for_selector("html[data-ready='true']", state="attached")
    expect(page.locator("#auth-heading")).to_have_text("Sign in")
    expect(page.locator("#sign-up-link")).to_be_hidden()
    expect(page.locator("[data-go=forgot]")).to_be_visible()


def test_a_refused_token_is_refreshed_once_then_the_page_asks_to_sign_in_again(page: Any, site: str) -> None:
    """The API answers 401 (as the JWT authorizer does for an expired token): the page gets new tokens and retries;
    when the API still refuses, it goes back to the sign-in view and says why."""
    _, auth = cognito(site)
    auth_calls = []
    page.on("request", lambda request: auth_calls.append(json.loads(request.post_data).get("AuthFlow"))
            if request.method == "POST" and request.url.startswith(auth["endpoint"]) else None)
    refused = []

    def refuse(route: Any, times: int) -> None:
        if len(refused) < times:
            refused.append(route.request.headers.get("authorization"))
            route.fulfill(status=401, json={"message": "Unauthorized"})
        else:
            route.continue_()

    # Only one list request at a time: the load started at sign-in (which sets aria-busy in the same task that shows
    # the list) has ended, with any retry of its own, before a route is set.
    idle = page.locator(".jobs-card[aria-busy='false']")
    expect(idle).to_be_attached()
    page.route("**/api/jobs", lambda route: refuse(route, 1))
    with page.expect_response(lambda response: response.url.endswith("/api/jobs") and response.status == 200):
        page.click("#refresh-button")
    assert auth_calls == ["REFRESH_TOKEN_AUTH"], auth_calls
    assert len(refused) == 1 and refused[0] and refused[0].startswith("Bearer ")
    expect(page.locator("#app-view")).to_be_visible()
    expect(idle).to_be_attached()

    page.unroute("**/api/jobs")
    page.route("**/api/jobs", lambda route: refuse(route, 10))
    page.click("#refresh-button")
    expect(page.locator("#auth-message")).to_have_text("Your session has ended. Sign in again.")
    expect(page.locator("#app-view")).to_be_hidden()
    expect(page.locator("#signin-email")).to_be_focused()
    assert len(refused) == 3, "the page should retry exactly once with fresh tokens"
    assert stored_items(page) == {}


def test_the_password_rule_shown_is_the_pools(signed_out_page: Any, artifacts: Path) -> None:
    page = signed_out_page
    page.click("#sign-up-link")
    rule = page.locator("#signup-password-rule").inner_text()
    assert f"at least {PASSWORD_POLICY['MinimumLength']} characters" in rule
    for flag, words in (("RequireUppercase", "upper-case"), ("RequireLowercase", "lower-case"),
                        ("RequireNumbers", "a digit"), ("RequireSymbols", "symbol")):
        assert (words in rule) == PASSWORD_POLICY[flag], f"{flag} disagrees with {rule!r}"
    assert page.locator("#signup-password").get_attribute("aria-describedby") == "signup-password-rule"


def test_every_sign_in_control_is_labelled_and_reached_with_the_keyboard(signed_out_page: Any) -> None:
    page = signed_out_page
    unlabelled = page.evaluate("""() => [...document.querySelectorAll("#auth-view input")]
      .filter((input) => !input.labels.length).map((input) => input.id)""")
    assert unlabelled == []
    reached = []
    for _ in range(7):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert reached[2:7] == ["signin-email", "signin-password", "Sign in", "Forgot your password?",
                            "sign-up-link"], reached
    page.keyboard.press("Enter")  # on "Create an account"
    expect(page.locator("#signup-email")).to_be_focused()


def test_the_signed_out_view_fits_a_360px_phone(browser: Any, site: str) -> None:
    phone = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    try:
        page = phone.new_page()
        open_form(page, site)
        for panel, opener in (("sign-up", "#sign-up-link"), ("forgot", None)):
            if opener:
                page.click(opener)
            else:
                page.click("[data-panel=sign-up] [data-go=sign-in]")
                page.click("[data-go=forgot]")
            page.click(f"[data-panel={panel}] button[type=submit]")
            assert_fits(page, 360, ("#auth-view .card", "#auth-message", f"[data-panel={panel}] button[type=submit]"))
        assert json.loads(page.evaluate("JSON.stringify(localStorage)")) == {}
    finally:
        phone.close()
