"""The call graph behind tests/infra/test_iam_static.py follows what code can reach, and no more: each rule of
tests/callgraph.py on a small made-up package, and the pieces of tests/iam_static.py that read the worker."""

from __future__ import annotations

import textwrap

import pytest

from tests.callgraph import CallGraph
from tests.iam_static import cli_calls, operation_name, user_data_python


def graph(**modules: str) -> CallGraph:
    """`pkg_a="..."` -> module `pkg.a`."""
    return CallGraph({name.replace("_", ".", 1): textwrap.dedent(src) for name, src in modules.items()})


def calls(g: CallGraph, entry: str) -> set[tuple[str, str]]:
    return {(call.service, call.method) for call in g.client_calls(entry)}


def test_a_call_reached_through_an_import_is_found_and_an_unreached_one_is_not() -> None:
    g = graph(
        pkg_store="""
            def read(ddb, table):
                return ddb.get_item(TableName=table, Key={})

            def wipe(ddb, table):
                ddb.delete_item(TableName=table, Key={})
        """,
        pkg_app="""
            from pkg import store

            def handler(event, context):
                return store.read(SERVICES.ddb, "t")
        """,
    )
    assert calls(g, "pkg.app.handler") == {("dynamodb", "get_item")}


def test_a_function_passed_as_a_value_or_called_in_a_lambda_is_reached() -> None:
    g = graph(pkg_app="""
        from pkg.store import stop

        def start(services):
            services.ec2.run_instances(MinCount=1, MaxCount=1)

        def handler(event, context):
            retry(lambda: start(SERVICES))
            return apply(stop)
    """, pkg_store="""
        def stop(services):
            services.ec2.terminate_instances(InstanceIds=[])
    """)
    assert calls(g, "pkg.app.handler") == {("ec2", "run_instances"), ("ec2", "terminate_instances")}


def test_self_methods_and_methods_of_unknown_receivers_are_followed() -> None:
    g = graph(pkg_app="""
        class Sweep:
            def run(self):
                self.find()

            def find(self):
                return self.services.ec2.get_paginator("describe_instances").paginate()

        class Lease:
            def __enter__(self):
                self.ddb.update_item(TableName="t", Key={})

        def handler(event, context):
            with Lease():
                pass
            return make().run()
    """)
    assert calls(g, "pkg.app.handler") == {("ec2", "describe_instances"), ("dynamodb", "update_item")}


def test_routes_registered_on_a_router_are_reached_through_it_only() -> None:
    """A decorator rooted at a module-level object registers the function there: whoever names the router reaches
    its routes; importing the module (for another function) does not."""
    g = graph(
        pkg_jobs="""
            router = Router()

            @router.route("GET", "/jobs")
            def list_jobs(event, services):
                return services.ddb.query(TableName="t")

            def view(job):
                return job

            def handler(event, context):
                return router.resolve(event, SERVICES)
        """,
        pkg_manage="""
            from pkg.jobs import view

            def handler(event, context):
                return view({})
        """,
    )
    assert calls(g, "pkg.jobs.handler") == {("dynamodb", "query")}
    assert calls(g, "pkg.manage.handler") == set()


def test_a_client_made_on_the_spot_is_recognised_by_its_service_name() -> None:
    g = graph(pkg_boot="""
        import boto3
        boto3.client("s3").download_file("bucket", "key", "/tmp/x")
    """)
    assert calls(g, "pkg.boot.<module>") == {("s3", "download_file")}


def test_a_client_under_an_unknown_name_is_reported_not_skipped() -> None:
    """Regression guard: `client.put_item(...)` would otherwise be a call the proof never sees."""
    g = graph(pkg_app="""
        def save(client):
            client.put_item(TableName="t", Item={})
    """)
    assert len(g.unresolved) == 1 and "put_item" in g.unresolved[0]


def test_a_known_client_with_an_unknown_method_is_reported() -> None:
    g = graph(pkg_app="""
        def save(ddb):
            ddb.put_itme(TableName="t", Item={})
    """)
    assert len(g.unresolved) == 1 and "put_itme" in g.unresolved[0]


def test_string_values_resolve_module_constants_across_imports() -> None:
    g = graph(
        pkg_model="""
            INDEX = "by-status"
        """,
        pkg_app="""
            from pkg import model

            def query(ddb):
                return ddb.query(TableName="t", IndexName=model.INDEX)
        """,
    )
    assert g.string_values("IndexName", ["pkg.app.query"]) == {"by-status"}


def test_operation_names_come_from_botocores_models() -> None:
    assert operation_name("s3", "head_object") == "HeadObject"
    assert operation_name("ec2", "run_instances") == "RunInstances"
    with pytest.raises(AssertionError, match="no operation"):
        operation_name("dynamodb", "put_itme")


def test_the_user_data_python_and_cli_calls_are_read() -> None:
    script = textwrap.dedent("""\
        # aws s3 cp is mentioned in a comment only
        python3 - <<'PY'
        import boto3
        PY
        aws dynamodb update-item --table-name "t" || log "no"
    """)
    assert user_data_python(script) == "import boto3"
    [call] = cli_calls(script)
    assert (call.service, call.method, call.line) == ("dynamodb", "update_item", 5)
    with pytest.raises(AssertionError, match="aws sts"):
        cli_calls("aws sts get-caller-identity\n")


def test_a_client_of_a_service_no_name_maps_to_is_reported() -> None:
    """A new service's client (`client("cognito-idp")`) under any variable name would make calls no rule sees."""
    g = graph(pkg_app="""
        import boto3

        def make(client):
            return client("cognito-idp"), boto3.client("s3"), boto3.resource("dynamodb")
    """)
    assert len(g.unresolved) == 2
    assert "cognito-idp client" in g.unresolved[0] and "boto3 resource (dynamodb)" in g.unresolved[1]
