"""A full Redis (maxmemory reached, noeviction): new jobs are refused, and the workers drain the lanes.

Before, the acknowledgement (kombu's MULTI) and the restore sweep's lock (SET NX) were refused over
maxmemory: a running worker died, a new one could not start, and nobody could drain the lanes that would
free the memory. Now a worker's every step on a held message is a script Redis runs when full
(``allow-oom``), and only a new job is refused, with BrokerFullError.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs import BrokerFullError, Priority, create_app, load_settings, priority_task
from storefront_jobs.deadletter import store_for
from storefront_jobs.worker.heartbeat import read_workers
from tests.chaos.accounting import Ledger, account, assert_nothing_lost, publish, settle
from tests.integration import jobs
from tests.support.sentinel import PrimaryRedis
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.chaos

VT_S = 10


def fill(broker: redis.Redis) -> int:
    """Writes 8 MB of junk, then sets maxmemory 2 MB below what Redis uses: full, whatever a write's
    size (filling up to a refusal leaves room for a small write once the refused one's buffer is freed).
    Returns the maxmemory set."""
    for n in range(128):
        broker.set(f"junk:{n}", b"x" * 64_000)
    used = int(broker.info("memory")["used_memory"])
    maxmemory = used - 2_000_000
    broker.config_set("maxmemory", maxmemory)
    return maxmemory


def test_a_full_redis_refuses_new_jobs_and_the_workers_drain_it(ledger: Ledger, tmp_path: Path) -> None:
    # Given a Redis under noeviction, a worker holding 8 jobs (2 running, 6 fetched ahead), 200 more
    # waiting, and Redis then filled past maxmemory
    data = tmp_path / "redis"
    data.mkdir()
    server = PrimaryRedis(data).start()
    started = time.monotonic()
    app: Any = create_app(load_settings(broker_url=server.url, visibility_timeout_s=VT_S), main="full")
    broker = redis.Redis.from_url(server.url)
    factory = WorkerFactory(server.url, tmp_path, app.control.ping)
    settings = {"visibility_timeout_s": str(VT_S)}

    # The producer's side of the workers' tests.integration.jobs.chaos_work, on this broker
    @priority_task(Priority.DEFAULT, queue="chaos.work", app=app, name=jobs.chaos_work.name)
    def chaos_work(run: str, job_id: str, sleep_s: float = 0.0, gate: str | None = None) -> None:
        raise AssertionError("runs in the workers only")

    try:
        held_ids = [f"full-held-{n}" for n in range(8)]
        waiting_ids = [f"full-{n:04d}" for n in range(200)]
        first = factory.start("DEFAULT", concurrency=2, settings=settings)
        for job_id in held_ids:
            chaos_work.apply_async((ledger.run, job_id, 1.0), task_id=job_id)
        wait_until(lambda: int(broker.hlen("unacked")) == 8)
        for job_id in waiting_ids:
            chaos_work.apply_async((ledger.run, job_id, 0.2), task_id=job_id)
        maxmemory = fill(broker)

        # When a producer enqueues, on both send paths, the worker holding 8 jobs is killed (SIGKILL),
        # and a new worker starts on the full Redis
        refused: dict[str, str] = {}
        for job_id, countdown in (("full-refused-lean", None), ("full-refused-celery", 0.01)):
            with pytest.raises(BrokerFullError) as error:
                chaos_work.apply_async((ledger.run, job_id, 0.0), task_id=job_id, countdown=countdown)
            refused[job_id] = type(error.value).__name__
            assert "Redis is full" in str(error.value)
        # ...while the running worker goes on fetching and acknowledging
        before = ledger.completed_count()
        wait_until(lambda: ledger.completed_count() >= before + 10 or first.proc.poll() is not None)
        assert first.proc.poll() is None, first.log_text()[-3000:]
        held_at_kill = int(broker.hlen("unacked"))
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
        # (Celery's ping is a write too, which a full Redis refuses: the worker's log says it is ready)
        second = factory.start("DEFAULT", concurrency=2, settings=settings, wait=False)
        wait_until(lambda: " ready." in second.log_text() or second.proc.poll() is not None, timeout_s=90)
        assert second.proc.poll() is None, second.log_text()[-3000:]
        # ...and is seen by health and the queues command: its heartbeat is written on the full Redis
        wait_until(lambda: second.nodename in {beat.nodename for beat in read_workers(broker)})

        # Then every accepted job runs (the killed worker's after the visibility timeout), with Redis
        # still full and its maxmemory unchanged
        settle(ledger, store_for(app), broker, [*held_ids, *waiting_ids], timeout_s=120)
        outcome = account(
            "Redis full (over maxmemory, noeviction): enqueues refused, a worker killed, a new one started",
            ledger=ledger,
            store=store_for(app),
            enqueued=[*held_ids, *waiting_ids],
            refused=refused,
            started_s=started,
            extra={"maxmemory": maxmemory, "heldAtKill": held_at_kill},
        )
        publish(outcome, tmp_path)
        assert_nothing_lost(outcome)
        assert outcome.refused_but_ran == 0, outcome.summary()
        assert held_at_kill > 0, outcome.summary()  # the killed worker's jobs came back on a full Redis
        assert second.proc.poll() is None, second.log_text()[-3000:]
        assert broker.config_get("maxmemory")["maxmemory"] == str(maxmemory)
        with pytest.raises(redis.exceptions.OutOfMemoryError):  # type: ignore[attr-defined]
            broker.set("junk:still-full", b"x" * 64_000)
    finally:
        factory.stop_all()
        broker.close()
        server.close()
