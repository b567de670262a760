"""The two stack files: the program under `Pulumi.dev.yaml` and `Pulumi.prod.yaml`, and what differs between them
(protection of the data, retention of files and job records)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from components.storage import NONCURRENT_DAYS_WITHOUT_RETENTION
from stackspec.settings import JOB_EXPIRY_ATTR, StackSettings
from tests.infra.conftest import Deployment, prod_stack_config, stack_config

BUCKET = "aws:s3/bucket:Bucket"
TABLE = "aws:dynamodb/table:Table"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
VERSIONING, VERSIONED = "aws:s3/bucketVersioning:BucketVersioning", "storage-data-versioning"
KEPT = {(BUCKET, "storage-data"), (TABLE, "storage-jobs")}
"""The resources holding users' data: the only ones `protectData` keeps."""


def settings_of(stack: str) -> StackSettings:
    config = prod_stack_config() if stack == "prod" else stack_config(stack)
    return StackSettings.from_config(lambda key: config.get(f"filepipe:{key}"))


def expiry_rules(deployment: Deployment) -> dict[str, int]:
    """Lifecycle expiry of the data bucket: prefix -> days."""
    rules = deployment.one(LIFECYCLE).inputs["rules"]
    return {rule["filter"]["prefix"]: rule["expiration"]["days"] for rule in rules
            if "days" in rule.get("expiration", {}) and "prefix" in rule["filter"]}


def site_config_of(deployment: Deployment) -> dict[str, object]:
    return json.loads(deployment.one("aws:s3/bucketObjectv2:BucketObjectv2", "site-config").inputs["content"])


def test_each_stack_file_states_its_sign_up_policy() -> None:
    """Who may create an account is a choice per stack, written down rather than left to the default: dev lets
    anyone sign up (to try it), prod is invite-only (`make invite`)."""
    for stack in ("dev", "prod"):
        assert "filepipe:allowSelfSignUp" in stack_config(stack), f"Pulumi.{stack}.yaml leaves sign-up to the default"
    assert settings_of("dev").allow_self_sign_up is True
    assert settings_of("prod").allow_self_sign_up is False


def test_the_stack_files_say_dev_is_disposable_and_prod_keeps_its_data() -> None:
    """Regression: `protectData` left off in prod's file (a `pulumi destroy` would delete every user's files), or
    turned on in dev's (a disposable stack that can no longer be destroyed)."""
    dev, prod = settings_of("dev"), settings_of("prod")
    assert dev.protect_data is False
    assert prod.protect_data is True
    assert dev.retention_days > 0, "dev should not keep test uploads forever"
    assert prod.retention_days > dev.retention_days
    assert prod.log_retention_days > dev.log_retention_days


def test_prod_protects_and_retains_the_data_bucket_and_the_jobs_table(prod: Deployment) -> None:
    """Regression: a refactor that renames or replaces the bucket or table deletes the data with them; `protect`
    makes Pulumi refuse, `retain_on_delete` leaves them in AWS after `pulumi destroy`."""
    for token, name in KEPT:
        assert prod.one(token, name).options == {"protect": True, "retain_on_delete": True}, name
    bucket = prod.one(BUCKET, "storage-data").inputs
    assert bucket["forceDestroy"] is False, "force_destroy would let a delete empty the bucket"
    assert prod.one(TABLE, "storage-jobs").inputs["deletionProtectionEnabled"] is True


def test_prod_protects_nothing_but_the_data(prod: Deployment) -> None:
    """Regression: `protect` leaking to everything (through a parent's options) makes every change of a function
    or the network that needs a replacement fail in prod."""
    protected = {(r.type, r.name) for r in prod.resources if r.options.get("protect")}
    assert protected == KEPT | {("aws:cognito/userPool:UserPool", "auth-users")}, "the data, and whose it is"
    assert prod.one(BUCKET, "site-files").inputs["forceDestroy"] is True, "the site's files are rebuilt from code"


