"""Jobs the integration tests send to real workers.

Each job reports what it saw to Redis (lists under ``test:``), so the test
process can read the story of a run from the same server.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import redis
from celery import signals as celery_signals

from storefront_jobs import (
    JobFailure,
    PermanentFailure,
    Priority,
    current_tenant,
    job_exhausted,
    priority_task,
)

log = logging.getLogger("tests.jobs")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["STOREFRONT_JOBS_BROKER_URL"])


def _record(key: str, **fields: Any) -> None:
    _redis().rpush(key, json.dumps({"at": time.time(), **fields}))


@priority_task(Priority.CRITICAL, queue="payments.webhooks")
def failing_critical(tag: str) -> None:
    _record(f"test:starts:{tag}")
    raise RuntimeError("payment provider timed out")


@priority_task(Priority.HIGH, queue="notifications")
def failing_high(tag: str) -> None:
    _record(f"test:starts:{tag}")
    raise ConnectionError("smtp unreachable")


@priority_task(Priority.BULK, queue="archive")
def failing_bulk(tag: str) -> None:
    _record(f"test:starts:{tag}")
    raise RuntimeError("archive bucket missing")


@priority_task(Priority.DEFAULT, queue="reporting.export")
def permanently_failing(tag: str) -> None:
    _record(f"test:starts:{tag}")
    raise PermanentFailure("report definition does not exist")


class InvalidOrderError(Exception):
    pass


@priority_task(Priority.HIGH, queue="orders", non_retryable=(InvalidOrderError,))
def rejects_invalid_order(tag: str) -> None:
    _record(f"test:starts:{tag}")
    raise InvalidOrderError("order o-1 has no lines")


@priority_task(Priority.BULK, queue="archive")
def sleepy_bulk(n: int, sleep_s: float) -> None:
    _record("test:starts:order", kind="bulk", n=n)
    time.sleep(sleep_s)


@priority_task(Priority.CRITICAL, queue="payments.webhooks")
def urgent(n: int) -> None:
    _record("test:starts:order", kind="critical", n=n)


@priority_task(Priority.DEFAULT, queue="reporting.refresh")
def noop(n: int) -> int:
    return n


@priority_task(Priority.DEFAULT, queue="billing")
def tenant_aware(order_id: str) -> None:
    _record("test:tenants", tenant=current_tenant(), order_id=order_id)
    log.info("charging order %s", order_id)


def record_exhausted(sender: Any = None, failure: JobFailure | None = None, **_: Any) -> None:
    assert failure is not None
    _record(
        "test:exhausted",
        executionId=failure.execution_id,
        task=failure.task,
        reason=failure.reason.value,
        attempt=failure.attempt,
        errorType=failure.error_type,
        tenantId=failure.tenant_id,
    )


def record_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    _record("test:received", id=request.id, task=request.name)


job_exhausted.connect(record_exhausted, weak=False, dispatch_uid="tests.record_exhausted")
celery_signals.task_received.connect(record_received, weak=False, dispatch_uid="tests.record_received")


def record_hook(failure: JobFailure) -> None:
    _record(
        "test:hook", executionId=failure.execution_id, reason=failure.reason.value, attempt=failure.attempt
    )


@priority_task(
    Priority.LOW,
    queue="analytics",
    autoretry_for=(ConnectionError,),
    retry={"initial_delay_s": 0.1, "max_delay_s": 0.1},
    on_exhausted=record_hook,
)
def flaky_analytics(tag: str, error: str = "connection") -> None:
    _record(f"test:starts:{tag}")
    if error == "connection":
        raise ConnectionError("warehouse unreachable")
    raise ValueError("bad metric name")
