"""The GitHub Actions workflows (`.github/`): zizmor (offline) and the workflow JSON schema find nothing, and the
project's own rules hold: actions pinned to a commit with their version, least privilege, no expression in a shell
script, credentials not left in the checkout, previews and deploys wired to the right stacks and roles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted(GITHUB.glob("actions/*/action.yml"))
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
PULUMI_ACTION = "./.github/actions/pulumi"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in document:
        return document["runs"]["steps"]
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def uses_lines(path: Path) -> list[str]:
    return [line.split("uses:", 1)[1].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip().startswith(("uses:", "- uses:"))]


def run(tool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)


def test_there_are_test_preview_and_deploy_workflows() -> None:
    assert {p.name for p in WORKFLOWS} == {"tests.yml", "preview.yml", "deploy.yml"}
    assert [p.parent.name for p in ACTIONS] == ["pulumi"]


def test_zizmor_finds_nothing_at_medium_or_above() -> None:
    """Regression: a workflow change that opens an injection, leaks credentials or over-grants permissions."""
    result = run("zizmor", "--offline", "--min-severity", "medium", GITHUB)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_reports_a_workflow_that_breaks_the_rules(tmp_path: Path) -> None:
    """The check above can fail: zizmor runs offline here and reports an unpinned action, a persisted checkout
    token and a pull request title expanded inside a shell script."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: pull_request\n"
        "permissions: {contents: read}\n"
        "jobs:\n"
        "  bad:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n',
        encoding="utf-8",
    )
    result = run("zizmor", "--offline", "--min-severity", "medium", tmp_path)
    assert result.returncode != 0
    for audit in ("template-injection", "artipacked", "unpinned-uses"):
        assert audit in result.stdout, audit


def test_workflows_and_actions_match_github_schemas(tmp_path: Path) -> None:
    """Regression: a key GitHub does not know (a typo such as `permission:`) is ignored by GitHub, silently."""
    assert run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS).returncode == 0
    assert run("check-jsonschema", "--builtin-schema", "vendor.github-actions", *ACTIONS).returncode == 0
    typo = tmp_path / "typo.yml"
    typo.write_text("on: push\npermission: {contents: read}\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
                    encoding="utf-8")
    assert run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", typo).returncode != 0


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=lambda p: p.relative_to(GITHUB).as_posix())
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    """Regression: `@v4` (a tag its owner can move) instead of a full commit SHA; a SHA without its version, which
    no reviewer (or update tool) can read."""
    for uses in uses_lines(path):
        if uses.startswith("./"):
            assert (ROOT / uses / "action.yml").is_file() or (ROOT / uses).is_file(), uses
        else:
            assert PINNED.match(uses), f"{path.name}: {uses}"


def test_one_action_one_commit_everywhere() -> None:
    """Regression: two versions of the same action in two files, one of them forgotten at the next update."""
    pins: dict[str, set[str]] = {}
    for path in [*WORKFLOWS, *ACTIONS]:
        for uses in uses_lines(path):
            if not uses.startswith("./"):
                name, ref = uses.split("@", 1)
                pins.setdefault(name, set()).add(ref)
    assert pins and all(len(refs) == 1 for refs in pins.values()), pins


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_reads_only_by_default(path: Path) -> None:
    """Regression: no top-level `permissions` gives every job the repository's default token rights."""
    assert load(path)["permissions"] == {"contents": "read"}


def test_id_token_only_where_aws_is_used() -> None:
    """Regression: `id-token: write` on a job that does not assume a role (or on the whole workflow), letting any
    of its steps mint a token the roles would accept."""
    for path in WORKFLOWS:
        document = load(path)
        assert "id-token" not in document["permissions"], path.name
        for name, job in document["jobs"].items():
            uses_aws = any(step.get("uses") == PULUMI_ACTION for step in job.get("steps", []))
            assert (job.get("permissions", {}).get("id-token") == "write") == uses_aws, f"{path.name}:{name}"


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=lambda p: p.relative_to(GITHUB).as_posix())
def test_no_expression_inside_a_shell_script(path: Path) -> None:
    """Regression: `${{ ... }}` in `run:` pastes text (a branch name, a PR title) into the script before the shell
    sees it; values reach scripts through `env:` only."""
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name') or step['run'][:40]}"


