"""`docs/openapi.json` for tests: load it, and check a real response against what it documents for the route."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

OPENAPI_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@cache
def document() -> dict[str, Any]:
    return dict(json.loads(OPENAPI_FILE.read_text(encoding="utf-8")))


def route_keys(doc: dict[str, Any]) -> set[str]:
    """Every operation as an API Gateway route key, e.g. `GET /api/jobs/{id}`."""
    return {f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item if method in METHODS}


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a schema taken from the document, its `#/components/...` references resolvable."""
    return Draft202012Validator({**schema, "components": document()["components"]})


def component(name: str) -> dict[str, Any]:
    return dict(document()["components"]["schemas"][name])


def check_response(route_key: str, status: int, body: Any) -> None:
    """Assert the status is documented for the route and the body matches its schema (None: no body, which a
    status documented without content requires)."""
    method, path = route_key.split(" ", 1)
    responses = document()["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{route_key} answered {status}, which the document does not list"
    if "content" not in responses[str(status)]:
        assert body is None, f"{route_key} {status} documents no body, yet answered {body!r}"
        return
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    errors = sorted(schema_validator(schema).iter_errors(body), key=str)
    assert not errors, f"{route_key} {status}: {errors[0].message} at {list(errors[0].absolute_path)}"
