"""Signals storefront-jobs sends, and the Celery signal receivers it installs.

Sent by storefront-jobs:

``job_exhausted(sender=task, failure=JobFailure)``
    A job failed for good and will not run again: retries spent, a
    non-retryable error, BULK's first failure, a lost worker or a hard time
    limit. Sent exactly once per final failure, from the process that saw it
    (the pool child, or the worker's main process for lost workers and time
    limits). The DLQ and the metrics hang on it.

Receivers installed on Celery's signals (module-level functions with a
``dispatch_uid``: Celery holds receivers weakly and swallows their errors, so
each is small and tested directly):

``before_task_publish``  stamp_headers        enqueuedAt, tenantId, priority, attempt
``task_prerun``          enter_job            tenant and log context, "Job started"
``task_postrun``         leave_job            "Job completed", context cleared
``task_retry``           log_retry            "Job failed" with the next attempt's delay
``task_failure``         on_final_failure     classify, "Job failed", on_exhausted, job_exhausted
``setup_logging``        setup_worker_logging JSON log lines in worker processes

plus the worker lifecycle (:mod:`storefront_jobs.worker.lifecycle`: metrics endpoint,
heartbeat) and the pool's counters (:mod:`storefront_jobs.metrics.pool`),
which do nothing outside a worker pool.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals as celery_signals
from celery.utils.dispatch import Signal

from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.failures import JobFailure, classify_failure
from storefront_jobs.jobs.task import PriorityTask
from storefront_jobs.jobs.tenancy import current_tenant, set_tenant
from storefront_jobs.logs import configure_logging, job_context, set_job_context
from storefront_jobs.metrics import pool as pool_metrics
from storefront_jobs.settings import get_settings
from storefront_jobs.worker import lifecycle

logger = logging.getLogger("storefront_jobs.jobs")

job_exhausted = Signal(name="job_exhausted", providing_args=["failure"])


def stamp_headers(
    sender: Any = None, headers: dict[str, Any] | None = None, routing_key: str | None = None, **_: Any
) -> None:
    if headers is not None:
        envelope.stamp(headers, lane=routing_key, now_s=time.time(), tenant_id=current_tenant())


def _job_fields(task: Any, request: Any, task_id: str | None = None) -> dict[str, Any]:
    return {
        "executionId": task_id or getattr(request, "id", None),
        "task": task.name,
        "queue": getattr(task, "job_queue", None) or envelope.read(request, envelope.JOB_QUEUE) or task.name,
        "priority": envelope.read(request, envelope.PRIORITY),
        "attempt": int(getattr(request, "retries", 0) or 0) + 1,
        "tenantId": envelope.read(request, envelope.TENANT_ID),
    }


def enter_job(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if not isinstance(task, PriorityTask):
        return
    fields = _job_fields(task, task.request, task_id)
    set_tenant(fields["tenantId"])
    set_job_context(fields)
    logger.debug("Job started")


def leave_job(sender: Any = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    if not isinstance(task, PriorityTask):
        return
    if state == "SUCCESS":
        logger.debug("Job completed")
    set_tenant(None)
    set_job_context({})


def _error_text(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"


def log_retry(
    sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None, **_: Any
) -> None:
    if not isinstance(sender, PriorityTask):
        return
    exc = getattr(reason, "exc", None)
    when = getattr(reason, "when", None)
    extra: dict[str, Any] = {
        "lastError": _error_text(exc),
        "retryInS": when if isinstance(when, int | float) else None,
        "nextAttempt": int(getattr(request, "retries", 0) or 0) + 2,
    }
    if not job_context():  # the main process, after a lost worker
        extra.update(_job_fields(sender, request))
    # einfo describes Celery's Retry; the stack worth reading is the job's own error.
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else getattr(einfo, "exc_info", None)
    logger.warning("Job failed", extra=extra, exc_info=exc_info)


def build_failure(
    task: PriorityTask,
    request: Any,
    *,
    task_id: str | None,
    exception: BaseException,
    args: Any,
    kwargs: Any,
    einfo: Any,
    now_s: float,
) -> JobFailure:
    retries = int(getattr(request, "retries", 0) or 0)
    reason = classify_failure(
        exception,
        retries=retries,
        policy=task.retry_policy,
        retry_on=task.retry_on,
        non_retryable=task.non_retryable,
    )
    headers = envelope.all_headers(request)
    enqueued_at = headers.get(envelope.ENQUEUED_AT)
    return JobFailure(
        execution_id=str(task_id or getattr(request, "id", "")),
        task=task.name,
        job_queue=task.job_queue or task.name,
        priority=task.lane_priority.name,
        attempt=retries + 1,
        reason=reason,
        error_type=type(exception).__name__,
        error_message=str(exception),
        traceback=getattr(einfo, "traceback", None),
        args=list(args or []),
        kwargs=dict(kwargs or {}),
        headers=headers,
        tenant_id=headers.get(envelope.TENANT_ID),
        enqueued_at=float(enqueued_at) if enqueued_at is not None else None,
        failed_at=now_s,
        worker=getattr(request, "hostname", None),
    )


def on_final_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    if not isinstance(sender, PriorityTask) or exception is None:
        return
    failure = build_failure(
        sender,
        sender.request,
        task_id=task_id,
        exception=exception,
        args=args,
        kwargs=kwargs,
        einfo=einfo,
        now_s=time.time(),
    )
    extra: dict[str, Any] = {"lastError": _error_text(exception), "reason": failure.reason.value}
    if not job_context():
        extra.update(_job_fields(sender, sender.request, task_id))
    # In the pool child the exception still has its own traceback, which reads
    # better than billiard's wrapped copy; after a lost worker only einfo has one.
    own = exception.__traceback__ is not None
    exc_info = (
        (type(exception), exception, exception.__traceback__) if own else getattr(einfo, "exc_info", None)
    )
    logger.error("Job failed", extra=extra, exc_info=exc_info)
    logger.warning("Job exhausted", extra=extra)
    try:
        sender.on_exhausted(failure)
    except Exception:
        # A broken hook must not stop the DLQ from receiving the job.
        logger.exception("on_exhausted hook failed", extra=extra)
    job_exhausted.send(sender=sender, failure=failure)


#: Celery loggers that write a line for every job received and succeeded.
PER_JOB_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


def setup_worker_logging(loglevel: Any = None, **_: Any) -> None:
    settings = get_settings()
    level = loglevel or settings.log_level
    configure_logging(level, settings.log_format)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # Two INFO lines per successful job cost about 15 % of a pool's
        # throughput; failures, retries and dead letters are what operators
        # grep for, and storefront logs those itself. DEBUG brings them back.
        for name in PER_JOB_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


_RECEIVERS: list[tuple[Signal, Any]] = [
    (celery_signals.before_task_publish, stamp_headers),
    (celery_signals.task_prerun, enter_job),
    (celery_signals.task_postrun, leave_job),
    (celery_signals.task_retry, log_retry),
    (celery_signals.task_failure, on_final_failure),
    (celery_signals.setup_logging, setup_worker_logging),
    (celery_signals.worker_init, lifecycle.on_worker_init),
    (celery_signals.worker_ready, lifecycle.on_worker_ready),
    (celery_signals.worker_shutdown, lifecycle.on_worker_shutdown),
    (celery_signals.task_received, pool_metrics.on_received),
    (celery_signals.task_prerun, pool_metrics.on_prerun),
    (celery_signals.task_postrun, pool_metrics.on_postrun),
    (celery_signals.task_retry, pool_metrics.on_retry),
    (celery_signals.task_failure, pool_metrics.on_failure),
    (celery_signals.task_revoked, pool_metrics.on_revoked),
    (job_exhausted, pool_metrics.on_exhausted),
]


def install() -> None:
    """Connect every receiver; idempotent (each has a dispatch_uid)."""
    for signal, receiver in _RECEIVERS:
        uid = f"{receiver.__module__}.{receiver.__name__}"
        signal.connect(receiver, weak=False, dispatch_uid=uid)
