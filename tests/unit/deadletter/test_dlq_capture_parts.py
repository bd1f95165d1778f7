"""Capture pieces without a worker: the record of a JobFailure, the log line, the lost-worker rule."""

from __future__ import annotations

import logging

import pytest
from billiard.exceptions import WorkerLostError

from storefront_jobs.deadletter.capture import capture
from storefront_jobs.deadletter.memory import MemoryDeadLetterStore
from storefront_jobs.deadletter.query import Filter
from storefront_jobs.deadletter.record import AttemptError, record_from_failure
from storefront_jobs.jobs.failures import FailureReason, JobFailure
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.worker.request import is_final_worker_loss

T0 = 1_800_000_000.0


def failure(**changes: object) -> JobFailure:
    fields: dict[str, object] = {
        "execution_id": "e-1",
        "task": "shop.charge",
        "job_queue": "payments.webhooks",
        "priority": Priority.CRITICAL,
        "attempt": 3,
        "reason": FailureReason.EXHAUSTED,
        "error_type": "TimeoutError",
        "error_message": "gateway slow",
        "traceback": "Traceback ...",
        "args": [{"order": 1}],
        "kwargs": {"retry": True},
        "headers": {"tenantId": "t-1", "jobQueue": "payments.webhooks", "attempt": 3, "enqueuedAt": T0 - 5},
        "tenant_id": "t-1",
        "enqueued_at": T0 - 5,
        "failed_at": T0,
        "worker": "crit@host",
    }
    fields.update(changes)
    return JobFailure(**fields)  # type: ignore[arg-type]


def test_the_attempts_are_oldest_first_whatever_order_they_were_recorded_in() -> None:
    # A busy pool: attempt 2 failed and recorded its error before attempt 1's process recorded its own.
    recorded = [
        AttemptError(attempt=n, type="TimeoutError", message=f"try {n}", at=T0 - 3 + n) for n in (2, 1)
    ]

    record = record_from_failure(failure(), recorded)

    assert [e.attempt for e in record.errors] == [1, 2, 3]


def test_the_record_carries_every_attempt_and_what_a_resend_needs() -> None:
    earlier = [
        AttemptError(attempt=n, type="TimeoutError", message=f"try {n}", at=T0 - 3 + n) for n in (1, 2)
    ]

    stale = AttemptError(attempt=3, type="TimeoutError", message="seen before a crash", at=T0 - 1)

    record = record_from_failure(failure(), [*earlier, stale])

    assert [e.attempt for e in record.errors] == [1, 2, 3]
    assert record.errors[-1].message == "gateway slow"
    assert record.payload.model_dump() == {
        "task": "shop.charge",
        "args": [{"order": 1}],
        "kwargs": {"retry": True},
        "headers": {"tenantId": "t-1", "jobQueue": "payments.webhooks"},
    }
    assert (record.priority.name, record.attempt_number, record.replay_count) == ("CRITICAL", 3, 0)


def test_a_replayed_failure_keeps_its_lineage() -> None:
    record = record_from_failure(failure(headers={"replayOf": "e-0", "replayCount": 2}), [])
    assert (record.replay_of, record.replay_count) == ("e-0", 2)
    assert record.payload.headers == {"replayOf": "e-0", "replayCount": 2, "jobQueue": "payments.webhooks"}


def test_capture_logs_the_runbook_line_once(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryDeadLetterStore(max_entries=10, retention_s=10**9)
    caplog.set_level(logging.INFO, "storefront_jobs.dlq")

    assert capture(store, failure()) is True
    assert capture(store, failure()) is False

    [line] = [r for r in caplog.records if r.getMessage() == "Job moved to DLQ"]
    assert line.lastError == "TimeoutError: gateway slow"  # type: ignore[attr-defined]
    assert line.tenantId == "t-1"  # type: ignore[attr-defined]
    assert store.count(Filter()) == 1


def test_a_store_that_refuses_the_write_leaves_the_record_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(MemoryDeadLetterStore):
        def add(self, record, *, counter=None):  # type: ignore[no-untyped-def]
            raise ConnectionError("redis down")

    assert capture(Broken(max_entries=10, retention_s=10), failure()) is False
    [line] = [r for r in caplog.records if r.getMessage() == "DLQ capture failed"]
    assert '"executionId":"e-1"' in line.record  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("exc", "retries", "max_retries", "retry_on_lost", "final"),
    [
        (WorkerLostError(), 0, 0, True, True),
        (WorkerLostError(), 0, 3, True, False),
        (WorkerLostError(), 3, 3, True, True),
        (WorkerLostError(), 0, 3, False, True),
        (RuntimeError(), 3, 3, True, False),
    ],
)
def test_which_lost_workers_are_final(
    exc: BaseException, retries: int, max_retries: int, retry_on_lost: bool, final: bool
) -> None:
    resent = is_final_worker_loss(exc, retries=retries, max_retries=max_retries, resent_on_loss=retry_on_lost)
    assert resent is final
