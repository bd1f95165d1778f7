"""Property-based run over the admin API's OpenAPI document: no input makes it answer 5xx."""

from __future__ import annotations

from typing import Any

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
TOKENS = {ADMIN: ["dlq:read", "dlq:replay", "dlq:delete"]}


class AdminOnTestBroker:
    """The admin API, built on first request against the test broker (which starts after collection).

    Schemathesis reads the OpenAPI document at collection: that one comes from
    an app whose broker is never contacted (building a document opens no connection).
    """

    def __init__(self) -> None:
        self.celery: Any = None
        self._api: Any = None
        self._document_api = create_admin_app(
            create_app(load_settings(broker_url="redis://127.0.0.1:1/0", admin_tokens=TOKENS))
        )

    def bind(self) -> Any:
        if self.celery is None:
            self.celery = create_app(load_settings(admin_tokens=TOKENS))
            self._api = create_admin_app(self.celery)
        return self.celery

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        api = self._api if self._api is not None else self._document_api
        await api(scope, receive, send)


admin = AdminOnTestBroker()
schema = schemathesis.openapi.from_asgi("/openapi.json", admin)


@pytest.fixture(autouse=True)
def some_entries(redis_client: object) -> None:
    store = store_for(admin.bind())
    for i in range(3):
        store.add(make_record(f"e-{i}", failed_at=1_800_000_000.0 + i, tenant="t-1"))


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_api_fail(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=[not_a_server_error])
