"""The whole local pipeline end to end: API, presigned upload, stream, launcher, local VM, worker, download.

One stack serves the module (starting it costs a few seconds). A minute of `shutdown -h +N` lasts
`MINUTE_SECONDS` here, so the watchdog can be seen to fire while real jobs (timeout 15 "minutes") are unaffected.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from handlers import capacity, jobmodel
from local.app import LocalPipeline
from local.vmhost import Ending
from stackspec.settings import StackSettings
from tests.faults.harness import hanging_worker_script, worker_script
from tests.local.harness import (
    DELETE_INPUT_MARKER,
    UPLOADS_UNBOUNDED,
    deleting_inputs,
    finished_run,
    gone,
    instance_state,
    new_user,
    owner_of,
    signed_in,
)
from tests.records import active_jobs, wait_for_final
from tests.waiting import wait_for
from worker.userdata import render_user_data

pytestmark = pytest.mark.e2e

SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, job_timeout_minutes=15, max_concurrent_vms=4,
                         max_active_jobs_per_user=50, upload_grants_per_hour=UPLOADS_UNBOUNDED)
"""With the cap below ten, "ten jobs at once" also proves that terminated VMs reach the launcher and free their
slots."""
MINUTE_SECONDS = 1.0



@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(port=0, settings=SETTINGS, wrap_launcher=deleting_inputs,
                       minute_seconds=MINUTE_SECONDS) as running:
        yield running


def test_health_reports_the_emulator(pipeline: LocalPipeline) -> None:
    got = requests.get(f"{pipeline.url}/api/health", timeout=10)
    assert got.status_code == 200
    assert got.json()["emulator"] == {"up": True, "endpoint": pipeline.endpoint_url, "kind": "moto"}


def test_api_errors_keep_the_contracts_shape(pipeline: LocalPipeline) -> None:
    missing = signed_in(pipeline).get(f"/api/jobs/{'x' * 21}", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    unknown = requests.get(f"{pipeline.url}/api/unknown", timeout=10)
    assert unknown.status_code == 404 and set(unknown.json()["error"]) == {"code", "message"}
    wrong = requests.delete(f"{pipeline.url}/api/jobs", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_the_pages_csp_allows_the_upload_and_nothing_else(pipeline: LocalPipeline) -> None:
    """The presigned POST's origin (the emulator) is the one origin besides the site the page may connect to;
    a CSP without it breaks every upload, one with `https:` lets an injected script send data anywhere."""
    page = requests.get(f"{pipeline.url}/", timeout=10)
    connect = next(d.split()[1:] for d in page.headers["Content-Security-Policy"].split(";")
                   if d.split()[0] == "connect-src")
    grant = signed_in(pipeline).post("/api/uploads", json={"filename": "a.txt", "size": 1}).json()
    upload_origin = "/".join(grant["url"].split("/")[:3])
    sign_in = requests.get(f"{pipeline.url}/config.json", timeout=10).json()["auth"]["endpoint"]
    assert connect == ["'self'", upload_origin] and sign_in == upload_origin, (
        "locally the emulator takes both the upload and the sign-in")


def test_site_config_comes_from_the_stack_settings(pipeline: LocalPipeline) -> None:
    config = requests.get(f"{pipeline.url}/config.json", timeout=10).json()
    assert config["maxFileBytes"] == SETTINGS.max_file_bytes
    assert config["maxTextLength"] == SETTINGS.max_text_length


def test_config_json_serves_the_job_states_of_the_model(pipeline: LocalPipeline) -> None:
    """Regression: the page kept its own copy of the job states; locally, as on AWS, it reads them from the
    server's model through `/config.json`."""
    config = requests.get(f"{pipeline.url}/config.json", timeout=10).json()
    assert config["jobStates"] == jobmodel.public_states()
    assert {s["name"] for s in config["jobStates"] if s["cancellable"]} == set(jobmodel.CANCELLABLE_STATES)


