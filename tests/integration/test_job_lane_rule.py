"""The lane a job was sent to is its priority everywhere: runs, retries, metrics, DLQ, replay."""

from __future__ import annotations

import itertools
import json
import urllib.request
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from storefront_jobs import Priority, get_default_app
from storefront_jobs.deadletter import ReplayRequest, replayer_for, store_for
from tests.integration import jobs
from tests.support.broker import wait_broker_idle
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration


def _starts(client: redis.Redis, tag: str) -> list[float]:
    return [json.loads(raw)["at"] for raw in client.lrange(f"test:starts:{tag}", 0, -1)]


def _samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _value(url: str, name: str, **labels: str) -> float:
    return sum(v for ls, v in _samples(url, name) if labels.items() <= ls.items())


def _exhausted(client: redis.Redis, execution_id: str) -> list[dict[str, Any]]:
    records = [json.loads(raw) for raw in client.lrange("test:exhausted", 0, -1)]
    return [r for r in records if r["executionId"] == execution_id]


def test_a_critical_task_sent_to_bulk_is_a_bulk_job_everywhere(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given a pool on every lane and an always-failing CRITICAL task
    worker = workers.start("all", concurrency=1)

    # When one of its jobs is sent to the BULK lane
    sent = jobs.failing_critical.apply_async(("to-bulk",), priority=Priority.BULK)

    # Then it runs once, on BULK's table (no retry), and is dead-lettered as BULK
    wait_until(lambda: _exhausted(redis_client, sent.id), 60)
    wait_broker_idle(redis_client)  # no retry is pending (tests/support/broker.py)
    [end] = _exhausted(redis_client, sent.id)
    assert (end["reason"], end["attempt"]) == ("no_retry", 1)
    store = store_for(get_default_app())
    record = wait_until(lambda: store.get(sent.id))
    assert record.priority is Priority.BULK
    assert record.attempt_number == 1
    assert len(_starts(redis_client, "to-bulk")) == 1

    # and its metrics carry priority="bulk" and the lane as celery-exporter's queue_name
    def counted() -> bool:
        return _value(worker.metrics_url, "storefront_jobs_job_exhausted_total", priority="bulk") == 1

    wait_until(counted)
    assert _value(worker.metrics_url, "storefront_jobs_job_started_total", priority="bulk") == 1
    assert _value(worker.metrics_url, "storefront_jobs_job_started_total", priority="critical") == 0
    assert _value(worker.metrics_url, "storefront_jobs_job_failed_total", priority="bulk", attempt="1") == 1
    failed = _samples(worker.metrics_url, "celery_task_failed_total")
    assert {ls["queue_name"] for ls, v in failed if v} == {"p4.bulk"}

    # and the log line that reports its end names BULK
    def dlq_line() -> dict[str, Any] | None:
        lines = [r for r in worker.log_records() if r.get("message") == "Job moved to DLQ"]
        return lines[0] if lines else None

    assert wait_until(dlq_line)["priority"] == "BULK"

    # When it is replayed with nothing consuming
    worker.stop()
    with replayer_for(get_default_app()) as replayer:
        report = replayer.replay(ReplayRequest(execution_ids=(sent.id,)), actor="test", source="test")

    # Then it lands in the BULK lane, not in CRITICAL's
    assert report.replayed_count == 1
    assert redis_client.llen("p4.bulk") == 1
    assert redis_client.llen("p0.critical") == 0


def test_a_low_task_sent_to_critical_retries_and_waits_as_a_critical_job(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given a pool on every lane and an always-failing LOW task
    worker = workers.start("all", concurrency=1)

    # When one of its jobs is sent to the CRITICAL lane
    sent = jobs.failing_low.apply_async(("to-critical",), priority=Priority.CRITICAL)

    # Then it runs on CRITICAL's table: six runs (LOW's would be four), each retry at
    # least CRITICAL's countdown after the run before it
    wait_until(lambda: _exhausted(redis_client, sent.id), 60)
    wait_broker_idle(redis_client)  # no retry is pending
    [end] = _exhausted(redis_client, sent.id)
    assert (end["reason"], end["attempt"]) == ("exhausted", 6)
    starts = _starts(redis_client, "to-critical")
    assert len(starts) == 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    for gap, countdown_s in zip(gaps, [0.5, 0.75, 1.125, 1.6875, 2.53125], strict=True):
        assert gap >= countdown_s - 0.05, gaps

    # and every wait is observed under CRITICAL, whose 1 s target is a bucket bound
    def waits() -> float:
        return _value(worker.metrics_url, "storefront_jobs_job_wait_time_seconds_count", priority="critical")

    wait_until(lambda: waits() == 6)
    assert _value(worker.metrics_url, "storefront_jobs_job_wait_time_seconds_count", priority="low") == 0
    buckets = {
        ls["le"]
        for ls, _ in _samples(worker.metrics_url, "storefront_jobs_job_wait_time_seconds_bucket")
        if ls.get("priority") == "critical"
    }
    assert "1.0" in buckets
    record = wait_until(lambda: store_for(get_default_app()).get(sent.id))
    assert (record.priority, record.attempt_number) == (Priority.CRITICAL, 6)
