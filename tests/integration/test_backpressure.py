"""A full lane refuses new jobs, publishes nothing and counts the overflow."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from storefront_jobs import Priority, QueueOverflowError, create_app, load_settings, priority_task
from storefront_jobs.embedded import EmbeddedRedis

pytestmark = [pytest.mark.integration, pytest.mark.delivery]


@pytest.fixture
def small_lane_app(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Any:
    return create_app(
        load_settings(broker_url=redis_server.url, queue_capacity={"default": 100}), main="small-lanes"
    )


def test_the_enqueue_after_capacity_is_refused(small_lane_app: Any, redis_client: redis.Redis) -> None:
    @priority_task(Priority.DEFAULT, queue="reporting.refresh", app=small_lane_app, name="tests.refresh")
    def refresh_report(report_id: int) -> None:
        return None

    # Given a DEFAULT lane of capacity 100 holding 100 waiting jobs
    for n in range(100):
        refresh_report.delay(n)
    assert redis_client.llen("p2.default") == 100

    # When one more is enqueued
    with pytest.raises(QueueOverflowError) as refused:
        refresh_report.delay(100)

    # Then the caller learns lane, depth and capacity, nothing was published, and it is counted
    assert (refused.value.lane, refused.value.depth, refused.value.capacity) == ("p2.default", 100, 100)
    assert "lane 'p2.default' is full" in str(refused.value)
    assert redis_client.llen("p2.default") == 100
    assert small_lane_app.capacity_gate.overflow_counts()[Priority.DEFAULT] == 1
    # Other lanes are not affected.
    assert small_lane_app.capacity_gate.overflow_counts()[Priority.HIGH] == 0


def test_depth_counts_every_priority_sub_list(small_lane_app: Any, redis_client: redis.Redis) -> None:
    # A foreign producer using message priorities fills kombu's sub-lists.
    for n in range(60):
        redis_client.lpush("p2.default", f"plain-{n}")
        redis_client.lpush("p2.default\x06\x166", f"prioritised-{n}")
    assert small_lane_app.capacity_gate.depth(Priority.DEFAULT) == 120
    with pytest.raises(QueueOverflowError) as refused:
        small_lane_app.capacity_gate.admit(Priority.DEFAULT)
    assert refused.value.depth == 120
