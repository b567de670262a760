"""S3's checks of presigned requests, in front of the emulator's S3 (moto checks none of them).

On AWS a browser reaches the data bucket only with what a function presigned: the upload form's POST (a policy and
its signature) and the download link (a query-string signature). moto stores any POST and serves any GET, so locally
a user could change the form's `key` and write another user's upload or `worker/worker.py`, spoof the owner, exceed
the size range, or add `response-content-type` to a download link. This WSGI middleware, wrapped around moto's S3
application inside the emulator process (`local.emulator`), refuses those requests as S3 does, with S3's statuses
and XML error codes, and passes everything else to moto unchanged.

No maintained library does this (moto has no option for it; LocalStack's `localstack/services/s3/presigned_url.py`
checks a POST policy's expiry and conditions but not its signature or extra fields, and is not usable outside
LocalStack). The signatures are recomputed by botocore's own signers (`S3SigV4QueryAuth`, `SigV4Auth.signature`);
what is written here is the glue: which fields and conditions, and S3's answers. Sources:
- POST: "POST Policy" and "Authenticating Requests: Browser-Based Uploads Using POST (AWS Signature Version 4)",
  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html and
  .../sigv4-authentication-HTTPPOST.html (every form field but `x-amz-signature`, `file`, `policy` and `x-ignore-*`
  must be named by a condition; exact, `starts-with` and `content-length-range` matching).
- Query strings: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html.
- Codes and statuses: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html; the messages as AWS
  answers them, recorded in LocalStack's snapshot tests (tests/aws/services/s3/test_s3.snapshot.json at
  8b9a79f05846835cf4dff63ab7eefdde9df83783: "Invalid according to Policy: Policy expired.", "... Policy Condition
  failed: [...]", EntityTooLarge/EntityTooSmall, "Request has expired", SignatureDoesNotMatch's text) and minio's
  ("Invalid according to Policy: Extra input fields: <name>").

Requests signed in an `Authorization` header (the stack's own clients: handlers, launcher, VMs) pass unchecked: their
fake credentials are in this repository, so anyone who can reach the emulator can sign with them. That is why local
mode listens on loopback and is a single-user development stack; what this module adds is that the browser's paths
behave as on AWS, so the POST policy the upload handler writes is tested locally.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import io
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.formparser import parse_form_data
from werkzeug.wsgi import get_input_stream

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ALGORITHM = "AWS4-HMAC-SHA256"
QUERY_AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders",
                     "X-Amz-Expires")
SIGV2_QUERY_PARAMS = ("AWSAccessKeyId", "Signature", "Expires")
POST_SIGNATURE_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")
NOT_IN_CONDITIONS = frozenset({"x-amz-signature", "file", "policy"})
"""Form fields a policy need not name (besides `x-ignore-*`)."""
MAX_PRESIGN_SECONDS = 604_800
"""A week: S3's limit on X-Amz-Expires (sigv4-query-string-auth)."""
SPOOL_BYTES = 1024 * 1024
SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                      "Check your key and signing method.")


@dataclass(frozen=True)
class S3Error(Exception):
    """An S3 error answer: status, code, message and S3's extra elements (e.g. MaxSizeAllowed)."""

    status: int
    code: str
    message: str
    extra: tuple[tuple[str, str], ...] = ()

    def body(self) -> bytes:
        elements = [("Code", self.code), ("Message", self.message), *self.extra,
                    ("RequestId", uuid.uuid4().hex[:16].upper()), ("HostId", "local")]
        inner = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in elements)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()

    def response(self, extra_headers: Iterable[tuple[str, str]] = ()) -> WsgiApp:
        """The answer as a WSGI app, with `extra_headers` (the bucket's CORS headers for a browser's request)."""

        def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = self.body()
            start_response(f"{self.status} {STATUS_TEXT.get(self.status, '')}".strip(),
                           [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
                            *extra_headers])
            return [body]

        return answer


STATUS_TEXT = {400: "Bad Request", 403: "Forbidden"}
CORS_ANSWER_HEADERS = frozenset({"access-control-allow-origin", "access-control-expose-headers"})


def access_denied(message: str = "Access Denied") -> S3Error:
    return S3Error(403, "AccessDenied", message)


def policy_failed(condition: Any) -> S3Error:
    return access_denied(f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}")


def invalid_argument(message: str, name: str, value: str = "") -> S3Error:
    return S3Error(400, "InvalidArgument", message, (("ArgumentName", name), ("ArgumentValue", value)))


