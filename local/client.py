"""A client of the filepipe API that behaves like the web form: ask for an upload, POST the file to S3, create the job.

Used by the load script and the tests; it speaks only HTTP, so it works against any running stack.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from handlers.jobmodel import FINAL_STATES


class SubmitError(Exception):
    """One step of a submission was refused; says which, with the server's answer."""

    def __init__(self, step: str, response: requests.Response) -> None:
        super().__init__(f"{step} failed: HTTP {response.status_code}: {response.text[:300]}")
        self.step = step
        self.status = response.status_code


def upload(base_url: str, filename: str, data: bytes, content_type: str = "application/octet-stream",
           session: requests.Session | None = None) -> str:
    """POST /api/uploads, then the presigned POST as multipart/form-data (fields first, file last); return the key."""
    http = session or requests
    ticket = http.post(f"{base_url}/api/uploads", timeout=30,
                       json={"filename": filename, "size": len(data), "content_type": content_type})
    if ticket.status_code != 201:
        raise SubmitError("asking for the upload", ticket)
    body = ticket.json()
    sent = http.post(body["url"], data=body["fields"], files={"file": (filename, data, content_type)}, timeout=60)
    if sent.status_code not in (200, 201, 204):
        raise SubmitError("uploading the file", sent)
    return str(body["key"])


def create_job(base_url: str, key: str, text: str, session: requests.Session | None = None) -> dict[str, Any]:
    created = (session or requests).post(f"{base_url}/api/jobs", json={"input_text": text, "key": key}, timeout=30)
    if created.status_code != 201:
        raise SubmitError("creating the job", created)
    return dict(created.json())


def submit(base_url: str, filename: str, data: bytes, text: str,
           session: requests.Session | None = None) -> dict[str, Any]:
    return create_job(base_url, upload(base_url, filename, data, session=session), text, session=session)


def wait_for_final(base_url: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll GET /api/jobs/<id> until the job is final or `timeout` passes; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{base_url}/api/jobs/{job_id}", timeout=10).json()
        if job["status"] in FINAL_STATES or time.monotonic() > deadline:
            return dict(job)
        time.sleep(0.2)
