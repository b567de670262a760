"""What tests read or set up that no product code needs: a user's count of active jobs, a job saved in a given
state, a job followed until it ends. Kept here so the product modules hold product code only."""

from __future__ import annotations

from typing import Any

from handlers import jobmodel, quota
from handlers.jobmodel import FINAL_STATES, Status
from local.client import ApiClient
from tests.waiting import wait_for

POLL_SECONDS = 0.2


def active_jobs(ddb: Any, table: str, owner: str) -> int:
    """The user's counted jobs (`handlers.quota`'s counter item), read strongly consistent."""
    item = ddb.get_item(TableName=table, Key={"id": {"S": quota.counter_id(owner)}}, ConsistentRead=True).get("Item")
    return int(item["active"]["N"]) if item else 0


def job_in_state(job_id: str, input_text: str, input_file_path: str, owner: str, status: Status) -> dict[str, str]:
    """A job's item as `jobmodel.new_job` makes it, in `status`: for tests that start a job mid-way."""
    return {**jobmodel.new_job(job_id, input_text, input_file_path, owner), "status": Status(status).value}


def wait_for_final(client: ApiClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """GET /api/jobs/<id>'s answer once the job is final; an AssertionError if it is not within `timeout`."""
    def final() -> dict[str, Any] | None:
        job = client.job(job_id)
        return job if job["status"] in FINAL_STATES else None
    return wait_for(final, timeout, f"job {job_id} to reach a final state", interval=POLL_SECONDS)
