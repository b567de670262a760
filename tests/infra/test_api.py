"""Api and the Lambda functions: routes cover the contract, integrations, permissions, stage, runtime, packaging,
logging and environment."""

from __future__ import annotations

import re
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from components.functions import HANDLERS_DIR
from handlers import launcher, release, sweeper
from handlers.routes import HTTP_FUNCTIONS, ROUTERS, ROUTES
from handlers.services import function_timeout_seconds
from stackspec.settings import NO_RESERVATION, StackSettings, api_config, launcher_config
from tests.infra.conftest import TUNED, WORKER_TAG, Deployment

FUNCTIONS = {"api-upload": "upload", "api-jobs": "jobs", "api-manage": "manage", "compute-launcher": "launcher",
             "compute-release": "release", "compute-sweeper": "sweeper"}
API_FUNCTIONS = ("api-upload", "api-jobs", "api-manage")
DISPATCHERS = ("compute-launcher", "compute-release", "compute-sweeper")
"""The three functions that start VMs."""


def functions(deployment: Deployment) -> dict[str, dict]:
    return {f.name: f.inputs for f in deployment.of_type("aws:lambda/function:Function")}


def test_routes_are_exactly_the_route_table(dev: Deployment) -> None:
    """Regression: a contract route missing from API Gateway answers 404 on AWS while local mode serves it."""
    keys = sorted(r.inputs["routeKey"] for r in dev.of_type("aws:apigatewayv2/route:Route"))
    assert keys == sorted(route.key for route in ROUTES)
    assert all(key.split(" ", 1)[1].startswith("/api/") for key in keys), "route keys keep the /api prefix"
    assert {"POST /api/uploads", "POST /api/jobs", "GET /api/jobs", "GET /api/jobs/{id}"} <= set(keys)


def test_each_route_reaches_the_function_that_serves_it(dev: Deployment) -> None:
    """Regression: routes wired to the wrong integration (uploads answered by the jobs handler)."""
    integrations = {i.name: i for i in dev.of_type("aws:apigatewayv2/integration:Integration")}
    functions_by_name = {f.name: f for f in dev.of_type("aws:lambda/function:Function")}
    expected = {route.key: route.function for route in ROUTES}
    for route in dev.of_type("aws:apigatewayv2/route:Route"):
        assert route.inputs["apiId"] == "api-http-id"
        integration_id = route.inputs["target"].removeprefix("integrations/")
        integration = dev.by_id(integration_id)
        module = expected[route.inputs["routeKey"]]
        assert integration is integrations[f"api-{module}-integration"], route.inputs["routeKey"]
        assert integration.inputs["integrationUri"] == functions_by_name[f"api-{module}"].outputs["invokeArn"]


def test_integrations_are_lambda_proxy_with_payload_2(dev: Deployment) -> None:
    """Regression: payload 1.0 events lack `rawPath`/`requestContext.http` and the handlers answer 500."""
    integrations = dev.of_type("aws:apigatewayv2/integration:Integration")
    assert len(integrations) == len(HTTP_FUNCTIONS)
    for integration in integrations:
        assert integration.inputs["integrationType"] == "AWS_PROXY"
        assert integration.inputs["payloadFormatVersion"] == "2.0"


def test_api_gateway_may_invoke_each_function_only_from_this_api_and_route(dev: Deployment) -> None:
    """Regression: a permission without source ARN lets any API Gateway API in any account invoke the function;
    a missing one makes the route answer 500."""
    execution_arn = dev.one("aws:apigatewayv2/api:Api").outputs["executionArn"]
    permissions = [p for p in dev.of_type("aws:lambda/permission:Permission") if p.name.startswith("api-")]
    functions_by_name = {f.name: f.outputs["name"] for f in dev.of_type("aws:lambda/function:Function")}
    covered = set()
    for permission in permissions:
        inputs = permission.inputs
        assert inputs["action"] == "lambda:InvokeFunction"
        assert inputs["principal"] == "apigateway.amazonaws.com"
        assert inputs["sourceArn"].startswith(f"{execution_arn}/*/"), inputs["sourceArn"]
        method, path = re.fullmatch(r".*/\*/([A-Z]+)(/.*)", inputs["sourceArn"]).groups()
        covered.add((method, path, inputs["function"]))
    assert covered == {
        (route.method, route.path.replace("{id}", "*"), functions_by_name[f"api-{route.function}"])
        for route in ROUTES
    }


