"""The page's job store, its sync with the API and its reading of config.json, module by module, in Chromium without a
stack: the site's files are served by Playwright from `frontend/`, the API is a fake passed in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from components.site import FRONTEND_DIR, content_type
from handlers import jobmodel
from stackspec.settings import StackSettings, site_config

pytestmark = pytest.mark.browser

ORIGIN = "http://page.test"
BLANK = "<!doctype html><title>modules</title>"


def serve(context: Any, config: dict[str, Any] | None = None) -> None:
    """Answer `ORIGIN` from `frontend/`, `/blank.html` with an empty page, and `/config.json` with `config`."""

    def answer(route: Any) -> None:
        path = route.request.url.removeprefix(ORIGIN).split("?")[0].lstrip("/") or "index.html"
        if path == "blank.html":
            route.fulfill(body=BLANK, content_type="text/html")
        elif path == "config.json" and config is not None:
            route.fulfill(body=json.dumps(config), content_type="application/json")
        elif (FRONTEND_DIR / path).is_file():
            route.fulfill(path=FRONTEND_DIR / path, content_type=content_type(path))
        else:
            route.fulfill(status=404, body="")

    context.route(f"{ORIGIN}/**", answer)


@pytest.fixture
def blank(context: Any) -> Any:
    """An empty page of the site's origin, to import its modules into."""
    serve(context)
    opened = context.new_page()
    opened.goto(f"{ORIGIN}/blank.html")
    return opened


def job(job_id: str, status: str = "RUNNING", **fields: str) -> dict[str, str]:
    return {"id": job_id, "status": status, "created_at": f"2026-01-01T00:00:0{job_id[-1]}.000Z",
            "updated_at": "2026-01-01T00:00:09.000Z", "input_file_path": f"b/inputs/{job_id}/{job_id}.txt", **fields}


def test_the_page_holds_no_job_states_until_config_json_names_them(blank: Any) -> None:
    """Regression: states.js listed the states itself. Loaded alone it knows none; given config.json's `jobStates`
    it knows exactly the model's."""
    states = blank.evaluate("""async (given) => {
      const states = await import("/js/states.js");
      const seen = () => ({ labelled: Object.keys(states.STATUS), final: [...states.FINAL_STATES],
                            cancellable: [...states.CANCELLABLE_STATES], retryable: [...states.RETRYABLE_STATES] });
      const before = seen();
      states.useJobStates(states.readJobStates(given));
      return { before, after: seen(), label: states.statusInfo("QUEUED").label };
    }""", jobmodel.public_states())
    assert states["before"] == {"labelled": [], "final": [], "cancellable": [], "retryable": []}
    assert states["after"] == {
        "labelled": [s.value for s in jobmodel.Status],
        "final": [s.value for s in jobmodel.Status if s in jobmodel.FINAL_STATES],
        "cancellable": [s.value for s in jobmodel.CANCELLABLE_STATES],
        "retryable": [s.value for s in jobmodel.RETRYABLE_STATES],
    }
    assert states["label"] == "Queued"


@pytest.mark.parametrize("drop", ["jobStates", "maxFileBytes", "maxTextLength", "apiBase"])
def test_a_config_json_without_the_states_or_limits_is_refused(context: Any, drop: str) -> None:
    """The page has no copy to fall back on: a config.json lacking the job states or a limit is unusable, and the
    page says so instead of guessing."""
    config = site_config(StackSettings(), region="us-east-1", user_pool_id="us-east-1_pool", client_id="client")
    del config[drop]
    serve(context, config)
    page = context.new_page()
    page.goto(f"{ORIGIN}/")
    page.wait_for_selector("html[data-ready='true']", state="attached")
    expect(page.locator("#auth-message")).to_have_text(
        "This site's sign-in settings could not be read. Reload the page in a moment.")


