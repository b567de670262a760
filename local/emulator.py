"""The AWS emulator of local mode: a moto server in a child process, and the environment that points boto3 at it.

moto runs in its own process (not `ThreadedMotoServer`) so that its state is isolated from any in-process
`moto.mock_aws` a test may use at the same time, and so that its request handling does not compete with the web
server, the stream poller and the VM host for this process's GIL.

The child is `python -m local.emulator`: moto's server plus a watchdog on its stdin, a pipe whose write end only
the parent holds. When the parent ends, however it ends (SIGKILL included), the kernel closes that end, the
watchdog reads end-of-file and the emulator exits, so no emulator outlives local mode. (A pipe rather than Linux's
PR_SET_PDEATHSIG, which fires when the *thread* that started the child ends, not the process, and is Linux-only.)
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import boto3
import requests
from botocore.config import Config

log = logging.getLogger("filepipe.local")

HOST = "127.0.0.1"
REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
"""moto accepts any credentials; these are set explicitly so that no real credentials can ever be used. They are
also the only key the emulator's presigned-request checks know (`enforce_presigned_s3`)."""
S3_BACKEND = "s3"
"""moto's name for its S3 application (`moto.backend_index`)."""
START_TIMEOUT_SECONDS = 20.0
LOG_TAIL_BYTES = 4000
REPO_ROOT = Path(__file__).resolve().parent.parent
POOL_CONNECTIONS = 50
"""Connections each local client keeps to the emulator. One client serves every thread of the local web server (a
thread a request); with botocore's default of 10, twenty concurrent requests found the pool full, and each answer
beyond the tenth closed its connection for the next request to open a new one. On AWS one Lambda environment serves
one request at a time, so the handlers keep the default."""
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
                       max_pool_connections=POOL_CONNECTIONS)


def free_port(host: str = HOST) -> int:
    """A port that is free now (there is a small window before the caller binds it; start() retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def aws_environment(endpoint_url: str, region: str = REGION) -> dict[str, str]:
    """Variables that send every boto3 client of a process to the emulator, with fake credentials."""
    return {"AWS_ENDPOINT_URL": endpoint_url, "AWS_DEFAULT_REGION": region, "AWS_REGION": region, **FAKE_CREDENTIALS}


class MotoServer:
    """`python -m moto.server` on 127.0.0.1 and a free port, in this process tree."""

    def __init__(self, host: str = HOST, env: Mapping[str, str] | None = None) -> None:
        """`env`: more environment for the emulator process (the pre sign-up trigger's, `check_sign_ups`)."""
        self.host = host
        self.env = dict(env or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, attempts: int = 3) -> str:
        for _ in range(attempts):
            self.port = free_port(self.host)
            self._log = tempfile.TemporaryFile(prefix="filepipe-moto-", suffix=".log")  # noqa: SIM115
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local.emulator", "-H", self.host, "-p", str(self.port)],
                # The parent-death pipe: this process keeps the write end open and never writes (see main()).
                stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
                # Its own session: the terminal's Ctrl-C (SIGINT to the foreground process group) does not reach it,
                # so it outlives the parts that still use it while local mode stops them in order, then ends it.
                start_new_session=True,
                cwd=REPO_ROOT,
                env={**os.environ, **self.env, "MOTO_PORT": str(self.port)},
            )
            if self._wait_until_up():
                return self.endpoint_url
            self.stop()
        raise RuntimeError(f"the moto server did not start on {self.host}; see its log above")

    def _wait_until_up(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                self._show_log()
                return False
            if self.is_up():
                return True
            time.sleep(0.05)
        self._show_log()
        return False

    def is_up(self) -> bool:
        """Whether the server answers: an anonymous S3 ListBuckets, cheap (unlike /moto-api/data.json, which dumps
        every model), refused 403 AccessDenied as on S3, but an answer from the emulator."""
        try:
            return requests.get(f"{self.endpoint_url}/", timeout=2).status_code < 500
        except requests.RequestException:
            return False

    def _show_log(self) -> None:
        if self._log is not None:
            size = os.fstat(self._log.fileno()).st_size  # pread: the child shares (and moves) the file offset
            tail = os.pread(self._log.fileno(), LOG_TAIL_BYTES, max(0, size - LOG_TAIL_BYTES))
            log.error("moto server output:\n%s", tail.decode(errors="replace"))

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process = None
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None


class EndpointSession:
    """A boto3 session whose clients all talk to one endpoint (the shape `local.provision.provision` expects)."""

    def __init__(self, endpoint_url: str, region: str = REGION) -> None:
        self.endpoint_url = endpoint_url
        self.region_name = region
        self._session = boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=region,
        )

    @property
    def events(self) -> Any:
        """The session's event emitter: a handler registered here is copied into every client made afterwards."""
        return self._session.events

    def client(self, service: str, config: Config | None = None) -> Any:
        """A client for the endpoint, with `config`'s settings (e.g. presigning) but the local timeouts and retries:
        the handlers' AWS limits (`handlers.services.CallLimits`) are too tight for moto on a busy machine."""
        merged = config.merge(CLIENT_CONFIG) if config is not None else CLIENT_CONFIG
        return self._session.client(service, endpoint_url=self.endpoint_url, config=merged)


