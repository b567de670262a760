"""`docs/openapi.json` against the code: a valid OpenAPI 3.1 document, exactly the route table, the limits and error
codes the handlers use, and served as is by local mode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from handlers import cursors, jobs, upload
from handlers.routes import ROUTES
from stackspec.settings import StackSettings
from tests.api.openapi import component, document, route_keys, schema_validator

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = StackSettings()


def test_the_document_is_valid_openapi_3_1() -> None:
    assert document()["openapi"].startswith("3.1")
    validate(document())


def test_the_document_covers_exactly_the_route_table() -> None:
    """A route added to `handlers.routes` without documenting it (or documented but never routed) fails here."""
    assert route_keys(document()) == {route.key for route in ROUTES}


def test_every_request_schema_refuses_unknown_fields() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                schema = component(ref.rsplit("/", 1)[1])
                assert schema["additionalProperties"] is False, f"{method.upper()} {path}"
                assert set(schema["required"]) <= set(schema["properties"])


def test_request_fields_are_the_handlers_fields() -> None:
    assert set(component("UploadRequest")["properties"]) == upload.FIELDS
    assert set(component("JobRequest")["properties"]) == jobs.FIELDS


def test_documented_limits_are_the_stack_defaults_and_the_handlers_constants() -> None:
    """The document shows default limits; they must not drift from the settings and handler constants."""
    upload_props = component("UploadRequest")["properties"]
    assert upload_props["size"]["maximum"] == DEFAULTS.max_file_bytes
    assert upload_props["filename"]["maxLength"] == upload.MAX_FILENAME_CHARS
    assert component("JobRequest")["properties"]["input_text"]["maxLength"] == DEFAULTS.max_text_length
    parameters = {p["name"]: p for p in document()["paths"]["/api/jobs"]["get"]["parameters"]}
    assert set(parameters) == jobs.LIST_PARAMETERS
    assert parameters["limit"]["schema"]["maximum"] == jobs.LIST_LIMIT
    assert parameters["next"]["schema"]["maxLength"] == cursors.MAX_CURSOR_CHARS
    assert component("JobList")["properties"]["jobs"]["maxItems"] == jobs.LIST_LIMIT
    assert f"{12 * DEFAULTS.max_text_length + 4096:,}".replace(",", " ") in document()["info"]["description"]


def test_documented_key_pattern_is_the_one_jobs_enforces() -> None:
    """Same verdict as `jobs.KEY_PATTERN` on keys at and around its edges."""
    validator = schema_validator(component("JobRequest")["properties"]["key"])
    for key in upload_key_examples():
        assert validator.is_valid(key) == bool(jobs.KEY_PATTERN.match(key)), key


def upload_key_examples() -> list[str]:
    good = "inputs/" + "a" * 21 + "/"
    return [good + "notes.txt", good + "_x", good + ".hidden", good + "-rf", good + "a" * 100, good + "a" * 101,
            "inputs/" + "a" * 20 + "/x", good + "a/b", good, "outputs/" + "a" * 21 + "/x", good + "a b",
            "inputs/" + "a" * 20 + "!/x"]
    # Not `good + "x\n"`: the document's `$` is ECMA-262's (end of input), Python's re lets it match before a
    # final newline, so a Python validator would pass it while the handler's `\Z` refuses it.


def error_codes_in_code() -> set[str]:
    """Every error code the handlers and the local web layer can answer, read from their source."""
    sources = [*(ROOT / "handlers").glob("*.py"), ROOT / "local" / "web.py"]
    pattern = re.compile(r'(?:ApiError|api_error)\(\s*\d{3},\s*"([a-z_]+)"')
    return {code for source in sources for code in pattern.findall(source.read_text(encoding="utf-8"))}


def test_error_codes_are_exactly_those_the_code_uses() -> None:
    documented = set(component("Error")["properties"]["error"]["properties"]["code"]["enum"])
    assert documented == error_codes_in_code()


@pytest.mark.parametrize("name", ["UploadGrant", "Job", "JobList", "Health", "Error", "UploadRequest", "JobRequest",
                                  "NoOptions"])
def test_every_object_schema_is_closed(name: str) -> None:
    assert component(name)["additionalProperties"] is False


def test_the_human_docs_explain_every_error_code_with_its_status() -> None:
    """docs/api.md's error table has one row per code, with the status the code is answered with."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    rows = dict((code, int(status)) for status, code in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", text, re.M))
    codes = set(component("Error")["properties"]["error"]["properties"]["code"]["enum"])
    assert set(rows) == codes
    sources = [*(ROOT / "handlers").glob("*.py"), ROOT / "local" / "web.py"]
    pattern = re.compile(r'(?:ApiError|api_error)\(\s*(\d{3}),\s*"([a-z_]+)"')
    for source in sources:
        for status, code in pattern.findall(source.read_text(encoding="utf-8")):
            assert rows[code] == int(status), f"{code} is answered {status} in {source.name}"
