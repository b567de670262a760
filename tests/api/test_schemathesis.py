"""schemathesis against docs/openapi.json and the local stack over HTTP: no 5xx, every response as documented.

Positive and negative cases for every operation (negative: bodies, parameters and types the document forbids, which
the API must refuse with a documented 4xx). Bounded (`MAX_EXAMPLES` per operation and mode, no deadline) so the
module runs in seconds. POST /api/jobs mostly meets 404 upload_not_found, as a generated key names no upload;
401 is a documented refusal of a negative case that breaks the `Authorization` header the document requires.
"""

from __future__ import annotations

import schemathesis
from hypothesis import settings
from schemathesis import GenerationMode
from schemathesis.config import ChecksConfig

from local.app import LocalPipeline
from tests.api.openapi import OPENAPI_FILE
from tests.local.harness import signed_in

MAX_EXAMPLES = 30

schema = schemathesis.openapi.from_path(OPENAPI_FILE)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES)
REFUSALS = ["400", "401", "404", "405", "409", "413", "415", "429"]
"""What the API answers to a request the document forbids (413: a size or body over its cap); never a 5xx."""
schema.config.checks = ChecksConfig.from_dict({"negative_data_rejection": {"expected-statuses": REFUSALS}})


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None)
def test_api_conforms_to_its_document(case: schemathesis.Case, pipeline: LocalPipeline) -> None:
    """Signed in as one user, as the form is (the authorizer's own refusals have their own cases)."""
    case.call_and_validate(base_url=pipeline.url, headers={"Authorization": f"Bearer {signed_in(pipeline).token}"})
