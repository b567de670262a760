"""Helpers shared by the end-to-end suites (tests/local, tests/faults): fault injection and VM observation."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import jwt
import psutil

from handlers import jobmodel
from local.app import LocalPipeline
from local.client import ApiClient
from local.streams import LambdaHandler
from local.vmhost import VmRun
from tests.waiting import wait_for

DELETE_INPUT_MARKER = "delete my input before the VM runs"
UPLOADS_UNBOUNDED = 100_000
"""`upload_grants_per_hour` of the end-to-end stacks whose one signed-in user uploads for every test of a session
(the grant limit has its own tests: tests/local/test_accounts.py)."""


def deleting_inputs(launcher: LambdaHandler, pipeline: LocalPipeline) -> LambdaHandler:
    """Fault injection: for jobs whose text is the marker, delete the input object before the launcher runs, so
    their worker fails for real."""
    s3 = pipeline.client("s3")

    def wrapped(event: Mapping[str, Any], context: object) -> Any:
        for record in event.get("Records", []):
            image = record["dynamodb"].get("NewImage", {})
            if image.get("input_text", {}).get("S") == DELETE_INPUT_MARKER:
                bucket, key = image["input_file_path"]["S"].split("/", 1)
                s3.delete_object(Bucket=bucket, Key=key)
        return launcher(event, context)

    return wrapped


def instance_state(pipeline: LocalPipeline, instance_id: str) -> str:
    described = pipeline.client("ec2").describe_instances(InstanceIds=[instance_id])
    return str(described["Reservations"][0]["Instances"][0]["State"]["Name"])


def finished_run(pipeline: LocalPipeline, instance_id: str, timeout: float = 20) -> VmRun:
    """The VM's run once it has ended, booted and ended within `timeout` seconds."""
    vmhost = pipeline.vmhost
    assert vmhost is not None
    deadline = time.monotonic() + timeout
    run = wait_for(lambda: vmhost.runs.get(instance_id), timeout, f"the VM host to boot {instance_id}")
    assert run.finished.wait(max(0.0, deadline - time.monotonic())), f"VM {instance_id} still running"
    return run


def gone(processes: list[psutil.Process]) -> bool:
    """All ended (wait for it: a process sent SIGKILL on a busy machine may need a moment to be scheduled and die)."""
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes)


_clients: dict[tuple[int, str], ApiClient] = {}
_clients_lock = threading.Lock()
CREDENTIALS: dict[int, tuple[str, str]] = {}
"""id(ApiClient) -> (email, password) of the clients made here, for tests that sign in again another way."""


def signed_in(pipeline: LocalPipeline) -> ApiClient:
    """The pipeline's test user, signed in (one user and one sign-in per pipeline, whatever thread asks first)."""
    key = (id(pipeline), pipeline.url)
    with _clients_lock:
        if key not in _clients:
            client = new_user(pipeline, "tester")
            _clients[key] = client
        return _clients[key]


def owner_of(client: ApiClient) -> str:
    """The user's id (`sub`), as the upload metadata and the job items carry it."""
    return str(jwt.decode(client.token or "", options={"verify_signature": False})["sub"])


def new_user(pipeline: LocalPipeline, name: str) -> ApiClient:
    """A new user of the stack, signed in."""
    user = pipeline.create_user(f"{name}-{jobmodel.new_id().lower()}@example.com")
    client = ApiClient.signed_in(pipeline.url, user.email, user.password)
    CREDENTIALS[id(client)] = (user.email, user.password)
    return client
