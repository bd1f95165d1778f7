"""Reliable fetch: a message leaves its lane only in the same step that records it as unacknowledged.

These tests consume with kombu itself (the consumer a Celery worker runs) on the real broker, so
they see the commands the transport sends. The crash it protects against (a worker killed between
taking a message and recording it) is proven by tests/chaos/test_worker_crashes.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import kombu.transport.redis as kombu_redis
import pytest
import redis
from kombu import Connection, Consumer, Message

from storefront_jobs import create_app, load_settings
from storefront_jobs.broker import keys
from storefront_jobs.embedded import EmbeddedRedis
from tests.integration import jobs
from tests.support.workers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.delivery]

LANE = "p2.default"


@pytest.fixture
def consumer_app(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Any:
    """An app whose consumers wait up to 30 s for a doorbell before they look on their own."""
    app = create_app(load_settings(broker_url=redis_server.url), main="reliable-fetch")
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "brpop_timeout": 30}
    return app


@pytest.fixture
def connection(consumer_app: Any) -> Iterator[Connection]:
    with consumer_app.connection_for_read() as conn:
        yield conn


def consume_one(connection: Connection, timeout_s: float, check: Any = None) -> Message:
    """Take one message from the DEFAULT lane without acknowledging it; ``check`` runs inside the callback."""
    got: list[Message] = []

    def on_message(body: Any, message: Message) -> None:
        if check is not None:
            check(message)
        got.append(message)

    with Consumer(connection, queues=[_lane_queue()], callbacks=[on_message], accept=["json"]):
        deadline = time.monotonic() + timeout_s
        while not got:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no message within {timeout_s} s"
            try:
                connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
    return got[0]


def _lane_queue() -> Any:
    from storefront_jobs import get_default_app

    return get_default_app().amqp.queues[LANE]


def test_a_taken_message_is_already_recorded_as_unacknowledged(
    app: Any, connection: Connection, redis_client: redis.Redis
) -> None:
    # Given a job waiting in its lane
    jobs.chaos_work.apply_async(("fetch", "job-1"), task_id="job-1")
    assert redis_client.llen(LANE) == 1

    # When a consumer takes it, then (inside its callback, before any ack) the lane is empty and the
    # message is in kombu's unacknowledged record, restorable to its lane
    seen: dict[str, Any] = {}

    def check(message: Message) -> None:
        seen["lane"] = redis_client.llen(LANE)
        seen["record"] = redis_client.hget("unacked", message.delivery_tag)
        seen["fetched_at"] = redis_client.zscore("unacked_index", message.delivery_tag)

    message = consume_one(connection, timeout_s=30, check=check)
    assert seen["lane"] == 0
    payload, exchange, routing_key = json.loads(seen["record"])
    assert payload["headers"]["id"] == "job-1"
    assert (exchange, routing_key) == ("", LANE)
    assert abs(seen["fetched_at"] - time.time()) < 60

    # And restoring it (what the visibility timeout does for a dead worker) puts it back in its lane
    connection.default_channel.qos.restore_by_tag(message.delivery_tag)
    assert redis_client.llen(LANE) == 1
    assert redis_client.hlen("unacked") == 0
    restored = json.loads(redis_client.lindex(LANE, 0))
    assert restored["headers"]["id"] == "job-1"
    assert restored["properties"]["delivery_info"]["redelivered"] is True


def test_an_acknowledged_message_leaves_no_record(
    app: Any, connection: Connection, redis_client: redis.Redis
) -> None:
    jobs.chaos_work.apply_async(("fetch", "job-2"), task_id="job-2")
    message = consume_one(connection, timeout_s=30)
    assert redis_client.hlen("unacked") == 1
    message.ack()
    assert redis_client.hlen("unacked") == 0
    assert redis_client.zcard("unacked_index") == 0


def test_every_push_into_a_lane_rings_its_doorbell_and_an_empty_look_silences_it(
    app: Any, connection: Connection, redis_client: redis.Redis
) -> None:
    # A first enqueue and a retry each push one token
    jobs.chaos_work.apply_async(("fetch", "job-3"), task_id="job-3")
    jobs.chaos_work.apply_async(("fetch", "job-3b"), task_id="job-3b", headers={"retries": 1})
    assert redis_client.llen(keys.doorbell(LANE)) == 2
    # Taking the messages leaves the tokens; the look that finds the lane empty deletes them
    consume_one(connection, timeout_s=30).ack()
    consume_one(connection, timeout_s=30).ack()
    delivered: list[Message] = []
    idle = Consumer(
        connection, queues=[_lane_queue()], callbacks=[lambda b, m: delivered.append(m)], accept=["json"]
    )

    def silenced() -> bool:
        with contextlib.suppress(TimeoutError):
            connection.drain_events(timeout=0.5)
        return not redis_client.exists(keys.doorbell(LANE))

    with idle:
        wait_until(silenced, interval_s=0)
    assert delivered == []


def test_an_idle_consumer_is_woken_by_a_push_not_by_its_timeout(
    app: Any, connection: Connection, redis_client: redis.Redis
) -> None:
    # Given a consumer blocked on its doorbells, with a 30 s timeout before it would look on its own
    blocked_before = int(redis_client.info("clients")["blocked_clients"])
    published_at: list[float] = []

    def publish_once_blocked() -> None:
        wait_until(lambda: int(redis_client.info("clients")["blocked_clients"]) > blocked_before)
        published_at.append(time.monotonic())
        jobs.chaos_work.apply_async(("fetch", "job-4"), task_id="job-4")

    publisher = threading.Thread(target=publish_once_blocked)
    publisher.start()
    # When a job is enqueued while it waits, then it takes the job long before the timeout: at once,
    # however busy the machine; woken by its timeout, it would have waited about 30 s
    message = consume_one(connection, timeout_s=60)
    taken_at = time.monotonic()
    publisher.join()
    assert message.headers["id"] == "job-4"
    assert taken_at - published_at[0] < 15, taken_at - published_at[0]


def test_a_message_pushed_without_a_doorbell_is_still_taken(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # A producer on kombu's own transport (or kombu's restore) rings no bell: a consumer looks every
    # brpop_timeout (1 s by default) anyway.
    plain = create_app(load_settings(broker_url=redis_server.url), main="plain-producer")
    plain.conf.broker_transport = redis_server.url.split("://", 1)[0]  # kombu's redis (or sentinel)
    plain.send_task(jobs.chaos_work.name, ("fetch", "job-5"), task_id="job-5", queue=LANE)
    assert redis_client.llen(LANE) == 1
    assert redis_client.exists(keys.doorbell(LANE)) == 0
    consumer = create_app(load_settings(broker_url=redis_server.url), main="default-timeout")
    with consumer.connection_for_read() as conn:
        message = consume_one(conn, timeout_s=30)
    assert message.headers["id"] == "job-5"


def test_a_consumer_without_acknowledgements_leaves_no_record(
    app: Any, connection: Connection, redis_client: redis.Redis
) -> None:
    # Control replies (ping, inspect) are consumed this way: a record would never be cleared, and the
    # visibility timeout would push the reply back again and again.
    jobs.chaos_work.apply_async(("fetch", "job-6"), task_id="job-6")
    got: list[Message] = []
    consumer = Consumer(
        connection,
        queues=[_lane_queue()],
        callbacks=[lambda b, m: got.append(m)],
        accept=["json"],
        no_ack=True,
    )
    with consumer:
        connection.drain_events(timeout=30)
    assert got[0].headers["id"] == "job-6"
    held = (redis_client.llen(LANE), redis_client.hlen("unacked"), redis_client.zcard("unacked_index"))
    assert held == (0, 0, 0)


def test_a_restarted_redis_that_forgot_the_script_is_sent_it_again(
    app: Any, connection: Connection, redis_client: redis.Redis
) -> None:
    jobs.chaos_work.apply_async(("fetch", "job-7"), task_id="job-7")
    consume_one(connection, timeout_s=30).ack()
    redis_client.script_flush()  # what a restart does to the script cache
    jobs.chaos_work.apply_async(("fetch", "job-8"), task_id="job-8")
    message = consume_one(connection, timeout_s=30)
    assert message.headers["id"] == "job-8"
    assert redis_client.hexists("unacked", message.delivery_tag)


def test_a_dlq_replay_rings_the_doorbell(app: Any, redis_client: redis.Redis) -> None:
    from storefront_jobs.deadletter import ReplayRequest, replayer_for, store_for
    from tests.support.dlq import make_record

    store_for(app).add(make_record("dead-1", task=jobs.chaos_work.name))
    with replayer_for(app) as replayer:
        report = replayer.replay(ReplayRequest(execution_ids=("dead-1",)), actor="test", source="test")
    assert report.replayed_count == 1
    replayed = [lane for lane in keys.LANES.values() if redis_client.llen(lane)]
    assert len(replayed) == 1
    assert redis_client.llen(keys.doorbell(replayed[0])) == 1


# --- one clock: Redis's -----------------------------------------------------------------------------

TWO_HOURS_S = 7200.0


def redis_now_s(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def test_a_fetch_is_scored_with_redis_s_clock_not_the_worker_s(
    connection: Connection, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker whose clock is two hours behind
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - TWO_HOURS_S)
    jobs.chaos_work.apply_async(("clock", "job-behind"), task_id="job-behind")

    # When it takes a job, then the fetch time the restore sweep will judge is Redis's
    message = consume_one(connection, timeout_s=30)
    fetched_at = redis_client.zscore("unacked_index", message.delivery_tag)
    assert fetched_at is not None
    assert abs(fetched_at - redis_now_s(redis_client)) < 60


def test_a_sweeper_whose_clock_is_ahead_gives_back_only_what_redis_s_clock_says_expired(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two held jobs with a visibility timeout of 20 s: one fetched now, one fetched 100 s ago
    app = create_app(load_settings(broker_url=redis_server.url, visibility_timeout_s=20), main="clock-ahead")
    with app.connection_for_read() as conn:
        for job_id in ("job-fresh", "job-expired"):
            jobs.chaos_work.apply_async(("clock", job_id), task_id=job_id)
        held = {m.headers["id"]: m for m in (consume_one(conn, 30), consume_one(conn, 30))}
        expired_tag = held["job-expired"].delivery_tag
        redis_client.zadd("unacked_index", {expired_tag: redis_now_s(redis_client) - 100})

        # When a worker whose clock is two hours ahead runs the restore sweep
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + TWO_HOURS_S)
        monkeypatch.setattr(kombu_redis, "time", lambda: real_time() + TWO_HOURS_S)
        conn.default_channel.qos.restore_visible(num=10, interval=1)

        # Then only the job Redis's clock says expired is back in the lane; the fresh one stays held
        assert [json.loads(raw)["headers"]["id"] for raw in redis_client.lrange(LANE, 0, -1)] == [
            "job-expired"
        ]
        assert redis_client.hexists("unacked", held["job-fresh"].delivery_tag)