def test_the_store_announces_each_change_and_says_whether_a_job_changed(blank: Any) -> None:
    """`put` says whether the job is new or moved (the poller's backoff depends on it), `remove` takes off only held
    jobs in one change and remembers them, `clear` starts a new generation; a download URL survives an answer
    without one."""
    seen = blank.evaluate("""async ([running, moved, other]) => {
      const { JobStore } = await import("/js/jobstore.js");
      const store = new JobStore();
      const changes = [];
      store.addEventListener("change", (event) => changes.push({ ...event.detail, job: event.detail.job?.id,
        before: event.detail.before?.status, jobs: event.detail.jobs?.map((j) => j.id) }));
      const results = {
        added: store.put(running, { highlight: true }),
        same: store.put({ ...running }),
        moved: store.put(moved, { announce: true }),
        urlKept: (store.put({ ...moved, output_url: undefined }), store.outputUrl(moved.id).url),
      };
      store.put(other);
      store.remove([other.id, "never-held", running.id], { reason: "elsewhere" });
      store.remove(["never-held"]);
      results.afterRemove = { ids: store.ids(), removed: store.wasRemoved(running.id),
                              neverHeld: store.wasRemoved("never-held") };
      const generation = store.generation;
      store.clear();
      results.afterClear = { size: store.size, removed: store.wasRemoved(running.id),
                             generation: store.generation - generation };
      return { results, changes };
    }""", [job("j1"), job("j1", "SUCCEEDED", output_url="https://x.test/out", updated_at="2026-01-01T00:01:00.000Z"),
           job("j2")])
    assert seen["results"] == {"added": True, "same": False, "moved": True, "urlKept": "https://x.test/out",
                               "afterRemove": {"ids": [], "removed": True, "neverHeld": False},
                               "afterClear": {"size": 0, "removed": False, "generation": 1}}
    kinds = [(c["kind"], c.get("job"), c.get("before"), c.get("changed"), c.get("announce"), c.get("highlight"))
             for c in seen["changes"]]
    assert kinds[:3] == [("put", "j1", None, True, False, True), ("put", "j1", "RUNNING", False, False, False),
                         ("put", "j1", "RUNNING", True, True, False)]
    removes = [c for c in seen["changes"] if c["kind"] == "remove"]
    assert [(c["jobs"], c["reason"], c["orphanedFocus"]) for c in removes] == [(["j2", "j1"], "elsewhere", False)], (
        "one change for the jobs taken together, none for nothing")
    assert seen["changes"][-1]["kind"] == "clear"


def test_sync_keeps_removed_jobs_off_drops_answers_after_a_sign_out_and_polls_only_unfinished_jobs(blank: Any) -> None:
    """The list answer may still hold a job this page deleted (the index lags): it stays off. A job answered
    `job_not_found` leaves; an answer that arrives after `clear` (a sign-out) is dropped; final jobs are not polled."""
    seen = blank.evaluate("""async ([listed, gone, states]) => {
      const { JobStore } = await import("/js/jobstore.js");
      const { JobSync } = await import("/js/jobsync.js");
      const { useJobStates, readJobStates } = await import("/js/states.js");
      useJobStates(readJobStates(states));
      let release;
      const held = new Promise((resolve) => { release = resolve; });
      const api = {
        listJobs: async () => ({ jobs: listed, more: false }),
        getJob: async (id) => {
          if (id === gone) throw Object.assign(new Error("No job has this id."), { code: "job_not_found" });
          await held;
          return listed.find((j) => j.id === id);
        },
      };
      const store = new JobStore();
      const announced = [];
      const sync = new JobSync({ api, store, announce: (m) => announced.push(m) });
      store.put(listed[0]);
      store.remove([listed[0].id]);
      store.put({ ...listed[1], id: gone, created_at: "2026-01-01T00:00:09.000Z" });
      await sync.load();
      const afterLoad = { ids: store.ids(), polled: [...sync.scheduler.entries.keys()] };
      const late = sync.refresh([listed[1].id]);
      store.clear();
      release();
      const changedAfterClear = await late;
      return { afterLoad, changedAfterClear, afterClear: store.ids(), polledAfterClear: sync.scheduler.size };
    }""", [[job("j1"), job("j2"), job("j3", "SUCCEEDED")], "gone-job", jobmodel.public_states()])
    assert seen["afterLoad"] == {"ids": ["j3", "j2"], "polled": ["j2"]}
    assert seen["changedAfterClear"] is False
    assert seen["afterClear"] == [] and seen["polledAfterClear"] == 0