def exit_with_parent(pipe: IO[bytes]) -> threading.Thread:
    """Exit this process as soon as `pipe` reaches end-of-file: its write end belongs to the parent alone (the
    parent never writes), so end-of-file means the parent has ended, however it ended."""

    def watch() -> None:
        while pipe.read(1024):
            pass
        os._exit(0)  # moto keeps nothing worth flushing; its serving thread must not keep the process alive

    watchdog = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    watchdog.start()
    return watchdog


def make_dynamodb_requests_atomic() -> None:
    """DynamoDB applies each request, its condition and its writes (a whole transaction), atomically. moto's server
    handles requests on several threads with no lock, so two concurrent conditional writes can both see the old item
    and both succeed: ten simultaneous job submissions by one user all passed a limit of five. One lock around moto's
    DynamoDB request handling restores DynamoDB's atomicity (other services are not serialised)."""
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 (only the child imports moto)

    lock = threading.Lock()
    handle = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        with lock:
            return handle(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def roll_transactions_back_by_item() -> None:
    """moto makes a TransactWriteItems undoable by deep-copying every table it touches before applying it, and rolls
    a cancelled one back by putting the copies in place. That made each job creation (a transaction: the job and its
    owner's counter) cost time in proportion to the whole jobs table (30 ms with an empty table, 500 ms with a
    thousand jobs), and the copy took the stream shard with it, so stream readers (which keep the old shard) saw no
    record again after one submission over the per-user limit.

    Requests are serialised (`make_dynamodb_requests_atomic`), so a transaction can instead save just the items it
    names and, when it is cancelled, put those back and drop the stream records of the writes undone: the tables stay
    the same objects, and a transaction costs the same whatever the table's size."""
    from moto.dynamodb import models  # noqa: PLC0415 (only the child imports moto)
    from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415

    transact = models.DynamoDBBackend.transact_write_items

    class TablesNotCopied:
        """Stands in for the `copy` module inside moto's DynamoDB backend during a transaction."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, models.Table) else copy.deepcopy(value, memo)

    def touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
        """(table, hash key, range key, a copy of the item or None) for each item the transaction names."""
        saved = []
        for entry in transact_items:
            op = next(iter(entry.values()), {})
            table = backend.tables.get(op.get("TableName"))
            attrs = op.get("Key") or op.get("Item") or {}
            if table is None or any(name not in attrs for name in (table.hash_key_attr, table.range_key_attr) if name):
                continue  # moto refuses the transaction before writing anything
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = DynamoType(attrs[table.range_key_attr]) if table.has_range_key else None
            saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        return saved

    def put_back(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
        place = table.items[hash_key] if table.has_range_key else table.items
        key = range_key if table.has_range_key else hash_key
        if item is None:
            place.pop(key, None)
        else:
            place[key] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = touched(self, transact_items)
        shards = {table.stream_shard for table, *_ in saved if table.stream_shard is not None}
        lengths = {shard: len(shard.items) for shard in shards}
        models.copy = TablesNotCopied  # type: ignore[assignment]
        try:
            transact(self, transact_items)
        except BaseException:
            for table, hash_key, range_key, item in reversed(saved):
                put_back(table, hash_key, range_key, item)
            for shard in shards:
                del shard.items[lengths[shard]:]
            raise
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


COPY_CHUNK_BYTES = 16 * 1024 * 1024
"""The slices a part copy and a completion move bytes in (moto's own `FakeKey.etag` reads 16 MiB at a time)."""


def read_range(key: Any, first: int, count: int) -> Iterator[bytes]:
    """`count` bytes of moto's FakeKey `key` from `first` (fewer at its end), a slice at a time. Each slice is read
    under the key's lock (as moto's `FakeKey.value` reads the whole), which guards the file's shared position; the
    lock is not held between slices, so two part copies of one source read it side by side."""
    position = first
    while count > 0:
        with key.lock:
            key._value_buffer.seek(position)
            chunk = key._value_buffer.read(min(COPY_CHUNK_BYTES, count))
        if not chunk:
            return
        position += len(chunk)
        count -= len(chunk)
        yield chunk


def write_value(buffer: Any, spool_limit: int, chunks: Iterable[bytes], size: int) -> int:
    """Write `chunks` (`size` bytes in all) into `buffer`, the SpooledTemporaryFile of a moto FakeKey, from its
    start; the bytes written. moto's `value` setter writes a value whole, and one larger than the key's spool limit
    into memory first, then all of it again into the temporary file; this writes a slice at a time, straight into
    the file when `size` is over `spool_limit`."""
    buffer.seek(0)
    buffer.truncate()
    if size > spool_limit:
        buffer.rollover()
    written = 0
    for chunk in chunks:
        buffer.write(chunk)
        written += len(chunk)
    return written


def hashed(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    """`chunks`, each fed to `digest` as it goes by."""
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def copy_only_the_range_of_a_part() -> None:
    """moto answers an UploadPartCopy by reading the whole source object and slicing the range out of it, so an
    object copied in n parts is read n times whole (a 4 GiB input in eight parts: 32 GiB read). Then it writes the
    range into the part (all of it into memory first, then all of it again into the part's temporary file), and its
    answer reads the part back whole to hash its ETag. S3 reads the range once: so does local mode, from the
    object's own buffer, a slice at a time (`read_range`) into the part's file, and the part's ETag (the MD5 of its
    bytes, as S3's) is hashed from the same slices on their way. With 1 GiB in two parts this took 3.7 s a part
    (the whole read, the writes and the re-read), both parts copied side by side; profiled with py-spy."""
    from moto.s3.models import S3Backend  # noqa: PLC0415 (only the child imports moto)

    def upload_part_copy(self: S3Backend, dest_bucket_name: str, multipart_id: str, part_id: int, *,
                         src_bucket_name: str, src_key_name: str, src_version_id: str | None,
                         start_byte: int | None, end_byte: int | None) -> Any:
        multipart = self.get_bucket(dest_bucket_name).multiparts[multipart_id]
        source = self.get_object(src_bucket_name, src_key_name, version_id=src_version_id)
        first = start_byte or 0
        count = source.size - first if start_byte is None or end_byte is None else end_byte - first + 1
        count = max(0, min(count, source.size - first))
        part = multipart.set_part(part_id, b"")
        md5 = hashlib.md5(usedforsecurity=False)
        slices = hashed(read_range(source, first, count), md5)
        part.contentsize = write_value(part._value_buffer, part._max_buffer_size, slices, count)
        part._etag = md5.hexdigest()  # what moto's FakeKey.etag would hash from the part, and cache there
        return part

    S3Backend.upload_part_copy = upload_part_copy  # type: ignore[method-assign]


class JoinedParts:
    """The value of a completed multipart upload: its parts, in order, written once into a new temporary file a
    slice at a time, with moto's default checksum of the whole (`checksum`) computed from the same slices. The
    object's key takes the file as it is (`join_parts_once`)."""

    def __init__(self, parts: Sequence[Any], spool_limit: int) -> None:
        self.file = tempfile.SpooledTemporaryFile(spool_limit)  # noqa: SIM115 (the object's key owns it)
        self.crc = 0
        self.size = write_value(self.file, spool_limit, self.slices(parts), sum(part.contentsize for part in parts))

    def slices(self, parts: Sequence[Any]) -> Iterator[bytes]:
        for part in parts:
            for chunk in read_range(part, 0, part.contentsize):
                self.crc = zlib.crc32(chunk, self.crc)
                yield chunk

    @property
    def checksum(self) -> str:
        """moto's checksum of a multipart object with none asked for: `MultipartChecksumBuilder`'s FULL_OBJECT
        CRC64NVME, which without awscrt `moto.s3.utils.compute_checksum` makes a CRC32 of the whole object (4 bytes,
        big-endian, base64). `join_parts_once` leaves the case with awscrt to moto."""
        return base64.b64encode(self.crc.to_bytes(4, "big")).decode()


def join_parts_once() -> None:
    """moto completes a multipart upload by reading every part whole twice (once into the object, once into its
    default checksum), copying both joins twice more, then writing the object into memory and again into its
    temporary file: for a 1 GiB object, 8 GiB read, copied or written, 5.8 s when profiled with py-spy here. S3
    joins the parts as they are and computes the object's ETag from the parts' MD5s ("<MD5 of the part MD5s>-<number
    of parts>"), which moto already does. Local mode checks the parts as moto does, then writes each part once into
    the object's file, a slice at a time, and computes moto's default checksum from the same slices. (The join is
    made in `FakeMultipart.complete`, as moto makes it: moto closes the parts' files before it stores the object.)

    A completion that asks for a checksum (x-amz-checksum-algorithm or -type), or a moto with awscrt (whose CRC64NVME
    this does not compute), is left to moto."""
    from moto.core.compat import HAS_CRT  # noqa: PLC0415 (only the child imports moto)
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML  # noqa: PLC0415
    from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, FakeKey, FakeMultipart, S3Backend  # noqa: PLC0415
    from moto.settings import get_s3_default_key_buffer_size  # noqa: PLC0415

    complete = FakeMultipart.complete
    set_value = FakeKey.value.fset
    complete_upload = S3Backend.complete_multipart_upload

    def complete_once(self: FakeMultipart, body: Iterable[tuple[int, str]]) -> Any:
        if HAS_CRT or self.metadata.get("x-amz-checksum-algorithm") or self.metadata.get("x-amz-checksum-type"):
            return complete(self, body)
        parts: list[Any] = []
        for number, etag in body:
            part = self.parts.get(number)
            if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
                raise InvalidPart()
            if parts and parts[-1].contentsize < S3_UPLOAD_PART_MIN_SIZE:
                raise EntityTooSmall()
            parts.append(part)
        if not parts:
            raise MalformedXML
        md5s = b"".join(bytes.fromhex(part.etag.replace('"', "")) for part in parts)
        etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(parts)}"
        joined = self.joined = JoinedParts(parts, get_s3_default_key_buffer_size())  # type: ignore[attr-defined]
        return joined, etag, None  # moto's complete_multipart_upload stores `joined` as the object's value

    def value(self: FakeKey, new_value: Any) -> None:
        if isinstance(new_value, JoinedParts):  # the key takes the joined file (FakeKey's default spool limit)
            self._value_buffer.close()
            self._value_buffer, self.contentsize = new_value.file, new_value.size
        else:
            set_value(self, new_value)

    def complete_multipart_upload(self: S3Backend, bucket_name: str, multipart_id: str,
                                  body: Iterable[tuple[int, str]]) -> Any:
        multipart = self.get_bucket(bucket_name).multiparts.get(multipart_id)
        key = complete_upload(self, bucket_name, multipart_id, body)
        joined = getattr(multipart, "joined", None)
        if key is not None and joined is not None:
            key.checksum_type, key.checksum_value, key.checksum_parts = "FULL_OBJECT", joined.checksum, 1
        return key

    FakeMultipart.complete = complete_once  # type: ignore[method-assign]
    FakeKey.value = FakeKey.value.setter(value)  # type: ignore[attr-defined,method-assign]
    S3Backend.complete_multipart_upload = complete_multipart_upload  # type: ignore[method-assign]


def enforce_presigned_s3() -> None:
    """moto's S3 application behind `local.presigned.PresignedS3Guard`: presigned POSTs and query-string signatures
    are checked as S3 checks them, with this emulator's fake credentials as the only known key. The guard is put on
    the application moto's dispatcher picks for S3 (by path, headers and body), so Cognito's unsigned calls and JWKS
    and the other services are untouched."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: PLC0415 (child only)

    from local.presigned import PresignedS3Guard  # noqa: PLC0415

    get_application = DomainDispatcherApplication.get_application
    guards: dict[int, PresignedS3Guard] = {}
    secrets = {FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}

    def guarded(self: DomainDispatcherApplication, environ: dict[str, Any]) -> Any:
        app = get_application(self, environ)
        if app is not self.app_instances.get(S3_BACKEND):
            return app
        with self.lock:
            return guards.setdefault(id(app), PresignedS3Guard(app, secrets))

    DomainDispatcherApplication.get_application = guarded  # type: ignore[method-assign]


def apply_post_tagging() -> None:
    """S3 tags an object POSTed with a `tagging` form field (the upload's unclaimed tag, `handlers.upload`); moto
    stores the object and ignores the field. Applied after moto's own POST handling, only when it succeeded."""
    import xmltodict  # noqa: PLC0415 (child only; moto's own dependency)
    from moto.s3.responses import S3Response  # noqa: PLC0415

    post = S3Response._bucket_response_post

    def _bucket_response_post(self: S3Response, request: Any, bucket_name: str) -> Any:
        status, headers, body = post(self, request, bucket_name)
        tagging = (self.querystring.get("tagging") or [""])[0]
        if tagging and 200 <= int(status) < 300 and self.querystring.get("key"):
            parsed = xmltodict.parse(tagging, force_list={"Tag": True})
            tags = {tag["Key"]: tag["Value"] or "" for tag in parsed["Tagging"]["TagSet"]["Tag"]}
            self.backend.put_object_tagging(self.backend.get_object(bucket_name, self.querystring["key"][0]), tags)
        return status, headers, body

    S3Response._bucket_response_post = _bucket_response_post  # type: ignore[method-assign]


def untag_missing_objects_as_s3_does() -> None:
    """S3 answers DeleteObjectTagging of a key that does not exist with 404 NoSuchKey; moto fails with a 500
    (it dereferences the missing key). The launcher claims each new job's upload this way, and a job whose upload
    is already gone must still be queued, to fail with its reason."""
    from moto.s3.exceptions import MissingKey  # noqa: PLC0415 (child only)
    from moto.s3.models import S3Backend  # noqa: PLC0415

    untag = S3Backend.delete_object_tagging

    def delete_object_tagging(self: S3Backend, bucket_name: str, key_name: str, version_id: str | None = None) -> None:
        if self.get_object(bucket_name, key_name, version_id=version_id) is None:
            raise MissingKey(key=key_name)
        untag(self, bucket_name, key_name, version_id=version_id)

    S3Backend.delete_object_tagging = delete_object_tagging  # type: ignore[method-assign]


def check_sign_ups() -> None:
    """Cognito calls the pool's pre sign-up trigger before each SignUp; moto calls none. The emulator runs the same
    function (`handlers.presignup`, with `ALLOWED_EMAIL_DOMAINS` from this process's environment) and refuses as
    Cognito does: UserLambdaValidationException "PreSignUp failed with error <message>."."""
    from moto.cognitoidp.models import CognitoIdpBackend  # noqa: PLC0415 (child only)
    from moto.core.exceptions import JsonRESTError  # noqa: PLC0415

    from handlers import presignup  # noqa: PLC0415

    allowed = presignup.allowed_domains()
    sign_up = CognitoIdpBackend.sign_up

    def checked_sign_up(self: CognitoIdpBackend, client_id: str, username: str, password: str,
                        attributes: list[dict[str, str]]) -> Any:
        email = next((a["Value"] for a in attributes if a["Name"] == "email"), username)
        event = {"triggerSource": presignup.SELF_SIGN_UP, "userName": username,
                 "request": {"userAttributes": {"email": email}}}
        try:
            presignup.check_event(event, allowed)
        except presignup.DomainNotAllowedError as refused:
            raise JsonRESTError("UserLambdaValidationException", f"PreSignUp failed with error {refused}.") from None
        return sign_up(self, client_id, username, password, attributes)

    CognitoIdpBackend.sign_up = checked_sign_up  # type: ignore[method-assign]


def enforce_client_write_attributes() -> None:
    """Cognito refuses an UpdateUserAttributes that writes an attribute outside the app client's WriteAttributes
    (NotAuthorizedException "A client attempted to write unauthorized attribute"); moto writes any. Without this a
    signed-in user could set `email_verified=true` locally, which AWS refuses (`stackspec.userpool`)."""
    from moto.cognitoidp.exceptions import NotAuthorizedError  # noqa: PLC0415 (child only)
    from moto.cognitoidp.models import CognitoIdpBackend  # noqa: PLC0415

    update = CognitoIdpBackend.update_user_attributes

    def update_user_attributes(self: CognitoIdpBackend, access_token: str, attributes: list[dict[str, str]]) -> None:
        for pool in self.user_pools.values():
            if access_token in pool.access_tokens:
                client = pool.clients.get(pool.access_tokens[access_token][0])
                allowed = client.extended_config.get("WriteAttributes") if client is not None else None
                if allowed is not None and any(attribute["Name"] not in allowed for attribute in attributes):
                    raise NotAuthorizedError("A client attempted to write unauthorized attribute")
        update(self, access_token, attributes)

    CognitoIdpBackend.update_user_attributes = update_user_attributes  # type: ignore[method-assign]


def main(argv: Sequence[str]) -> None:
    """`python -m local.emulator -H <host> -p <port>`: moto's server, for as long as the parent lives."""
    from moto.server import main as moto_server  # noqa: PLC0415 (1.7 s to import; only the child needs it)

    exit_with_parent(sys.stdin.buffer)
    make_dynamodb_requests_atomic()
    roll_transactions_back_by_item()
    copy_only_the_range_of_a_part()
    join_parts_once()
    enforce_presigned_s3()
    apply_post_tagging()
    untag_missing_objects_as_s3_does()
    enforce_client_write_attributes()
    check_sign_ups()
    moto_server(list(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
