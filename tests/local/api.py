"""A small client of the filepipe API that behaves like the web form: ask, upload the form to S3, create the job."""

from __future__ import annotations

import time
from typing import Any

import requests

FINAL = {"SUCCEEDED", "FAILED"}


def upload(base_url: str, filename: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    """POST /api/uploads, then the presigned POST as multipart/form-data (fields first, file last); return the key."""
    ticket = requests.post(f"{base_url}/api/uploads", timeout=10,
                           json={"filename": filename, "size": len(data), "content_type": content_type})
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    sent = requests.post(body["url"], data=body["fields"], files={"file": (filename, data, content_type)}, timeout=30)
    assert sent.status_code in (200, 201, 204), sent.text
    return str(body["key"])


def create_job(base_url: str, key: str, text: str) -> dict[str, Any]:
    created = requests.post(f"{base_url}/api/jobs", json={"input_text": text, "key": key}, timeout=10)
    assert created.status_code == 201, created.text
    return dict(created.json())


def submit(base_url: str, filename: str, data: bytes, text: str) -> dict[str, Any]:
    return create_job(base_url, upload(base_url, filename, data), text)


def wait_for_final(base_url: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{base_url}/api/jobs/{job_id}", timeout=10).json()
        if job["status"] in FINAL or time.monotonic() > deadline:
            return dict(job)
        time.sleep(0.2)
