"""filepipe's Pulumi program: read the stack's config once, wire the components, export what a user needs."""

from __future__ import annotations

import pulumi

from components.api import Api, ApiArgs
from components.auth import Auth, AuthArgs
from components.compute import Compute, ComputeArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.site import Site, SiteArgs
from components.storage import Storage, StorageArgs
from stackspec.settings import STACK_TAG, StackSettings

settings = StackSettings.from_config(pulumi.Config().get)

storage = Storage(
    "storage", StorageArgs(protect_data=settings.protect_data, retention_days=settings.retention_days)
)
auth = Auth("auth", AuthArgs(settings=settings))
compute = Compute("compute", ComputeArgs(storage=storage, stack=pulumi.get_stack(), settings=settings))
api = Api("api", ApiArgs(storage=storage, issuer=auth.issuer, audience=auth.client.id, settings=settings))
site = Site("site", SiteArgs(api_endpoint=api.endpoint, settings=settings, upload_origins=storage.upload_origins,
                             user_pool_id=auth.user_pool.id, client_id=auth.client.id, region=auth.region))
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        stack_tag=compute.stack_tag,
        log_groups={
            "access": api.access_logs.name,
            "launcher": compute.launcher_logs.name,
            "sweeper": compute.sweeper_logs.name,
        },
        launcher_function=compute.launcher.name,
        sweeper_function=compute.sweeper.name,
        release_function=compute.release.name,
        failure_queue=compute.failure_queue.name,
        api_id=api.api.id,
        settings=settings,
    ),
)
# The presigned POST is the form's only cross-origin request; its origin is the distribution, known only now.
storage.allow_origins([site.url, *settings.extra_origins])

pulumi.export("siteUrl", site.url)
pulumi.export("apiUrl", pulumi.Output.concat(site.url, "/api"))
pulumi.export("directApiUrl", api.endpoint)
pulumi.export("bucketName", storage.bucket.bucket)
pulumi.export("tableName", storage.table.name)
pulumi.export("launchTemplateId", compute.launch_template.id)
pulumi.export("workerTag", pulumi.Output.concat(STACK_TAG, "=", compute.stack_tag))
pulumi.export("launcherFunction", compute.launcher.name)
pulumi.export("sweeperFunction", compute.sweeper.name)
pulumi.export("launchFailuresQueueUrl", compute.failure_queue.url)
pulumi.export("userPoolId", auth.user_pool.id)
pulumi.export("userPoolClientId", auth.client.id)
pulumi.export("alarmTopicArn", monitoring.topic.arn)
pulumi.export("dashboardName", monitoring.dashboard.dashboard_name)
pulumi.export("logGroups", {
    **{module: group.name for module, group in api.log_groups.items()},
    "launcher": compute.launcher_logs.name,
    "release": compute.release_logs.name,
    "sweeper": compute.sweeper_logs.name,
    "apiAccess": api.access_logs.name,
})
