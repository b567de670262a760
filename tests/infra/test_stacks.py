"""The two stack files: the program under `Pulumi.dev.yaml` and `Pulumi.prod.yaml`, and what differs between them
(protection of the data, retention of files and job records)."""

from __future__ import annotations

import json

import pytest

from components.settings import JOB_EXPIRY_ATTR, StackSettings
from tests.infra.conftest import Deployment, stack_config

BUCKET = "aws:s3/bucket:Bucket"
TABLE = "aws:dynamodb/table:Table"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
KEPT = {(BUCKET, "storage-data"), (TABLE, "storage-jobs")}
"""The resources holding users' data: the only ones `protectData` keeps."""


def settings_of(stack: str) -> StackSettings:
    return StackSettings.from_config(lambda key: stack_config(stack).get(f"filepipe:{key}"))


def expiry_rules(deployment: Deployment) -> dict[str, int]:
    """Lifecycle expiry of the data bucket: prefix -> days."""
    rules = deployment.one(LIFECYCLE).inputs["rules"]
    return {rule["filter"]["prefix"]: rule["expiration"]["days"] for rule in rules
            if "expiration" in rule and "prefix" in rule["filter"]}


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
    assert protected == KEPT
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
    what `prod` gets."""
    assert sorted((r.type, r.name) for r in dev.resources) == sorted((r.type, r.name) for r in prod.resources)
