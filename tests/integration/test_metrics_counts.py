"""Counts are exact on a prefork pool, across recycled children, and broker gauges need no worker."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis

from tests.integration import jobs
from tests.support.broker import broker_idle
from tests.support.metrics import broker_samples, label_sets, scrape, total
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration


def where_it_stopped(broker: redis.Redis, samples: Any, q: dict[str, str]) -> str:
    """What a run that did not finish left behind, for its failure message: the counts so far, and each
    held message's job and attempt (a lost acknowledgement shows as a finished job's message held)."""
    counts = {
        name: total(samples, f"storefront_jobs_job_{name}_total", **q)
        for name in ("started", "completed", "exhausted")
    }
    held = []
    for raw in list(broker.hgetall("unacked").values())[:5]:
        headers = json.loads(raw)[0].get("headers") or {}
        held.append((headers.get("id"), headers.get("retries"), headers.get("argsrepr")))
    return (
        f"counts {counts}, lane p2.default {broker.llen('p2.default')}, held {broker.hlen('unacked')} {held}"
    )


def test_every_counter_is_exact_after_2000_jobs(redis_client: redis.Redis, workers: WorkerFactory) -> None:
    # Given 2,000 jobs: 200 that fail for good, 200 that fail once then succeed, 1,600 that succeed
    modes = {n: "dead" if n % 10 == 0 else "flaky" if n % 10 == 1 else "ok" for n in range(2000)}
    for n, mode in modes.items():
        jobs.counted.delay(n, mode)

    # When a prefork pool of 2 processes, recycled every 150 jobs, runs them all
    worker = workers.start("DEFAULT", concurrency=2, extra=("--max-tasks-per-child", "150"))
    q = {"queue": "metrics.counted", "priority": "default"}

    def finished() -> bool:
        s = scrape(worker.metrics_url)
        done = total(s, "storefront_jobs_job_completed_total", **q)
        failed_for_good = total(s, "storefront_jobs_job_exhausted_total", **q)
        # Every job has ended, and every message is acked: a pool child counts a job's end before it
        # hands back its result, and the main process acks only after that, so no count is still due.
        return done + failed_for_good >= 2000 and broker_idle(redis_client)

    try:
        wait_until(finished, timeout_s=150, interval_s=0.5)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; {where_it_stopped(redis_client, scrape(worker.metrics_url), q)}"
        ) from None
    s = scrape(worker.metrics_url)

    # Then the runbook counters equal the true counts
    assert total(s, "storefront_jobs_job_started_total", **q) == 2200
    assert total(s, "storefront_jobs_job_completed_total", **q) == 1800
    assert total(s, "storefront_jobs_job_failed_total", attempt="1", **q) == 400
    assert total(s, "storefront_jobs_job_failed_total", **q) == 400
    assert total(s, "storefront_jobs_job_retried_total", attempt="1", **q) == 200
    assert total(s, "storefront_jobs_job_retry_success_total", attempt="2", **q) == 200
    assert total(s, "storefront_jobs_job_exhausted_total", reason="non_retryable", **q) == 200
    assert total(s, "storefront_jobs_job_duration_seconds_count", status="success", **q) == 1800
    assert total(s, "storefront_jobs_job_duration_seconds_count", status="failed", **q) == 400
    assert total(s, "storefront_jobs_job_wait_time_seconds_count", **q) == 2200

    # And the celery-exporter family carries celery-exporter's labels
    c = {"name": "tests.integration.jobs.counted", "queue_name": "p2.default"}
    assert total(s, "celery_task_received_total", **c) == 2200
    assert total(s, "celery_task_started_total", **c) == 2200
    assert total(s, "celery_task_succeeded_total", **c) == 1800
    assert total(s, "celery_task_retried_total", **c) == 200
    assert total(s, "celery_task_failed_total", exception="PermanentFailure", **c) == 200
    assert total(s, "celery_task_runtime_count", **c) == 1800
    hostnames = {ls["hostname"] for ls in label_sets(s, "celery_task_received_total")}
    assert hostnames == {worker.nodename.split("@", 1)[1]}
    assert all("@" not in h for h in hostnames)
    # Zero-initialised like celery-exporter: the failed counter exists with exception="".
    assert (
        "celery_task_failed_total",
        frozenset({**c, "hostname": hostnames.pop(), "exception": ""}.items()),
    ) in s

    # And producer-side counts come from Redis, exact as well
    b = broker_samples(redis_client)
    assert total(b, "storefront_jobs_job_enqueued_total", **q) == 2000
    assert total(b, "celery_task_sent_total", name=c["name"], queue_name="p2.default") == 2000
    assert total(b, "celery_worker_up") >= 1


def test_broker_gauges_need_no_worker(redis_client: redis.Redis) -> None:
    # Given jobs waiting in two lanes, some in a kombu priority sub-list, and no worker at all
    for n in range(7):
        jobs.urgent.delay(n)
    for n in range(5):
        jobs.sleepy_bulk.delay(n, 0)
    redis_client.lpush("p4.bulk\x06\x166", "{}", "{}", "{}")

    b = broker_samples(redis_client)

    assert total(b, "storefront_jobs_queue_depth", priority="critical") == 7
    assert total(b, "storefront_jobs_queue_depth", priority="bulk") == 8
    assert total(b, "celery_queue_length", queue_name="p4.bulk") == 8
    assert total(b, "storefront_jobs_queue_depth", priority="high") == 0
    assert 0 <= total(b, "storefront_jobs_job_age_seconds", priority="critical") < 60
    assert total(b, "storefront_jobs_workers", priority="critical") == 0


def test_a_pool_endpoint_can_require_a_token(redis_client: redis.Redis, workers: WorkerFactory) -> None:
    worker = workers.start("LOW", settings={"metrics_token": "scrape-token-1"})

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(worker.metrics_url, timeout=30)
    assert refused.value.code == 401
    request = urllib.request.Request(worker.metrics_url, headers={"Authorization": "Bearer scrape-token-1"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert b"celery_worker_tasks_active" in response.read()
    q_metrics = urllib.request.Request(
        worker.metrics_url.replace("/metrics", "/q/metrics"),
        headers={"Authorization": "Bearer scrape-token-1"},
    )
    with urllib.request.urlopen(q_metrics, timeout=30) as response:
        assert response.status == 200
