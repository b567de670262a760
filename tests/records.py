"""What tests read or set up that no product code needs: a user's count of active jobs, a job saved in a given
state, a job followed until it ends. Kept here so the product modules hold product code only."""

from __future__ import annotations

import time
from typing import Any

from handlers import jobmodel, quota
from handlers.jobmodel import FINAL_STATES, Status
from local.client import ApiClient

POLL_SECONDS = 0.2


def active_jobs(ddb: Any, table: str, owner: str) -> int:
    """The user's counted jobs (`handlers.quota`'s counter item), read strongly consistent."""
    item = ddb.get_item(TableName=table, Key={"id": {"S": quota.counter_id(owner)}}, ConsistentRead=True).get("Item")
    return int(item["active"]["N"]) if item else 0


def job_in_state(job_id: str, input_text: str, input_file_path: str, owner: str, status: Status) -> dict[str, str]:
    """A job's item as `jobmodel.new_job` makes it, in `status`: for tests that start a job mid-way."""
    return {**jobmodel.new_job(job_id, input_text, input_file_path, owner), "status": Status(status).value}


def wait_for_final(client: ApiClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll GET /api/jobs/<id> until the job is final or `timeout` passes; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.job(job_id)
        if job["status"] in FINAL_STATES or time.monotonic() > deadline:
            return job
        time.sleep(POLL_SECONDS)
