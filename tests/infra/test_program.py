"""The whole program under mocks: it constructs with the dev stack's config and with overrides, and exports what a
user needs."""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from components.functions import HANDLERS_DIR
from stackspec.settings import StackSettings, config_key
from tests.infra.conftest import ROOT, TUNED, WORKER_TAG, Deployment, dev_stack_config

DEV_SETTINGS = StackSettings.from_config(lambda key: dev_stack_config().get(f"filepipe:{key}"))
COMPONENTS = {
    "filepipe:storage:Storage",
    "filepipe:api:Api",
    "filepipe:compute:Compute",
    "filepipe:site:Site",
    "filepipe:monitoring:Monitoring",
}


def test_program_builds_every_component_with_the_dev_stack(dev: Deployment) -> None:
    """Regression: a component that is never constructed (or fails silently) leaves part of the system undeployed."""
    assert {r.type for r in dev.resources} >= COMPONENTS
    children = [r for r in dev.resources if r.type.startswith("aws:")]
    assert len(children) > 50, f"only {len(children)} AWS resources registered"


def test_dev_config_is_the_project_namespace_and_parses(dev: Deployment) -> None:
    """Regression: config read from the wrong namespace (or not at all) silently deploys the defaults."""
    expected = StackSettings.from_config(lambda key: dev_stack_config().get(f"filepipe:{key}"))
    assert dev.namespace["settings"] == expected
    assert expected != StackSettings(), "Pulumi.dev.yaml should differ from the defaults somewhere"


def test_stack_outputs_give_a_user_what_they_need(dev: Deployment) -> None:
    """Regression: a missing export leaves the user without the site URL or the names to inspect the stack."""
    bucket = dev.one("aws:s3/bucket:Bucket", "storage-data").outputs["bucket"]
    table = dev.one("aws:dynamodb/table:Table", "storage-jobs").outputs["name"]
    distribution = dev.one("aws:cloudfront/distribution:Distribution").outputs["domainName"]
    api = dev.one("aws:apigatewayv2/api:Api").outputs["apiEndpoint"]
    assert dev.exports["siteUrl"] == f"https://{distribution}"
    assert dev.exports["apiUrl"] == f"https://{distribution}/api"
    assert dev.exports["directApiUrl"] == api
    assert dev.exports["bucketName"] == bucket
    assert dev.exports["tableName"] == table
    assert dev.exports["launchTemplateId"] == "compute-worker-id"
    assert dev.exports["workerTag"] == f"FilepipeStack={WORKER_TAG}"
    assert dev.exports["launchFailuresQueueUrl"].startswith("https://sqs.")
    for export, function in (("launcherFunction", "compute-launcher"), ("sweeperFunction", "compute-sweeper")):
        assert dev.exports[export] == dev.one("aws:lambda/function:Function", function).outputs["name"], export


def test_no_deprecated_arguments_or_resources(dev: Deployment) -> None:
    """Regression: deprecated pulumi-aws names (`BucketV2`, GSI `hash_key`, ...) break on the next major version."""
    deprecated = [m for m in dev.engine_messages if "deprecat" in m.lower()]
    assert not deprecated, deprecated
    assert not any(r.type.endswith("V2") for r in dev.resources)


def test_every_resource_is_inside_a_component(dev: Deployment) -> None:
    """Regression: resources created outside components with ad-hoc names; every child name has a component prefix."""
    prefixes = ("storage-", "api-", "compute-", "site-", "monitoring-", "auth-")
    stray = [r.name for r in dev.resources if r.type.startswith("aws:") and not r.name.startswith(prefixes)]
    assert not stray, stray


def test_no_hard_coded_names_regions_or_accounts_in_program_code() -> None:
    """Regression: a bucket/table name, region or account id in code makes two stacks (or two accounts) collide."""
    sources = [ROOT / "__main__.py", *(path for package in ("components", "stackspec")
                                       for path in sorted((ROOT / package).glob("*.py")))]
    region = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-(?:north|south|east|west|central|northeast|southeast)-\d\b")
    account = re.compile(r"\b\d{12}\b")
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not region.search(text), f"{path.name} names a region"
        assert not account.search(text), f"{path.name} holds an account id"
        for call in ("bucket=\"", "name=\"filepipe"):
            assert call not in text, f"{path.name} hard-codes a physical name ({call}...)"


def test_every_config_key_can_be_overridden(tuned: Deployment) -> None:
    """Regression: an override in `pulumi config set` that never reaches the program; and a key added to
    StackSettings without a `TUNED` value, whose effect on the resources no test would then see."""
    settings = tuned.namespace["settings"]
    assert settings == StackSettings.from_config(TUNED.get)
    assert settings.instance_type == "c7g.large" and settings.max_file_mb == 25
    unchanged = [config_key(f.name) for f in fields(StackSettings)
                 if getattr(settings, f.name) in (getattr(StackSettings(), f.name), getattr(DEV_SETTINGS, f.name))]
    assert not unchanged, f"TUNED must set these keys to a value unlike the defaults and the dev stack: {unchanged}"


def test_defaults_deploy_without_any_stack_config(defaults: Deployment) -> None:
    """Regression: a stack with no config (a fresh `pulumi stack init`) must still construct, with the defaults."""
    assert defaults.namespace["settings"] == StackSettings()
    template = defaults.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["instanceType"] == StackSettings().instance_type
    assert template.inputs["tagSpecifications"][0]["tags"] == {"FilepipeStack": WORKER_TAG}


def test_invalid_config_fails_the_program_with_a_clear_message(build) -> None:
    """Regression: a typo in `pulumi config set` deploys something else instead of stopping."""
    with pytest.raises(ValueError, match="maxFileMb"):
        build(maxFileMb="0")
    with pytest.raises(ValueError, match="logRetentionDays"):
        build(logRetentionDays="10")
    with pytest.raises(ValueError, match="sweepIntervalMinutes"):
        build(sweepIntervalMinutes="0")
    with pytest.raises(ValueError, match="apiReservedConcurrency"):
        build(apiReservedConcurrency="0")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_lambda_package_needs_nothing_but_itself_and_the_runtime() -> None:
    """Regression: a handler importing `components`, `pulumi` or a PyPI package fails at cold start on Lambda,
    where only the `handlers/` folder and the runtime's boto3 exist."""
    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore", "handlers", "__future__"}
    for path in sorted(HANDLERS_DIR.glob("*.py")):
        assert _imports(path) <= allowed, f"{path.name} imports {sorted(_imports(path) - allowed)}"
