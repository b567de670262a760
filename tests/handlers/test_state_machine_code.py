"""The launcher (and the dispatch it shares), the sweeper and the API's job management make only the moves the job
model gives them, at every call site in their source.

`jobmodel.transition` refuses a wrong move at run time, but only on the paths a test happens to drive; reading the
source checks every call, including error paths no test reaches.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from handlers import jobmodel
from handlers.jobmodel import Actor, Status

HANDLERS = Path(jobmodel.__file__).parent


def status_of(node: ast.expr) -> Status:
    assert isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Status", (
        f"line {node.lineno}: states are named as Status.X so they can be checked")
    return Status[node.attr]


def expected_states(node: ast.expr) -> list[Status]:
    """`expected=` as a literal list of `Status.X`, or the model's own set (`sorted(jobmodel.CANCELLABLE_STATES)`)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sorted":
        node = node.args[0]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "jobmodel":
        return sorted(getattr(jobmodel, node.attr))
    assert isinstance(node, ast.List), f"line {node.lineno}: expected= is a literal list or a set of the job model"
    return [status_of(e) for e in node.elts]


def jobmodel_moves(tree: ast.AST) -> list[tuple[Status, Status, Actor]]:
    """(from, to, by) of every `jobmodel.transition(ddb, table, job_id, Status.X, expected=[...], by=Actor.Y)`."""
    moves = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "transition"
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "jobmodel"):
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        by = keywords["by"]
        assert isinstance(by, ast.Attribute), f"line {call.lineno}: by= names an Actor"
        if isinstance(call.args[3], ast.Name):  # the launcher's helper passes its own parameters through
            continue
        moves += [(source, status_of(call.args[3]), Actor[by.attr]) for source in expected_states(keywords["expected"])]
    return moves


def launcher_helper_moves(tree: ast.AST) -> list[tuple[Status, Status, Actor]]:
    """(from, to) of every `transition(services, job_id, Status.FROM, Status.TO, ...)` (`handlers.dispatch`'s
    helper, called as `dispatch.transition` by the launcher)."""
    return [
        (status_of(call.args[2]), status_of(call.args[3]), Actor.LAUNCHER)
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and (
            (isinstance(call.func, ast.Name) and call.func.id == "transition")
            or (isinstance(call.func, ast.Attribute) and call.func.attr == "transition"
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "dispatch"))
    ]


@pytest.mark.parametrize(("module", "actor"), [
    ("launcher", Actor.LAUNCHER), ("dispatch", Actor.LAUNCHER), ("sweeper", Actor.SWEEPER), ("manage", Actor.USER),
])
def test_every_transition_in_the_source_is_allowed_for_its_actor(module: str, actor: Actor) -> None:
    tree = ast.parse((HANDLERS / f"{module}.py").read_text())
    moves = jobmodel_moves(tree) + launcher_helper_moves(tree)
    assert moves, f"no transition found in {module}.py: the check would pass vacuously"
    allowed = {(t.source, t.target, by) for t in jobmodel.TRANSITIONS for by in t.by}
    assert {by for _, _, by in moves} == {actor}, f"{module}.py acts as another component"
    assert set(moves) <= allowed, f"moves the model does not give the {module}: {set(moves) - allowed}"
