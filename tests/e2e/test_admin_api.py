"""The admin HTTP API: auth on every endpoint, problem documents, idempotent replay, limits, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from storefront_jobs import create_app, load_settings
from storefront_jobs.admin.app import create_admin_app
from storefront_jobs.admin.auth import TokenTable
from storefront_jobs.admin.limits import MAX_BODY_BYTES
from storefront_jobs.broker import keys
from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.deadletter.store import DeadLetterStore
from tests.support.dlq import make_record

pytestmark = pytest.mark.e2e

T0 = 1_800_000_000.0
TOKENS = {
    "read-token-0001": ["dlq:read"],
    "replay-token-001": ["dlq:replay"],
    "delete-token-001": ["dlq:delete"],
    "admin-token-0001": ["dlq:read", "dlq:replay", "dlq:delete"],
}
READ, REPLAY, DELETE, ADMIN = TOKENS


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def celery_app(redis_client: Any) -> Any:
    return create_app(load_settings(admin_tokens=TOKENS, queue_capacity={"default": 5}))


@pytest.fixture
def store(celery_app: Any) -> DeadLetterStore:
    store = store_for(celery_app)
    for i in range(6):
        store.add(make_record(f"e-{i}", failed_at=T0 + i, queue="reporting.export" if i < 4 else "billing"))
    return store


@pytest.fixture
def client(celery_app: Any, store: DeadLetterStore) -> Iterator[TestClient]:
    with TestClient(create_admin_app(celery_app), raise_server_exceptions=False) as client:
        yield client


ENDPOINTS = [
    ("GET", "/admin/jobs/dlq?queue=all", None, "dlq:read"),
    ("GET", "/admin/jobs/dlq/stats", None, "dlq:read"),
    ("GET", "/admin/jobs/dlq/e-1", None, "dlq:read"),
    ("GET", "/admin/jobs/audit", None, "dlq:read"),
    ("POST", "/admin/jobs/replay", {"executionId": "e-1"}, "dlq:replay"),
    ("DELETE", "/admin/jobs/dlq?queue=billing", None, "dlq:delete"),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_every_endpoint_wants_a_token_with_its_scope(
    client: TestClient, store: DeadLetterStore, method: str, path: str, body: Any, scope: str
) -> None:
    missing = client.request(method, path, json=body)
    unknown = client.request(method, path, json=body, headers=bearer("not-a-token-at-all"))
    wrong = client.request(method, path, json=body, headers=bearer(READ if scope != "dlq:read" else DELETE))
    right = client.request(method, path, json=body, headers=bearer(ADMIN))

    assert (missing.status_code, unknown.status_code, wrong.status_code) == (401, 401, 403)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.headers["content-type"] == "application/problem+json"
    assert wrong.json()["detail"] == f"this token lacks the {scope!r} scope"
    assert right.status_code == 200, right.text


def test_tokens_are_matched_exactly() -> None:
    table = TokenTable(TOKENS)
    assert table.authenticate(READ) is not None
    assert table.authenticate(READ[:-1]) is None
    assert table.authenticate(READ + "x") is None
    assert table.authenticate("") is None


def test_list_streams_everything_or_pages_with_a_cursor(client: TestClient, store: DeadLetterStore) -> None:
    everything = client.get(
        "/admin/jobs/dlq", params={"queue": "all", "format": "json"}, headers=bearer(READ)
    )
    assert [r["executionId"] for r in everything.json()] == [f"e-{i}" for i in range(5, -1, -1)]

    first = client.get("/admin/jobs/dlq?queue=reporting.export&limit=3", headers=bearer(READ))
    rest = client.get(
        f"/admin/jobs/dlq?queue=reporting.export&limit=3&cursor={first.headers['x-next-cursor']}",
        headers=bearer(READ),
    )
    assert [r["executionId"] for r in first.json() + rest.json()] == ["e-3", "e-2", "e-1", "e-0"]
    assert "x-next-cursor" not in rest.headers

    lines = client.get("/admin/jobs/dlq?queue=billing&format=jsonl", headers=bearer(READ))
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line)["executionId"] for line in lines.text.splitlines()] == ["e-5", "e-4"]

    assert client.get("/admin/jobs/dlq/ghost", headers=bearer(READ)).status_code == 404
    bad = client.get("/admin/jobs/dlq?priority=urgent", headers=bearer(READ))
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert store.count(Filter()) == 6  # reads changed nothing


def test_replaying_an_exported_record_is_idempotent(
    client: TestClient, store: DeadLetterStore, redis_client: Any
) -> None:
    exported = client.get("/admin/jobs/dlq?queue=all", headers=bearer(READ)).json()
    job_payload = {
        k: exported[0][k] for k in ("executionId", "priority", "attemptNumber", "lastError", "payload")
    }

    first = client.post(
        "/admin/jobs/replay", json=job_payload, headers=bearer(REPLAY) | {"Idempotency-Key": "k-1"}
    )
    retried = client.post(
        "/admin/jobs/replay", json=job_payload, headers=bearer(REPLAY) | {"Idempotency-Key": "k-1"}
    )
    again = client.post("/admin/jobs/replay", json=job_payload, headers=bearer(REPLAY))
    reused = client.post(
        "/admin/jobs/replay", json={"executionId": "e-0"}, headers=bearer(REPLAY) | {"Idempotency-Key": "k-1"}
    )

    assert first.status_code == 200
    assert first.json()["replayedCount"] == 1
    new_id = first.json()["replayed"][0]["newExecutionId"]
    assert (retried.json(), retried.headers["idempotent-replayed"]) == (first.json(), "true")
    assert again.json()["alreadyReplayed"] == {"e-5": new_id}
    assert reused.status_code == 422
    assert redis_client.llen("p2.default") == 1
    assert store.get("e-5") is None


def test_a_full_lane_answers_429_and_keeps_the_entries(
    client: TestClient, store: DeadLetterStore, redis_client: Any
) -> None:
    done = client.post("/admin/jobs/replay", json={"filter": {"queue": "all"}}, headers=bearer(REPLAY))
    assert done.status_code == 200
    assert done.json()["replayedCount"] == 5  # capacity 5
    assert "is full" in done.json()["stopped"]
    assert done.json()["remaining"] == 1

    full = client.post("/admin/jobs/replay", json={"executionIds": ["e-0"]}, headers=bearer(REPLAY))
    assert full.status_code == 429
    assert full.headers["content-type"] == "application/problem+json"
    assert store.get("e-0") is not None
    # Counted like any enqueue: five jobs of their job queue and task, one refused for a full lane
    counts = redis_client.hgetall(keys.ENQUEUED_COUNTS).items()
    enqueued = {tuple(k.decode().split("\t")[:3]): int(v) for k, v in counts}
    task = "tests.integration.jobs.noop"
    assert enqueued == {("default", "billing", task): 2, ("default", "reporting.export", task): 3}
    assert redis_client.hget(keys.OVERFLOW_COUNTS, "default") == b"1"


def test_dry_run_and_bad_bodies(client: TestClient, store: DeadLetterStore) -> None:
    dry = client.post(
        "/admin/jobs/replay", json={"filter": {"queue": "billing"}, "dryRun": True}, headers=bearer(REPLAY)
    )
    assert (dry.json()["count"], [r["executionId"] for r in dry.json()["sample"]]) == (2, ["e-5", "e-4"])
    for body in ({}, {"executionId": "a", "executionIds": ["b"]}, {"filter": {"color": "red"}}):
        bad = client.post("/admin/jobs/replay", json=body, headers=bearer(REPLAY))
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
    huge = client.post("/admin/jobs/replay", content=b"x" * (MAX_BODY_BYTES + 1), headers=bearer(REPLAY))
    assert huge.status_code == 413
    assert store.count(Filter()) == 6


def test_delete_needs_a_filter_and_is_audited(client: TestClient, store: DeadLetterStore) -> None:
    assert client.delete("/admin/jobs/dlq", headers=bearer(DELETE)).status_code == 400

    done = client.delete("/admin/jobs/dlq?queue=reporting.export", headers=bearer(DELETE))

    assert done.json()["deleted"] == 4
    assert store.count(Filter()) == 2
    [entry] = client.get("/admin/jobs/audit", headers=bearer(READ)).json()
    assert (entry["action"], entry["source"], entry["count"]) == ("purge", "http", 4)
    assert entry["actor"].startswith("token:")
    assert DELETE not in json.dumps(entry)


def test_health_and_openapi_need_no_token(client: TestClient) -> None:
    health = client.get("/q/health")
    assert health.status_code == 200
    assert health.json()["broker"]["reachable"] is True
    assert set(health.json()["workersPerLane"]) == {
        "p0.critical",
        "p1.high",
        "p2.default",
        "p3.low",
        "p4.bulk",
    }
    spec = client.get("/openapi.json").json()
    assert {"/admin/jobs/dlq", "/admin/jobs/replay", "/q/health"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
