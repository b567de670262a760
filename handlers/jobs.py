"""`POST /api/jobs`, `GET /api/jobs`, `GET /api/jobs/{id}` and `GET /api/health`.

A job's id is the upload id inside its key (`inputs/<id>/<name>`): one upload can feed only one job, and the
conditional put that creates the job is also what refuses a second job for the same upload (409), with no
check-then-act window.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from botocore.exceptions import ClientError

from handlers import cursors, jobmodel, quota
from handlers.apigw import (
    ApiError,
    Event,
    Response,
    Router,
    body_limit,
    caller,
    json_body,
    json_response,
    query_parameters,
)
from handlers.config import ApiConfig
from handlers.jobviews import file_too_large, job_view, object_missing, owned_job, too_many_jobs
from handlers.services import ApiServices, api_services

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^inputs/(?P<id>[A-Za-z0-9_-]{21})/(?P<name>[A-Za-z0-9_][A-Za-z0-9._-]{0,99})\Z")
ALLOWED_TEXT_CONTROLS = {"\n", "\t"}
LIST_LIMIT = 50
"""The most jobs `GET /api/jobs` returns, and the largest `limit` it accepts."""
LIMIT_PATTERN = re.compile(r"^[1-9][0-9]{0,5}\Z")
LIST_PARAMETERS = frozenset({"limit", "next"})
FIELDS = frozenset({"input_text", "key"})
OWNER_METADATA = "owner"
"""The upload's `x-amz-meta-owner`, fixed by the presigned POST's policy (handlers/upload.py)."""


def normalised_newlines(text: str) -> str:
    r"""`\r\n` and a lone `\r` become `\n`, as HTML does for a textarea's value.

    A form submitted natively, a Windows client or a paste can send `\r\n`; refusing it would reject text the user
    sees as ordinary lines, and keeping it would make the output's line breaks depend on the client.
    """
    return text.replace("\r\n", "\n").replace("\r", "\n")


def checked_text(text: object, max_length: int) -> str:
    """The text as stored: newlines normalised, trimmed, non-empty, within the cap (counted after both), no
    control characters but newline and tab."""
    if not isinstance(text, str):
        raise ApiError(400, "invalid_text", "input_text must be a string.")
    text = normalised_newlines(text).strip()
    if not text:
        raise ApiError(400, "invalid_text", "Type a text: input_text is empty.")
    if len(text) > max_length:
        raise ApiError(400, "text_too_long", f"The text is {len(text)} characters; the limit is {max_length}.")
    if any(unicodedata.category(c) in {"Cc", "Cs"} and c not in ALLOWED_TEXT_CONTROLS for c in text):
        raise ApiError(400, "invalid_text", "The text may not contain control characters other than newline and tab.")
    return text


def checked_key(key: object) -> tuple[str, str]:
    """Return (job id, key) for a key that the upload handler could have issued."""
    if not isinstance(key, str):
        raise ApiError(400, "invalid_key", "key must be a string.")
    match = KEY_PATTERN.match(key)
    if not match:
        raise ApiError(400, "invalid_key", "key is not an upload key issued by POST /api/uploads.")
    return match["id"], key


def uploaded_size(s3: Any, bucket: str, key: str, owner: str) -> int:
    """Size of the caller's upload; another user's upload is as unknown as a missing one (no existence leak)."""
    not_found = ApiError(404, "upload_not_found", "No uploaded file has this key: upload the file first.")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if object_missing(err):
            raise not_found from None
        raise
    if head.get("Metadata", {}).get(OWNER_METADATA) != owner:
        raise not_found
    return int(head["ContentLength"])


def create_job(ddb: Any, s3: Any, config: ApiConfig, request: dict[str, Any], owner: str) -> dict[str, str]:
    """Validate text and upload, then save the job as PENDING within the owner's quota; the table's stream takes it
    from there."""
    text = checked_text(request.get("input_text"), config.max_text_length)
    job_id, key = checked_key(request.get("key"))
    size = uploaded_size(s3, config.bucket, key, owner)
    if size > config.max_file_bytes:
        raise file_too_large(size, config.max_file_bytes)
    if size == 0:
        raise ApiError(400, "empty_file", "The uploaded file is empty.")
    item = jobmodel.new_job(job_id, text, f"{config.bucket}/{key}", owner)
    try:
        quota.create_job(ddb, config.table, item, config.max_active_jobs_per_user)
    except quota.JobExistsError:
        raise ApiError(409, "key_in_use", "This upload already belongs to a job: upload the file again.") from None
    except quota.QuotaExceededError:
        raise too_many_jobs(config.max_active_jobs_per_user) from None
    log.info("job created", extra={"job_id": job_id, "bytes": size})
    return jobmodel.to_public(item)


def get_job(ddb: Any, s3: Any, config: ApiConfig, job_id: object, owner: str) -> dict[str, str]:
    """The caller's job; another user's is `job_not_found`, exactly like a missing one."""
    return job_view(s3, config, owned_job(ddb, config.table, job_id, owner))


def list_jobs(
    ddb: Any, config: ApiConfig, owner: str, limit: int = LIST_LIMIT, cursor: str | None = None
) -> dict[str, Any]:
    """The caller's jobs newest first, at most `limit`, from the `by-owner` index; `next` when there are more."""
    query: dict[str, Any] = {
        "TableName": config.table,
        "IndexName": jobmodel.OWNER_INDEX,
        "KeyConditionExpression": "#owner = :owner",
        "ExpressionAttributeNames": {"#owner": "owner"},
        "ExpressionAttributeValues": {":owner": {"S": owner}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if cursor is not None:
        query["ExclusiveStartKey"] = cursors.decode(cursor, owner)
    page = ddb.query(**query)
    listed: dict[str, Any] = {"jobs": [jobmodel.to_public(jobmodel.from_dynamodb(i)) for i in page.get("Items", [])]}
    if "LastEvaluatedKey" in page:
        listed["next"] = cursors.encode(page["LastEvaluatedKey"])
    return listed


def checked_limit(params: dict[str, str]) -> int:
    """`?limit=N` for `GET /api/jobs`: a whole number from 1 to LIST_LIMIT; absent means LIST_LIMIT."""
    raw = params.get("limit")
    if raw is None:
        return LIST_LIMIT
    if not LIMIT_PATTERN.match(raw) or int(raw) > LIST_LIMIT:
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {LIST_LIMIT}.")
    return int(raw)


router: Router[ApiServices] = Router("jobs", aws_calls=2)
"""Two calls at most: POST's HeadObject of the upload, then the job's TransactWriteItems (a GET makes one)."""


@router.route("POST", "/api/jobs")
def post_job(event: Event, services: ApiServices) -> Response:
    request = json_body(event, allowed=FIELDS, required=("input_text", "key"),
                        max_bytes=body_limit(services.config.max_text_length))
    return json_response(201, create_job(services.ddb, services.s3, services.config, request, caller(event)))


@router.route("GET", "/api/jobs", query=LIST_PARAMETERS)
def get_jobs(event: Event, services: ApiServices) -> Response:
    params = query_parameters(event, allowed=LIST_PARAMETERS)
    listed = list_jobs(services.ddb, services.config, caller(event), checked_limit(params), params.get("next"))
    return json_response(200, listed)


@router.route("GET", "/api/jobs/{id}")
def get_one_job(event: Event, services: ApiServices) -> Response:
    job_id = (event.get("pathParameters") or {}).get("id")
    return json_response(200, get_job(services.ddb, services.s3, services.config, job_id, caller(event)))


@router.route("GET", "/api/health", public=True)
def health(event: Event, services: ApiServices) -> Response:
    return json_response(200, {"status": "ok"})


def handler(event: Event, context: object) -> Response:
    return router.resolve(event, api_services())