def test_stage_deploys_automatically_and_is_throttled_from_config(tuned: Deployment) -> None:
    """Regression: no `$default` auto-deploy stage means nothing is reachable; no throttling lets one client run
    up the Lambda (and EC2) bill."""
    deployment = tuned
    stage = deployment.one("aws:apigatewayv2/stage:Stage").inputs
    assert stage["name"] == "$default" and stage["autoDeploy"] is True
    assert stage["defaultRouteSettings"]["throttlingRateLimit"] == 7
    assert stage["defaultRouteSettings"]["throttlingBurstLimit"] == 11
    access_logs = deployment.one("aws:cloudwatch/logGroup:LogGroup", "api-access-logs").outputs
    assert stage["accessLogSettings"]["destinationArn"] == access_logs["arn"]


def test_api_is_http_protocol(dev: Deployment) -> None:
    """Regression: a REST or WebSocket API would need a different event shape and different routes."""
    assert dev.one("aws:apigatewayv2/api:Api").inputs["protocolType"] == "HTTP"


def newest_python_runtime() -> str:
    versions = [r.value for r in aws.lambda_.Runtime if r.value.startswith("python3.")]
    return max(versions, key=lambda v: tuple(int(p) for p in v.removeprefix("python").split(".")))


def test_functions_use_the_newest_python_on_arm64(dev: Deployment) -> None:
    """Regression: an outdated runtime reaches deprecation (then blocks updates); x86 costs ~20% more."""
    assert newest_python_runtime() >= "python3.13"
    for name, inputs in functions(dev).items():
        assert inputs["runtime"] == newest_python_runtime(), name
        assert inputs["architectures"] == ["arm64"], name


def test_handlers_name_modules_that_are_in_the_package(dev: Deployment) -> None:
    """Regression: a handler string pointing at a module the zip lacks fails every invocation with
    `Runtime.ImportModuleError`."""
    for name, inputs in functions(dev).items():
        assert inputs["handler"] == f"handlers.{FUNCTIONS[name]}.handler"
        archive = inputs["code"]
        assert isinstance(archive, pulumi.AssetArchive)
        packaged = {key: Path(asset.path) for key, asset in archive.assets.items()}
        assert f"handlers/{FUNCTIONS[name]}.py" in packaged, f"{name}: module not packaged"
        assert packaged == {f"handlers/{p.name}": p for p in HANDLERS_DIR.glob("*.py")}, "package != handlers/*.py"
        assert all(path.is_file() for path in packaged.values())


def test_handler_modules_exist_and_define_handler() -> None:
    """Regression: the launcher (or another module) renamed or not yet written while the program points at it."""
    for module in FUNCTIONS.values():
        source = (HANDLERS_DIR / f"{module}.py").read_text(encoding="utf-8")
        assert re.search(r"^def handler\(", source, re.MULTILINE), f"handlers/{module}.py has no handler()"


