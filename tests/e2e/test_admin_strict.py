"""The admin API is strict where a loose reading would do something other than asked."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from storefront_jobs import create_app, load_settings
from storefront_jobs.admin.app import create_admin_app
from storefront_jobs.admin.strict import MARKER
from storefront_jobs.deadletter import Filter, store_for
from tests.e2e.test_runbook_curl import ADMIN_TOKEN, server  # noqa: F401 - the serve fixture
from tests.support.dlq import make_record

pytestmark = pytest.mark.e2e

TOKEN = "admin-token-0001"


@pytest.fixture
def celery_app(redis_client: Any) -> Any:
    app = create_app(load_settings(admin_tokens={TOKEN: ["dlq:read", "dlq:replay", "dlq:delete"]}))
    store = store_for(app)
    for i in range(3):
        store.add(make_record(f"e-{i}", failed_at=1_800_000_000.0 + i, tenant=f"t-{i}"))
    return app


@pytest.fixture
def client(celery_app: Any) -> Iterator[TestClient]:
    with TestClient(create_admin_app(celery_app), raise_server_exceptions=False) as client:
        yield client


def test_two_authorization_headers_are_refused_even_if_one_is_valid(client: TestClient) -> None:
    headers = [("Authorization", "Bearer not-a-token"), ("Authorization", f"Bearer {TOKEN}")]
    answer = client.get("/admin/jobs/dlq/stats", headers=headers)
    assert answer.status_code == 400
    assert "exactly one Authorization header" in answer.json()["detail"]


@pytest.mark.parametrize("loose", ["yes", "true", 1, "1"])
def test_dry_run_takes_a_json_boolean_only(client: TestClient, celery_app: Any, loose: Any) -> None:
    answer = client.post(
        "/admin/jobs/replay",
        json={"executionId": "e-1", "dryRun": loose},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 422, answer.text
    assert store_for(celery_app).count(Filter()) == 3  # nothing was replayed for real


def test_an_unknown_query_parameter_is_refused_not_ignored(client: TestClient, celery_app: Any) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # A typo in a filter would otherwise list, or delete, every entry
    listed = client.get("/admin/jobs/dlq?tennant=t-1", headers=auth)
    assert listed.status_code == 400
    assert "unknown query parameter(s): tennant" in listed.json()["detail"]
    deleted = client.delete("/admin/jobs/dlq?queue=all&tennant=t-1", headers=auth)
    assert deleted.status_code == 400
    assert store_for(celery_app).count(Filter()) == 3
    assert client.get("/admin/jobs/dlq?tenant=t-1&format=jsonl", headers=auth).status_code == 200
    assert client.get("/q/health?verbose=1").status_code == 400


def test_every_route_declares_the_query_parameters_it_accepts(celery_app: Any) -> None:
    api = create_admin_app(celery_app)
    documentation = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    for route in api.routes:
        if not isinstance(route, APIRoute) or route.path in documentation:
            continue
        checks = [d.dependency for d in route.dependencies if hasattr(d.dependency, MARKER)]
        assert checks, f"{route.path} {route.methods} takes any query parameter in silence"


def test_a_one_megabyte_authorization_header_gets_431(server: str) -> None:  # noqa: F811
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", "/admin/jobs/dlq/stats", headers={"Authorization": "Bearer " + "x" * (1 << 20)})
    answer = connection.getresponse()
    assert answer.status == 431
    assert b"request headers are limited to" in answer.read()
    connection.close()
    # ...and the server still serves a sane request
    sane = http.client.HTTPConnection(host, int(port), timeout=30)
    sane.request("GET", "/admin/jobs/dlq/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert sane.getresponse().status == 200
    sane.close()


def test_the_api_docs_load_nothing_from_the_internet(client: TestClient) -> None:
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert sources, page.text
    for source in sources:
        assert source.startswith("/"), f"/docs loads {source} from outside the service"
        assert client.get(source).status_code == 200, source


def test_the_api_docs_render_in_a_browser_without_internet(server: str, tmp_path: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    from tests.support.flower import BROWSER_WAIT_MS, CHROMIUM_ARGS, chromium

    path = chromium()
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
            page.goto(server + "/docs")
            expect(page.locator(".opblock").first).to_be_visible(timeout=BROWSER_WAIT_MS)
            assert page.locator(".opblock").count() >= 6
        finally:
            browser.close()
    assert outside == []
