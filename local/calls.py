"""Which AWS calls each function of a local pipeline makes: the evidence `tests/iam` checks the IAM policies against.

`CallLog.watch(client)` hooks a boto3 client's events (`provide-client-params`, emitted for every API call and every
presigned URL) and records each call made while a function acts (`CallLog.acting_as("jobs")`, set per invocation by
`LocalPipeline`; a context variable, so threads do not mix). A presigned POST (an upload S3 authorises with the
signer's rights) is recorded as the `PutObject` it grants. A local VM's processes record theirs into a file through
`callhook/sitecustomize.py` (`vm_environment`), read back as the `worker`'s.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOOK_DIR = Path(__file__).with_name("callhook")
WORKER = "worker"
_ACTING: ContextVar[str | None] = ContextVar("filepipe_acting_function", default=None)


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call (or presigned request) by one function: `service` as botocore names it (`dynamodb`,
    `dynamodbstreams`, `s3`, `ec2`), the operation's API name and its parameters."""

    function: str
    service: str
    operation: str
    params: Mapping[str, Any]


class CallLog:
    """Every AWS call the watched clients made while a function acted, and the local VMs' calls."""

    def __init__(self) -> None:
        self._calls: list[AwsCall] = []
        self._lock = threading.Lock()
        self._vm_file = Path(tempfile.mkstemp(prefix="filepipe-vm-calls-", suffix=".jsonl")[1])

    @contextlib.contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        token = _ACTING.set(function)
        try:
            yield
        finally:
            _ACTING.reset(token)

    def watch(self, client: Any, function: str | None = None) -> Any:
        """Record `client`'s calls: as `function`'s always (a client only it uses), else as whoever is acting."""
        service = client.meta.service_model.service_name

        def record(params: Mapping[str, Any], model: Any, context: Mapping[str, Any], **_: Any) -> None:
            acting = function or _ACTING.get()
            if acting is None or (context.get("is_presign_request") and model.name == "CreateBucket"):
                return  # a presigned POST serialises as CreateBucket: `presigned_post` records it
            self._add(AwsCall(acting, service, model.name, dict(params)))

        client.meta.events.register(f"provide-client-params.{client.meta.service_model.service_id.hyphenize()}",
                                    record)
        if service == "s3":
            self._watch_presigned_post(client)
        return client

    def _watch_presigned_post(self, client: Any) -> None:
        sign = client.generate_presigned_post

        def presigned_post(Bucket: str, Key: str, **kwargs: Any) -> Any:  # noqa: N803 (boto3's names)
            acting = _ACTING.get()
            if acting is not None:
                self._add(AwsCall(acting, "s3", "PutObject", {"Bucket": Bucket, "Key": Key, "presigned": True}))
                if "tagging" in (kwargs.get("Fields") or {}):  # S3 authorises the POST's tags as PutObjectTagging
                    self._add(AwsCall(acting, "s3", "PutObjectTagging",
                                      {"Bucket": Bucket, "Key": Key, "presigned": True}))
            return sign(Bucket=Bucket, Key=Key, **kwargs)

        client.generate_presigned_post = presigned_post

    def _add(self, call: AwsCall) -> None:
        with self._lock:
            self._calls.append(call)

    def vm_environment(self) -> dict[str, str]:
        """What a local VM's environment needs for its Python processes to record their calls here."""
        return {"PYTHONPATH": str(HOOK_DIR), "FILEPIPE_AWS_CALL_LOG": str(self._vm_file)}

    @property
    def calls(self) -> list[AwsCall]:
        with self._lock:
            recorded = list(self._calls)
        text = self._vm_file.read_text(encoding="utf-8") if self._vm_file.exists() else ""
        for line in text.splitlines():
            found = json.loads(line)
            recorded.append(AwsCall(WORKER, found["service"], found["operation"], found["params"]))
        return recorded

    def close(self) -> None:
        self._vm_file.unlink(missing_ok=True)
