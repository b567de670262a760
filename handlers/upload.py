"""`POST /api/uploads`: a presigned S3 POST so the browser uploads the file straight to the data bucket."""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from handlers import grants, jobmodel
from handlers.apigw import ApiError, Event, Response, Router, body_limit, caller, json_body, json_response
from handlers.config import ApiConfig
from handlers.services import ApiServices, api_services

log = logging.getLogger(__name__)

MAX_FILENAME_CHARS = 255
SAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STORED_NAME_CHARS = 100
CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*\Z")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
FIELDS = frozenset({"filename", "size", "content_type"})
OWNER_FIELD = "x-amz-meta-owner"
"""Stored as the object's `owner` metadata; the jobs handler accepts only the caller's own uploads."""
TAGGING_FIELD = "tagging"
"""The object's tags, set by S3 from the POST: `jobmodel.UNCLAIMED_UPLOAD_TAG` until a job claims the file."""


def safe_filename(filename: object) -> str:
    """The name an upload is stored under: the user's name reduced to `[A-Za-z0-9._-]`, never a path.

    Names with path separators or control characters are refused rather than silently cut, so the user learns why.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise ApiError(400, "invalid_filename", "filename must be a non-empty string.")
    if len(filename) > MAX_FILENAME_CHARS:
        raise ApiError(400, "invalid_filename", f"filename must be at most {MAX_FILENAME_CHARS} characters.")
    if "/" in filename or "\\" in filename:
        raise ApiError(400, "invalid_filename", "filename must be a file name, not a path.")
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in filename):
        raise ApiError(400, "invalid_filename", "filename must not contain control characters or invalid Unicode.")
    if filename.strip() in {".", ".."}:
        raise ApiError(400, "invalid_filename", "filename must name a file.")
    ascii_name = unicodedata.normalize("NFKD", filename.strip()).encode("ascii", "ignore").decode("ascii")
    stored = SAFE_NAME_CHARS.sub("_", ascii_name)[-MAX_STORED_NAME_CHARS:]
    # After the cut, as the jobs handler's key pattern requires: never a leading `.` (hidden) or `-` (an option).
    stored = stored.lstrip(".-")
    return stored if stored.strip("_.-") else "file"


def checked_size(size: object, max_bytes: int) -> int:
    """The declared size in bytes. `5.0` counts as 5: JSON has one number type, and JSON Schema's `integer` (the
    OpenAPI document's) includes it; `5.5`, `true` and `"5"` do not."""
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError(400, "invalid_size", "size must be a whole number of bytes.")
    if size < 1:
        raise ApiError(400, "invalid_size", "The file is empty: choose a file with some content.")
    if size > max_bytes:
        raise ApiError(413, "file_too_large", f"The file is {size} bytes; the limit is {max_bytes} bytes.")
    return size


def checked_content_type(value: object) -> str:
    if value is None or value == "":
        return DEFAULT_CONTENT_TYPE
    # isascii first: str.lower() maps some non-ASCII letters to ASCII ones (the Kelvin sign to "k").
    if not isinstance(value, str) or len(value) > 127 or not value.isascii() or not CONTENT_TYPE.match(value.lower()):
        raise ApiError(400, "invalid_content_type", "content_type must be a MIME type such as text/plain.")
    return value.lower()


def create_upload(s3: Any, config: ApiConfig, request: dict[str, Any], owner: str) -> dict[str, Any]:
    """Validate the request and presign a POST bounded to this key, this size range, this content type, this owner
    and the unclaimed-upload tag: S3 refuses the upload if any signed field is changed, so an upload is only ever
    usable by its owner, and is removed after a day unless a job claims it."""
    filename = safe_filename(request.get("filename"))
    checked_size(request.get("size"), config.max_file_bytes)
    content_type = checked_content_type(request.get("content_type"))
    key = f"{jobmodel.INPUT_PREFIX}{jobmodel.new_id()}/{filename}"
    post = s3.generate_presigned_post(
        Bucket=config.bucket,
        Key=key,
        Fields={"Content-Type": content_type, OWNER_FIELD: owner, TAGGING_FIELD: jobmodel.unclaimed_upload_tagging()},
        Conditions=[
            ["content-length-range", 1, config.max_file_bytes],
            {"Content-Type": content_type},
            {OWNER_FIELD: owner},
            {TAGGING_FIELD: jobmodel.unclaimed_upload_tagging()},
        ],
        ExpiresIn=config.upload_expiry_seconds,
    )
    return {
        "key": key,
        "url": post["url"],
        "fields": post["fields"],
        "expires_in": config.upload_expiry_seconds,
        "max_bytes": config.max_file_bytes,
    }


def take_grant(ddb: Any, config: ApiConfig, owner: str) -> None:
    """Count this grant against the owner's hourly allowance (`handlers.grants`); 429 with Retry-After when spent."""
    try:
        grants.take_grant(ddb, config.table, owner, config.upload_grants_per_hour)
    except grants.TooManyGrantsError as spent:
        raise ApiError(
            429, "too_many_uploads",
            f"You have asked for {config.upload_grants_per_hour} uploads this hour; try again in "
            f"{spent.retry_after} seconds.",
            headers={"retry-after": str(spent.retry_after)},
        ) from None


router: Router[ApiServices] = Router("upload", aws_calls=1)
"""The grant count (`handlers.grants.take_grant`: one UpdateItem); the presigned POST itself is signed locally,
with the role's credentials from the environment."""


@router.route("POST", "/api/uploads")
def post_upload(event: Event, services: ApiServices) -> Response:
    request = json_body(event, allowed=FIELDS, required=("filename", "size"),
                        max_bytes=body_limit(services.config.max_text_length))
    owner = caller(event)
    upload = create_upload(services.s3, services.config, request, owner)  # a refused request costs no grant
    take_grant(services.ddb, services.config, owner)
    return json_response(201, upload)


def handler(event: Event, context: object) -> Response:
    return router.resolve(event, api_services())
