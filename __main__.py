"""filepipe's Pulumi program: read the stack's config once, wire the components, export what a user needs."""

from __future__ import annotations

import pulumi

from components.api import Api, ApiArgs
from components.compute import Compute, ComputeArgs
from components.settings import StackSettings
from components.site import Site, SiteArgs
from components.storage import Storage, StorageArgs

settings = StackSettings.from_config(pulumi.Config().get)

storage = Storage("storage", StorageArgs())
compute = Compute(
    "compute",
    ComputeArgs(
        bucket_name=storage.bucket.bucket,
        bucket_arn=storage.bucket.arn,
        table_name=storage.table.name,
        table_arn=storage.table.arn,
        stream_arn=storage.table.stream_arn,
        stack=pulumi.get_stack(),
        settings=settings,
    ),
)
api = Api(
    "api",
    ApiArgs(
        bucket_name=storage.bucket.bucket,
        bucket_arn=storage.bucket.arn,
        table_name=storage.table.name,
        table_arn=storage.table.arn,
        settings=settings,
    ),
)
site = Site("site", SiteArgs(api_endpoint=api.endpoint, settings=settings, upload_origins=storage.upload_origins))
# The presigned POST is the form's only cross-origin request; its origin is the distribution, known only now.
storage.allow_origins([site.url, *settings.extra_origins])

pulumi.export("siteUrl", site.url)
pulumi.export("apiUrl", pulumi.Output.concat(site.url, "/api"))
pulumi.export("directApiUrl", api.endpoint)
pulumi.export("bucketName", storage.bucket.bucket)
pulumi.export("tableName", storage.table.name)
pulumi.export("launchTemplateId", compute.launch_template.id)
pulumi.export("launcherFunction", compute.launcher.name)
pulumi.export("sweeperFunction", compute.sweeper.name)
pulumi.export("launchFailuresQueueUrl", compute.failure_queue.url)
