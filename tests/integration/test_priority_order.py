"""A pool that consumes every lane starts CRITICAL work before waiting BULK work."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.integration import jobs
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration


def test_a_new_critical_job_overtakes_queued_bulk_jobs(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given 200 BULK jobs of 50 ms waiting, and a pool of 2 processes on all five lanes
    bulk_ids = {jobs.sleepy_bulk.delay(n, 0.05).id: n for n in range(200)}
    workers.start("all", concurrency=2)
    wait_until(lambda: redis_client.llen("test:starts:order") >= 10)

    # When a CRITICAL job is sent
    sent_at = time.time()
    jobs.urgent.delay(1)

    # Then it starts before any BULK job the worker had not already fetched
    def starts() -> list[dict[str, object]]:
        return [json.loads(raw) for raw in redis_client.lrange("test:starts:order", 0, -1)]

    wait_until(lambda: any(s["kind"] == "critical" for s in starts()))
    order = starts()
    critical_start = next(s for s in order if s["kind"] == "critical")
    received_at = {
        bulk_ids[r["id"]]: r["at"]
        for r in (json.loads(raw) for raw in redis_client.lrange("test:received", 0, -1))
        if r["id"] in bulk_ids
    }
    started_before = [s for s in order[: order.index(critical_start)] if s["kind"] == "bulk"]
    late_fetches = [s["n"] for s in started_before if received_at[s["n"]] > sent_at]  # type: ignore[index]
    # The pool's one fetch in flight when the CRITICAL job was pushed (prefetch is off: one at a time)
    # may have taken a BULK job that the worker only reads after `sent_at`; any second one is an inversion.
    assert len(late_fetches) <= 1, f"BULK jobs fetched after the CRITICAL job was sent: {late_fetches}"
    # And it waited for no more than the jobs already handed to the pool (one per process) to start:
    # counted in jobs, not seconds, so a busy machine that slows everything down changes nothing.
    waited_for = [s["n"] for s in started_before if float(s["at"]) > sent_at]  # type: ignore[arg-type]
    assert len(waited_for) <= 2, f"BULK jobs started after the CRITICAL job was sent, before it: {waited_for}"
    assert redis_client.llen("p4.bulk") > 100, "the test proves nothing if the BULK backlog had drained"