def test_dev_can_be_destroyed_whole(dev: Deployment) -> None:
    """Regression: a dev stack whose bucket or table is protected cannot be torn down by `pulumi destroy`."""
    assert not any(r.options.get("protect") or r.options.get("retain_on_delete") for r in dev.resources)
    assert dev.one(BUCKET, "storage-data").inputs["forceDestroy"] is True
    assert dev.one(TABLE, "storage-jobs").inputs["deletionProtectionEnabled"] is False


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_files_and_job_records_expire_after_the_stacks_retention(
    stack: str, dev: Deployment, prod: Deployment
) -> None:
    """Regression: `retentionDays` not reaching the lifecycle rules (files kept forever, or deleted on another
    schedule than the form announces) or the table's TTL."""
    deployment = {"dev": dev, "prod": prod}[stack]
    days = settings_of(stack).retention_days
    assert expiry_rules(deployment) == {"inputs/": days, "outputs/": days}
    assert deployment.one(TABLE, "storage-jobs").inputs["ttl"] == {"attributeName": JOB_EXPIRY_ATTR, "enabled": True}
    assert site_config_of(deployment)["retentionDays"] == days


def test_retention_zero_keeps_files_and_records(defaults: Deployment) -> None:
    """Regression: an expiry rule with 0 days (S3 rejects it) or a TTL enabled with nothing to expire when the
    stack keeps data forever; the multipart clean-up rule and the unclaimed uploads' expiry must stay."""
    assert expiry_rules(defaults) == {}
    assert "ttl" not in defaults.one(TABLE, "storage-jobs").inputs
    rules = defaults.one(LIFECYCLE).inputs["rules"]
    assert sorted(rule["id"] for rule in rules) == ["abort-incomplete-multipart-uploads", "expire-unclaimed-uploads"]
    assert site_config_of(defaults)["retentionDays"] == 0


def test_the_worker_script_never_expires(prod: Deployment) -> None:
    """Regression: an expiry rule on the whole bucket deletes `worker/worker.py`, and every later VM fails."""
    script_key = prod.one("aws:s3/bucketObjectv2:BucketObjectv2", "storage-worker-script").inputs["key"]
    assert not any(script_key.startswith(prefix) for prefix in expiry_rules(prod))


def test_both_stacks_build_the_same_resources(dev: Deployment, prod: Deployment) -> None:
    """Regression: a stack file that makes the program skip or add a resource, so that what `dev` tested is not
    what `prod` gets. Protection adds the data bucket's versioning, and prod's `alarmEmail` (which a protected stack
    must have) its mail subscription: nothing else."""
    prod_only = [("aws:sns/topicSubscription:TopicSubscription", "monitoring-alarm-email"), (VERSIONING, VERSIONED)]
    assert not set(prod_only) & {(r.type, r.name) for r in dev.resources}
    assert sorted([*((r.type, r.name) for r in dev.resources), *prod_only]) == sorted(
        (r.type, r.name) for r in prod.resources)


def noncurrent_rule(deployment: Deployment) -> dict[str, Any] | None:
    rules = deployment.one(LIFECYCLE).inputs["rules"]
    return next((rule for rule in rules if "noncurrentVersionExpiration" in rule), None)


def test_a_protected_stack_versions_its_data_and_expires_old_versions_after_the_retention(prod: Deployment) -> None:
    """Regression: in prod a mistaken delete (or overwrite) lost users' files for good. Versioned, a deleted file's
    versions stay restorable for `retentionDays`, then the lifecycle deletes them (so deleted files stop costing)."""
    versioning = prod.one(VERSIONING, VERSIONED).inputs
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    assert prod.by_id(versioning["bucket"]).name == "storage-data"
    rule = noncurrent_rule(prod)
    assert rule is not None and rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": settings_of("prod").retention_days}
    assert "expiration" not in rule, "the prefixes' expiry rules already remove lone delete markers"
    lifecycle = prod.one(LIFECYCLE)
    assert lifecycle.inputs["bucket"] == versioning["bucket"]


def test_a_protected_stack_that_keeps_files_for_ever_still_expires_old_versions(
    build: Callable[..., Deployment]
) -> None:
    """`retentionDays` 0 keeps current files for ever; deleted ones' versions go after
    `NONCURRENT_DAYS_WITHOUT_RETENTION` days, and their lone delete markers with them."""
    deployment = build(protectData="true", alarmEmail="ops@example.org", retentionDays="0")
    rule = noncurrent_rule(deployment)
    assert rule is not None
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": NONCURRENT_DAYS_WITHOUT_RETENTION}
    assert rule["expiration"] == {"expiredObjectDeleteMarker": True}
    assert expiry_rules(deployment) == {}


def test_a_disposable_stack_is_not_versioned(dev: Deployment) -> None:
    """dev's files go for good when deleted (and `pulumi destroy` empties the bucket without a version left)."""
    assert dev.of_type(VERSIONING) == [] and noncurrent_rule(dev) is None
