"""Storage: the data bucket (inputs, outputs, worker script) and the jobs table with its stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.buckets import private_bucket
from handlers.jobmodel import (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    UNCLAIMED_UPLOAD_DAYS,
    UNCLAIMED_UPLOAD_TAG,
    table_definition,
)
from stackspec.cors import cors_rules
from stackspec.settings import JOB_EXPIRY_ATTR
from worker.userdata import WORKER_PATH, WORKER_SCRIPT_KEY

ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS = 1
EXPIRING_PREFIXES = (INPUT_PREFIX, OUTPUT_PREFIX)
NONCURRENT_DAYS_WITHOUT_RETENTION = 30
"""How long a protected stack keeps a deleted or overwritten object's old versions when `retentionDays` is 0 (files
kept for ever): long enough to undo a mistaken delete, short enough that deleted files stop being billed."""
"""What `retention_days` expires: uploaded inputs, and outputs with the workers' logs (`outputs/<id>/worker.log`).
The worker script is outside both and stays."""


@dataclass
class StorageArgs:
    protect_data: bool = False
    """Keep the data bucket and the jobs table: `protect` and `retain_on_delete` on both, deletion protection on the
    table, and no `force_destroy` (otherwise `pulumi destroy` removes the bucket with its objects: a dev stack)."""
    retention_days: int = 0
    """Expire inputs, outputs and logs after this many days, and turn on the table's TTL; 0 keeps them."""


class Storage(pulumi.ComponentResource):
    """Private, encrypted, TLS-only data bucket and the jobs table (stream NEW_IMAGE, PITR, SSE).

    The bucket's CORS is added by `allow_origins` once the site's origin is known: the site (CloudFront) needs the
    API, the API needs this bucket, so the origin cannot be an argument of the constructor.
    """

    bucket: aws.s3.Bucket
    table: aws.dynamodb.Table

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:storage:Storage", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        # The data and its record outlive the stack when protected; everything else can be rebuilt from code.
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect_data, retain_on_delete=args.protect_data)

        data = private_bucket(f"{name}-data", self, force_destroy=not args.protect_data, bucket_opts=kept)
        self.bucket = data.bucket
        aws.s3.BucketPolicy(
            f"{name}-data-policy",
            bucket=self.bucket.id,
            policy=iam.data_bucket_policy(self.bucket.arn),
            # S3 rejects a bucket policy while the public access block is still being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[data.public_access_block]),
        )
        versioning = self._versioning(args.protect_data)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-data-lifecycle",
            bucket=self.bucket.id,
            rules=lifecycle_rules(args.retention_days, versioned=args.protect_data),
            # The noncurrent-version rules need versioning in place (S3 applies a lifecycle in the background).
            opts=pulumi.ResourceOptions(parent=self, depends_on=versioning),
        )
        self.worker_script = aws.s3.BucketObjectv2(
            f"{name}-worker-script",
            bucket=self.bucket.id,
            key=WORKER_SCRIPT_KEY,
            source=pulumi.FileAsset(str(WORKER_PATH)),
            content_type="text/x-python",
            opts=child,
        )
        self.table = aws.dynamodb.Table(
            f"{name}-jobs",
            **table_args(table_definition(f"{name}-jobs")),
            **table_protection_args(protect=args.protect_data, retention_days=args.retention_days),
            opts=kept,
        )
        self.upload_origins: list[pulumi.Output[str]] = [
            pulumi.Output.concat("https://", self.bucket.bucket_regional_domain_name),
            pulumi.Output.concat("https://", self.bucket.bucket, ".s3.amazonaws.com"),
        ]
        """Where the browser sends the presigned POST: boto3 presigns on the bucket's regional host, except in the
        one region where it still uses the global `<bucket>.s3.amazonaws.com`. The site's CSP allows these two."""

        self.register_outputs({
            "bucket": self.bucket.bucket,
            "table": self.table.name,
            "stream_arn": self.table.stream_arn,
        })

    def _versioning(self, protect: bool) -> list[aws.s3.BucketVersioning]:
        """A protected stack versions its data bucket: a delete (a job's, or a mistaken one) leaves the files'
        versions, which expire after `noncurrent_days` (the lifecycle), so they can be restored until then."""
        if not protect:
            return []
        return [aws.s3.BucketVersioning(
            f"{self._name}-data-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=pulumi.ResourceOptions(parent=self),
        )]

    def allow_origins(self, origins: Sequence[pulumi.Input[str]]) -> aws.s3.BucketCorsConfiguration:
        """CORS for the presigned POST from the site (and any extra origins): POST only, from these origins only."""
        return aws.s3.BucketCorsConfiguration(
            f"{self._name}-data-cors",
            bucket=self.bucket.id,
            cors_rules=[_cors_rule_args(rule) for rule in cors_rules(list(origins))],  # type: ignore[arg-type]
            opts=pulumi.ResourceOptions(parent=self),
        )


