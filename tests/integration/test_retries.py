"""The retry table, end to end: real Redis, a real prefork worker, real countdowns."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import redis

from tests.integration import jobs
from tests.support.broker import wait_broker_idle
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration

#: A retry never starts before its countdown is over (it travels as an ETA with microseconds, hence
#: the 1 ms), but may start late: the worker fetches it, holds it until the ETA, then hands it to a
#: free process. That takes ~5 ms on an idle machine and ~25 ms with both cores busy; LATE_S allows
#: 40 times that, and still fails a job that waits another priority's delays (or Celery's 180 s).
EARLY_S, LATE_S = 0.001, 1.0


def _starts(client: redis.Redis, tag: str) -> list[float]:
    return [json.loads(raw)["at"] for raw in client.lrange(f"test:starts:{tag}", 0, -1)]


def _exhausted(client: redis.Redis, execution_id: str) -> list[dict[str, Any]]:
    records = [json.loads(raw) for raw in client.lrange("test:exhausted", 0, -1)]
    return [r for r in records if r["executionId"] == execution_id]


def _gaps(starts: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(starts)]


def test_failing_jobs_retry_on_their_priority_schedule(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given a pool consuming every lane
    workers.start("all", concurrency=2)

    # When an always-failing CRITICAL and an always-failing HIGH job are sent
    critical = jobs.failing_critical.delay("critical")
    high = jobs.failing_high.delay("high")

    # Then each runs once plus its retries, then is exhausted exactly once
    wait_until(lambda: _exhausted(redis_client, critical.id) and _exhausted(redis_client, high.id))
    wait_broker_idle(redis_client)  # no retry is still pending
    critical_starts = _starts(redis_client, "critical")
    high_starts = _starts(redis_client, "high")
    assert len(critical_starts) == 6
    assert len(high_starts) == 4
    # And each retry waited its priority's delay: never less, and at most LATE_S more
    for starts, delays in (
        (critical_starts, [0.5, 0.75, 1.125, 1.6875, 2.53125]),
        (high_starts, [1.0, 2.0, 4.0]),
    ):
        late_s = [round(gap - delay, 4) for gap, delay in zip(_gaps(starts), delays, strict=True)]
        assert all(-EARLY_S <= late <= LATE_S for late in late_s), f"late by {late_s} s after {delays}"

    [critical_end] = _exhausted(redis_client, critical.id)
    [high_end] = _exhausted(redis_client, high.id)
    assert (critical_end["reason"], critical_end["attempt"], critical_end["errorType"]) == (
        "exhausted",
        6,
        "RuntimeError",
    )
    assert (high_end["reason"], high_end["attempt"], high_end["errorType"]) == (
        "exhausted",
        4,
        "ConnectionError",
    )


@pytest.mark.parametrize(
    ("job", "reason", "error_type"),
    [
        (jobs.failing_bulk, "no_retry", "RuntimeError"),
        (jobs.permanently_failing, "non_retryable", "PermanentFailure"),
        (jobs.rejects_invalid_order, "non_retryable", "InvalidOrderError"),
    ],
    ids=["bulk", "permanent-failure", "non-retryable-class"],
)
def test_some_failures_are_final_at_once(
    redis_client: redis.Redis, workers: WorkerFactory, job: Any, reason: str, error_type: str
) -> None:
    workers.start("all", concurrency=1)

    sent = job.delay("once")

    [end] = wait_until(lambda: _exhausted(redis_client, sent.id))
    assert (end["reason"], end["attempt"], end["errorType"]) == (reason, 1, error_type)
    # No retry is pending: it would be in a lane or held by the worker (tests/support/broker.py)
    wait_broker_idle(redis_client)
    assert len(_starts(redis_client, "once")) == 1
    assert len(_exhausted(redis_client, sent.id)) == 1


def test_autoretry_uses_the_table_and_fires_on_exhausted(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    workers.start("LOW", concurrency=1)

    retried = jobs.flaky_analytics.delay("auto", "connection")
    not_listed = jobs.flaky_analytics.delay("auto-other", "value")

    wait_until(lambda: redis_client.llen("test:hook") == 2)
    wait_broker_idle(redis_client)  # and no retry is pending
    hooks = {
        json.loads(raw)["executionId"]: json.loads(raw) for raw in redis_client.lrange("test:hook", 0, -1)
    }
    assert (hooks[retried.id]["reason"], hooks[retried.id]["attempt"]) == ("exhausted", 4)
    assert (hooks[not_listed.id]["reason"], hooks[not_listed.id]["attempt"]) == ("non_retryable", 1)
    assert len(_starts(redis_client, "auto")) == 4
    assert len(_starts(redis_client, "auto-other")) == 1
    # The hook runs before job_exhausted's receivers, so the record may land a moment later.
    assert len(wait_until(lambda: _exhausted(redis_client, retried.id))) == 1
