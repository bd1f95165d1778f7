"""The example package against the test Redis: the runbook's replay call and the progress counters."""

from __future__ import annotations

import json

import redis

from storefront_jobs.broker import keys
from storefront_jobs.examples import progress
from storefront_jobs.examples.reporting import ReportingJobService


def test_enqueue_export_returns_the_execution_id_of_a_job_on_the_default_lane(
    redis_client: redis.Redis,
) -> None:
    # The runbook's interim replay path, in Python.
    job_id = ReportingJobService().enqueue_export(
        "sales_by_period", "csv", {"start": "2025-01-01", "end": "2025-01-31"}, "admin@villagecompute.com"
    )

    [raw] = redis_client.lrange("p2.default", 0, -1)
    message = json.loads(raw)
    assert message["headers"]["id"] == job_id
    assert message["headers"]["task"] == "storefront_jobs.examples.reporting.generate_report"
    assert message["headers"]["jobQueue"] == "reporting.export"


def test_progress_round_trip(redis_client: redis.Redis) -> None:
    progress.record(redis_client, "warm_cache", "sent", 3)
    progress.record(redis_client, "warm_cache", "done")
    redis_client.hset(keys.DEMO_PROGRESS, "warm_cache:bogus", 9)  # ignored: not an outcome

    assert progress.read(redis_client) == {
        "warm_cache": {"sent": 3, "done": 1, "retried": 0, "failed": 0, "refused": 0}
    }
    progress.reset(redis_client)
    assert progress.read(redis_client) == {}


def test_jobs_beat_sends_are_counted_as_sent(redis_client: redis.Redis, app: object) -> None:
    from types import SimpleNamespace

    from celery import signals

    from storefront_jobs.examples import schedule

    # Given the counter a beat process connects as it starts
    progress.count_beat_sends(sender=SimpleNamespace(app=app))
    try:
        # When beat publishes an example job (a real publish to its lane) and a user's job
        schedule.aggregate_yesterday.apply_async()
        signals.after_task_publish.send(
            sender="users.own.job", headers={}, body=(), exchange="", routing_key=""
        )
        # Then the example job counts as sent, before any worker could count it done
        assert progress.read(redis_client)["aggregate_yesterday"]["sent"] == 1
        assert "job" not in progress.read(redis_client)
    finally:
        signals.after_task_publish.disconnect(dispatch_uid=f"{progress.__name__}.beat_sent")
