"""Property-based tests of the HTTP API generated from its own OpenAPI schema
(schemathesis): whatever a client sends that the schema admits or nearly admits, the
server answers without a 5xx and with a body its schema describes. Bounded in examples
(and deadline) so the suite stays fast."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from transduce.serve.app import create_app
from transduce.serve.backend import load_models
from transduce.serve.limits import ServeLimits

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def api_schema(text_run, series_run):
    models = load_models([str(text_run), f"fc={series_run}"])
    # small limits keep each generated request cheap to decode
    app = create_app(models, ServeLimits(max_texts=8, max_chars=50, max_compute=2000))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_api_answers_every_generated_request_without_5xx(api_schema):
    tested = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        check()
        tested.append(operation.label)
    assert {"POST /v1/translate", "POST /v1/forecast", "GET /v1/models"} <= set(tested)
