"""The lean enqueue pushes exactly the message Celery and kombu push for the same call.

One job goes through Celery's own ``send_task`` and kombu's ``publish`` (a
producer of the caller's own forces that path), the same job through the lean
path; the two lane entries must match field by field, the per-job values
(ids, tags, times) aside. A kombu or Celery upgrade that changes the wire
format fails here, naming the field.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis
from celery import signals as celery_signals

from storefront_jobs import create_app, load_settings
from storefront_jobs.embedded import EmbeddedRedis
from tests.unit.broker import wire_jobs

#: Fields that differ between any two messages: ids, delivery tags, times and the sending thread.
PER_JOB = {
    ("headers", "id"),
    ("headers", "root_id"),
    ("headers", "enqueuedAt"),
    ("headers", "laneSince"),
    ("properties", "correlation_id"),
    ("properties", "delivery_tag"),
}


def _flatten(entry: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for part in ("headers", "properties"):
        for key, value in entry[part].items():
            flat[(part, key)] = value
    for key in ("content-type", "content-encoding"):
        flat[(key,)] = entry[key]
    flat[("body",)] = json.loads(base64.b64decode(entry["body"]))
    return flat


@pytest.fixture
def contract_app(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Any:
    return create_app(load_settings(broker_url=redis_server.url), main="wire-contract")


def _pushed(client: redis.Redis, lane: str) -> dict[tuple[str, ...], Any]:
    raw = client.rpop(lane)
    assert raw is not None, f"nothing was pushed onto {lane}"
    return _flatten(json.loads(raw))


def test_the_lean_path_pushes_the_message_kombu_pushes(contract_app: Any, redis_client: redis.Redis) -> None:
    task = contract_app.tasks[wire_jobs.send_receipt.name]
    with contract_app.producer_or_acquire() as producer:  # a producer of the caller's: Celery's path
        task.apply_async(("o-1",), {"copies": 2}, producer=producer)
    celery_message = _pushed(redis_client, "p1.high")
    task.apply_async(("o-1",), {"copies": 2})  # the lean path
    lean_message = _pushed(redis_client, "p1.high")

    assert set(lean_message) == set(celery_message), "the two messages carry different fields"
    for field, value in celery_message.items():
        if field in PER_JOB:
            assert lean_message[field] is not None, f"{field} is missing"
            continue
        ours = lean_message[field]
        assert ours == value, f"{'.'.join(field)}: lean {ours!r}, kombu {value!r}"
    # Celery's own defaults, not a copy of something else: a root job is its own root.
    assert lean_message[("headers", "root_id")] == lean_message[("headers", "id")]
    assert lean_message[("properties", "correlation_id")] == lean_message[("headers", "id")]


def test_publish_signals_fire_with_celerys_arguments(contract_app: Any, redis_client: redis.Redis) -> None:
    task = contract_app.tasks[wire_jobs.send_receipt.name]
    seen: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}

    def before(sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
        headers["traceparent"] = "00-abc-def-01"  # what tracing instrumentation does
        seen["before"].append({"sender": sender, **kwargs})

    def after(sender: Any = None, **kwargs: Any) -> None:
        seen["after"].append({"sender": sender, **kwargs})

    celery_signals.before_task_publish.connect(before, weak=False)
    celery_signals.after_task_publish.connect(after, weak=False)
    try:
        result = task.apply_async(("o-2",))
    finally:
        celery_signals.before_task_publish.disconnect(before)
        celery_signals.after_task_publish.disconnect(after)

    assert [call["sender"] for call in seen["before"]] == [task.name]
    assert [call["sender"] for call in seen["after"]] == [task.name]
    assert seen["before"][0]["routing_key"] == "p1.high"
    assert seen["after"][0]["headers"]["id"] == result.id
    assert seen["before"][0]["body"][0] == ["o-2"]
    pushed = _pushed(redis_client, "p1.high")
    assert pushed[("headers", "traceparent")] == "00-abc-def-01", "a receiver's header did not arrive"
