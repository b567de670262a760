"""The user-data's instance metadata calls, run by bash and curl against a metadata service that fails the way IMDS
can at boot (refused connections, 503s, a hang): retried, and each attempt bounded."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.userdata import render_user_data

JOB_ID = "job-from-the-tag"
HANG_SECONDS = 30


def imds_part() -> str:
    """The rendered user-data from its first line to the last metadata read (nothing after runs)."""
    script = render_user_data(bucket="b", table="t", timeout_minutes=5)
    head, rest = script.split("trap power_off EXIT\n", 1)
    reads = rest[: rest.index("export AWS_DEFAULT_REGION")]
    reads = reads.replace('shutdown -h "+${TIMEOUT_MINUTES}"\n', "")  # no watchdog on the test machine
    return head + reads + 'printf "%s %s %s" "${job_id}" "${instance_id}" "${AWS_DEFAULT_REGION}"\n'


class Imds(BaseHTTPRequestHandler):
    """Answers like IMDSv2 after `fail_first` 503s; the first `hang_first` requests hang for `HANG_SECONDS`."""

    fail_first = 0
    hang_first = 0
    requests = 0

    def _answer(self, body: str) -> None:
        cls = type(self)
        cls.requests += 1
        if cls.requests <= cls.hang_first:
            time.sleep(HANG_SECONDS)
        if cls.requests <= cls.fail_first:
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def do_PUT(self) -> None:
        self._answer("token")

    def do_GET(self) -> None:
        path = self.path.removeprefix("/latest/meta-data/")
        self._answer({"instance-id": "i-0123", "placement/region": "eu-west-1"}.get(path, JOB_ID))

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def imds() -> Iterator[tuple[str, type[Imds]]]:
    handler = type("FlakyImds", (Imds,), {"fail_first": 0, "hang_first": 0, "requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def run(endpoint: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", imds_part()], env={"PATH": "/usr/bin:/bin",
                                                           "AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint},
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_metadata_reads_survive_503s_at_boot(imds: tuple[str, type[Imds]]) -> None:
    """Regression: one 503 (or a refused connection) from IMDS in the first seconds failed the whole job."""
    endpoint, handler = imds
    handler.fail_first = 2

    done = run(endpoint)

    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"{JOB_ID} i-0123 eu-west-1")


def test_a_hanging_metadata_call_is_cut_and_tried_again(imds: tuple[str, type[Imds]]) -> None:
    """Regression: one metadata call that never answered held the VM until the watchdog (the job timeout). Each
    attempt is cut at `--max-time` (5 s) and retried, so a service that hangs once costs seconds."""
    endpoint, handler = imds
    handler.hang_first = 1

    started = time.monotonic()
    done = run(endpoint, timeout=90)

    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"{JOB_ID} i-0123 eu-west-1")
    assert time.monotonic() - started < HANG_SECONDS / 2
