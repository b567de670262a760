"""No module imports one from a higher layer, read from the source (an import on a path no test runs counts too).

From the bottom up: `handlers/` (packaged alone for Lambda: the standard library, boto3 and itself only) and
`worker/`; `stackspec/` (what a stack is, in plain Python: no Pulumi); then `components/` (Pulumi) and `local/`
(local mode), which both build from `stackspec/`; then `bench/`, a tool that drives local mode. Nothing imports the
tests.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = frozenset({"handlers", "worker", "stackspec", "components", "local", "bench", "policy", "tests"})
PULUMI = frozenset({"pulumi", "pulumi_aws", "pulumi_random", "pulumi_policy"})
FORBIDDEN: dict[str, frozenset[str]] = {
    "worker": frozenset({"stackspec", "components", "local", "bench", "policy", "tests"}) | PULUMI,
    "stackspec": frozenset({"components", "local", "bench", "policy", "tests"}) | PULUMI,
    "components": frozenset({"local", "bench", "tests"}),
    "local": frozenset({"components", "bench", "policy", "tests"}) | PULUMI,
    "bench": frozenset({"components", "policy", "tests"}) | PULUMI,
}
"""What each package may not import; `handlers` is checked against what it may import (`HANDLER_IMPORTS`)."""
HANDLER_IMPORTS = frozenset(sys.stdlib_module_names) | {"handlers", "boto3", "botocore"}
"""What a Lambda package of `handlers/` alone can import: the runtime has the standard library, boto3 and botocore."""


def imported_packages(path: Path) -> dict[str, int]:
    """The top-level package of every absolute import in `path`, with the line of its first import."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def sources(package: str) -> list[Path]:
    paths = sorted((ROOT / package).rglob("*.py"))
    assert paths, f"no Python source under {package}/: the check would pass vacuously"
    return paths


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_from_a_higher_layer(package: str) -> None:
    """Regression: `worker/userdata.py` imported `components.settings`, the one import from a lower layer to a
    higher one; local mode importing Pulumi code, or the stack's plain spec importing Pulumi, would follow."""
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sources(package) for name, line in imported_packages(path).items()
             if name in FORBIDDEN[package]]
    assert not wrong, "\n".join(wrong)


def test_handlers_import_nothing_outside_their_lambda_package() -> None:
    """Regression: a handler importing a project module outside `handlers/` works in tests and local mode, and fails
    with ImportError on Lambda, where the function's package is `handlers/` alone."""
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sources("handlers") for name, line in imported_packages(path).items()
             if name not in HANDLER_IMPORTS]
    assert not wrong, "\n".join(wrong)


def test_every_project_package_has_a_layer() -> None:
    """A new top-level package is placed in the layers here, or its imports go unchecked."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {".venv"}
    assert packages <= PROJECT_PACKAGES, f"packages with no layer: {sorted(packages - PROJECT_PACKAGES)}"
    assert set(FORBIDDEN) | {"handlers", "policy", "tests"} == PROJECT_PACKAGES
