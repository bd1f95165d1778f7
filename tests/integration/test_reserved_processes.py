"""A pool on every lane keeps a process for its urgent lanes (``--reserve``), so BULK can never fill it.

The BULK jobs here hold their process until the test opens a gate, so which
job waited for which is decided by the test, not by the machine's speed:
with the reservation the CRITICAL jobs run while every BULK job is still
blocked; without it they can only start after the gate opens. The same
scenario with 500 ms BULK jobs, timed, is ``python -m bench.fairness``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis

from storefront_jobs.cli.queues import lane_rows
from storefront_jobs.worker.heartbeat import WorkerBeat, read_workers
from tests.integration import jobs
from tests.support.metrics import broker_samples, scrape, total
from tests.support.workers import WorkerFactory, WorkerProcess, wait_until

pytestmark = pytest.mark.integration

RESERVE = ("--reserve", "CRITICAL,HIGH=1")


def spans(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange("test:spans", 0, -1)]


def started(client: redis.Redis, kind: str) -> list[dict[str, Any]]:
    return [s for s in spans(client) if s["kind"] == kind and s["edge"] == "start"]


def most_bulk_at_once(records: list[dict[str, Any]]) -> int:
    """The most BULK jobs that ever ran at the same time, from their start and end records."""
    running = most = 0
    for record in sorted((r for r in records if r["kind"] == "bulk"), key=lambda r: (r["at"], r["edge"])):
        running += 1 if record["edge"] == "start" else -1
        most = max(most, running)
    return most


def queue_gated_bulk(count: int) -> str:
    """Send ``count`` BULK jobs that hold their process until the returned gate key is set."""
    gate = f"test:gate:{uuid.uuid4().hex}"
    for n in range(count):
        jobs.gated_bulk.delay(n, gate)
    return gate


def beat_of(client: redis.Redis, worker: WorkerProcess) -> WorkerBeat:
    """The heartbeat a worker pool wrote."""
    return next(b for b in read_workers(client) if b.nodename == worker.nodename)


def send_critical(count: int) -> None:
    for n in range(count):
        jobs.stamped_urgent.delay(n, time.time())
        time.sleep(0.05)  # a CRITICAL job every 50 ms, as the scenario sends them


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_reserved_process_runs_critical_jobs_while_bulk_holds_the_rest(
    redis_client: redis.Redis, workers: WorkerFactory, app: Any, pool: str
) -> None:
    # Given 20 BULK jobs that hold their process until the gate opens, and a pool of 2 processes
    # on every lane keeping 1 of them for CRITICAL and HIGH
    gate = queue_gated_bulk(20)
    worker = workers.start("all", concurrency=2, pool=pool, extra=RESERVE)
    wait_until(lambda: len(started(redis_client, "bulk")) == 1)

    # When CRITICAL jobs arrive while that BULK job still holds its process
    send_critical(10)

    # Then all of them run before any BULK job ends
    wait_until(lambda: len(started(redis_client, "critical")) == 10)
    assert not [s for s in spans(redis_client) if s["edge"] == "end"], (
        "a BULK job ended: the test proves nothing"
    )
    # And the lower lanes got one process, never the reserved one
    assert len(started(redis_client, "bulk")) == 1

    # And the pool announces its reservation, which `storefront-jobs queues` shows per lane
    beat = beat_of(redis_client, worker)
    assert (beat.reserved_lanes, beat.reserved_processes) == (["p0.critical", "p1.high"], 1)
    kept = {row["lane"]: row["keptProcesses"] for row in lane_rows(app, time.time())}
    assert kept == {"p0.critical": 1, "p1.high": 1, "p2.default": 0, "p3.low": 0, "p4.bulk": 0}
    # And the metrics: the pool's own endpoint and the admin service's broker gauges
    pool = scrape(worker.metrics_url)
    assert total(pool, "storefront_jobs_pool_reserved_processes", priority="critical") == 1
    assert total(pool, "storefront_jobs_pool_reserved_processes", priority="bulk") == 0
    broker = broker_samples(redis_client)
    assert total(broker, "storefront_jobs_reserved_processes", priority="high") == 1
    assert total(broker, "storefront_jobs_reserved_processes", priority="default") == 0

    # When the gate opens, BULK keeps running, still one job at a time
    redis_client.set(gate, 1)
    wait_until(lambda: len(started(redis_client, "bulk")) >= 5)
    assert most_bulk_at_once(spans(redis_client)) == 1


def test_without_a_reservation_critical_jobs_wait_for_a_bulk_job_to_end(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given the same BULK jobs and the same pool, without a reservation
    gate = queue_gated_bulk(20)
    workers.start("all", concurrency=2)
    # Both processes hold a BULK job
    wait_until(lambda: len(started(redis_client, "bulk")) == 2)

    # When CRITICAL jobs arrive, and only then the gate opens
    send_critical(10)
    opened_at = time.time()
    redis_client.set(gate, 1)

    # Then none of them started before a BULK job ended
    wait_until(lambda: len(started(redis_client, "critical")) == 10)
    assert all(s["at"] >= opened_at for s in started(redis_client, "critical"))


def test_lent_reserved_processes_take_bulk_jobs_while_the_urgent_lanes_are_empty(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given the reservation with --lend-reserved
    gate = queue_gated_bulk(20)
    worker = workers.start("all", concurrency=2, extra=(*RESERVE, "--lend-reserved"))

    # Then BULK jobs fill both processes while CRITICAL and HIGH are empty
    wait_until(lambda: len(started(redis_client, "bulk")) == 2)
    beat = beat_of(redis_client, worker)
    assert beat.lend_reserved
    assert beat.reserved_processes == 1
    redis_client.set(gate, 1)
