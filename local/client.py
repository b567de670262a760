"""A client of the filepipe API that behaves like the web form: sign in, ask for an upload, POST the file to S3,
create the job, follow it.

Used by the load script and the tests; it speaks only HTTP (and Cognito's API to sign in), so it works against any
running stack, local or on AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from botocore import UNSIGNED
from botocore.config import Config


class SubmitError(Exception):
    """One step of a submission was refused; says which, with the server's answer."""

    def __init__(self, step: str, response: requests.Response) -> None:
        super().__init__(f"{step} failed: HTTP {response.status_code}: {response.text[:300]}")
        self.step = step
        self.status = response.status_code


def access_token(base_url: str, email: str, password: str) -> str:
    """Sign in as the form does: Cognito's `InitiateAuth` (`USER_PASSWORD_AUTH`) with the pool and client named in
    the site's `/config.json` (and its `endpoint`, where Cognito is not AWS's)."""
    auth = requests.get(f"{base_url}/config.json", timeout=10).json()["auth"]
    cognito = boto3.client("cognito-idp", region_name=auth["region"], endpoint_url=auth.get("endpoint"),
                           config=Config(signature_version=UNSIGNED))
    result = cognito.initiate_auth(ClientId=auth["clientId"], AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": email, "PASSWORD": password})
    return str(result["AuthenticationResult"]["AccessToken"])


@dataclass
class ApiClient:
    """One user's view of the API at `base_url`. `token=None` sends no `Authorization` header."""

    base_url: str
    token: str | None = None
    http: requests.Session = field(default_factory=requests.Session)
    s3: requests.Session = field(default_factory=requests.Session)
    """For the presigned POST, which goes to S3 as the browser sends it: without the API's `Authorization`."""

    def __post_init__(self) -> None:
        if self.token is not None:
            self.http.headers["Authorization"] = f"Bearer {self.token}"

    @classmethod
    def signed_in(cls, base_url: str, email: str, password: str) -> ApiClient:
        return cls(base_url, access_token(base_url, email, password))

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(f"{self.base_url}{path}", timeout=kwargs.pop("timeout", 10), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(f"{self.base_url}{path}", timeout=kwargs.pop("timeout", 30), **kwargs)

    def upload(self, filename: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """POST /api/uploads, then the presigned POST as multipart/form-data (fields first, file last); the key."""
        ticket = self.post("/api/uploads", json={"filename": filename, "size": len(data), "content_type": content_type})
        if ticket.status_code != 201:
            raise SubmitError("asking for the upload", ticket)
        body = ticket.json()
        sent = self.s3.post(body["url"], data=body["fields"], files={"file": (filename, data, content_type)},
                            timeout=60)
        if sent.status_code not in (200, 201, 204):
            raise SubmitError("uploading the file", sent)
        return str(body["key"])

    def create_job(self, key: str, text: str) -> dict[str, Any]:
        created = self.post("/api/jobs", json={"input_text": text, "key": key})
        if created.status_code != 201:
            raise SubmitError("creating the job", created)
        return dict(created.json())

    def submit(self, filename: str, data: bytes, text: str,
               content_type: str = "application/octet-stream") -> dict[str, Any]:
        return self.create_job(self.upload(filename, data, content_type), text)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.delete(f"{self.base_url}{path}", timeout=kwargs.pop("timeout", 30), **kwargs)

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/jobs/{job_id}").json())

    def cancel(self, job_id: str) -> requests.Response:
        """POST /api/jobs/<id>/cancel (no body): 200 with the job, now CANCELLED."""
        return self.post(f"/api/jobs/{job_id}/cancel")

    def retry(self, job_id: str) -> requests.Response:
        """POST /api/jobs/<id>/retry (no body): 201 with the new job, or 200 with the one an earlier retry made."""
        return self.post(f"/api/jobs/{job_id}/retry")

    def delete_job(self, job_id: str) -> requests.Response:
        """DELETE /api/jobs/<id>: 204 once the job, its files and its place are gone."""
        return self.delete(f"/api/jobs/{job_id}")
