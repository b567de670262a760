"""A private, encrypted S3 bucket: the part the data bucket and the site bucket have in common."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class PrivateBucket:
    bucket: aws.s3.Bucket
    public_access_block: aws.s3.BucketPublicAccessBlock


def private_bucket(
    name: str, parent: pulumi.Resource, *, force_destroy: bool, bucket_opts: pulumi.ResourceOptions | None = None
) -> PrivateBucket:
    """Bucket `name` with all four public access blocks, owner-enforced ownership (no ACLs) and SSE-S3 by default.

    `force_destroy` lets `pulumi destroy` delete a bucket that still holds objects; the caller decides, and may
    give the bucket itself options such as `protect` (`bucket_opts`, whose parent should be `parent`).
    """
    opts = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(name, force_destroy=force_destroy, opts=bucket_opts or opts)
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=opts,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                ),
                bucket_key_enabled=True,
            )
        ],
        opts=opts,
    )
    return PrivateBucket(bucket=bucket, public_access_block=block)