def test_a_job_runs_on_a_local_vm_and_its_output_is_exact(pipeline: LocalPipeline) -> None:
    data = bytes(range(256)) + b"\r\nlast line without newline"
    text = "naïve café ☕ — done"
    job = signed_in(pipeline).submit("sample.bin", data, text)
    assert job["status"] == "PENDING"

    final = wait_for_final(signed_in(pipeline), job["id"])
    assert final["status"] == "SUCCEEDED", final
    assert final["output_file_path"].endswith(f"outputs/{job['id']}/sample.out.bin")
    downloaded = requests.get(final["output_url"], timeout=10)
    assert downloaded.status_code == 200
    assert downloaded.content == data + b" : " + text.encode("utf-8")

    run = finished_run(pipeline, final["instance_id"])
    assert run.job_id == job["id"]
    assert run.ending == Ending.SHUTDOWN and run.exit_code == 0
    assert instance_state(pipeline, final["instance_id"]) == "terminated"
    assert f"job {job['id']} on {final['instance_id']} in us-east-1" in run.console  # IMDS tag, id and region


def test_the_vm_executes_the_launch_templates_user_data(pipeline: LocalPipeline) -> None:
    """The text bash ran is what `render_user_data` gives the Pulumi launch template for this stack."""
    job = signed_in(pipeline).submit("notes.txt", b"abc", "xyz")
    final = wait_for_final(signed_in(pipeline), job["id"])
    run = finished_run(pipeline, final["instance_id"])

    stack = pipeline.stack
    expected = render_user_data(bucket=stack.bucket, table=stack.table, timeout_minutes=SETTINGS.job_timeout_minutes)
    assert run.user_data == expected
    template = pipeline.client("ec2").describe_launch_template_versions(LaunchTemplateId=stack.launch_template_id)
    carried = base64.b64decode(template["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
    assert carried == run.user_data
    assert "dnf" not in run.console, "boto3 imports, so nothing is installed"
    assert run.console.count("worker script fetched") == 1


def test_a_job_whose_id_starts_with_a_dash_succeeds(pipeline: LocalPipeline) -> None:
    """Ids come from the nanoid alphabet, '-' included (1 in 64 starts with it): argparse must not read the id as an
    option, so the user-data passes `--job-id=ID`. The upload key is made here so the id is known."""
    key = "inputs/-dash0123456789abcdef/dash.txt"
    pipeline.client("s3").put_object(Bucket=pipeline.stack.bucket, Key=key, Body=b"dash",
                                     Metadata={"owner": owner_of(signed_in(pipeline))})
    job = signed_in(pipeline).create_job(key, "first")
    launched = wait_for(lambda: "instance_id" in (seen := signed_in(pipeline).job(job["id"])) and seen, 20,
                        "the job to get its VM")
    run = finished_run(pipeline, launched["instance_id"])
    final = signed_in(pipeline).get(f"/api/jobs/{job['id']}", timeout=10).json()
    assert final["status"] == "SUCCEEDED", run.console


def test_ten_jobs_at_once_all_succeed_with_distinct_outputs(pipeline: LocalPipeline) -> None:
    inputs = [(f"file-{i}.txt", f"content {i}\n".encode() * (i + 1), f"text {i}") for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        jobs = list(pool.map(lambda args: signed_in(pipeline).submit(*args), inputs))
        finals = list(pool.map(lambda job: wait_for_final(signed_in(pipeline), job["id"], timeout=90), jobs))

    assert [f["status"] for f in finals] == ["SUCCEEDED"] * 10, [f.get("error") for f in finals]
    outputs = [requests.get(f["output_url"], timeout=10).content for f in finals]
    assert outputs == [data + b" : " + text.encode() for _, data, text in inputs]
    assert len(set(outputs)) == 10
    instances = {f["instance_id"] for f in finals}
    assert len(instances) == 10
    for instance_id in instances:
        finished_run(pipeline, instance_id)
        assert instance_state(pipeline, instance_id) == "terminated"


def test_a_job_whose_input_is_gone_fails_with_a_reason_and_its_vm_is_terminated(
    pipeline: LocalPipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="filepipe.local")
    job = signed_in(pipeline).submit("gone.txt", b"soon deleted", DELETE_INPUT_MARKER)
    final = wait_for_final(signed_in(pipeline), job["id"])

    assert final["status"] == "FAILED", final
    assert final["error"]
    assert "output_url" not in final
    run = finished_run(pipeline, final["instance_id"])
    assert instance_state(pipeline, final["instance_id"]) == "terminated"
    assert run.console and pipeline.vmhost is not None
    shown = [r.getMessage() for r in caplog.records if f"job {job['id']} ended FAILED" in r.getMessage()]
    assert shown and run.console.strip().splitlines()[-1] in shown[0]  # the console is printed for failed jobs


def test_a_running_job_is_cancelled_then_retried_then_deleted_with_its_files(pipeline: LocalPipeline) -> None:
    """What a user does with a job that was a mistake, end to end: its worker hangs reading the input (so it is
    RUNNING when cancelled, and only a termination ends its VM), the cancel is seen at once, the launcher terminates
    the VM, its slot and the owner's place come back; the retry runs the same input and text to SUCCEEDED; the
    deletes leave neither items nor objects of either job. A user of its own: the module's user may still have an
    earlier test's job finishing, whose place would come back meanwhile."""
    client, ddb, table = new_user(pipeline, "canceller"), pipeline.client("dynamodb"), pipeline.stack.table
    owner = owner_of(client)
    counted = active_jobs(ddb, table, owner)
    assert counted == 0
    with worker_script(pipeline, hanging_worker_script()):
        job = client.submit("cancel.txt", b"cancel me", "then retry")
        running = wait_for(lambda: (seen := client.job(job["id"]))["status"] == "RUNNING" and seen, 30,
                           "the job to be RUNNING")
        cancelled = client.cancel(job["id"])
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
        assert client.job(job["id"])["status"] == "CANCELLED"
        run = finished_run(pipeline, running["instance_id"], timeout=10)
    assert run.ending == Ending.TERMINATED, "the launcher terminated the VM (its worker would hang for an hour)"
    assert instance_state(pipeline, running["instance_id"]) == "terminated"
    wait_for(lambda: job["id"] not in slot_holders(pipeline), 20, "the VM's slot to be given back")
    wait_for(lambda: active_jobs(ddb, table, owner) == counted, 20, "the owner's place to be given back")

    retried = client.retry(job["id"])
    assert retried.status_code == 201, retried.text
    again = wait_for_final(client, retried.json()["id"])
    assert again["status"] == "SUCCEEDED", again
    assert requests.get(again["output_url"], timeout=10).content == b"cancel me : then retry"
    assert client.job(job["id"])["retried_as"] == again["id"]
    wait_for(lambda: again["id"] not in slot_holders(pipeline), 20, "the retried job's VM to be gone")

    for job_id in (job["id"], again["id"]):
        assert client.delete_job(job_id).status_code == 204
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert jobmodel.read_job(ddb, table, job_id) is None
        assert objects_of(pipeline, job_id) == []
    assert active_jobs(ddb, table, owner) == counted


def slot_holders(pipeline: LocalPipeline) -> set[str]:
    leases = capacity.leases(pipeline.client("dynamodb"), pipeline.stack.table, SETTINGS.max_concurrent_vms)
    return {lease.job_id for lease in leases}


def objects_of(pipeline: LocalPipeline, job_id: str) -> list[str]:
    s3 = pipeline.client("s3")
    return [o["Key"] for prefix in (f"inputs/{job_id}/", f"outputs/{job_id}/")
            for o in s3.list_objects_v2(Bucket=pipeline.stack.bucket, Prefix=prefix).get("Contents", [])]


def start_instance(pipeline: LocalPipeline, user_data: str) -> str:
    """An instance the VM host will run, with our own user-data (the watchdog and termination tests)."""
    started = pipeline.client("ec2").run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=pipeline.stack.subnet_ids[0],
        UserData=user_data,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "JobId", "Value": "x" * 21}]}],
    )
    return str(started["Instances"][0]["InstanceId"])