def test_functions_log_json_to_their_own_group_with_retention(tuned: Deployment) -> None:
    """Regression: text logs lose the structure; the default log group keeps logs (and their cost) forever."""
    deployment = tuned
    groups = {g.name: g for g in deployment.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for name, inputs in functions(deployment).items():
        logging = inputs["loggingConfig"]
        assert logging["logFormat"] == "JSON", name
        assert logging["logGroup"] == groups[f"{name}-logs"].outputs["name"], name
        assert groups[f"{name}-logs"].inputs["retentionInDays"] == 30
    assert all(g.inputs["retentionInDays"] == 30 for g in groups.values())


def test_api_functions_get_the_shared_environment(dev: Deployment) -> None:
    """Regression: env vars that point at another bucket/table, or limits that differ from the form's."""
    bucket = dev.exports["bucketName"]
    table = dev.exports["tableName"]
    settings = dev.namespace["settings"]
    for name in API_FUNCTIONS:
        assert functions(dev)[name]["environment"]["variables"] == api_config(bucket, table, settings).to_env()


def test_max_file_size_override_reaches_the_lambda_environment(tuned: Deployment) -> None:
    """Regression: `pulumi config set maxFileMb 25` must change what the upload handler signs."""
    deployment = tuned
    for name in ("api-upload", "api-jobs"):
        variables = functions(deployment)[name]["environment"]["variables"]
        assert variables["MAX_FILE_BYTES"] == str(25 * 1024 * 1024), name


@pytest.mark.parametrize("name", DISPATCHERS)
def test_launcher_and_sweeper_get_the_table_template_and_both_subnets(dev: Deployment, name: str) -> None:
    """Regression: a launcher (or the sweeper, which starts queued jobs too) without the subnets launches into the
    default VPC (with internet) or fails; a sweeper with another stack name or timeout sweeps the wrong VMs."""
    variables = functions(dev)[name]["environment"]["variables"]
    subnets = {f"{s.name}-id" for s in dev.of_type("aws:ec2/subnet:Subnet")}
    # The mocks record resources as their registrations arrive, so the two subnets' order there is not fixed.
    assert set(variables["SUBNET_IDS"].split(",")) == subnets and len(subnets) == 2
    table, template = dev.exports["tableName"], dev.exports["launchTemplateId"]
    settings = dev.namespace["settings"]
    expected = launcher_config(table, template, variables["SUBNET_IDS"].split(","), stack_tag=WORKER_TAG,
                               settings=settings)
    assert variables == expected.to_env()


def test_overridden_limits_reach_every_functions_environment(tuned: Deployment) -> None:
    """Regression: `maxConcurrentVms`, `jobTimeoutMinutes` or the expiry keys changed in config while the functions
    keep enforcing the old values."""
    variables = {name: inputs["environment"]["variables"] for name, inputs in functions(tuned).items()}
    assert {variables[name]["UPLOAD_EXPIRY_SECONDS"] for name in API_FUNCTIONS} == {TUNED["uploadExpirySeconds"]}
    assert {variables[name]["DOWNLOAD_EXPIRY_SECONDS"] for name in API_FUNCTIONS} == {TUNED["downloadExpirySeconds"]}
    assert {variables[name]["MAX_TEXT_LENGTH"] for name in API_FUNCTIONS} == {TUNED["maxTextLength"]}
    assert {variables[name]["UPLOAD_GRANTS_PER_HOUR"] for name in API_FUNCTIONS} == {TUNED["uploadGrantsPerHour"]}
    assert {variables[name]["MAX_CONCURRENT_VMS"] for name in DISPATCHERS} == {TUNED["maxConcurrentVms"]}
    assert {variables[name]["JOB_TIMEOUT_MINUTES"] for name in DISPATCHERS} == {TUNED["jobTimeoutMinutes"]}


DERIVED_TIMEOUTS = {
    **{f"api-{module}": function_timeout_seconds(router.call_limits, router.aws_calls)
       for module, router in ROUTERS.items()},
    "compute-launcher": launcher.TIMEOUT_SECONDS, "compute-release": release.TIMEOUT_SECONDS,
    "compute-sweeper": sweeper.TIMEOUT_SECONDS,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_timeouts_are_the_ones_derived_from_the_call_limits(dev: Deployment, name: str) -> None:
    """Regression: a guessed timeout shorter than the function's calls at their limits (a slow call times the
    function out before the SDK gives up, with no error handled), or an API function slower than API Gateway's 30 s
    limit (the client sees 503, the work goes on). tests/unit/test_timeouts.py checks the derivation."""
    assert functions(dev)[name]["timeout"] == DERIVED_TIMEOUTS[name]
    assert name in DISPATCHERS or DERIVED_TIMEOUTS[name] < 30


def reserved(deployment: Deployment) -> dict[str, int]:
    return {name: inputs["reservedConcurrentExecutions"] for name, inputs in functions(deployment).items()}


def test_no_function_reserves_concurrency_by_default(defaults: Deployment) -> None:
    """Regression: in an account whose concurrency quota is below 100 + the reservations (a new account's is 10)
    nothing deploys at all, so the default must reach Lambda as `-1`, "no reservation" (pulumi-aws's own default),
    not as an error or a 0 that stops the function."""
    settings = StackSettings()
    expected = {name: settings.api_reserved_concurrency for name in API_FUNCTIONS}
    expected |= {name: settings.launcher_reserved_concurrency for name in DISPATCHERS}
    assert reserved(defaults) == expected
    assert set(expected.values()) == {NO_RESERVATION}


def test_reserved_concurrency_comes_from_config(tuned: Deployment) -> None:
    """Regression: `pulumi config set apiReservedConcurrency ...` that never reaches the functions (so one abusive
    client on the API could starve everything else in an account that set it)."""
    api, dispatchers = int(TUNED["apiReservedConcurrency"]), int(TUNED["launcherReservedConcurrency"])
    assert reserved(tuned) == {"api-upload": api, "api-jobs": api, "api-manage": api, "compute-launcher": dispatchers,
                               "compute-release": NO_RESERVATION, "compute-sweeper": dispatchers,
                               "auth-presignup": NO_RESERVATION}
