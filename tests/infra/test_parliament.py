"""Every policy document the program writes, linted with parliament (an IAM linter, pinned in requirements-dev).

A finding is either fixed or explained in a comment next to its statement in `components/iam.py` (or wherever the
document is written), which starts with "parliament <ISSUE>". `EXPLAINED` lists exactly those findings, by issue
and actions: a new finding fails the test, and so does an explanation whose finding is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import parliament
import pytest

from tests.infra.conftest import ROOT, Deployment

Finding = tuple[str, frozenset[str]]

EXPLAINED: dict[Finding, str] = {
    ("MALFORMED", frozenset({"sts:assumerole"})): "components/iam.py",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", frozenset({"iam:passrole"})): "components/iam.py",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", frozenset({"iam:passrole", "kms:creategrant"})): "components/iam.py",
    ("PRIVILEGE_ESCALATION", frozenset({"iam:passrole", "ec2:runinstances"})): "components/iam.py",
    ("RESOURCE_MISMATCH", frozenset({"ssm:getparameters"})): "components/iam.py",
    ("RESOURCE_MISMATCH",
     frozenset({"dynamodb:describestream", "dynamodb:getrecords", "dynamodb:getsharditerator"})): "components/iam.py",
}
"""Findings accepted, by (issue, lower-case actions), with the file whose comment explains each."""


def policy_documents(deployment: Deployment) -> Iterator[tuple[str, str]]:
    """(resource.input, JSON) for every input of every resource that holds a policy document.

    Found by content, not by a list of resource types, so a policy on a new kind of resource is linted too.
    """
    for resource in deployment.resources:
        for key, value in resource.inputs.items():
            if isinstance(value, str) and value.lstrip().startswith("{") and '"Statement"' in value:
                yield f"{resource.name}.{key}", value


def actions_of(policy: dict[str, Any]) -> set[str]:
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    found: set[str] = set()
    for statement in statements:
        actions = statement.get("Action", [])
        found.update(a.lower() for a in ([actions] if isinstance(actions, str) else actions))
    return found


def finding_key(finding: Any, document: str) -> Finding:
    """The finding's issue and the actions it is about: named in its detail or location, else the document's."""
    detail, location = finding.detail, finding.location
    if isinstance(detail, list) and all(isinstance(d, dict) and "action" in d for d in detail):
        actions = {d["action"].lower() for d in detail}
    elif isinstance(location, dict) and location.get("actions"):
        actions = {a.lower() for a in location["actions"]}
    else:
        actions = actions_of(json.loads(document))
    return finding.issue, frozenset(actions)


def lint(deployment: Deployment) -> dict[Finding, list[str]]:
    """Parliament's findings over every document of the deployment, with the documents each was found in."""
    found: dict[Finding, list[str]] = {}
    for where, document in policy_documents(deployment):
        for finding in parliament.analyze_policy_string(document, include_community_auditors=True).findings:
            found.setdefault(finding_key(finding, document), []).append(where)
    return found


@pytest.mark.parametrize("stack", ["dev", "tuned"])
def test_parliament_finds_nothing_unexplained(stack: str, request: pytest.FixtureRequest) -> None:
    """Regression: a policy change parliament flags (an unknown action, a resource of the wrong type for its action,
    a wildcard, a permissions-management grant) goes in unnoticed."""
    deployment: Deployment = request.getfixturevalue(stack)
    unexplained = {key: where for key, where in lint(deployment).items() if key not in EXPLAINED}
    assert not unexplained, f"fix these, or explain them next to their statement and in EXPLAINED: {unexplained}"


def test_every_explanation_still_has_its_finding(dev: Deployment, tuned: Deployment) -> None:
    """Regression: an explanation outliving its finding, which would let the same finding back in unseen. (The
    AMI parameter finding shows with the default public parameter only, so both stacks are linted.)"""
    found = set(lint(dev)) | set(lint(tuned))
    assert set(EXPLAINED) <= found, f"explained but no longer found: {set(EXPLAINED) - found}"


def test_every_policy_document_is_linted(dev: Deployment) -> None:
    """Regression: the collector missing a kind of document, so the lint passes because it reads nothing."""
    where = {name.split(".")[0] for name, _ in policy_documents(dev)}
    roles = {r.name for r in dev.of_type("aws:iam/role:Role")}
    inline = {r.name for r in dev.of_type("aws:iam/rolePolicy:RolePolicy")}
    assert roles | inline <= where
    assert {"storage-data-policy", "site-files-policy", "compute-s3", "compute-dynamodb"} <= where


@pytest.mark.parametrize(("issue", "actions"), sorted((issue, sorted(actions)) for issue, actions in EXPLAINED))
def test_each_accepted_finding_is_explained_in_a_comment(issue: str, actions: list[str]) -> None:
    """Regression: a finding accepted in the test with no word in the code on why it is fine."""
    source = (ROOT / EXPLAINED[(issue, frozenset(actions))]).read_text(encoding="utf-8")
    comments = " ".join(line.strip() for line in source.splitlines() if line.strip().startswith("# parliament")
                        or line.strip().startswith("#"))
    assert "# parliament" in source and issue in comments, f"no comment explains {issue}"
    for action in actions:
        assert action.split(":")[1] in comments.lower(), f"{issue}: the comment must name {action}"
