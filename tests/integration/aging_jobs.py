"""Jobs of the aging tests (tests/integration/test_aging.py); workers import them with tests.integration.jobs.

Each run reports what its job context says about the delivery (lane, priority, promotedFrom) to
Redis, so the test reads the story of a job from the same server.
"""

from __future__ import annotations

import json
import time

from storefront_jobs import Priority, priority_task
from tests.support.broker import broker_redis

#: The STOREFRONT_JOBS_IMPORTS of a worker that runs these jobs.
IMPORTS = "tests.integration.jobs,tests.integration.aging_jobs"
RUNS = "test:aging:runs"
HIGH_STARTS = "test:aging:high"


def _record(key: str, **fields: object) -> None:
    broker_redis().rpush(key, json.dumps({"at": time.time(), **fields}))


def _report(task: object, tag: str) -> None:
    job = task.job  # type: ignore[attr-defined]
    delivery = task.request.delivery_info or {}  # type: ignore[attr-defined]
    _record(
        RUNS,
        tag=tag,
        id=job.execution_id,
        lane=delivery.get("routing_key"),
        priority=job.priority.name,
        promotedFrom=job.promoted_from.name if job.promoted_from else None,
        attempt=job.attempt,
    )


@priority_task(Priority.LOW, queue="aging.tests")
def low_probe(tag: str) -> None:
    _report(low_probe, tag)


@priority_task(Priority.BULK, queue="aging.tests")
def bulk_failing(tag: str) -> None:
    _report(bulk_failing, tag)
    raise RuntimeError("archive bucket missing")


@priority_task(Priority.HIGH, queue="aging.tests")
def high_work(sleep_s: float) -> None:
    """A steady stream of these keeps a one-process pool busy on HIGH."""
    _record(HIGH_STARTS)
    time.sleep(sleep_s)
