"""The page copies no job state list: which states exist, which are final, cancellable or retryable, and what each is
called come from the server's model through config.json (`handlers.jobmodel.public_states`)."""

from __future__ import annotations

import re
from pathlib import Path

from handlers.jobmodel import Status

FRONTEND_JS = Path(__file__).resolve().parents[2] / "frontend" / "js"
OWN_FIELDS = {Status.SUCCEEDED, Status.FAILED}
"""The states whose rows show a field of their own (a succeeded job's output link, a failed job's reason): the page
names these two, and no other."""


def named_states(text: str) -> set[Status]:
    """The states a module names as a string or as an object key."""
    return {state for state in Status
            if re.search(rf"[\"'`]{state.value}[\"'`]|\b{state.value}\s*:", text)}


def test_the_named_states_are_found_as_strings_and_as_keys() -> None:
    """The check below would pass on anything if it found nothing."""
    assert named_states('new Set(["PENDING", \'QUEUED\'])\n  RUNNING: { label: "Running" },') == {
        Status.PENDING, Status.QUEUED, Status.RUNNING}
    assert named_states("const PENDINGS = 1; // a RUNNING job") == set()


def test_no_page_module_lists_the_job_states() -> None:
    """Regression: states.js and the list's code kept their own copy of the states and of what each allows, which a
    new state, or a change of what one allows, left behind."""
    modules = sorted(FRONTEND_JS.glob("*.js"))
    assert modules, f"no modules under {FRONTEND_JS}"
    named = {path.name: named_states(path.read_text(encoding="utf-8")) for path in modules}
    extra = {name: sorted(states - OWN_FIELDS) for name, states in named.items() if states - OWN_FIELDS}
    assert not extra, f"page modules name job states that config.json's jobStates should give them: {extra}"
