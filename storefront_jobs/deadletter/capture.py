"""Capture: every job that will not run again lands in the DLQ, once, before its message is acked.

The life of a dead letter:

1. Each failed attempt that will be retried fires Celery's ``task_retry``;
   :func:`remember_attempt` appends its error to the job's attempts list in
   Redis (``storefront:dlq:attempts:<id>``), so the record can show every
   attempt. A job that later succeeds drops the list (:func:`forget_attempts`).
2. The final failure fires ``job_exhausted`` once (:mod:`storefront_jobs.worker.signals`).
   :func:`on_job_exhausted` folds the attempts into a record and adds it to the
   store, keyed by execution id, and logs "Job moved to DLQ".
3. Where that runs decides the guarantee:

   * A failure of the job body is seen in the pool child, inside Celery's
     tracer, before the child hands its result back: the worker's main
     process acks the message only after the record is written.
   * A hard time limit is handled in the main process, which sends
     ``task_failure`` before it acks (``Request.on_timeout``).
   * A lost pool child is handled in the main process too, but there Celery
     acks *before* sending ``task_failure``. :class:`~storefront_jobs.worker.request.CapturingRequest`
     writes the record first when no retry is left, so the ack never
     precedes the record on any path.

   A crash between capture and ack makes Redis redeliver the message; the
   job may fail and be captured again, but the store keeps one entry per
   execution id. If Redis itself refuses the write, the whole record is
   logged ("DLQ capture failed") so that nothing is lost silently.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from storefront_jobs.deadletter.binding import store_for
from storefront_jobs.deadletter.record import AttemptError, record_from_failure
from storefront_jobs.deadletter.store import DeadLetterStore
from storefront_jobs.jobs.context import JobContext
from storefront_jobs.jobs.failures import JobFailure
from storefront_jobs.worker.hooks import Hook

logger = logging.getLogger("storefront_jobs.dlq")


def log_fields(failure: JobFailure) -> dict[str, Any]:
    """The fields of the "Job moved to DLQ" line: the runbook greps lastError and tenantId."""
    return {
        "executionId": failure.execution_id,
        "task": failure.task,
        "queue": failure.job_queue,
        "priority": failure.priority.name,
        "attempt": failure.attempt,
        "tenantId": failure.tenant_id,
        "lastError": f"{failure.error_type}: {failure.error_message}",
        "reason": failure.reason.value,
        "worker": failure.worker,
    }


def capture(store: DeadLetterStore, failure: JobFailure) -> bool:
    """Write the record of a final failure; True if it is new in the store."""
    fields = log_fields(failure)
    record = None
    try:
        record = record_from_failure(failure, store.attempts(failure.execution_id))
        added = store.add(record)
    except Exception:
        # Logged with the whole record: an operator can still import it by hand.
        fields["record"] = record.to_json() if record is not None else None
        logger.exception("DLQ capture failed", extra=fields)
        return False
    if added:
        logger.warning("Job moved to DLQ", extra=fields)
    return added


class DeadLetterCapture(Hook):
    """Keeps every failed attempt's error, and every final failure as a DLQ record."""

    def job_exhausted(self, task: Any, failure: JobFailure, exception: BaseException, einfo: Any) -> None:
        capture(store_for(task.app), failure)

    def job_retried(self, task: Any, job: JobContext | None, request: Any, reason: Any) -> None:
        if job is None or not job.execution_id:
            return
        exc = getattr(reason, "exc", None)
        error = AttemptError(
            attempt=job.attempt,
            type=type(exc).__name__ if exc is not None else "Retry",
            message=str(exc) if exc is not None else str(reason),
            at=time.time(),
        )
        try:
            store_for(task.app).record_attempt(job.execution_id, error)
        except Exception:
            logger.exception("could not record a failed attempt", extra={"executionId": job.execution_id})

    def job_finished(self, task: Any, job: JobContext | None, state: str | None) -> None:
        # Only jobs that were retried have an attempts list; a first-time success costs nothing.
        if state != "SUCCESS" or job is None or job.attempt == 1:
            return
        try:
            store_for(task.app).forget_attempts(job.execution_id)
        except Exception:
            logger.exception("could not drop the attempts of a job", extra={"executionId": job.execution_id})
