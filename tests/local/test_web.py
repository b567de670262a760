"""The local web server: HTTP requests become HTTP API 2.0 events for the handlers, responses go back unchanged."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from handlers.routes import ROUTES
from local.web import LocalWebApp, rule_path
from stackspec.headers import security_headers

SITE_CONFIG = {"apiBase": "/api", "maxFileBytes": 1024, "maxTextLength": 10}


class Recorder:
    """A stand-in handler that records the events it gets and answers with a fixed response."""

    def __init__(self, response: dict[str, Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = response or {"statusCode": 200, "headers": {"content-type": "application/json"},
                                     "body": json.dumps({"ok": True})}

    def __call__(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        self.events.append(event)
        return self.response


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>filepipe</title>")
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "app.js").write_text("export {};")
    return tmp_path


EMULATOR = "http://127.0.0.1:4566"


def make_app(site: Path, handlers: dict[str, Any], health: Any = None) -> Client:
    app = LocalWebApp(routes=ROUTES, handlers=handlers, frontend_dir=site, site_config=SITE_CONFIG,
                      emulator_health=health, connect_sources=(EMULATOR,))
    return Client(app)


def test_rule_paths_follow_the_route_table() -> None:
    assert rule_path("/api/jobs/{id}") == "/api/jobs/<id>"
    assert rule_path("/api/jobs") == "/api/jobs"


def test_a_bodiless_answer_goes_back_without_body_or_content_type(site: Path) -> None:
    """`DELETE /api/jobs/{id}` answers 204: no body, so no `Content-Type` claiming one (a JSON one would make a
    client try to parse nothing)."""
    manage = Recorder({"statusCode": 204, "headers": {"cache-control": "no-store"}, "body": ""})
    answer = make_app(site, {"manage": manage}).delete("/api/jobs/" + "a" * 21)
    assert manage.events[0]["routeKey"] == "DELETE /api/jobs/{id}"
    assert (answer.status_code, answer.data, answer.headers.get("Content-Type")) == (204, b"", None)
    assert answer.headers["Cache-Control"] == "no-store"


def test_post_becomes_a_payload_2_event_for_the_routes_handler(site: Path) -> None:
    jobs, upload = Recorder(), Recorder()
    client = make_app(site, {"jobs": jobs, "upload": upload})
    body = json.dumps({"input_text": "héllo", "key": "k"})
    client.post("/api/jobs?x=1&x=2", data=body, headers={"Content-Type": "application/json", "X-Custom": "Yes"})

    assert upload.events == []
    event = jobs.events[0]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /api/jobs"
    assert event["rawPath"] == "/api/jobs"
    assert event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-custom"] == "Yes"
    assert all(name == name.lower() for name in event["headers"])
    assert event["body"] == body and event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["path"] == "/api/jobs"
    assert event["requestContext"]["routeKey"] == "POST /api/jobs"
    assert event["requestContext"]["stage"] == "$default"
    assert "pathParameters" not in event


def test_path_parameters_come_from_the_route_template(site: Path) -> None:
    jobs = Recorder()
    client = make_app(site, {"jobs": jobs, "upload": Recorder()})
    client.get("/api/jobs/abc_DEF-123")
    event = jobs.events[0]
    assert event["routeKey"] == "GET /api/jobs/{id}"
    assert event["pathParameters"] == {"id": "abc_DEF-123"}
    assert "body" not in event


def test_binary_bodies_are_base64_encoded_as_api_gateway_does(site: Path) -> None:
    upload = Recorder()
    client = make_app(site, {"jobs": Recorder(), "upload": upload})
    client.post("/api/uploads", data=b"\xff\x00\x01", headers={"Content-Type": "application/octet-stream"})
    event = upload.events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00\x01"


def test_handler_responses_are_returned_unchanged(site: Path) -> None:
    response = {"statusCode": 409, "headers": {"content-type": "application/json", "x-extra": "1"},
                "body": json.dumps({"error": {"code": "key_in_use", "message": "m"}})}
    client = make_app(site, {"jobs": Recorder(response), "upload": Recorder()})
    got = client.post("/api/jobs", json={})
    assert got.status_code == 409
    assert got.headers["x-extra"] == "1"
    assert got.headers["content-type"] == "application/json"
    assert got.get_json() == {"error": {"code": "key_in_use", "message": "m"}}


def test_base64_responses_are_decoded(site: Path) -> None:
    response = {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
    client = make_app(site, {"jobs": Recorder(response), "upload": Recorder()})
    assert client.get("/api/jobs").data == b"\x00\xff"


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/api/nothing", 404, "not_found"),
    ("GET", "/api", 404, "not_found"),
    ("GET", "/api/jobs/a/b", 404, "not_found"),
    ("GET", "/api/jobs/", 404, "not_found"),
    ("POST", "/api/uploads/", 404, "not_found"),
    ("GET", "/api/health/", 404, "not_found"),
    ("GET", "/api//jobs", 404, "not_found"),
    ("DELETE", "/api/jobs", 405, "method_not_allowed"),
    ("PUT", "/api/jobs/abc", 405, "method_not_allowed"),
    ("GET", "/api/uploads", 405, "method_not_allowed"),
])
def test_unknown_routes_and_methods_answer_in_the_contracts_error_shape(
    site: Path, method: str, path: str, status: int, code: str
) -> None:
    jobs, upload = Recorder(), Recorder()
    got = make_app(site, {"jobs": jobs, "upload": upload}).open(path, method=method)
    assert got.status_code == status
    body = got.get_json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert jobs.events == [] and upload.events == []


def test_a_crashing_handler_is_a_500_in_the_contracts_shape(site: Path) -> None:
    def broken(event: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    got = make_app(site, {"jobs": broken, "upload": Recorder()}).get("/api/jobs")
    assert got.status_code == 500
    assert got.get_json()["error"]["code"] == "internal_error"
    assert "boom" not in got.get_data(as_text=True)


def test_a_fault_of_the_web_layer_is_json_under_api_not_an_html_page(site: Path) -> None:
    """Regression guard: an exception outside the handler call (here: a route with no handler wired) reached
    werkzeug, which answers an HTML 500."""
    got = make_app(site, {}).get("/api/jobs")
    assert got.status_code == 500
    assert got.headers["content-type"] == "application/json"
    assert got.get_json()["error"]["code"] == "internal_error"


def test_health_adds_the_emulator_and_fails_when_it_is_down(site: Path) -> None:
    handlers = {"jobs": Recorder({"statusCode": 200, "body": json.dumps({"status": "ok"})}), "upload": Recorder()}
    up = make_app(site, handlers, lambda: {"up": True, "endpoint": "http://e"}).get("/api/health")
    assert up.status_code == 200
    assert up.get_json() == {"status": "ok", "emulator": {"up": True, "endpoint": "http://e"}}
    down = make_app(site, handlers, lambda: {"up": False, "endpoint": "http://e"}).get("/api/health")
    assert down.status_code == 503
    assert down.get_json()["emulator"]["up"] is False


def test_a_refused_health_request_keeps_the_documented_error_shape(site: Path) -> None:
    """Regression: `GET /api/health?x=1` (the handler's 400) came back with an `emulator` key added to the error."""
    refusal = {"error": {"code": "unknown_parameter", "message": "Unknown query parameter(s): x."}}
    handlers = {"jobs": Recorder({"statusCode": 400, "body": json.dumps(refusal)}), "upload": Recorder()}
    got = make_app(site, handlers, lambda: {"up": False, "endpoint": "http://e"}).get("/api/health?x=1")
    assert got.status_code == 400
    assert got.get_json() == refusal


def test_static_files_index_and_config(site: Path) -> None:
    client = make_app(site, {"jobs": Recorder(), "upload": Recorder()})
    index = client.get("/")
    assert index.status_code == 200 and b"<title>filepipe</title>" in index.data
    assert index.headers["content-type"].startswith("text/html")
    assert client.get("/js/app.js").data == b"export {};"
    assert client.get("/config.json").get_json() == SITE_CONFIG
    assert client.get("/missing.css").status_code == 404
    assert client.post("/").status_code == 405


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/js/../../secret.txt"])
def test_static_files_never_leave_the_frontend_folder(site: Path, path: str) -> None:
    (site.parent / "secret.txt").write_text("TOP-SECRET-CONTENT")
    got = make_app(site, {"jobs": Recorder(), "upload": Recorder()}).get(path)
    assert got.status_code == 404
    assert b"TOP-SECRET-CONTENT" not in got.data


def test_every_route_reaches_its_handler(site: Path) -> None:
    recorders = {function: Recorder() for function in {route.function for route in ROUTES}}
    client = make_app(site, recorders)
    for route in ROUTES:
        path = route.path.replace("{id}", "x" * 21)
        client.open(path, method=route.method, json={} if route.method == "POST" else None)
        assert recorders[route.function].events[-1]["routeKey"] == route.key


@pytest.mark.parametrize("path", ["/", "/js/app.js", "/config.json", "/missing.css"])
def test_the_site_is_served_with_cloudfronts_security_headers(site: Path, path: str) -> None:
    """Regression: locally the page had only its `<meta>` CSP (every `https:` origin allowed, no `frame-ancestors`)
    and no nosniff. The headers come from the definition CloudFront's policy uses, with the emulator (where the
    presigned POST goes) as the only other origin, and without HSTS on plain HTTP."""
    got = make_app(site, {"jobs": Recorder(), "upload": Recorder()}).get(path)
    expected = security_headers((EMULATOR,), https=False)
    assert {name: got.headers.get(name) for name in expected} == expected
    assert "Strict-Transport-Security" not in got.headers
    assert f"connect-src 'self' {EMULATOR}" in got.headers["Content-Security-Policy"]
