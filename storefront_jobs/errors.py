"""Every error storefront-jobs raises, under one root.

::

    StorefrontJobsError
    ├── ConfigurationError        a setting or a task declaration is wrong; fix it and restart
    ├── EnqueueError              a job could not be enqueued; nothing was published
    │   ├── QueueOverflowError    the lane is at capacity (backpressure)
    │   ├── PayloadError          the arguments cannot be serialized
    │   ├── BrokerFullError       Redis is at maxmemory (noeviction) and refuses new jobs
    │   └── PartialEnqueueError   enqueue_many stopped part way: it says which jobs are queued
    ├── BrokerUnavailableError    Redis could not be reached or did not answer in time
    │   └── ReplicationError      the primary took a write that too few replicas confirmed in time
    └── DeadLetterError           a DLQ operation could not be done
        ├── DeadLetterNotFound, InvalidFilterError, MalformedImportError
        └── (defined in storefront_jobs.deadletter.errors, next to the DLQ)

Control flow is kept apart from errors: :class:`PermanentFailure` is what a
job raises to say "do not retry me"; it is not a fault of this library, so it
does not derive from the root.
"""

from __future__ import annotations

from typing import Any

from kombu.exceptions import OperationalError


class StorefrontJobsError(Exception):
    """Root of every error raised by storefront-jobs."""


class ConfigurationError(StorefrontJobsError):
    """A setting, a retry override or a task declaration is invalid."""


class EnqueueError(StorefrontJobsError):
    """A job could not be enqueued. Nothing was published."""


class QueueOverflowError(EnqueueError):
    """The job's lane already holds ``capacity`` waiting jobs.

    The job was not published: the caller decides whether to drop it, retry
    later or surface the error to its own user.
    """

    def __init__(self, lane: str, depth: int, capacity: int) -> None:
        self.lane = lane
        self.depth = depth
        self.capacity = capacity
        super().__init__(
            f"lane {lane!r} is full: {depth} waiting jobs, capacity {capacity}; the job was not enqueued"
        )

    def __reduce__(self) -> tuple[type[QueueOverflowError], tuple[str, int, int]]:
        # Keeps the error picklable across prefork pool boundaries.
        return (type(self), (self.lane, self.depth, self.capacity))


class PayloadError(EnqueueError):
    """The job's arguments cannot be serialized as JSON."""


class BrokerFullError(EnqueueError):
    """Redis is at ``maxmemory`` and, under ``noeviction``, refuses new jobs; nothing was published.

    Workers keep fetching, acknowledging and restoring on a full Redis, so the
    lanes drain and free memory: retry later, or make room (drain or purge the
    DLQ, raise ``maxmemory``).
    """

    def __init__(self, doing: str) -> None:
        self.doing = doing
        super().__init__(
            f"cannot {doing}: Redis is full (used memory at maxmemory, policy noeviction) and accepts no "
            "new job; the job was not enqueued. Workers still drain the lanes: retry later, or make room "
            "(storefront-jobs dlq purge, a larger maxmemory)"
        )

    def __reduce__(self) -> tuple[type[BrokerFullError], tuple[str]]:
        return (type(self), (self.doing,))


class PartialEnqueueError(EnqueueError):
    """``enqueue_many`` stopped part way: the jobs in ``enqueued`` are queued, the rest are not.

    ``enqueued`` holds the results of the first ``len(enqueued)`` jobs of the
    call, in order; the cause (a full lane, a payload error, a lost broker)
    is chained as ``__cause__`` and is also ``cause``. Send the remaining
    jobs again once the cause is gone.
    """

    def __init__(self, task: str, enqueued: list[Any], total: int, cause: BaseException) -> None:
        self.task = task
        self.enqueued = enqueued
        self.total = total
        self.cause = cause
        super().__init__(
            f"enqueue_many of {task} stopped after {len(enqueued)} of {total} jobs: {cause}; "
            f"the first {len(enqueued)} are queued, the other {total - len(enqueued)} are not"
        )

    def __reduce__(self) -> tuple[type[PartialEnqueueError], tuple[str, list[Any], int, BaseException]]:
        return (type(self), (self.task, self.enqueued, self.total, self.cause))


class BrokerUnavailableError(StorefrontJobsError, OperationalError):
    """Redis could not be reached, or did not answer within ``BROKER_SOCKET_TIMEOUT_S``.

    Also kombu's ``OperationalError``, which Celery's own publish raises, so
    code written for Celery catches it unchanged. ``maybe_sent`` is True when
    the command may have reached Redis before it stopped answering (a timeout,
    not a refused connection): an enqueue that says so may still be queued,
    and runs once Redis answers again.
    """

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent

    def __reduce__(self) -> tuple[Any, ...]:
        return (_broker_unavailable, (str(self), self.maybe_sent))


def _broker_unavailable(message: str, maybe_sent: bool) -> BrokerUnavailableError:
    return BrokerUnavailableError(message, maybe_sent=maybe_sent)


class ReplicationError(BrokerUnavailableError):
    """The primary took a write, but fewer than ``BROKER_MIN_REPLICAS`` replicas confirmed it in time.

    The write stays on the primary (``maybe_sent`` is always True): it takes
    effect unless a failover promotes a replica that had not received it. For
    an enqueue the job may or may not run; ``job_id`` names it, so a caller can
    check before it sends the job again. ``replicas_confirmed`` is what Redis
    answered, None when it did not answer.
    """

    def __init__(
        self, message: str, *, job_id: str | None = None, replicas_confirmed: int | None = None
    ) -> None:
        super().__init__(message, maybe_sent=True)
        self.job_id = job_id
        self.replicas_confirmed = replicas_confirmed

    def __reduce__(self) -> tuple[Any, ...]:
        return (_replication_error, (str(self), self.job_id, self.replicas_confirmed))


def _replication_error(message: str, job_id: str | None, replicas_confirmed: int | None) -> ReplicationError:
    return ReplicationError(message, job_id=job_id, replicas_confirmed=replicas_confirmed)


class PermanentFailure(Exception):  # noqa: N818 - a control-flow signal, not an error type
    """Raised by a job to fail at once, without spending its retries.

    Use it for failures that no retry can fix (invalid payload, a record that
    no longer exists). The job goes straight to its final failure with reason
    ``non_retryable``.
    """
