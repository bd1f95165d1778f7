"""Dead letters inside Flower: an operator finds, reads, previews and replays a dead job in Chromium.

Flower runs as ``storefront-jobs flower`` with two users: ``admin`` with
every DLQ scope and ``viewer`` with ``dlq:read`` only. Dead letters come from
a real worker failing a real BULK job (BULK never retries), and the replay is
run by that worker and seen on Flower's own Tasks page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs.deadletter import Filter
from storefront_jobs.deadletter.binding import store_for
from storefront_jobs.embedded import EmbeddedRedis
from tests.integration import jobs
from tests.support.flower import (
    BROWSER_WAIT_MS,
    CHROMIUM_ARGS,
    PASSWORD,
    USER,
    FlowerProcess,
    chromium,
    running_flower,
)
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.e2e

VIEWER, VIEWER_PASSWORD = "viewer", "viewer-pass"
XSS = "<img src=x onerror=alert(1)>"
SCOPES = {USER: ["dlq:read", "dlq:replay", "dlq:delete"], VIEWER: ["dlq:read"]}


@pytest.fixture
def flower(
    redis_client: redis.Redis[bytes], redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[FlowerProcess]:
    with running_flower(
        redis_server.url,
        tmp_path / "flower.log",
        flower_basic_auth=f"{USER}:{PASSWORD},{VIEWER}:{VIEWER_PASSWORD}",
        flower_user_scopes=json.dumps(SCOPES),
    ) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A factory of logged-in Chromium contexts: ``browser(user, password)``."""
    path = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield lambda user, password: launched.new_context(
                http_credentials={"username": user, "password": password}
            )
        finally:
            launched.close()


def _dead_letters(app: Any, **terms: str) -> list[Any]:
    return store_for(app).page(Filter(**terms), None, 100).records()


def _fail_two_jobs(app: Any, workers: WorkerFactory) -> tuple[Any, Any]:
    """Two dead BULK jobs of two tenants; the worker stays up for the replay."""
    from storefront_jobs import tenant

    workers.start("BULK", settings={"task_events": "true"})
    with tenant("t-acme"):
        jobs.fails_until_fixed.delay("acme", note=XSS)
    with tenant("t-globex"):
        jobs.fails_until_fixed.delay("globex")
    wait_until(lambda: len(_dead_letters(app, queue="warehouse.export")) == 2)
    acme = _dead_letters(app, tenant="t-acme")[0]
    globex = _dead_letters(app, tenant="t-globex")[0]
    return acme, globex


