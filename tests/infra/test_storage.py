"""Storage: privacy and encryption of both buckets, lifecycle, CORS, the jobs table and its stream, the worker
script object."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.jobmodel import OWNER_INDEX, table_definition
from stackspec.cors import cors_rules
from tests.infra.conftest import DISTRIBUTION_DOMAIN, Deployment
from worker.userdata import WORKER_PATH, WORKER_SCRIPT_KEY

BUCKETS = ("storage-data", "site-files")


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_blocks_every_kind_of_public_access(dev: Deployment, bucket: str) -> None:
    """Regression: one missing flag (e.g. RestrictPublicBuckets) is enough for a policy or ACL to expose files."""
    block = dev.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{bucket}-public-access")
    assert block.inputs["bucket"] == f"{bucket}-id"
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block.inputs[flag] is True, f"{bucket}: {flag}"


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_disables_acls_and_encrypts_by_default(dev: Deployment, bucket: str) -> None:
    """Regression: ACLs re-enabled (objects owned by uploaders) or objects stored without default encryption."""
    ownership = dev.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls", f"{bucket}-ownership")
    assert ownership.inputs == {"bucket": f"{bucket}-id", "rule": {"objectOwnership": "BucketOwnerEnforced"}}
    sse = dev.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", f"{bucket}-encryption"
    )
    assert sse.inputs["bucket"] == f"{bucket}-id"
    [rule] = sse.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_policy_targets_its_own_bucket(dev: Deployment, bucket: str) -> None:
    """Regression: a policy attached to the wrong bucket leaves the right one without its TLS-only deny."""
    policy = dev.one("aws:s3/bucketPolicy:BucketPolicy", f"{bucket}-policy")
    assert policy.inputs["bucket"] == f"{bucket}-id"


def test_incomplete_multipart_uploads_are_aborted(dev: Deployment) -> None:
    """Regression: abandoned multipart uploads (a worker killed mid-output) are billed forever, invisibly."""
    lifecycle = dev.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert lifecycle.inputs["bucket"] == "storage-data-id"
    [rule] = [r for r in lifecycle.inputs["rules"] if r["id"] == "abort-incomplete-multipart-uploads"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"prefix": ""}, "the rule must cover the whole bucket"
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}


@pytest.mark.parametrize("stack", ["dev", "defaults"])
def test_uploads_no_job_claims_are_removed_after_a_day_whatever_the_retention(
        stack: str, request: pytest.FixtureRequest) -> None:
    """Regression: a file uploaded but never made a job stayed until the bucket's expiry, and forever with
    `retentionDays` 0. Uploads carry the unclaimed tag from their POST until the launcher queues their job."""
    lifecycle = request.getfixturevalue(stack).one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    [rule] = [r for r in lifecycle.inputs["rules"] if r["id"] == "expire-unclaimed-uploads"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"and": {"prefix": "inputs/", "tags": {"filepipe-upload": "unclaimed"}}}
    assert rule["expiration"] == {"days": 1}


def test_cors_allows_post_from_the_site_origin_only(dev: Deployment) -> None:
    """Regression: without CORS for the CloudFront origin the browser's presigned POST fails; a `*` origin or extra
    methods let any site use the bucket from a visitor's browser."""
    cors = dev.one("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")
    assert cors.inputs["bucket"] == "storage-data-id"
    [rule] = cors.inputs["corsRules"]
    assert rule["allowedOrigins"] == [f"https://{DISTRIBUTION_DOMAIN}"]
    assert rule["allowedMethods"] == ["POST"]
    expected = cors_rules([f"https://{DISTRIBUTION_DOMAIN}"])[0]
    assert rule["exposeHeaders"] == expected["ExposeHeaders"]
    assert rule["maxAgeSeconds"] == expected["MaxAgeSeconds"]


def test_extra_origins_from_config_join_the_site_origin(tuned: Deployment) -> None:
    """Regression: `extraOrigins` (e.g. a custom domain) ignored, so uploads from it fail CORS."""
    deployment = tuned
    [rule] = deployment.one("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration").inputs["corsRules"]
    assert rule["allowedOrigins"] == [
        f"https://{DISTRIBUTION_DOMAIN}", "https://files.example.org", "https://staging.example.org",
    ]


def test_jobs_table_shape_matches_the_shared_definition(dev: Deployment) -> None:
    """Regression: a key, index or billing mode that differs from local mode's table (the handlers query
    `by-owner` newest first and key items by `id`)."""
    table = dev.one("aws:dynamodb/table:Table", "storage-jobs").inputs
    shared = table_definition("unused")
    assert table["hashKey"] == "id"
    assert "rangeKey" not in table
    assert table["billingMode"] == "PAY_PER_REQUEST" == shared["BillingMode"]
    assert {(a["name"], a["type"]) for a in table["attributes"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in shared["AttributeDefinitions"]
    }
    indexes = {index["name"]: index for index in table["globalSecondaryIndexes"]}
    assert set(indexes) == {index["IndexName"] for index in shared["GlobalSecondaryIndexes"]}
    for index in shared["GlobalSecondaryIndexes"]:
        deployed = indexes[index["IndexName"]]
        assert deployed["keySchemas"] == [
            {"attributeName": k["AttributeName"], "keyType": k["KeyType"]} for k in index["KeySchema"]
        ]
        assert deployed["projectionType"] == index["Projection"]["ProjectionType"]
    assert indexes[OWNER_INDEX]["keySchemas"] == [
        {"attributeName": "owner", "keyType": "HASH"},
        {"attributeName": "created_at", "keyType": "RANGE"},
    ]


def test_jobs_table_streams_new_images_and_is_recoverable_and_encrypted(dev: Deployment) -> None:
    """Regression: no stream (or KEYS_ONLY) means no launches; no PITR means a bad write loses every job."""
    table = dev.one("aws:dynamodb/table:Table", "storage-jobs").inputs
    assert table["streamEnabled"] is True
    assert table["streamViewType"] == "NEW_IMAGE"
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["serverSideEncryption"] == {"enabled": True}
    assert "name" not in table, "the table name must come from auto-naming"


def test_worker_script_is_uploaded_from_the_worker_package(dev: Deployment) -> None:
    """Regression: the user-data fetches `WORKER_SCRIPT_KEY`; a different key or file means every VM fails."""
    script = dev.one("aws:s3/bucketObjectv2:BucketObjectv2", "storage-worker-script").inputs
    assert script["bucket"] == "storage-data-id"
    assert script["key"] == WORKER_SCRIPT_KEY
    assert Path(script["source"].path) == WORKER_PATH
    assert WORKER_PATH.is_file(), "worker/worker.py is missing: `pulumi up` would fail to upload it"


def test_buckets_are_auto_named_and_destroyable(dev: Deployment) -> None:
    """Regression: a fixed bucket name collides across stacks and accounts; without force_destroy the documented
    `pulumi destroy` stops at the first non-empty bucket."""
    for bucket in dev.of_type("aws:s3/bucket:Bucket"):
        assert "bucket" not in bucket.inputs and "bucketPrefix" not in bucket.inputs, bucket.name
        assert bucket.inputs["forceDestroy"] is True, bucket.name
