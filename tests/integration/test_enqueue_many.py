"""enqueue_many: many jobs per round trip, the lane's capacity applied per chunk, nothing lost or doubled."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from storefront_jobs import PartialEnqueueError, QueueOverflowError, create_app, load_settings
from storefront_jobs.broker import keys
from storefront_jobs.embedded import EmbeddedRedis
from tests.integration import jobs
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration


def lane_ids(client: redis.Redis, lane: str) -> list[str]:
    """Ids of the jobs waiting in a lane, oldest (next to run) first."""
    return [json.loads(raw)["headers"]["id"] for raw in reversed(client.lrange(lane, 0, -1))]


def test_a_chunk_that_would_overfill_the_lane_is_refused_whole(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    app = create_app(load_settings(broker_url=redis_server.url, queue_capacity={"default": 10}), main="many")
    task = app.tasks[jobs.interop_record.name]

    with pytest.raises(PartialEnqueueError) as refused:
        task.enqueue_many([(f"o-{n}",) for n in range(25)], chunk_size=4)

    # Two chunks of 4 fit under the capacity of 10; the third would make 12 and is refused whole
    error = refused.value
    assert isinstance(error.cause, QueueOverflowError)
    assert (len(error.enqueued), error.total) == (8, 25)
    assert lane_ids(redis_client, "p2.default") == [r.id for r in error.enqueued]
    assert int(redis_client.hget(keys.OVERFLOW_COUNTS, "default") or 0) == 4
    enqueued = sum(int(v) for v in redis_client.hgetall(keys.ENQUEUED_COUNTS).values())
    assert enqueued == 8


def test_jobs_sent_many_at_a_time_run_once_each_in_order(
    app: Any, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    results = jobs.interop_record.enqueue_many([(f"o-{n}",) for n in range(1200)], chunk_size=500)
    assert lane_ids(redis_client, "p2.default") == [r.id for r in results]

    workers.start("DEFAULT", concurrency=1, pool="solo")
    wait_until(lambda: redis_client.llen("test:interop:runs") >= 1200)
    ran = [json.loads(v) for v in redis_client.lrange("test:interop:runs", 0, -1)]
    assert [r["id"] for r in ran] == [r.id for r in results]
    assert [r["order_id"] for r in ran] == [f"o-{n}" for n in range(1200)]


def test_bad_calls_get_a_clear_error_and_send_nothing(app: Any, redis_client: redis.Redis) -> None:
    with pytest.raises(TypeError, match="list or tuple of positional arguments or a mapping"):
        jobs.interop_record.enqueue_many(["o-1"])
    with pytest.raises(TypeError):
        jobs.interop_record.enqueue_many([("o-1", 2, 3, 4)])
    with pytest.raises(ValueError, match="chunk_size"):
        jobs.interop_record.enqueue_many([("o-1",)], chunk_size=0)
    assert redis_client.llen("p2.default") == 0
