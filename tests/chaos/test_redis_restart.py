"""Redis restarts under load: producers and workers reconnect on their own, no acknowledged job is lost.

The broker is a private redis-server with production's durability (AOF, ``appendfsync everysec``) on its
own port and data directory, so the session server is untouched. The ledger stays on the session server:
the evidence must survive the restart it judges.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs import create_app, load_settings
from storefront_jobs.deadletter import store_for
from storefront_jobs.embedded import EmbeddedRedis
from tests.chaos.accounting import Ledger, account, assert_nothing_lost, publish, settle
from tests.chaos.producer import start_producer
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.chaos

VT_S = 5
#: What an enqueue may raise while Redis is down: the producer is told, never left in silence.
PUBLISH_ERRORS = {"BrokerUnavailableError"}


def acknowledged_after_refusal(answers: list[dict[str, object]]) -> list[str]:
    """Ids the producer enqueued successfully after its first refused enqueue (after the restart)."""
    first = next((n for n, a in enumerate(answers) if not a.get("ok")), len(answers))
    return [str(a["id"]) for a in answers[first:] if a.get("ok")]


def test_a_redis_restart_loses_no_acknowledged_job(
    ledger: Ledger, aof_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    # Given a worker and a producer (100 jobs/s until told to stop) on a durable broker of their own
    started = time.monotonic()
    settings = {"visibility_timeout_s": str(VT_S)}
    broker_app: Any = create_app(
        load_settings(broker_url=aof_redis.url, visibility_timeout_s=VT_S), main="s3"
    )
    broker = redis.Redis.from_url(aof_redis.url)
    factory = WorkerFactory(aof_redis.url, tmp_path, broker_app.control.ping)
    try:
        worker = factory.start("DEFAULT", concurrency=2, settings=settings)
        stop = ledger.key("stop")
        producer = start_producer(
            aof_redis.url, tmp_path, run=ledger.run, prefix="s3", count=99_999, rate=100, sleep_s=0.02,
            stop_key=stop, settings=settings,
        )  # fmt: skip
        wait_until(lambda: ledger.completed_count() >= 100)

        # When Redis stops (SIGTERM: it writes its AOF first) while jobs are enqueued and processed,
        # stays down until producers have been refused, and starts again on the same data; the
        # producer goes on until 50 more enqueues were acknowledged after the restart
        aof_redis.stop()
        stopped_at = time.monotonic()
        wait_until(lambda: len(producer.refused()) >= 3)
        aof_redis.start(timeout_s=60)
        down_s = time.monotonic() - stopped_at
        wait_until(lambda: len(acknowledged_after_refusal(producer.answers())) >= 50)
        ledger.client.set(stop, 1)
        producer.wait()
        acknowledged, refused = producer.acknowledged(), producer.refused()
        settle(ledger, store_for(broker_app), broker, acknowledged, timeout_s=90)

        # Then every acknowledged enqueue ran or is in the DLQ, every refusal was an error the producer
        # saw, and the same worker and producer carried on after the restart
        after_restart = acknowledged_after_refusal(producer.answers())
        outcome = account(
            "3. Redis restarted (AOF, everysec) during enqueue and processing",
            ledger=ledger,
            store=store_for(broker_app),
            enqueued=acknowledged,
            refused=refused,
            started_s=started,
            extra={"redisDownS": round(down_s, 1), "acknowledgedAfterRestart": len(after_restart)},
        )
        publish(outcome, tmp_path)
        assert_nothing_lost(outcome)
        assert set(outcome.refused_errors) <= PUBLISH_ERRORS, outcome.summary()
        assert after_restart, "the producer never enqueued again after the restart"
        assert worker.proc.poll() is None, worker.log_text()[-3000:]
        assert set(ledger.runs()) >= set(after_restart)
    finally:
        factory.stop_all()
        broker.close()