class PresignedS3Guard:
    """WSGI middleware: S3's checks of presigned POSTs and query-string signatures, then the wrapped app (moto's S3).

    `secrets`: secret access key by access key id (the emulator's fake credentials); `clock`: seconds since the epoch.
    """

    def __init__(self, app: WsgiApp, secrets: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.secrets = dict(secrets)
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            self.check(environ)
        except S3Error as refusal:
            return refusal.response(self.cors_headers(environ))(environ, start_response)
        return self.app(environ, start_response)

    def cors_headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """The `Access-Control-*` headers S3 adds to an answer to a browser (a request with `Origin`) that the
        bucket's CORS rules allow, so the page can read the error: moto's own evaluation of a preflight for the same
        path and method."""
        if not environ.get("HTTP_ORIGIN"):
            return []
        preflight = {key: value for key, value in environ.items() if key.startswith("HTTP_") or key in {
            "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SCRIPT_NAME",
            "wsgi.url_scheme", "wsgi.version", "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess",
            "wsgi.run_once", "REMOTE_ADDR"}}
        preflight.update({"REQUEST_METHOD": "OPTIONS", "HTTP_ACCESS_CONTROL_REQUEST_METHOD":
                          environ.get("REQUEST_METHOD", "GET"), "wsgi.input": io.BytesIO(), "CONTENT_LENGTH": "0"})
        preflight.pop("HTTP_AUTHORIZATION", None)
        answered: list[tuple[str, str]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            if status.startswith("200"):
                answered.extend((n, v) for n, v in headers if n.lower() in CORS_ANSWER_HEADERS)

        for _ in self.app(preflight, start_response):
            pass
        return answered

    def check(self, environ: dict[str, Any]) -> None:
        """Raise the S3Error S3 would answer; return when the request may go to the emulator."""
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "OPTIONS" or environ.get("HTTP_AUTHORIZATION"):
            return  # CORS preflights are answered without credentials; header-signed calls: see the module's doc
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if any(name in query for name in QUERY_AUTH_PARAMS):
            self.check_query_signature(environ, query)
        elif any(name in query for name in SIGV2_QUERY_PARAMS):
            raise access_denied("Query-string authentication version 2 is not accepted by this emulator.")
        elif method == "POST" and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
            self.check_post(environ)
        else:
            raise access_denied()  # an anonymous request to a private bucket

    # -- presigned query strings --------------------------------------------------------------------------------
    def check_query_signature(self, environ: dict[str, Any], query: Mapping[str, str]) -> None:
        missing = [name for name in QUERY_AUTH_PARAMS if name not in query]
        if missing:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                          "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
        signed = {name.strip().lower() for name in query["X-Amz-SignedHeaders"].split(";")}
        headers = request_headers(environ)
        unsigned = sorted(name for name in headers if name.startswith("x-amz-") and name not in signed)
        if unsigned:
            raise S3Error(403, "AccessDenied", "There were headers present in the request which were not signed",
                          (("HeadersNotSigned", ", ".join(unsigned)),))
        signer, timestamp = self.signer(query["X-Amz-Credential"], query["X-Amz-Date"], S3SigV4QueryAuth)
        raw_path, _, raw_query = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").partition("?")
        unsigned_query = "&".join(part for part in raw_query.split("&")
                                  if part.partition("=")[0] != "X-Amz-Signature")
        host = headers.get("host", "")
        request = AWSRequest(method=environ.get("REQUEST_METHOD", "GET"),
                             url=f"http://{host}{raw_path}?{unsigned_query}",
                             headers={name: value for name, value in headers.items() if name in signed})
        request.context["timestamp"] = timestamp
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            raise S3Error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        try:
            expires = int(query["X-Amz-Expires"])
        except ValueError:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "X-Amz-Expires should be a number") from None
        if not 0 <= expires <= MAX_PRESIGN_SECONDS:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "X-Amz-Expires must be less than a week (in seconds) that is; 604800")
        signed_at = parse_timestamp(timestamp)
        if self.clock() > signed_at.timestamp() + expires:
            raise access_denied("Request has expired")

    def signer(self, credential: str, timestamp: str, kind: type[SigV4Auth]) -> tuple[SigV4Auth, str]:
        """botocore's signer for this credential scope (`<key id>/<yyyymmdd>/<region>/s3/aws4_request`)."""
        parts = credential.split("/")
        if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
            raise S3Error(400, "AuthorizationQueryParametersError",
                          'Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting '
                          '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
        key_id, day, region = parts[0], parts[1], parts[2]
        secret = self.secrets.get(key_id)
        if secret is None:
            raise S3Error(403, "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not exist in our records.",
                          (("AWSAccessKeyId", key_id),))
        parse_timestamp(timestamp)
        if not timestamp.startswith(day):
            raise S3Error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        return kind(Credentials(key_id, secret), "s3", region), timestamp

    # -- presigned POST -----------------------------------------------------------------------------------------
    def check_post(self, environ: dict[str, Any]) -> None:
        """Parse the form from a spooled copy of the body, check it, and leave the copy as the body moto reads."""
        body = spool_body(environ)
        _, form, files = parse_form_data({**environ, "wsgi.input": body})
        body.seek(0)
        fields = {name.lower(): value for name, value in form.items()}
        upload = files.get("file")
        size = file_size(upload.stream) if upload is not None else None
        self.check_policy(fields, bucket_of(environ.get("PATH_INFO", "")), size)

    def check_policy(self, fields: Mapping[str, str], bucket: str, size: int | None) -> None:
        """S3's checks of a POST's fields (names in lower case) against its policy, in S3's order."""
        if "policy" not in fields and "x-amz-signature" not in fields:
            raise access_denied()  # no policy: an anonymous write, refused by a private bucket
        for name in ("key", "policy", *POST_SIGNATURE_FIELDS):
            if not fields.get(name):
                argument = name if "-" not in name else "-".join(p.capitalize() for p in name.split("-"))
                raise invalid_argument(f"Bucket POST must contain a field named '{argument}'.  If it is specified, "
                                       "please check the order of the fields.", argument)
        if fields["x-amz-algorithm"] != ALGORITHM:
            raise invalid_argument("Only AWS4-HMAC-SHA256 is supported", "X-Amz-Algorithm", fields["x-amz-algorithm"])
        signer, timestamp = self.signer(fields["x-amz-credential"], fields["x-amz-date"], SigV4Auth)
        request = AWSRequest()
        request.context["timestamp"] = timestamp
        if not hmac.compare_digest(signer.signature(fields["policy"], request), fields["x-amz-signature"]):
            raise S3Error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        policy = decode_policy(fields["policy"])
        if self.clock() > parse_expiration(policy.get("expiration")).timestamp():
            raise access_denied("Invalid according to Policy: Policy expired.")
        conditions = policy.get("conditions")
        if not isinstance(conditions, list):
            raise S3Error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid 'conditions' value: must be a List.")
        named = {field_of(condition) for condition in conditions}
        extra = sorted(name for name in fields
                       if name not in NOT_IN_CONDITIONS and not name.startswith("x-ignore-") and name not in named)
        if extra:
            raise access_denied(f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")
        if size is None:
            raise S3Error(400, "IncorrectNumberOfFilesInPostRequest",
                          "POST requires exactly one file upload per request.")
        for condition in conditions:
            check_condition(condition, {**fields, "bucket": bucket}, size)


def check_condition(condition: Any, values: Mapping[str, str], size: int) -> None:
    """One policy condition: `{"name": value}`, `["eq", "$name", value]`, `["starts-with", "$name", prefix]` or
    `["content-length-range", min, max]`; field names are case-insensitive, values are not."""
    if isinstance(condition, dict):
        if len(condition) != 1:
            raise S3Error(400, "InvalidPolicyDocument",
                          "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one "
                          "property specified.")
        (name, value), = condition.items()
        condition = ["eq", f"${name}", value]
    match condition:
        case ["eq", str(name), str(value)] if name.startswith("$"):
            if values.get(name[1:].lower(), "") != value:
                raise policy_failed(condition)
        case ["starts-with", str(name), str(prefix)] if name.startswith("$"):
            if not values.get(name[1:].lower(), "").startswith(prefix):
                raise policy_failed(condition)
        case ["content-length-range", low, high]:
            try:
                low, high = int(low), int(high)
            except (TypeError, ValueError):
                raise policy_failed(condition) from None
            if size < low:
                raise S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                              (("ProposedSize", str(size)), ("MinSizeAllowed", str(low))))
            if size > high:
                raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                              (("ProposedSize", str(size)), ("MaxSizeAllowed", str(high))))
        case _:
            raise S3Error(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {json.dumps(condition)}")


def field_of(condition: Any) -> str | None:
    """The form field a condition names (lower case), or None (`content-length-range`)."""
    if isinstance(condition, dict) and len(condition) == 1:
        return str(next(iter(condition))).lower()
    if isinstance(condition, list) and len(condition) == 3 and isinstance(condition[1], str):
        return condition[1].removeprefix("$").lower()
    return None


def decode_policy(encoded: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise S3Error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if not isinstance(policy, dict):
        raise S3Error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
    return policy


def parse_expiration(value: object) -> datetime.datetime:
    """The policy's `expiration`, ISO 8601 in UTC with or without milliseconds (`2007-12-01T12:00:00.000Z`)."""
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(str(value), layout).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
    raise S3Error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value: "
                  f"'{value}'")


def parse_timestamp(value: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(value, SIGV4_TIMESTAMP).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise S3Error(400, "AuthorizationQueryParametersError",
                      "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"") from None


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name, as the client signed them."""
    headers = {name[5:].replace("_", "-").lower(): str(value)
               for name, value in environ.items() if name.startswith("HTTP_")}
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = str(environ[name])
    return headers


def bucket_of(path: str) -> str:
    """`/bucket` or `/bucket/` (a path-style POST) -> `bucket`."""
    return path.strip("/").split("/", 1)[0]


def spool_body(environ: dict[str, Any]) -> IO[bytes]:
    """Read the body into a spooled file (memory, then disk) that replaces it, with its length, for moto."""
    body = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (handed on as the request body)
    stream = get_input_stream(environ)
    while chunk := stream.read(64 * 1024):
        body.write(chunk)
    length = body.tell()
    body.seek(0)
    environ["wsgi.input"] = body
    environ["CONTENT_LENGTH"] = str(length)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return body


def file_size(stream: IO[bytes]) -> int:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return size
