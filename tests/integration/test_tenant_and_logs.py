"""The producer's tenant reaches the job, and every log line is JSON with the job's fields."""

from __future__ import annotations

import json

import pytest
import redis

from storefront_jobs import tenant
from tests.integration import jobs
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration


def test_the_tenant_travels_with_the_job_into_its_logs(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    worker = workers.start("DEFAULT", concurrency=1)

    with tenant("t-42"):
        sent = jobs.tenant_aware.delay("o-1")
    failed = jobs.permanently_failing.delay("logs")

    [seen] = wait_until(lambda: redis_client.lrange("test:tenants", 0, -1))
    assert json.loads(seen)["tenant"] == "t-42"
    wait_until(lambda: any(r["message"] == "Job exhausted" for r in worker.log_records()))

    lines = [line for line in worker.log_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]  # every line parses
    [charging] = [r for r in records if r["message"] == "charging order o-1"]
    assert charging == charging | {
        "executionId": sent.id,
        "task": "tests.integration.jobs.tenant_aware",
        "queue": "billing",
        "priority": "DEFAULT",
        "attempt": 1,
        "tenantId": "t-42",
        "level": "INFO",
    }
    [failure] = [r for r in records if r["message"] == "Job failed" and r.get("executionId") == failed.id]
    assert failure["lastError"] == "PermanentFailure: report definition does not exist"
    assert failure["reason"] == "non_retryable"
    assert "PermanentFailure" in failure["stackTrace"]
    assert failure["queue"] == "reporting.export"
