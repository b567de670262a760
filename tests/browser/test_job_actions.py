"""Cancel, retry and delete from the job list in headless Chromium against the local stack: a running job cancelled,
retried and deleted with the keyboard alone, a refused delete that keeps its row, and jobs deleted elsewhere (another
tab or device) leaving the list when a cancel, a retry, a poll or a reload finds them gone (also while the job's
delete question is open), and a job deleted on the page that a lagging list answer still holds staying off the list.

The VMs of this module's stack run the real worker held before its last write until the test opens the job's gate
(`tests.faults.harness.gated_worker_script`): that keeps a job RUNNING for as long as a test needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from handlers import jobmodel
from local.app import Credentials, LocalPipeline
from local.client import ApiClient
from tests.browser.a11y import assert_accessible
from tests.browser.conftest import page_pause
from tests.browser.test_form import JOB_TIMEOUT_MS, WATCH_PROGRESS, a_file, job_row, requests_to, was_announced
from tests.faults.harness import gated_worker_script, put_worker_script
from tests.records import wait_for_final
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def gates(pipeline: LocalPipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every VM of the module's stack runs the real worker, held RUNNING before its last write until the test
    opens the job's gate (`open_gate`)."""
    directory = tmp_path_factory.mktemp("gates")
    put_worker_script(pipeline, gated_worker_script(directory))
    return directory


def open_gate(gates: Path, job_id: str) -> None:
    (gates / job_id).touch()


def finished_jobs(client: ApiClient, gates: Path, *names: str) -> list[str]:
    """Submit a job per file name, oldest first, let each run to SUCCEEDED; their ids in the same order."""
    ids = []
    for name in names:
        job = client.submit(name, name.encode(), "text")
        open_gate(gates, job["id"])
        ids.append(job["id"])
    for job_id in ids:
        assert wait_for_final(client, job_id)["status"] == "SUCCEEDED"
    return ids


def delete_elsewhere(client: ApiClient, job_id: str) -> None:
    """Delete a job through the API, as another tab would, once its VM is gone (until then: 409 job_vm_running)."""
    wait_for(lambda: client.delete_job(job_id).status_code in (204, 404), timeout=30, what=f"{job_id} deleted")
    assert client.get(f"/api/jobs/{job_id}").status_code == 404


def reload_list(page: Any) -> None:
    """Reload the page; return once its first list answer is shown (`aria-busy` ends) and announcements are watched."""
    page.reload()
    page.wait_for_selector("html[data-ready='true']", state="attached")
    expect(page.locator(".jobs-card")).to_have_attribute("aria-busy", "false")
    page.evaluate(WATCH_PROGRESS)


