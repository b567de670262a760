"""The local web server over real sockets: what http.server refuses before the app runs, and bodies too large to
read, answer in the contract's error shape without the body ever being held in memory."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from handlers.routes import ROUTES
from local.serving import BackgroundServer
from local.web import PAYLOAD_LIMIT_BYTES, LocalWebApp
from stackspec.headers import api_security_headers

MB = 1024 * 1024
HUGE_BODY = 300 * MB


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"status": "ok"})}


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


@pytest.fixture
def server(tmp_path: Path, handler: Recorder) -> Iterator[BackgroundServer]:
    (tmp_path / "index.html").write_text("<!doctype html><title>filepipe</title>")
    app = LocalWebApp(routes=ROUTES, handlers={"jobs": handler, "upload": handler}, frontend_dir=tmp_path,
                      site_config={})
    running = BackgroundServer(app, name="test-web")
    running.start()
    yield running
    running.stop()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length (what the server sends for every refusal)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def assert_contract_error(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert set(error) == {"error"} and error["error"]["code"] == code and error["error"]["message"]


def test_a_70_kb_path_is_a_json_414_not_an_html_page(server: BackgroundServer, handler: Recorder) -> None:
    """Regression: http.server refuses a request line over 64 KiB with its own HTML 414, before the app runs."""
    got = requests.get(f"{server.url}/api/jobs/{'a' * 70_000}", timeout=10)
    assert_contract_error(got.status_code, dict(got.headers.lower_items()), got.content, 414, "uri_too_long")
    assert handler.events == []


def test_a_100_kb_header_is_a_json_431_not_an_html_page(server: BackgroundServer, handler: Recorder) -> None:
    """Regression: http.server refuses a header line over 64 KiB with its own HTML 431."""
    got = requests.get(f"{server.url}/api/jobs", headers={"X-Big": "a" * 100_000}, timeout=10)
    assert_contract_error(got.status_code, dict(got.headers.lower_items()), got.content, 431, "headers_too_large")
    assert handler.events == []


def test_too_many_headers_is_a_json_431(server: BackgroundServer) -> None:
    got = requests.get(f"{server.url}/api/jobs", headers={f"X-H{i}": "1" for i in range(120)}, timeout=10)
    assert_contract_error(got.status_code, dict(got.headers.lower_items()), got.content, 431, "headers_too_large")


def test_a_request_http_server_cannot_parse_is_a_json_400(server: BackgroundServer) -> None:
    """http.server answers 505 to `HTTP/2.0` on a request line; for the contract any such mistake is a 400."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/jobs HTTP/2.0\r\nHost: x\r\n\r\n")
        assert_contract_error(*read_response(sock), 400, "bad_request")


def test_an_announced_huge_body_is_refused_before_it_is_sent(server: BackgroundServer, handler: Recorder) -> None:
    """Regression: the body was read whole (a 300 MB body grew the process by ~585 MB) before the handler's 413.
    Only the headers and 64 KiB are sent here: the 413 can only come from the Content-Length."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % HUGE_BODY + b"x" * 65536)
        assert_contract_error(*read_response(sock), 413, "body_too_large")
    assert handler.events == []


def test_a_streamed_huge_body_is_refused_without_being_held_in_memory(
    server: BackgroundServer, handler: Recorder
) -> None:
    """A chunked body (no Content-Length) is read only up to the payload limit: the process grows by far less than
    the 300 MB streamed at it, and the 413 comes in the contract's shape."""
    process = psutil.Process()
    before = process.memory_info().rss
    peak = [before]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    chunk = b"%x\r\n" % MB + b"x" * MB + b"\r\n"
    sent = 0
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < HUGE_BODY:
                sock.sendall(chunk)
                sent += MB
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: the rest of the body is not wanted
        response = read_response(sock)
    sampling.set()
    sampler.join()
    assert sent > PAYLOAD_LIMIT_BYTES, "the client stopped before the limit: nothing was tested"
    grown = peak[0] - before
    assert grown < 100 * MB, f"the process grew by {grown // MB} MB for a {sent // MB} MB body"
    assert_contract_error(*response, 413, "body_too_large")
    assert handler.events == []


def test_a_body_under_the_payload_limit_reaches_the_handler(server: BackgroundServer, handler: Recorder) -> None:
    """The handler, not the server, applies the API's own body limit (as on AWS): 1 MB still reaches it."""
    body = json.dumps({"input_text": "x" * MB})
    got = requests.post(f"{server.url}/api/jobs", data=body, headers={"Content-Type": "application/json"},
                        timeout=30)
    assert got.status_code == 200
    assert handler.events[0]["body"] == body


def raw_get(server: BackgroundServer, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET with the request target exactly as written (requests and urllib would rewrite `//api/jobs`)."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
        return read_response(sock)


@pytest.mark.parametrize("target", ["//api/jobs", "///api/health", "/api//jobs", "//api/jobs?limit=1"])
def test_a_path_with_an_empty_segment_is_a_404_as_on_api_gateway(
        server: BackgroundServer, handler: Recorder, target: str) -> None:
    """Regression: werkzeug's server collapsed the leading slashes, so `//api/jobs` reached the jobs handler."""
    status, headers, body = raw_get(server, target)
    assert_contract_error(status, headers, body, 404, "not_found")
    assert handler.events == []


@pytest.mark.parametrize("target", ["/api/health", "/api/jobs", "/api/nothing-here", "/api/openapi.json"])
def test_every_api_answer_carries_the_api_security_headers(server: BackgroundServer, target: str) -> None:
    """Regression: API answers (a handler's, or the server's own 404) came without nosniff, a CSP, a referrer policy
    or `Cache-Control: no-store`; they carry the definition CloudFront's `/api/*` policy sends (without HSTS over
    plain HTTP)."""
    _, headers, _ = raw_get(server, target)
    expected = api_security_headers(https=False)
    assert {name: headers.get(name.lower()) for name in expected} == expected
    assert "strict-transport-security" not in headers
