"""Property-based: schemathesis drives every operation of /openapi.json in-process.

Positive and negative data (wrong types, floats for integers, missing fields, out-of-range
values, wrong content types, unsupported methods), with every schemathesis check: no 5xx, every
status code and header documented, every response body valid against its schema, invalid data
rejected and valid data accepted.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.slow
# A quick run by default; SCHEMATHESIS_MAX_EXAMPLES=1000 for a long abuse run.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40"))


@pytest.fixture
def api_schema(api_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", api_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi_document(case):
    case.call_and_validate()