def rewrite_list_answers(page: Any, rewrite: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
    """Every `GET /api/jobs` answer from now on is the real one with its body replaced by `rewrite(its jobs)`: a
    list that lags behind the table, or a page of it."""
    def answer(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, json=rewrite(response.json()["jobs"]))

    page.route("**/api/jobs", lambda route: answer(route) if route.request.method == "GET" else route.continue_())


def next_row_id(row: Any) -> str | None:
    return str(row.evaluate("el => el.nextElementSibling ? el.nextElementSibling.dataset.jobId : ''")) or None


def assert_focus_moved_on(page: Any, following: str | None) -> None:
    """Focus left the removed row for the next row's first control, or for the list's heading when it was last."""
    if following:
        assert page.evaluate("document.activeElement.closest('.job')?.dataset.jobId") == following, focused(page)
    else:
        expect(page.locator("#jobs-heading")).to_be_focused()


def focused(page: Any) -> str:
    """What has focus, as a test names it: `<job file>/<data-action or data-slot>`, a row `<job file>`, or an id."""
    return str(page.evaluate("""() => {
      const el = document.activeElement;
      const row = el.closest(".job");
      if (!row) return el.id || el.tagName;
      const file = row.querySelector('[data-slot="file"]').textContent;
      if (el === row) return file;
      return `${file}/${el.dataset.action || el.dataset.slot || el.dataset.choice}`;
    }"""))


def tab_to(page: Any, expected: str) -> None:
    page.keyboard.press("Tab")
    assert focused(page) == expected, f"Tab went to {focused(page)!r}, not {expected!r}"


def test_a_running_job_is_cancelled_retried_and_deleted_with_the_keyboard(
    page: Any, site: str, user: Credentials, gates: Path,
) -> None:
    """The whole path with the keyboard alone: Cancel on a RUNNING job, Retry once it is CANCELLED (the new job runs
    to the end), then Delete after the confirmation: kept once, deleted the second time."""
    client = ApiClient.signed_in(site, user.email, user.password)
    page.evaluate(WATCH_PROGRESS)
    page.fill("#input-text", "stop me")
    page.set_input_files("#input-file", files=[a_file("held.txt", b"held bytes")])
    page.focus("#submit-button")
    page.keyboard.press("Enter")
    row = job_row(page, "held.txt")
    expect(row).to_have_attribute("data-status", "RUNNING", timeout=JOB_TIMEOUT_MS)
    old_id = row.get_attribute("data-job-id")
    row = page.locator(f"#job-{old_id}")  # the retry will make a second row for the same file
    cancel = row.locator("[data-action=cancel]")
    expect(cancel).to_have_accessible_name("Cancel job held.txt")
    expect(row.locator("[data-action=retry]")).to_be_hidden()
    expect(row.locator("[data-action=delete]")).to_be_hidden()
    assert_accessible(page, "a running job with its Cancel button")

    page.focus("#refresh-button")
    tab_to(page, "held.txt/cancel")  # the newest job comes first, its only control
    page.keyboard.press("Enter")
    expect(row).to_have_attribute("data-status", "CANCELLED")
    was_announced(page, "held.txt: cancelled.")
    assert client.job(old_id)["status"] == "CANCELLED"
    expect(row.locator("[data-slot=status]")).to_have_text("Cancelled")
    expect(row.locator("[data-slot=detail]")).to_have_text("Stopped at your request.")
    expect(page.locator("#jobs-meta")).to_contain_text("1 cancelled")
    expect(cancel).to_be_hidden()
    expect(row.locator("[data-action=retry]")).to_have_accessible_name("Retry job held.txt")
    assert focused(page) == "held.txt/retry", "focus did not move to the next control when Cancel went away"
    assert_accessible(page, "a cancelled job with its Retry and Delete buttons")

    page.keyboard.press("Enter")
    was_announced(page, "held.txt: retried as a new job.")
    new_id = client.job(old_id).get("retried_as")
    assert new_id and new_id != old_id, client.job(old_id)
    open_gate(gates, new_id)
    rows = page.locator(".job")
    expect(rows.first).to_have_attribute("data-job-id", new_id)  # on top, without a reload
    new_row = rows.first
    retried = row.locator("[data-slot=retried]")
    expect(retried).to_have_text(f"Retried as job {new_id[:8]}")
    expect(row.locator("[data-action=retry]")).to_be_hidden()
    assert focused(page) == "held.txt/retried"
    page.keyboard.press("Enter")  # the link leads to the new job's row
    expect(new_row).to_be_focused()
    expect(new_row).to_have_attribute("data-status", "SUCCEEDED", timeout=JOB_TIMEOUT_MS)
    assert client.job(new_id)["input_text"] == "stop me"

    tab_to(page, "held.txt/download")  # the new job's controls, then the old one's
    tab_to(page, "held.txt/delete")
    tab_to(page, "held.txt/retried")
    tab_to(page, "held.txt/delete")
    assert page.evaluate("document.activeElement.closest('.job').dataset.jobId") == old_id
    page.keyboard.press("Enter")
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_accessible_name("Delete held.txt?")
    assert focused(page) == "BUTTON" and page.evaluate("document.activeElement.dataset.choice") == "keep"
    assert_accessible(page, "the question before a delete")
    page.keyboard.press("Enter")  # keep the job
    expect(dialog).to_be_hidden()
    assert focused(page) == "held.txt/delete"
    assert client.get(f"/api/jobs/{old_id}").status_code == 200, "keeping the job deleted it"
    expect(row).to_be_visible()

    following = row.evaluate("el => el.nextElementSibling && el.nextElementSibling.dataset.jobId")
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Delete
    expect(row).to_have_count(0)
    was_announced(page, "held.txt: deleted.")
    assert client.get(f"/api/jobs/{old_id}").status_code == 404
    if following:
        assert page.evaluate("document.activeElement.closest('.job')?.dataset.jobId") == following
    else:
        expect(page.locator("#jobs-heading")).to_be_focused()
    expect(new_row).to_be_visible()


VM_RUNNING = "The job's VM is still shutting down; try again in a minute."
NO_ROUTE = "No route for DELETE /api/jobs/{id}."
REFUSALS = {
    "409 job_vm_running": (409, "job_vm_running", VM_RUNNING),
    "404 of no job (a missing route)": (404, "not_found", NO_ROUTE),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_delete_keeps_the_row_and_says_why(
    page: Any, site: str, user: Credentials, gates: Path, refusal: tuple[int, str, str],
) -> None:
    """A delete answered 409 `job_vm_running` (forced here, it only lasts while a VM shuts down), or 404 with
    another code than `job_not_found` (the job was not found gone: the request missed the API's route): the
    sentence shows under the job and is announced, the row stays, and the button is usable again; while the request
    is in flight the button is disabled, so nothing is sent twice."""
    status, code, reason = refusal
    name = f"refused-{status}.txt"
    client = ApiClient.signed_in(site, user.email, user.password)
    job = client.submit(name, b"busy", "text")
    open_gate(gates, job["id"])
    assert wait_for_final(client, job["id"])["status"] == "SUCCEEDED"
    page.reload()
    page.wait_for_selector("html[data-ready='true']", state="attached")
    page.evaluate(WATCH_PROGRESS)
    held: list[Any] = []
    page.route(f"**/api/jobs/{job['id']}", lambda route: held.append(route)
               if route.request.method == "DELETE" else route.continue_())
    deletes = requests_to(page, "DELETE", re.escape(job["id"]))

    row = job_row(page, name)
    delete = row.locator("[data-action=delete]")
    delete.click()
    page.locator("#delete-dialog [data-choice=confirm]").click()
    expect(delete).to_be_disabled()
    expect(page.locator("#delete-dialog")).to_be_hidden()
    delete.click(force=True)  # a second click while the first is in flight: no second question, no second request
    expect(page.locator("#delete-dialog")).to_be_hidden()
    assert len(held) == 1
    held[0].fulfill(status=status, json={"error": {"code": code, "message": reason}})

    expect(row.locator("[data-slot=action-error]")).to_have_text(reason)
    was_announced(page, f"{name}: {reason}")
    expect(delete).to_be_enabled()
    expect(delete).to_be_focused()
    assert_accessible(page, "a refused delete with its reason")
    expect(row).to_have_attribute("data-status", "SUCCEEDED")
    assert len(deletes) == 1, deletes
    assert client.get(f"/api/jobs/{job['id']}").status_code == 200


def test_the_page_knows_every_job_state_and_what_each_allows(page: Any) -> None:
    """states.js agrees with the job model: a label for every state (a new one would show raw), the same final
    states (a final job polled forever, or one under way never polled again), Cancel exactly where the model lets
    the user cancel and Retry exactly where the API retries."""
    states = page.evaluate("""async () => {
      const { STATUS, FINAL_STATES, CANCELLABLE_STATES, RETRYABLE_STATES } = await import("/js/states.js");
      return { labelled: Object.keys(STATUS), final: [...FINAL_STATES], cancellable: [...CANCELLABLE_STATES],
               retryable: [...RETRYABLE_STATES] };
    }""")
    assert set(states["labelled"]) == set(jobmodel.Status)
    assert set(states["final"]) == jobmodel.FINAL_STATES
    cancellable = {t.source for t in jobmodel.TRANSITIONS
                   if t.target == jobmodel.Status.CANCELLED and jobmodel.Actor.USER in t.by}
    assert set(states["cancellable"]) == cancellable
    assert set(states["retryable"]) == set(jobmodel.RETRYABLE_STATES)


def test_a_cancel_answered_job_not_found_takes_the_row_off(
    page: Any, site: str, user: Credentials, gates: Path,
) -> None:
    """Cancel on a job deleted elsewhere is answered 404 `job_not_found` (the API's own answer for an id it does not
    have, forced here on a job still running so that no poll can be the one that notices): the row leaves, the live
    region says so once, no error is shown, and focus goes on to the next row."""
    client = ApiClient.signed_in(site, user.email, user.password)
    not_found = client.cancel(jobmodel.new_id())
    assert not_found.status_code == 404 and not_found.json()["error"]["code"] == "job_not_found"
    job = client.submit("cancel-gone.txt", b"bytes", "text")
    page.route(f"**/api/jobs/{job['id']}/cancel",
               lambda route: route.fulfill(status=404, json=not_found.json()))
    reload_list(page)
    row = page.locator(f"#job-{job['id']}")
    following = next_row_id(row)
    cancel = row.locator("[data-action=cancel]")
    cancel.focus()
    page.keyboard.press("Enter")

    expect(row).to_have_count(0)
    was_announced(page, "cancel-gone.txt: deleted elsewhere.")
    assert_focus_moved_on(page, following)
    assert not [m for m in page.evaluate("window.__announced") if "No job has this id" in m]
    open_gate(gates, job["id"])  # it was not really deleted: let its VM finish


def test_a_retry_of_a_job_deleted_elsewhere_takes_the_row_off(
    page: Any, site: str, user: Credentials, gates: Path,
) -> None:
    """A cancelled job deleted in another tab still shows Retry here (finished jobs are not polled); Retry is
    answered 404 `job_not_found`: the row leaves, once announced, and focus goes on to the next row."""
    client = ApiClient.signed_in(site, user.email, user.password)
    job = client.submit("retry-gone.txt", b"bytes", "text")
    assert client.cancel(job["id"]).status_code == 200
    reload_list(page)
    row = page.locator(f"#job-{job['id']}")
    expect(row).to_have_attribute("data-status", "CANCELLED")
    following = next_row_id(row)
    delete_elsewhere(client, job["id"])
    retries = requests_to(page, "POST", re.escape(f"/api/jobs/{job['id']}/retry"))
    row.locator("[data-action=retry]").focus()
    page.keyboard.press("Enter")

    expect(row).to_have_count(0)
    was_announced(page, "retry-gone.txt: deleted elsewhere.")
    assert_focus_moved_on(page, following)
    assert len(retries) == 1
    assert not [m for m in page.evaluate("window.__announced") if m.startswith("retry-gone.txt: retried")]


def test_a_polled_job_deleted_elsewhere_leaves_the_list(page: Any, site: str, user: Credentials) -> None:
    """A running job is cancelled and deleted elsewhere between two polls (the page's poll is held until then): the
    poll's 404 takes the row off and announces it, polling stops, and focus, which was not in the row, stays."""
    client = ApiClient.signed_in(site, user.email, user.password)
    job = client.submit("polled-gone.txt", b"bytes", "text")
    held: list[Any] = []
    page.route(f"**/api/jobs/{job['id']}", lambda route: held.append(route)
               if route.request.method == "GET" and not held else route.continue_())
    reload_list(page)
    row = page.locator(f"#job-{job['id']}")
    expect(row).to_be_visible()
    page.focus("#input-text")
    wait_for(lambda: held, 10, "the page to poll the job", interval=0.1, pause=page_pause(page))
    assert client.cancel(job["id"]).status_code == 200
    delete_elsewhere(client, job["id"])
    polls = requests_to(page, "GET", re.escape(f"/api/jobs/{job['id']}") + "$")
    held[0].continue_()

    expect(row).to_have_count(0)
    was_announced(page, "polled-gone.txt: deleted elsewhere.")
    expect(page.locator("#input-text")).to_be_focused()
    page.wait_for_timeout(2500)  # longer than the first poll delays: a job still watched would be asked about again
    assert polls == [], f"the deleted job was polled again: {polls}"


def test_refresh_takes_off_finished_jobs_deleted_elsewhere_and_keeps_the_others(
    page: Any, site: str, user: Credentials, gates: Path,
) -> None:
    """Finished jobs are not polled, so only a reload of the list can find them deleted elsewhere: Refresh takes their
    rows off with one sentence for both, said before the list's summary; the jobs still there keep their rows."""
    client = ApiClient.signed_in(site, user.email, user.password)
    kept_old, deleted, also_deleted, kept_new = finished_jobs(
        client, gates, "kept-old.txt", "deleted-there.txt", "also-deleted.txt", "kept-new.txt")
    reload_list(page)
    for job_id in (kept_old, deleted, also_deleted, kept_new):
        expect(page.locator(f"#job-{job_id}")).to_be_visible()
    delete_elsewhere(client, deleted)
    delete_elsewhere(client, also_deleted)
    page.click("#refresh-button")

    for job_id in (deleted, also_deleted):
        expect(page.locator(f"#job-{job_id}")).to_have_count(0)
    was_announced(page, "Job list updated:")
    announced = page.evaluate("window.__announced")
    gone = [m for m in announced if "deleted elsewhere" in m]
    assert gone == ["2 jobs deleted elsewhere."], announced
    assert announced.index(gone[0]) < next(i for i, m in enumerate(announced) if m.startswith("Job list updated"))
    for job_id in (kept_old, kept_new):
        expect(page.locator(f"#job-{job_id}")).to_be_visible()
    expect(page.locator("#refresh-button")).to_be_focused()


def test_a_list_answer_that_lags_or_is_one_page_takes_off_no_job_that_exists(
    page: Any, site: str, user: Credentials, gates: Path,
) -> None:
    """The list is read from an eventually consistent index, so it may lack a job that exists: a row missing from
    it is asked about on its own and stays when the job is there. A page of the newest jobs (`next` set) says
    nothing about older rows: they are not even asked about."""
    client = ApiClient.signed_in(site, user.email, user.password)
    older, lagging, newest = finished_jobs(client, gates, "page-older.txt", "page-lagging.txt", "page-newest.txt")
    reload_list(page)
    answer: dict[str, Any] = {}
    rewrite_list_answers(page, lambda jobs: {"jobs": [job for job in jobs if job["id"] in answer["keep"]],
                                             **answer.get("extra", {})})
    asked = requests_to(page, "GET", "/api/jobs/[^/]+$")

    answer["keep"] = {older, newest}  # complete, but behind: without the lagging job
    page.click("#refresh-button")
    was_announced(page, "Job list updated:")
    assert any(url.endswith(f"/api/jobs/{lagging}") for url in asked), asked
    for job_id in (older, lagging, newest):
        expect(page.locator(f"#job-{job_id}")).to_be_visible()

    asked.clear()
    page.evaluate("window.__announced = []")
    answer["keep"], answer["extra"] = {newest}, {"next": "more-pages"}
    page.click("#refresh-button")
    was_announced(page, "Job list updated:")
    older_asked = [url for url in asked if url.endswith((older, lagging))]  # finished: only the check asks
    assert older_asked == [], f"rows older than the page were asked about: {older_asked}"
    for job_id in (older, lagging, newest):
        expect(page.locator(f"#job-{job_id}")).to_be_visible()
    assert not [m for m in page.evaluate("window.__announced") if "deleted elsewhere" in m]


def test_a_job_deleted_here_stays_off_the_list_when_a_lagging_list_still_has_it(
    page: Any, site: str, user: Credentials, gates: Path,
) -> None:
    """The list is read from an eventually consistent index: right after a delete it may still hold the job. Refresh
    must not bring back a row the user has just deleted (nor say anything about it)."""
    client = ApiClient.signed_in(site, user.email, user.password)
    [deleted] = finished_jobs(client, gates, "deleted-here.txt")
    reload_list(page)
    stale = client.job(deleted)
    row = page.locator(f"#job-{deleted}")
    row.locator("[data-action=delete]").click()
    page.locator("#delete-dialog [data-choice=confirm]").click()
    was_announced(page, "deleted-here.txt: deleted.")
    expect(row).to_have_count(0)

    rewrite_list_answers(page, lambda jobs: {"jobs": [stale, *jobs]})
    page.evaluate("window.__announced = []")
    page.click("#refresh-button")
    was_announced(page, "Job list updated:")
    expect(row).to_have_count(0)
    assert not [m for m in page.evaluate("window.__announced") if "deleted" in m]


def test_a_job_deleted_elsewhere_while_its_delete_question_is_open_leaves_focus_on_the_list(
    page: Any, site: str, user: Credentials, gates: Path,
) -> None:
    """The delete question is open when the page comes back after a long absence and its reload finds the job gone
    (deleted in another tab): the row leaves behind the dialog; when the user closes the dialog, focus goes to the
    list's heading (the button that opened it has left the page), not to the page's body."""
    client = ApiClient.signed_in(site, user.email, user.password)
    [job_id] = finished_jobs(client, gates, "asked-about.txt")
    reload_list(page)
    row = page.locator(f"#job-{job_id}")
    row.locator("[data-action=delete]").click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    delete_elsewhere(client, job_id)

    page.evaluate("""() => {  // the tab comes back after more than the list's staleness limit
      const now = Date.now.bind(Date);
      Date.now = () => now() + 10 * 60 * 1000;
      document.dispatchEvent(new Event("visibilitychange"));
    }""")
    expect(row).to_have_count(0)
    was_announced(page, "asked-about.txt: deleted elsewhere.")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")

    expect(dialog).to_be_hidden()
    expect(page.locator("#jobs-heading")).to_be_focused()