def test_an_operator_finds_reads_and_replays_a_dead_job_from_flower(
    app: Any,
    flower: FlowerProcess,
    workers: WorkerFactory,
    browser: Any,
    redis_client: redis.Redis[bytes],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    acme, globex = _fail_two_jobs(app, workers)
    context = browser(USER, PASSWORD)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # The operator opens Dead letters from Flower's own navigation bar
    page.goto(flower.url + "/")
    page.get_by_role("link", name="Dead letters").click()
    expect(page.locator(".dlq-row")).to_have_count(2, timeout=BROWSER_WAIT_MS)

    # ...filters by tenant and opens the one entry left
    page.fill("#f-tenant", "t-acme")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator(".dlq-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("RuntimeError")
    page.get_by_role("link", name=acme.execution_id).click()

    # ...and sees its arguments, as text, and its traceback
    expect(page.locator("#dlq-execution-id")).to_have_text(acme.execution_id)
    expect(page.locator("#dlq-kwargs")).to_contain_text(XSS)
    expect(page.locator("#dlq-traceback")).to_contain_text("warehouse API refused the export")
    expect(page.locator("#dlq-tenant")).to_have_text("t-acme")
    assert page.locator("img[src=x]").count() == 0

    # The cause is fixed; the operator previews the replay, then replays it
    redis_client.set("test:fixed:acme", 1)
    page.get_by_role("link", name="Replay…").click()
    expect(page.locator("#preview-count")).to_contain_text("1 entry would be replayed")
    expect(page.locator(".preview-lane")).to_have_text(["p4.bulk"])
    page.locator("#confirm-action").click()
    expect(page.locator("#done-summary")).to_have_text("Replayed 1 entry")
    new_id = page.locator(".replayed-task").inner_text()

    # The replayed job runs and succeeds, and leaves the DLQ
    wait_until(lambda: redis_client.llen("test:done:acme") == 1)
    assert [r.execution_id for r in _dead_letters(app, queue="warehouse.export")] == [globex.execution_id]
    page.goto(flower.url + "/dead-letters?tenant=t-acme")
    expect(page.locator("#dlq-empty")).to_be_visible()

    # ...visible on Flower's Tasks page, once Flower has its events
    def succeeded() -> bool:
        status, body = flower.get(f"/api/task/info/{new_id}")
        return status == 200 and json.loads(body).get("state") == "SUCCESS"

    wait_until(succeeded, interval_s=0.2)
    page.goto(flower.url + f"/task/{new_id}")
    expect(page.locator("body")).to_contain_text("SUCCESS", timeout=BROWSER_WAIT_MS)

    # ...and the audit log names the Flower user
    page.goto(flower.url + "/dead-letters/audit")
    expect(page.locator(".audit-actor").first).to_have_text("flower:admin")
    assert dialogs == []


def test_a_read_only_user_sees_no_actions_and_cannot_post_one(
    app: Any, flower: FlowerProcess, workers: WorkerFactory, browser: Any
) -> None:
    acme, _ = _fail_two_jobs(app, workers)
    page = browser(VIEWER, VIEWER_PASSWORD).new_page()

    page.goto(flower.url + "/dead-letters")
    assert page.locator(".dlq-row").count() == 2
    for button in ("#replay-selected", "#replay-matching", "#delete-selected", "#delete-matching"):
        assert page.locator(button).count() == 0, button
    page.goto(flower.url + f"/dead-letters/entry/{acme.execution_id}")
    assert page.locator("#replay-one, #delete-one").count() == 0
    page.goto(flower.url + f"/dead-letters/replay?id={acme.execution_id}")
    assert page.locator("#confirm-form").count() == 0

    # A POST with a valid CSRF token is still refused: the scope is missing
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    for action in ("replay", "delete"):
        answer = page.request.post(
            flower.url + f"/dead-letters/{action}",
            form={"_xsrf": token, "id": acme.execution_id, "expected": "1"},
        )
        assert answer.status == 403, action
    assert len(_dead_letters(app, queue="warehouse.export")) == 2


def test_a_post_without_the_csrf_token_is_refused(
    app: Any, flower: FlowerProcess, workers: WorkerFactory, browser: Any
) -> None:
    acme, _ = _fail_two_jobs(app, workers)
    page = browser(USER, PASSWORD).new_page()
    page.goto(flower.url + "/dead-letters")

    refused = page.request.post(
        flower.url + "/dead-letters/delete", form={"id": acme.execution_id, "expected": "1"}
    )
    assert refused.status == 403
    assert len(_dead_letters(app, queue="warehouse.export")) == 2

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    accepted = page.request.post(
        flower.url + "/dead-letters/delete", form={"_xsrf": token, "id": acme.execution_id, "expected": "1"}
    )
    assert accepted.status == 200
    assert acme.execution_id not in {r.execution_id for r in _dead_letters(app, queue="warehouse.export")}


def test_a_bulk_replay_needs_the_count_confirmed_and_replays_no_more_than_it(
    app: Any, flower: FlowerProcess, workers: WorkerFactory, browser: Any, redis_client: redis.Redis[bytes]
) -> None:
    from playwright.sync_api import expect

    _fail_two_jobs(app, workers)
    page = browser(USER, PASSWORD).new_page()
    page.goto(flower.url + "/dead-letters?queue=warehouse.export")
    page.locator("#replay-matching").click()
    expect(page.locator("#preview-count")).to_contain_text("2 entries would be replayed")
    expect(page.locator("label[for=confirm]")).to_have_text("Yes, replay 2 entries")

    # Without the tick, the server refuses (the browser's own check is bypassed here)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    unconfirmed = page.request.post(
        flower.url + "/dead-letters/replay",
        form={"_xsrf": token, "queue": "warehouse.export", "expected": "2"},
    )
    assert unconfirmed.status == 400
    assert "confirm the count" in unconfirmed.text()

    # Confirmed for 1 of the 2: exactly one is replayed
    redis_client.set("test:fixed:acme", 1)
    redis_client.set("test:fixed:globex", 1)
    confirmed = page.request.post(
        flower.url + "/dead-letters/replay",
        form={"_xsrf": token, "queue": "warehouse.export", "expected": "1", "confirm": "1"},
    )
    assert confirmed.status == 200
    assert len(_dead_letters(app, queue="warehouse.export")) == 1


def test_the_matching_entries_download_as_json_and_jsonl_and_delete_after_a_confirmation(
    app: Any, flower: FlowerProcess, workers: WorkerFactory, browser: Any
) -> None:
    from playwright.sync_api import expect

    acme, globex = _fail_two_jobs(app, workers)
    page = browser(USER, PASSWORD).new_page()

    as_json = page.request.get(flower.url + "/dead-letters/export?queue=warehouse.export&format=json")
    assert as_json.status == 200
    assert "attachment" in as_json.headers["content-disposition"]
    assert {r["executionId"] for r in json.loads(as_json.text())} == {acme.execution_id, globex.execution_id}
    as_lines = page.request.get(flower.url + "/dead-letters/export?tenant=t-globex&format=jsonl")
    assert [json.loads(line)["executionId"] for line in as_lines.text().splitlines()] == [globex.execution_id]

    # Delete all matching: the preview states the count, the tick confirms it
    page.goto(flower.url + "/dead-letters?tenant=t-globex")
    page.locator("#delete-matching").click()
    expect(page.locator("#preview-count")).to_contain_text("1 entry would be deleted")
    page.locator("#confirm").check()
    page.locator("#confirm-action").click()
    expect(page.locator("#done-summary")).to_have_text("Deleted 1 entry")
    assert [r.execution_id for r in _dead_letters(app, queue="warehouse.export")] == [acme.execution_id]
    page.goto(flower.url + "/dead-letters/audit")
    expect(page.locator(".audit-row").first).to_contain_text("purge")
    expect(page.locator(".audit-row").first).to_contain_text("flower:admin")
