"""A frozen Redis (SIGSTOP): enqueues fail within the socket timeout, and everyone carries on when it thaws.

A Redis that stops answering without closing its connections (a stopped process, a frozen VM, a
failover behind a NAT) used to hold every producer for as long as it was stuck. With
``BROKER_SOCKET_TIMEOUT_S`` each enqueue ends in ``BrokerUnavailableError`` within the bound, the worker
rides the freeze out without a restart, and no acknowledged job is lost. The broker is a private
redis-server (as in test_redis_restart.py); the ledger stays on the session server.
"""

from __future__ import annotations

import os
import signal
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

TIMEOUT_S = 2.0
#: How long Redis stays stopped: well past every bound below, so a call that waited for the thaw shows.
FROZEN_S = 15.0
#: What a loaded machine may add to a bound: waking up, a reconnect.
SLACK_S = 2.5
VT_S = 10


def test_a_frozen_redis_fails_enqueues_within_the_timeout_and_nothing_is_lost(
    ledger: Ledger, aof_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    # Given a worker and a producer (50 jobs/s, every fifth with a countdown: Celery's own send) on a
    # broker of their own, with a socket timeout of 2 s
    started = time.monotonic()
    settings = {"visibility_timeout_s": str(VT_S), "broker_socket_timeout_s": str(TIMEOUT_S)}
    broker_app: Any = create_app(
        load_settings(broker_url=aof_redis.url, visibility_timeout_s=VT_S), main="frozen"
    )
    broker = redis.Redis.from_url(aof_redis.url)
    factory = WorkerFactory(aof_redis.url, tmp_path, broker_app.control.ping)
    assert aof_redis.process is not None
    redis_pid = aof_redis.process.pid
    try:
        worker = factory.start("DEFAULT", concurrency=2, settings=settings)
        stop = ledger.key("stop")
        producer = start_producer(
            aof_redis.url, tmp_path, run=ledger.run, prefix="fz", count=99_999, rate=50, sleep_s=0.02,
            stop_key=stop, countdown_every=5, settings=settings,
        )  # fmt: skip
        wait_until(lambda: ledger.completed_count() >= 100)

        # When Redis is stopped (SIGSTOP) for 15 s, while producers are refused, and then goes on
        try:
            os.kill(redis_pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            wait_until(lambda: refused_by_path(producer.answers()) >= {"lean", "celery"}, timeout_s=60)
            time.sleep(max(0.0, frozen_at + FROZEN_S - time.monotonic()))  # holds the freeze; asserts nothing
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        wait_until(lambda: len(acknowledged_after_thaw(producer.answers())) >= 50, timeout_s=120)
        ledger.client.set(stop, 1)
        producer.wait()
        acknowledged, refused = producer.acknowledged(), producer.refused()
        settle(ledger, store_for(broker_app), broker, acknowledged, timeout_s=90)

        # Then every refused enqueue raised BrokerUnavailableError within its bound, not after the freeze;
        # the same worker and producer carried on; every acknowledged job ran or is in the DLQ
        answers = producer.answers()
        slowest = {path: slowest_refusal_s(answers, path) for path in ("lean", "celery")}
        outcome = account(
            "Redis frozen (SIGSTOP) for 15 s during enqueue and processing",
            ledger=ledger,
            store=store_for(broker_app),
            enqueued=acknowledged,
            refused=refused,
            started_s=started,
            extra={
                "frozenS": FROZEN_S,
                "socketTimeoutS": TIMEOUT_S,
                "slowestRefusalS": slowest,
                "acknowledgedAfterThaw": len(acknowledged_after_thaw(answers)),
            },
        )
        publish(outcome, tmp_path)
        assert_nothing_lost(outcome)
        assert set(outcome.refused_errors) == {"BrokerUnavailableError"}, outcome.summary()
        assert max(slowest.values()) <= TIMEOUT_S + SLACK_S, outcome.summary()
        assert worker.proc.poll() is None, worker.log_text()[-3000:]
        assert set(ledger.runs()) >= set(acknowledged_after_thaw(answers))
    finally:
        factory.stop_all()
        broker.close()


def refused_by_path(answers: list[dict[str, object]]) -> set[object]:
    """The send paths (``lean``, ``celery``) on which the producer has had an enqueue refused."""
    return {a["path"] for a in answers if not a.get("ok")}


def slowest_refusal_s(answers: list[dict[str, object]], path: str) -> float:
    return max(float(str(a["tookS"])) for a in answers if not a.get("ok") and a["path"] == path)


def acknowledged_after_thaw(answers: list[dict[str, object]]) -> list[str]:
    """Ids the producer enqueued successfully after its last refused enqueue (after the thaw)."""
    last = max((n for n, a in enumerate(answers) if not a.get("ok")), default=len(answers))
    return [str(a["id"]) for a in answers[last:] if a.get("ok")]