def noncurrent_days(retention_days: int) -> int:
    """Days a versioned bucket keeps an object's noncurrent versions: `retentionDays`, or
    `NONCURRENT_DAYS_WITHOUT_RETENTION` when that is 0."""
    return retention_days if retention_days > 0 else NONCURRENT_DAYS_WITHOUT_RETENTION


def lifecycle_rules(
    retention_days: int, *, versioned: bool = False
) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Abort abandoned multipart uploads after a day; remove uploads no job claimed (still tagged
    `UNCLAIMED_UPLOAD_TAG`) after `UNCLAIMED_UPLOAD_DAYS`, whatever the retention; with a retention, expire each prefix
    of `EXPIRING_PREFIXES`; in a versioned bucket, expire noncurrent versions after `noncurrent_days`.

    An expiry rule of the current versions also removes the delete markers left alone once their versions are gone
    (S3's "Expiring objects"); without one (retention 0), the noncurrent rule removes them
    (`expired_object_delete_marker`, which S3 allows only in a rule with no expiry days)."""
    tag_key, tag_value = UNCLAIMED_UPLOAD_TAG
    rules = [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS
            ),
        ),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-unclaimed-uploads",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(
                and_=aws.s3.BucketLifecycleConfigurationRuleFilterAndArgs(prefix=INPUT_PREFIX,
                                                                         tags={tag_key: tag_value})),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=UNCLAIMED_UPLOAD_DAYS),
        ),
    ]
    if retention_days > 0:
        rules += [
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id=f"expire-{prefix.strip('/')}",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=retention_days),
            )
            for prefix in EXPIRING_PREFIXES
        ]
    if versioned:
        rules.append(aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-noncurrent-versions",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=noncurrent_days(retention_days)
            ),
            expiration=None if retention_days > 0 else aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                expired_object_delete_marker=True
            ),
        ))
    return rules


def table_protection_args(*, protect: bool, retention_days: int) -> dict[str, Any]:
    """Deletion protection when the data is protected; TTL on `JOB_EXPIRY_ATTR` when records expire."""
    extra: dict[str, Any] = {"deletion_protection_enabled": protect}
    if retention_days > 0:
        extra["ttl"] = aws.dynamodb.TableTtlArgs(attribute_name=JOB_EXPIRY_ATTR, enabled=True)
    return extra


def table_args(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi arguments for the table described by `jobmodel.table_definition` (CreateTable shape).

    The table name is left to Pulumi's auto-naming; point-in-time recovery and SSE with the AWS-managed KMS key are
    added here (they are not CreateTable arguments, and local mode has no use for them).
    """
    hash_key = next(k["AttributeName"] for k in definition["KeySchema"] if k["KeyType"] == "HASH")
    stream = definition["StreamSpecification"]
    return {
        "billing_mode": definition["BillingMode"],
        "hash_key": hash_key,
        "attributes": [
            aws.dynamodb.TableAttributeArgs(name=a["AttributeName"], type=a["AttributeType"])
            for a in definition["AttributeDefinitions"]
        ],
        "global_secondary_indexes": [
            aws.dynamodb.TableGlobalSecondaryIndexArgs(
                name=index["IndexName"],
                key_schemas=[
                    aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                        attribute_name=k["AttributeName"], key_type=k["KeyType"]
                    )
                    for k in index["KeySchema"]
                ],
                projection_type=index["Projection"]["ProjectionType"],
            )
            for index in definition.get("GlobalSecondaryIndexes", [])
        ],
        "stream_enabled": stream["StreamEnabled"],
        "stream_view_type": stream["StreamViewType"],
        "point_in_time_recovery": aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
        "server_side_encryption": aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
    }


def _cors_rule_args(rule: Mapping[str, Any]) -> aws.s3.BucketCorsConfigurationCorsRuleArgs:
    return aws.s3.BucketCorsConfigurationCorsRuleArgs(
        allowed_origins=rule["AllowedOrigins"],
        allowed_methods=rule["AllowedMethods"],
        allowed_headers=rule.get("AllowedHeaders"),
        expose_headers=rule.get("ExposeHeaders"),
        max_age_seconds=rule.get("MaxAgeSeconds"),
    )
