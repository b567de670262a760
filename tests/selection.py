"""How the suite is selected and spread over pytest-xdist workers: markers by folder, `--fast`, one work unit per
shared stack. Its hooks take effect through tests/conftest.py, which imports them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadGroupScheduling

TESTS = Path(__file__).resolve().parent
STACK_SUITES = frozenset({"api", "browser", "faults", "local"})
"""Folders whose tests start the local stack (or, in tests/local, drive its parts one by one): marked `e2e`."""
WHOLE_FOLDERS = frozenset({"faults", "infra"})
"""Folders that are one xdist work unit: their conftest builds something costly once for the whole folder (faults:
one stack, package scope; infra: the Pulumi deployments, session scope), which every worker would build again."""
SLOW_MARKS = ("e2e", "browser", "slow")
"""What `--fast` (make test-fast) leaves out."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true",
                     help=f"leave out the tests marked {', '.join(SLOW_MARKS)} (and do not even import the stack "
                          f"folders: {', '.join(sorted(STACK_SUITES))})")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `--fast` the stack folders, all of whose tests are `e2e`, are not collected (importing them costs
    seconds in every xdist worker)."""
    if config.getoption("fast") and collection_path.parent == TESTS and collection_path.name in STACK_SUITES:
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark by folder, so a test added to a stack folder is marked like its neighbours: `e2e` in a stack folder or
    when it asks for a `pipeline` fixture (the local stack, by the suites' convention), `browser` in tests/browser.
    Under `--fast`, leave out what SLOW_MARKS names. Two tests with one id are refused: xdist tracks tests by id."""
    ids = Counter(item.nodeid for item in items)
    if repeated := sorted(nodeid for nodeid, count in ids.items() if count > 1):
        raise pytest.UsageError(f"tests share an id, so pytest-xdist would run only one of each: {repeated}")
    for item in items:
        suite = _suite(item)
        if suite in STACK_SUITES or "pipeline" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
        if suite == "browser":
            item.add_marker(pytest.mark.browser)
    if config.getoption("fast"):
        kept: list[pytest.Item] = []
        left_out: list[pytest.Item] = []
        for item in items:
            (left_out if any(item.get_closest_marker(mark) for mark in SLOW_MARKS) else kept).append(item)
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


class SharedStackScheduling(LoadGroupScheduling):
    """`--dist loadgroup` as this suite needs it: a module's tests are one work unit, and so is a whole folder whose
    conftest builds a stack or another costly fixture for all of it (WHOLE_FOLDERS); an explicit `xdist_group` mark
    still makes its own unit.

    So a module- or package-scoped stack starts once, on one worker, and serves its tests one at a time, as their
    fixtures assume (its VM host, its VM cap), with no mark to forget on a new module. (xdist's own loadgroup puts
    each unmarked test in a unit of its own; under pytest 9.2 it groups nothing at all, pytest-dev/pytest-xdist
    issue 1386, which is one reason requirements-dev.in keeps pytest below 9.2.)
    """

    _ordered = False

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.rfind("@") > nodeid.rfind("]"):
            return super()._split_scope(nodeid)
        path = nodeid.split("::", 1)[0]
        folder = path.split("/")[:2]
        return "/".join(folder) if folder[0] == "tests" and folder[-1] in WHOLE_FOLDERS else path

    def _assign_work_unit(self, node: Any) -> None:
        """Hand out the stack folders' units first (they run longest, each on one worker), then the rest, largest
        first: the many short units at the end even out the workers' finishing times."""
        if not self._ordered:
            self._ordered = True
            units = sorted(self.workqueue.items(), key=lambda unit: (not _is_stack_scope(unit[0]), -len(unit[1])))
            self.workqueue.clear()
            self.workqueue.update(units)
        super()._assign_work_unit(node)


def _is_stack_scope(scope: str) -> bool:
    parts = scope.split("/")
    return len(parts) > 1 and parts[0] == "tests" and parts[1] in STACK_SUITES


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadGroupScheduling | None:
    return SharedStackScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


def _suite(item: pytest.Item) -> str:
    """The folder under tests/ that holds the item ("" for a test outside tests/)."""
    try:
        return item.path.relative_to(TESTS).parts[0]
    except ValueError:
        return ""