def vm_processes(pipeline: LocalPipeline, instance_id: str, at_least: int, timeout: float = 20) -> list[psutil.Process]:
    """The VM's processes (bash and its children) once there are `at_least` of them."""
    vmhost = pipeline.vmhost
    assert vmhost is not None

    def processes() -> list[psutil.Process]:
        run = vmhost.runs.get(instance_id)
        if run is None or run.process is None:
            return []
        root = psutil.Process(run.process.pid)
        found = [root, *root.children(recursive=True)]
        return found if len(found) >= at_least else []

    return wait_for(processes, timeout, f"VM {instance_id} to start {at_least} processes")


def test_the_watchdog_powers_off_a_hung_vm(pipeline: LocalPipeline) -> None:
    instance_id = start_instance(pipeline, "#!/bin/bash\nshutdown -h +1\nsleep 600 &\nwait\n")
    processes = vm_processes(pipeline, instance_id, at_least=2)
    run = finished_run(pipeline, instance_id, timeout=MINUTE_SECONDS + 15)
    assert run.ending == Ending.WATCHDOG
    wait_for(lambda: gone(processes), 5, "the VM's processes to end")
    assert instance_state(pipeline, instance_id) == "terminated"
    assert "power-off scheduled in 1 minute(s)" in run.console


def test_an_instance_terminated_in_the_emulator_loses_its_vm(pipeline: LocalPipeline) -> None:
    instance_id = start_instance(pipeline, "#!/bin/bash\nsleep 600 &\nsleep 600\n")
    processes = vm_processes(pipeline, instance_id, at_least=3)
    pipeline.client("ec2").terminate_instances(InstanceIds=[instance_id])
    run = finished_run(pipeline, instance_id)
    assert run.ending == Ending.TERMINATED
    wait_for(lambda: gone(processes), 5, "the VM's processes to end")


