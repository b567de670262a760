"""Local mode's log: one line per record, whatever a client sends; and the Lambda JSON shape tests read."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.test import Client

from handlers.config import ApiConfig
from handlers.routes import ROUTERS, ROUTES
from handlers.services import ApiServices
from local import __main__ as local_main
from local.logs import LambdaJsonFormatter, OneLineFormatter, escaped
from local.web import LocalWebApp

FORGED = "\n12:00:00 job V1StGXR8_Z5jdHi6B-myT: RUNNING -> SUCCEEDED"
"""What an attacker would like local mode's log to show: a line of its own, looking like a transition."""


class SignedIn:
    """Stands in for the JWT authorizer: every request is a signed-in user's."""

    def claims(self, authorization: str | None) -> dict[str, Any]:
        return {"sub": "user-1", "token_use": "access"}


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged while the test runs, as local mode writes it (`python -m local`'s formatter)."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield output
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def client(tmp_path: Path) -> Client:
    """Local mode's web app with the real routers; refusals happen before any AWS call, so no clients."""
    services = ApiServices(config=ApiConfig.from_env(), ddb=None, s3=None)
    handlers = {name: (lambda event, context, router=router: router.resolve(event, services))
                for name, router in ROUTERS.items()}
    app = LocalWebApp(routes=ROUTES, handlers=handlers, frontend_dir=tmp_path, site_config={},
                      authorizer=SignedIn())  # type: ignore[arg-type]
    return Client(app)


def test_an_unknown_query_parameter_cannot_forge_a_log_line(client: Client, log_output: io.StringIO) -> None:
    """Regression: the refusal was logged with the client's parameter name in it, newline and all, so local mode's
    log showed a made-up transition line."""
    response = client.get(f"/api/jobs?{quote('x' + FORGED)}=1")

    assert response.status_code == 400 and response.json["error"]["code"] == "unknown_parameter"
    lines = log_output.getvalue().splitlines()
    assert lines and all(" job V1StGXR8" not in line for line in lines), lines
    assert any("request refused" in line and "error_code=unknown_parameter" in line for line in lines), lines


def test_an_unknown_body_field_cannot_forge_a_log_line(client: Client, log_output: io.StringIO) -> None:
    response = client.post("/api/jobs", json={"input_text": "t", "key": "k", "x" + FORGED: 1})

    assert response.status_code == 400 and response.json["error"]["code"] == "unknown_field"
    assert "V1StGXR8" not in log_output.getvalue(), "the client's field name never reaches the log"


def record(message: str, **fields: Any) -> logging.LogRecord:
    made = logging.LogRecord("handlers.launcher", logging.INFO, __file__, 1, message, None, None)
    made.__dict__.update(fields)
    return made


def test_one_line_per_record_whatever_its_message_and_fields_hold() -> None:
    """A second line of defence: text that reaches a record anyway (a job's error quoting AWS, a field) is escaped."""
    line = OneLineFormatter().format(record("launch failed" + FORGED, job_id="j1", reason="no\rcapacity\u2028x"))

    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert line.endswith("  job_id=j1 reason=no\\rcapacity\\u2028x")
    assert "launch failed\\n12:00:00 job" in line


def test_escaping_keeps_ordinary_text_readable() -> None:
    assert escaped("Zoë's job\ttook 3 s") == "Zoë's job\\ttook 3 s"


def test_lambda_json_lines_put_extra_fields_at_the_top_level() -> None:
    """The shape of Lambda's JSON log format that the metric filters and the Logs Insights query rely on."""
    line = json.loads(LambdaJsonFormatter().format(record("VM started", job_id="j1", instance_id="i-1", slot=2)))

    assert line["message"] == "VM started" and line["level"] == "INFO" and line["logger"] == "handlers.launcher"
    assert (line["job_id"], line["instance_id"], line["slot"]) == ("j1", "i-1", 2)
    assert line["timestamp"].endswith("Z")


def test_local_mode_logs_through_the_one_line_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    local_main.configure_logging()
    assert [type(h.formatter) for h in root.handlers] == [OneLineFormatter]
