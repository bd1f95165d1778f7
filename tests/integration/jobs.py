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
from tests.support.broker import broker_redis

log = logging.getLogger("tests.jobs")


def _redis() -> redis.Redis:
    return broker_redis()


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


@priority_task(Priority.LOW, queue="cache.warming")
def failing_low(tag: str) -> None:
    _record(f"test:starts:{tag}")
    raise RuntimeError("cache backend refused the write")


@priority_task(Priority.BULK, queue="archive")
def failing_bulk(tag: str) -> None:
    _record(f"test:starts:{tag}")
    raise RuntimeError("archive bucket missing")


@priority_task(Priority.BULK, queue="warehouse.export")
def fails_until_fixed(tag: str, note: str = "") -> None:
    """Fails while ``test:fixed:<tag>`` is unset: a dead letter whose cause an operator can fix."""
    _record(f"test:starts:{tag}", note=note)
    if not _redis().exists(f"test:fixed:{tag}"):
        raise RuntimeError("warehouse API refused the export")
    _record(f"test:done:{tag}", note=note)


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


@priority_task(Priority.BULK, queue="archive")
def gated_bulk(n: int, gate: str) -> None:
    """Holds its process until the test sets ``gate``: a BULK job whose end the test decides."""
    _record("test:spans", kind="bulk", n=n, edge="start", pid=os.getpid())
    client = _redis()
    while not client.exists(gate):
        time.sleep(0.01)
    _record("test:spans", kind="bulk", n=n, edge="end", pid=os.getpid())


@priority_task(Priority.CRITICAL, queue="payments.webhooks")
def stamped_urgent(n: int, sent_at: float) -> None:
    _record("test:spans", kind="critical", n=n, edge="start", sent_at=sent_at, pid=os.getpid())


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


@priority_task(
    Priority.DEFAULT, queue="metrics.counted", retry={"initial_delay_s": 0.01, "max_delay_s": 0.01}
)
def counted(n: int, mode: str) -> None:
    """ok: succeeds; flaky: fails its first attempt, then succeeds; dead: fails for good."""
    from celery import current_task

    if mode == "dead":
        raise PermanentFailure(f"job {n} cannot succeed")
    if mode == "flaky" and current_task.request.retries == 0:
        raise ConnectionError(f"job {n} hit a blip")


# --- Dead-letter queue tests (tests/integration/test_dlq_*.py) -----------------

_FAST_RETRY = {"max_retries": 2, "initial_delay_s": 0.05, "max_delay_s": 0.05, "multiplier": 1.0}


@priority_task(Priority.HIGH, queue="dlq.tests", retry=_FAST_RETRY)
def dlq_exhausts(order: dict[str, Any], note: str = "") -> None:
    raise TimeoutError(f"upstream timed out for order {order['id']}")


@priority_task(Priority.BULK, queue="dlq.tests")
def dlq_rejects(tag: str) -> None:
    from celery.exceptions import Reject

    raise Reject(f"poison message {tag}", requeue=False)


@priority_task(Priority.BULK, queue="dlq.tests", time_limit=1)
def dlq_overruns(tag: str) -> None:
    time.sleep(30)


@priority_task(Priority.BULK, queue="dlq.tests")
def dlq_blocks(tag: str, sleep_s: float) -> None:
    """Sleeps so that a test can SIGKILL its pool child (pid in ``test:pids:<tag>``)."""
    _record(f"test:pids:{tag}", pid=os.getpid())
    time.sleep(sleep_s)


@priority_task(Priority.HIGH, queue="dlq.tests", retry={**_FAST_RETRY, "max_retries": 1})
def dlq_blocks_then_succeeds(tag: str, sleep_s: float) -> None:
    """Blocks on its first attempt only (a test kills it there); the retry succeeds."""
    retries = dlq_blocks_then_succeeds.request.retries
    _record(f"test:pids:{tag}", pid=os.getpid(), retries=retries)
    if not retries:
        time.sleep(sleep_s)
    _record(f"test:done:{tag}", retries=retries)


