"""BROKER_MIN_REPLICAS: a write that too few replicas confirm fails with ReplicationError, and is counted.

The session's Redis has no replica, so with ``BROKER_MIN_REPLICAS=1`` every write falls short: the
enqueue, the Celery path's enqueue (a countdown), a DLQ capture. The write itself is on the primary;
the error says so and names the job. (tests/chaos/test_failover.py shows the writes that a replica
did confirm surviving a failover.)
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from storefront_jobs import Priority, ReplicationError, create_app, load_settings, priority_task
from storefront_jobs.broker import keys, replicas
from storefront_jobs.deadletter import store_for
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.errors import BrokerUnavailableError, PartialEnqueueError
from tests.support.dlq import make_record
from tests.support.metrics import broker_samples, total

pytestmark = pytest.mark.integration


@pytest.fixture
def quorum_app(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Any:
    settings = load_settings(
        broker_url=redis_server.url, broker_min_replicas=1, broker_min_replicas_timeout_s=0.2
    )
    return create_app(settings, main="min-replicas")


def test_an_enqueue_no_replica_confirms_fails_naming_the_job(
    quorum_app: Any, redis_client: redis.Redis
) -> None:
    @priority_task(Priority.DEFAULT, queue="orders.confirm", app=quorum_app, name="tests.confirm_order")
    def confirm_order(order_id: int) -> None:
        return None

    # When a job is enqueued, on the lean path and on Celery's (a countdown), and no replica confirms it
    with pytest.raises(ReplicationError) as lean:
        confirm_order.apply_async((1,), task_id="order-1")
    with pytest.raises(ReplicationError) as celery_path:
        confirm_order.apply_async((2,), task_id="order-2", countdown=30)

    # Then each error names its job, says the primary has it, and is a BrokerUnavailableError
    for error, job_id in ((lean.value, "order-1"), (celery_path.value, "order-2")):
        assert error.job_id == job_id
        assert error.maybe_sent
        assert error.replicas_confirmed == 0
        assert isinstance(error, BrokerUnavailableError)
        assert "0 of 1 replica(s) confirmed it within 0.2 s" in str(error)
        assert f"job {job_id} may or may not survive a failover" in str(error)
    # And the jobs are on the primary, and the shortfalls are counted
    assert redis_client.llen("p2.default") == 2
    assert redis_client.hget(keys.REPLICA_SHORTFALLS, "enqueue") == b"2"
    samples = broker_samples(redis_client)
    assert total(samples, "storefront_jobs_replica_shortfall_total", operation="enqueue") == 2
    assert total(samples, "storefront_jobs_replica_shortfall_total", operation="retry") == 0


def test_a_dlq_capture_no_replica_confirms_fails_too(quorum_app: Any, redis_client: redis.Redis) -> None:
    record = make_record("dead-1")
    with pytest.raises(ReplicationError) as refused:
        store_for(quorum_app).add(record)
    assert refused.value.job_id == "dead-1"
    assert store_for(quorum_app).get("dead-1") is not None
    assert redis_client.hget(keys.REPLICA_SHORTFALLS, "dlq_capture") == b"1"


def test_without_min_replicas_nothing_waits(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    app: Any = create_app(load_settings(broker_url=redis_server.url), main="no-quorum")

    @priority_task(Priority.DEFAULT, queue="orders.confirm", app=app, name="tests.confirm_order_plain")
    def confirm_order(order_id: int) -> None:
        return None

    confirm_order.apply_async((1,), countdown=30)
    confirm_order.delay(2)
    assert redis_client.llen("p2.default") == 2
    assert not redis_client.exists(keys.REPLICA_SHORTFALLS)
    assert replicas.Quorum.of(app.storefront_settings).wanted is False


@pytest.fixture
def primary_without_replicas(redis_client: redis.Redis) -> Any:
    """The session's Redis as a primary that needs one connected replica to take a write."""
    redis_client.config_set("min-replicas-to-write", 1)
    try:
        yield redis_client
    finally:
        redis_client.config_set("min-replicas-to-write", 0)


def test_a_primary_that_refuses_writes_for_want_of_replicas_refuses_enqueues_clearly(
    redis_server: EmbeddedRedis, primary_without_replicas: redis.Redis
) -> None:
    app: Any = create_app(load_settings(broker_url=redis_server.url), main="no-replicas")

    @priority_task(Priority.DEFAULT, queue="orders.confirm", app=app, name="tests.confirm_order_norep")
    def confirm_order(order_id: int) -> None:
        return None

    # When the primary's min-replicas-to-write is not met, an enqueue on either path is refused
    with pytest.raises(BrokerUnavailableError) as lean:
        confirm_order.apply_async((1,), task_id="order-1")
    with pytest.raises(BrokerUnavailableError) as celery_path:
        confirm_order.apply_async((2,), task_id="order-3", countdown=30)
    with pytest.raises(PartialEnqueueError) as many:
        confirm_order.enqueue_many([(3,), (4,)])

    # Then with the documented error, which says the job was not enqueued and why
    for error, job_id in ((lean.value, "order-1"), (celery_path.value, "order-3")):
        assert not isinstance(error, ReplicationError)
        assert not error.maybe_sent
        assert f"job {job_id} was not enqueued" in str(error)
        assert "min-replicas-to-write" in str(error)
    assert isinstance(many.value.cause, BrokerUnavailableError)
    assert many.value.enqueued == []
    # And nothing is in the lane
    primary_without_replicas.config_set("min-replicas-to-write", 0)
    assert primary_without_replicas.llen("p2.default") == 0