def test_an_instance_terminated_before_the_host_booted_it_is_announced_whichever_client_terminated_it(
    pipeline: LocalPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EC2 raises its state-change event for every termination; locally any client of the pipeline's session
    announces it (a cancel's, a sweep's, a test's), not only the launcher's. No JobId tag: the host never boots it."""
    assert pipeline.vmhost is not None
    announced: list[str] = []
    monkeypatch.setattr(pipeline.vmhost, "on_terminated", announced.append)
    started = pipeline.client("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                                   SubnetId=pipeline.stack.subnet_ids[0])
    instance_id = started["Instances"][0]["InstanceId"]

    pipeline.client("ec2").terminate_instances(InstanceIds=[instance_id])

    assert announced == [instance_id]
    assert instance_id not in pipeline.vmhost.runs


def test_the_vm_sees_only_the_shims_and_the_emulator(pipeline: LocalPipeline) -> None:
    script = "\n".join([
        "#!/bin/bash",
        "command -v shutdown dnf python3",
        """python3 -c "import boto3, os; print(os.environ['AWS_ENDPOINT_URL'], boto3.__name__)\"""",
        'imds="$AWS_EC2_METADATA_SERVICE_ENDPOINT"',
        'token=$(curl -sSf -X PUT "$imds/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60")',
        'curl -s -o /dev/null -w "no-token:%{http_code}\\n" "$imds/latest/meta-data/instance-id"',
        'curl -sSf -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/tags/instance/JobId"',
        "echo; pwd",
        "shutdown -h now",
        "",
    ])
    instance_id = start_instance(pipeline, script)
    run = finished_run(pipeline, instance_id)
    lines = run.console.splitlines()
    assert pipeline.vmhost is not None
    shims = str(pipeline.vmhost.shims)
    assert lines[:3] == [f"{shims}/shutdown", f"{shims}/dnf", f"{shims}/python3"]
    assert lines[3] == f"{pipeline.endpoint_url} boto3"
    assert lines[4] == "no-token:401"
    assert lines[5] == "x" * 21
    assert lines[6] == str(run.scratch)
    assert run.ending == Ending.SHUTDOWN
