"""The log lines of a job's life, and the tenant and log context around its body.

"Job started" and "Job completed" are DEBUG (one line per job is a cost at
thousands of jobs a second); "Job failed" (WARNING on a retry, ERROR when
final) and "Job exhausted" are what operators grep for, with ``lastError``
and the stack trace. The DLQ's own "Job moved to DLQ" comes from
:mod:`storefront_jobs.deadletter.capture`. Every line carries the job's
fields from its :class:`~storefront_jobs.jobs.context.JobContext`.
"""

from __future__ import annotations

import logging
from typing import Any

from storefront_jobs.jobs.context import JobContext
from storefront_jobs.jobs.failures import JobFailure
from storefront_jobs.jobs.tenancy import set_tenant
from storefront_jobs.logs import set_job_context
from storefront_jobs.worker.hooks import Hook

logger = logging.getLogger("storefront_jobs.jobs")


def error_text(exc: BaseException | None) -> str:
    """An error as the ``lastError`` field shows it."""
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"


def _exc_info(exc: BaseException | None, einfo: Any) -> Any:
    # In the pool child the exception still has its own traceback, which reads
    # better than billiard's wrapped copy; after a lost worker only einfo has one.
    if exc is not None and exc.__traceback__ is not None:
        return (type(exc), exc, exc.__traceback__)
    return getattr(einfo, "exc_info", None)


class JobLogs(Hook):
    """Sets the tenant and the log fields around a job's body; logs its failures."""

    def job_started(self, task: Any, job: JobContext | None) -> None:
        if job is None:
            return
        set_tenant(job.tenant_id)
        set_job_context(job.log_fields())
        logger.debug("Job started")

    def job_finished(self, task: Any, job: JobContext | None, state: str | None) -> None:
        if job is None:
            return
        if state == "SUCCESS":
            logger.debug("Job completed")
        set_tenant(None)
        set_job_context({})

    def job_retried(self, task: Any, job: JobContext | None, request: Any, reason: Any) -> None:
        if job is None:
            return
        exc = getattr(reason, "exc", None)
        when = getattr(reason, "when", None)
        extra = {
            **job.log_fields(),
            "lastError": error_text(exc),
            "retryInS": when if isinstance(when, int | float) else None,
            "nextAttempt": job.attempt + 1,
        }
        # Celery's einfo describes its Retry; the stack worth reading is the job's own error.
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        logger.warning("Job failed", extra=extra, exc_info=exc_info)

    def job_exhausted(self, task: Any, failure: JobFailure, exception: BaseException, einfo: Any) -> None:
        extra = {
            **task.job.log_fields(),
            # An item of a chunk fails under its own id (storefront_jobs.jobs.chunks).
            "executionId": failure.execution_id,
            "lastError": f"{failure.error_type}: {failure.error_message}",
            "reason": failure.reason.value,
        }
        logger.error("Job failed", extra=extra, exc_info=_exc_info(exception, einfo))
        logger.warning("Job exhausted", extra=extra)
