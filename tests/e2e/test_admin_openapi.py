"""Property-based run over the admin API's OpenAPI document: no input makes it answer 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from storefront_jobs import create_app, load_settings
from storefront_jobs.admin.app import create_admin_app
from storefront_jobs.deadletter import store_for
from tests.support.dlq import make_record

pytestmark = pytest.mark.e2e

ADMIN = "schemathesis-admin-token"
_celery = create_app(load_settings(admin_tokens={ADMIN: ["dlq:read", "dlq:replay", "dlq:delete"]}))
schema = schemathesis.openapi.from_asgi("/openapi.json", create_admin_app(_celery))


@pytest.fixture(autouse=True)
def some_entries(redis_client: object) -> None:
    store = store_for(_celery)
    for i in range(3):
        store.add(make_record(f"e-{i}", failed_at=1_800_000_000.0 + i, tenant="t-1"))


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_api_fail(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=[not_a_server_error])
