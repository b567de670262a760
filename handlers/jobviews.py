"""What the API handlers share about one job: finding the caller's job, showing it, and the errors they answer.

`handlers.jobs` (create, read) and `handlers.manage` (cancel, retry, delete) both use it; neither entry point
imports the other.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from handlers import jobmodel
from handlers.apigw import ApiError
from handlers.config import ApiConfig
from handlers.jobmodel import Status

RETRY_AFTER_SECONDS = 30
"""What a 429 asks the client to wait: about the shortest a job takes on AWS, a VM's boot included."""
DOWNLOAD_CONTENT_TYPE = "application/octet-stream"


def object_missing(err: ClientError) -> bool:
    """S3 answered that the object does not exist (HEAD says 404 or NotFound, GET and copy say NoSuchKey)."""
    return err.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}


def too_many_jobs(max_active_jobs_per_user: int) -> ApiError:
    """429 for a job (new, or a retry) over the owner's quota, with when to try again."""
    return ApiError(
        429, "too_many_jobs",
        f"You have {max_active_jobs_per_user} jobs that have not finished; submit more when one of them ends.",
        headers={"retry-after": str(RETRY_AFTER_SECONDS)},
    )


def content_disposition(filename: str) -> str:
    """`attachment` with the file's name (RFC 6266): an ASCII `filename` for old clients, `filename*` in UTF-8."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_url(s3: Any, output_path: str, expires_in: int) -> str:
    """A presigned GET that always downloads: an attachment whose type no browser renders, so an uploaded page or
    SVG can never run script on the bucket's origin."""
    bucket, key = jobmodel.split_s3_path(output_path)
    return str(s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ResponseContentDisposition": content_disposition(PurePosixPath(key).name),
            "ResponseContentType": DOWNLOAD_CONTENT_TYPE,
        },
        ExpiresIn=expires_in,
    ))


def file_too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"The file is {size} bytes; the limit is {limit} bytes.")


def job_not_found() -> ApiError:
    return ApiError(404, "job_not_found", "No job has this id.")


def owned_job(ddb: Any, table: str, job_id: object, owner: str) -> dict[str, str]:
    """The caller's job item, read strongly consistent; a malformed id, a missing job and another user's job are
    all `job_not_found`, the same answer (no existence leak)."""
    if not jobmodel.is_id(job_id):
        raise job_not_found()
    found = jobmodel.read_job(ddb, table, job_id)
    if not found or found.get("owner") != owner:
        raise job_not_found()
    return found


def job_view(s3: Any, config: ApiConfig, item: dict[str, str]) -> dict[str, str]:
    """A job as `GET /api/jobs/{id}` shows it: its public fields, and a download link once SUCCEEDED."""
    job = jobmodel.to_public(item)
    if job.get("status") == Status.SUCCEEDED.value and job.get("output_file_path"):
        job["output_url"] = download_url(s3, job["output_file_path"], config.download_expiry_seconds)
    return job
