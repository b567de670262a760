"""Api: the HTTP API, one Lambda per handler module, and a route per entry of `handlers.routes.ROUTES`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.functions import python_function
from components.storage import Storage
from handlers.routes import HTTP_FUNCTIONS, ROUTERS, ROUTES, Route
from stackspec.settings import StackSettings, api_config

PAYLOAD_FORMAT = "2.0"
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "time": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "latencyMs": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
})


@dataclass
class ApiArgs:
    storage: Storage
    """The data bucket (uploads, outputs) and the jobs table the API functions use."""
    issuer: pulumi.Input[str]
    """The user pool's token issuer; with `audience` (the app client id), what the JWT authorizer checks."""
    audience: pulumi.Input[str]
    settings: StackSettings


class Api(pulumi.ComponentResource):
    """HTTP API (payload 2.0, throttled `$default` stage) in front of the upload, jobs and manage functions."""

    api: aws.apigatewayv2.Api
    endpoint: pulumi.Output[str]
    functions: dict[str, aws.lambda_.Function]
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    """Each function's log group, by handler module."""
    access_logs: aws.cloudwatch.LogGroup
    """The stage's access log: one JSON line per request (`ACCESS_LOG_FORMAT`)."""
    stage: aws.apigatewayv2.Stage

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:api:Api", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings

        self.api = aws.apigatewayv2.Api(f"{name}-http", protocol_type="HTTP", opts=child)
        environment = pulumi.Output.all(args.storage.bucket.bucket, args.storage.table.name).apply(
            lambda names: api_config(names[0], names[1], settings).to_env())
        policies = {
            "upload": lambda logs: iam.upload_function_policy(args.storage.bucket.arn, args.storage.table.arn, logs),
            "jobs": lambda logs: iam.jobs_function_policy(args.storage.bucket.arn, args.storage.table.arn, logs),
            "manage": lambda logs: iam.manage_function_policy(args.storage.bucket.arn, args.storage.table.arn, logs),
        }
        self.functions = {}
        self.log_groups = {}
        integrations: dict[str, aws.apigatewayv2.Integration] = {}
        for module in HTTP_FUNCTIONS:
            function = python_function(
                f"{name}-{module}",
                self,
                module=module,
                environment=environment,
                policy=policies[module],
                log_retention_days=settings.log_retention_days,
                reserved_concurrency=settings.api_reserved_concurrency,
                timeout_seconds=ROUTERS[module].timeout_seconds,
                settings=settings,
            )
            self.functions[module], self.log_groups[module] = function.function, function.log_group
            integrations[module] = aws.apigatewayv2.Integration(
                f"{name}-{module}-integration",
                api_id=self.api.id,
                integration_type="AWS_PROXY",
                integration_uri=self.functions[module].invoke_arn,
                payload_format_version=PAYLOAD_FORMAT,
                opts=child,
            )
        self.authorizer = aws.apigatewayv2.Authorizer(
            f"{name}-jwt",
            api_id=self.api.id,
            authorizer_type="JWT",
            identity_sources=["$request.header.Authorization"],
            jwt_configuration=aws.apigatewayv2.AuthorizerJwtConfigurationArgs(
                issuer=args.issuer, audiences=[args.audience]
            ),
            opts=child,
        )
        for route in ROUTES:
            slug = route_slug(route)
            aws.apigatewayv2.Route(
                f"{name}-route-{slug}",
                api_id=self.api.id,
                route_key=route.key,
                target=pulumi.Output.concat("integrations/", integrations[route.function].id),
                authorization_type="NONE" if route.public else "JWT",
                authorizer_id=None if route.public else self.authorizer.id,
                opts=child,
            )
            aws.lambda_.Permission(
                f"{name}-invoke-{slug}",
                action="lambda:InvokeFunction",
                function=self.functions[route.function].name,
                principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(self.api.execution_arn, "/*/", route.method, source_path(route)),
                opts=child,
            )
        self.access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs", retention_in_days=settings.log_retention_days, opts=child
        )
        self.stage = aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=settings.api_throttle_rate,
                throttling_burst_limit=settings.api_throttle_burst,
            ),
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=self.access_logs.arn, format=ACCESS_LOG_FORMAT
            ),
            opts=child,
        )
        self.endpoint = self.api.api_endpoint
        self.register_outputs({"endpoint": self.endpoint})


def route_slug(route: Route) -> str:
    """`GET /api/jobs/{id}` -> `get-api-jobs-id`: a resource name that stays stable while the table is unchanged."""
    return re.sub(r"[^a-z0-9]+", "-", f"{route.method} {route.path}".lower()).strip("-")


def source_path(route: Route) -> str:
    """The route's path as it appears in an execute-api ARN: path parameters become `*`."""
    return re.sub(r"\{[^}]+\}", "*", route.path)