def test_every_checkout_drops_its_credentials() -> None:
    """Regression: the token left in `.git/config` for every later step (and any artifact of the workspace)."""
    checkouts = [step for path in WORKFLOWS for step in steps(load(path))
                 if step.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    assert all(step.get("with", {}).get("persist-credentials") is False for step in checkouts)


def pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    [step] = [step for step in job["steps"] if step.get("uses") == PULUMI_ACTION]
    return step["with"]


def test_pull_requests_preview_with_the_preview_role_and_comment() -> None:
    """Regression: a pull request deploying (or using the deploy role), or a preview nobody sees in the review."""
    document = load(GITHUB / "workflows" / "preview.yml")
    assert set(document["on"]) == {"pull_request"}
    job = document["jobs"]["preview"]
    step = pulumi_step(job)
    assert step["command"] == "preview"
    assert step["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}"
    assert step["comment-on-pr"] == "true"
    assert job["permissions"]["pull-requests"] == "write"
    assert "matrix.stack" in job["concurrency"]["group"]


def test_the_shared_pulumi_step_enforces_the_policy_pack() -> None:
    """Regression: a preview or deploy that skips the policy pack, so a broken invariant passes review."""
    action = load(GITHUB / "actions" / "pulumi" / "action.yml")
    [pulumi] = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["policyPacks"] == "policy"
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file()
    assert pulumi["env"]["PULUMI_ACCESS_TOKEN"] == "${{ inputs.pulumi-access-token }}"
    assert pulumi["with"]["cloud-url"] == "${{ inputs.cloud-url }}"


def test_dev_deploys_from_main_and_prod_only_by_hand_through_its_environment() -> None:
    """Regression: prod deployed on every push, or without the environment whose reviewers approve it (and whose
    name the prod deploy role's trust policy requires); either stack deployed with the other's role (one role for
    both let code merged to main change prod); two deploys of one stack running at once."""
    document = load(GITHUB / "workflows" / "deploy.yml")
    assert document["on"]["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in document["on"]
    dev, prod = document["jobs"]["dev"], document["jobs"]["prod"]
    assert "refs/heads/main" in dev["if"] and "environment" not in dev
    assert "workflow_dispatch" in prod["if"] and "refs/heads/main" in prod["if"]
    assert prod["environment"] == "prod"
    for stack, job in (("dev", dev), ("prod", prod)):
        step = pulumi_step(job)
        assert (step["command"], step["stack"]) == ("up", stack)
        assert step["role-to-assume"] == f"${{{{ vars.AWS_{stack.upper()}_DEPLOY_ROLE_ARN }}}}"
        assert job["concurrency"] == {"group": f"pulumi-up-{stack}", "cancel-in-progress": False}
        assert (ROOT / f"Pulumi.{stack}.yaml").is_file()
    assert dev["needs"] == "tests"


def test_dev_is_smoke_tested_after_its_deploy_and_prod_needs_that() -> None:
    """Regression: a deploy nobody checks end to end, or prod deployed from a commit whose dev smoke test failed
    (or never ran): the prod job must need the job that deployed and smoke-tested dev in the same run, and the
    smoke test must come after `pulumi up` in that job (no other dev deploy can come between them)."""
    document = load(GITHUB / "workflows" / "deploy.yml")
    dev, prod = document["jobs"]["dev"], document["jobs"]["prod"]
    smoke_run = "env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN make smoke"
    names = [step.get("uses") or step.get("run") for step in dev["steps"]]
    assert names.index(PULUMI_ACTION) < names.index(smoke_run), "the smoke test runs after the deploy, without AWS keys"
    [smoke] = [step for step in dev["steps"] if step.get("run") == smoke_run]
    up = next(step for step in dev["steps"] if step.get("uses") == PULUMI_ACTION)
    assert smoke["env"]["SMOKE_URL"] == f"${{{{ steps.{up['id']}.outputs.site-url }}}}"
    assert smoke["env"]["SMOKE_EMAIL"] == "${{ secrets.SMOKE_EMAIL }}"
    assert smoke["env"]["SMOKE_PASSWORD"] == "${{ secrets.SMOKE_PASSWORD }}"
    assert prod["needs"] == "dev"
    action = load(GITHUB / "actions" / "pulumi" / "action.yml")
    [pulumi] = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert action["outputs"]["site-url"]["value"] == f"${{{{ steps.{pulumi['id']}.outputs.siteUrl }}}}"
    assert "\nsmoke:" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_the_tests_concurrency_group_is_keyed_by_workflow_and_event() -> None:
    """Regression: a manual prod run and a push to main (both on refs/heads/main) sharing one group, so one
    cancels the other's tests and with them its deploy."""
    group = load(GITHUB / "workflows" / "tests.yml")["concurrency"]["group"]
    for key in ("github.workflow", "github.event_name", "github.ref"):
        assert key in group, key


def test_the_pulumi_cli_is_pinned_to_the_sdks_version() -> None:
    """Regression: the action installing whatever Pulumi CLI is newest, so a deploy changes with the day it runs;
    or a CLI older than the SDK the program runs with. The version is the `pulumi` pin in requirements.txt (the
    CLI and the Python SDK are released together, with one version number)."""
    action = load(GITHUB / "actions" / "pulumi" / "action.yml")
    [pulumi] = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    [pin] = re.findall(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.MULTILINE)
    assert str(pulumi["with"]["pulumi-version"]) == pin


def test_the_policy_pack_gets_the_stacks_role_bounds() -> None:
    """Regression: the pack run without its config, so a stack with `permissionsBoundary` is previewed without the
    rule that requires it on every role."""
    action = load(GITHUB / "actions" / "pulumi" / "action.yml")
    names = [step.get("uses", "") or step.get("run", "") for step in action["runs"]["steps"]]
    [config] = [step for step in action["runs"]["steps"] if "policy.stack_config" in step.get("run", "")]
    written = config["run"].split(">")[-1].strip().strip('"').replace("$RUNNER_TEMP", "${{ runner.temp }}")
    [pulumi] = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["policyPackConfigs"] == written
    assert names.index(config["run"]) < names.index(pulumi["uses"])
