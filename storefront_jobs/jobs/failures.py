"""Why a job failed for good, and the record of that failure.

:func:`classify_failure` is the single place that decides the reason a final
failure carries, and :func:`build_failure` the single place that turns a
job's context and its last error into a :class:`JobFailure`; the DLQ, metrics
and logs all use their answer.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.exceptions import Reject, TimeLimitExceeded

from storefront_jobs.errors import PermanentFailure
from storefront_jobs.jobs.context import JobContext
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.retry import RetryPolicy


class FailureReason(enum.StrEnum):
    """Why a job will not run again."""

    EXHAUSTED = "exhausted"  #: every retry was spent
    NON_RETRYABLE = "non_retryable"  #: PermanentFailure, or an error the task does not retry
    NO_RETRY = "no_retry"  #: the policy allows no retry (BULK)
    WORKER_LOST = "worker_lost"  #: the pool child died mid-job, retries on loss spent
    TIME_LIMIT = "time_limit"  #: the hard time limit killed the job
    REJECTED = "rejected"  #: Celery rejected the message (e.g. a retry could not be published)
    UNDECODABLE = "undecodable"  #: the message is not a job at all; kept raw, never replayed


def classify_failure(  # noqa: PLR0911 - one return per reason reads as the table it is
    exc: BaseException,
    *,
    retries: int,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    non_retryable: tuple[type[BaseException], ...] = (),
) -> FailureReason:
    """The reason of a final failure after ``retries`` retries."""
    if isinstance(exc, WorkerLostError):
        return FailureReason.WORKER_LOST
    if isinstance(exc, TimeLimitExceeded):
        return FailureReason.TIME_LIMIT
    if isinstance(exc, Reject):
        return FailureReason.REJECTED
    if isinstance(exc, (PermanentFailure, *non_retryable)) or not isinstance(exc, retry_on):
        return FailureReason.NON_RETRYABLE
    if policy.max_retries == 0:
        return FailureReason.NO_RETRY
    if retries >= policy.max_retries:
        return FailureReason.EXHAUSTED
    # Failed with retries left but not retried: the body chose to give up.
    return FailureReason.NON_RETRYABLE


def is_retryable(
    exc: BaseException,
    *,
    retry_on: tuple[type[BaseException], ...],
    non_retryable: tuple[type[BaseException], ...],
) -> bool:
    """Whether a failure of the job body may be retried at all."""
    if isinstance(exc, (PermanentFailure, *non_retryable)):
        return False
    return isinstance(exc, retry_on)


@dataclasses.dataclass(frozen=True)
class JobFailure:
    """Everything known about a job's final failure; what ``job_exhausted`` carries."""

    execution_id: str
    task: str
    job_queue: str
    #: The priority of the lane the job was sent to (what its DLQ record and replay use).
    priority: Priority
    attempt: int
    reason: FailureReason
    error_type: str
    error_message: str
    traceback: str | None
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, Any]
    tenant_id: str | None
    enqueued_at: float | None
    failed_at: float
    worker: str | None
    #: The lane aging first promoted the job out of (its record's ``promotedFrom``), if it was.
    promoted_from: Priority | None = None


def build_failure(
    job: JobContext,
    exception: BaseException,
    *,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    non_retryable: tuple[type[BaseException], ...] = (),
    args: Any = None,
    kwargs: Any = None,
    traceback: str | None = None,
    now_s: float,
) -> JobFailure:
    """The final failure of the delivery ``job``, with ``policy`` its priority's retry policy."""
    return JobFailure(
        execution_id=job.execution_id,
        task=job.task,
        job_queue=job.job_queue,
        priority=job.priority,
        attempt=job.attempt,
        reason=classify_failure(
            exception, retries=job.retries, policy=policy, retry_on=retry_on, non_retryable=non_retryable
        ),
        error_type=type(exception).__name__,
        error_message=str(exception),
        traceback=traceback,
        args=list(args or []),
        kwargs=dict(kwargs or {}),
        headers=dict(job.headers),
        tenant_id=job.tenant_id,
        enqueued_at=job.enqueued_at_s,
        failed_at=now_s,
        worker=job.worker,
        promoted_from=job.promoted_from,
    )