@priority_task(Priority.DEFAULT, queue="dlq.replays")
def dlq_records_run(n: int, payload: dict[str, Any] | None = None) -> None:
    """Reports each run: its execution id, replay headers and the lane it came from."""
    request = dlq_records_run.request
    headers = request.headers or {}
    _record(
        "test:runs",
        id=request.id,
        n=n,
        payload=payload,
        replayOf=headers.get("replayOf"),
        replayCount=headers.get("replayCount"),
        attempt=headers.get("attempt"),
        lane=(request.delivery_info or {}).get("routing_key"),
        tenantId=current_tenant(),
    )


@priority_task(Priority.HIGH, queue="notifications")
def blocking_high(n: int) -> None:
    """Holds its process until the test sets ``test:release`` (120 s at most: the cap only ends the job
    of a test that failed before releasing it, so it must outlast any slow step of a passing one)."""
    _record("test:starts:order", kind="blocker", n=n)
    client = _redis()
    deadline = time.monotonic() + 120
    while not client.exists("test:release") and time.monotonic() < deadline:
        time.sleep(0.02)


@priority_task(Priority.HIGH, queue="notifications")
def ordered_high(n: int) -> None:
    _record("test:starts:order", kind="high", n=n)


@priority_task(Priority.HIGH, queue="notifications")
def high_marker(tag: str) -> None:
    """A barrier: once a one-process pool ran it, it has started every job it would take before it."""
    _record("test:markers", tag=tag)


@priority_task(Priority.LOW, queue="cache.warming")
def periodic_tick() -> None:
    _record("test:ticks")


def schedule_periodic_tick(sender: Any = None, **_: Any) -> None:
    # Sent by Celery beat only while a scheduler runs (tests/integration/test_scheduler.py).
    # Added as beat starts (so that importing this module builds no app), after its
    # scheduler read the schedule: merged into that scheduler too.
    sender.app.add_periodic_task(0.5, periodic_tick.s(), name="tests.periodic_tick")
    sender.scheduler.merge_inplace(sender.app.conf.beat_schedule)


celery_signals.beat_init.connect(schedule_periodic_tick, weak=False, dispatch_uid="tests.periodic_tick")


# --- Chaos tests (tests/chaos/): every run reports to the ledger of tests/chaos/accounting.py -----

_CHAOS_RETRY = {"max_retries": 3, "initial_delay_s": 0.05, "max_delay_s": 0.2, "multiplier": 2.0}


@priority_task(Priority.DEFAULT, queue="chaos.work", retry=_CHAOS_RETRY)
def chaos_work(run: str, job_id: str, sleep_s: float = 0.0, gate: str | None = None) -> None:
    """A job that takes ``sleep_s`` (or, with ``gate``, until the test opens it) and records its start
    and its completion."""
    from tests.chaos import accounting

    redelivered = bool((chaos_work.request.delivery_info or {}).get("redelivered"))
    accounting.job_started(run, job_id, redelivered=redelivered)
    if sleep_s:
        time.sleep(sleep_s)
    if gate:
        accounting.wait_for_gate(gate)
    accounting.job_finished(run, job_id)


@priority_task(Priority.DEFAULT, queue="chaos.poison", retry={**_CHAOS_RETRY, "max_retries": 2})
def chaos_poison(run: str, job_id: str) -> None:
    """Kills the pool process that runs it, every time (a segfault, an OOM kill)."""
    import signal

    from tests.chaos import accounting

    accounting.job_started(run, job_id)
    os.kill(os.getpid(), signal.SIGKILL)


@priority_task(Priority.DEFAULT, queue="interop", name="tests.interop.record", bind=True)
def interop_record(self: Any, order_id: str, copies: int = 1) -> None:
    """The storefront side of tests.integration.interop_jobs' task of the same name."""
    from tests.integration.interop_jobs import record

    record("storefront", order_id, copies, self.request)
