"""The job context: a job's facts, decided once per delivery and read everywhere.

A delivery is one execution attempt of a job: its first run, each retry, a
run after a lost worker, a replay. For each, :func:`job_context` reads the
Celery request once and answers every question the platform asks about the
job: which lane it was sent to, and so its priority; its attempt number; its
tenant, job queue, enqueue time, replay lineage and the lane aging promoted
it from. Logs, metric labels, retry scheduling, the DLQ record and replay all
read this one object, so they cannot disagree.

The rule it encodes: **the lane a job was sent to is its priority
everywhere**. ``confirm_payment.apply_async(priority=Priority.BULK)`` on a
CRITICAL task makes that one job a BULK job: it runs on ``p4.bulk``, retries
on BULK's table (never), counts under ``priority="bulk"``, is dead-lettered as
BULK and replayed to ``p4.bulk``. The task's declared priority is only the
default lane of a job sent without one. A job that aging promoted from LOW
to DEFAULT (:mod:`storefront_jobs.broker.aging`) is delivered from
``p2.default`` and is a DEFAULT job the same way; ``promoted_from`` says LOW.

The context is cached on Celery's request object (one per delivery in the
pool child, one per message in the worker's main process), so building it
costs one read of a few headers per delivery however many hooks ask.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

from storefront_jobs.broker.keys import lane_name, priority_of_lane
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.priorities import Priority

#: Attribute of Celery's request object that caches its job context.
_CACHE_ATTRIBUTE = "storefront_job_context"


@dataclasses.dataclass(frozen=True, slots=True)
class JobContext:
    """What the platform knows about one delivery of a job."""

    execution_id: str
    task: str
    #: The runbook's ``queue_name``: the logical family of the job.
    job_queue: str
    #: The priority of the lane the job was sent to (see the module docstring).
    priority: Priority
    #: 1 for the first execution, n + 1 after n retries.
    attempt: int
    tenant_id: str | None
    #: When the job was first enqueued (Unix seconds), kept across retries.
    enqueued_at_s: float | None
    #: The execution id this job replays, and how many replays led to it.
    replay_of: str | None
    replay_count: int
    #: The storefront headers the message carried (names in :mod:`.envelope`).
    headers: Mapping[str, Any]
    #: The worker node that received it, when known.
    worker: str | None
    #: The priority of the lane aging first promoted this job out of; None for a job never promoted.
    promoted_from: Priority | None = None

    @property
    def lane(self) -> str:
        """The Celery queue the job was sent to, e.g. ``p4.bulk``."""
        return lane_name(self.priority)

    @property
    def retries(self) -> int:
        """Retries spent before this delivery."""
        return self.attempt - 1

    @property
    def target_latency_s(self) -> float | None:
        """The wait this job's priority promises (``None``: best effort)."""
        return self.priority.target_latency_s

    def log_fields(self) -> dict[str, Any]:
        """The fields every log line about this job carries (docs/jobs.md, "Logs")."""
        return {
            "executionId": self.execution_id,
            "task": self.task,
            "queue": self.job_queue,
            "priority": self.priority.name,
            "attempt": self.attempt,
            "tenantId": self.tenant_id,
        }


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _priority_or_none(value: Any) -> Priority | None:
    if not isinstance(value, str):
        return None
    try:
        return Priority.parse(value)
    except ValueError:
        return None


def delivered_priority(request: Any, declared: Priority) -> Priority:
    """The priority of the lane a delivery came from.

    The routing key of the delivery is the lane; the ``priority`` header that
    the publish stamped from the same routing key stands in where a code path
    carries no delivery info; the task's declared priority is the last resort.
    """
    info = getattr(request, "delivery_info", None) or {}
    routed = priority_of_lane(str(info.get("routing_key") or ""))
    if routed is not None:
        return routed
    stamped = envelope.read(request, envelope.PRIORITY)
    if isinstance(stamped, str) and stamped.upper() in Priority.__members__:
        return Priority[stamped.upper()]
    return declared


def build_job_context(
    request: Any, *, task_name: str, declared: Priority, declared_job_queue: str = ""
) -> JobContext:
    """Read a Celery request into a job context (uncached; :func:`job_context` caches)."""
    headers = envelope.all_headers(request)
    replay_count = headers.get(envelope.REPLAY_COUNT)
    tenant = headers.get(envelope.TENANT_ID)
    replay_of = headers.get(envelope.REPLAY_OF)
    return JobContext(
        execution_id=str(getattr(request, "id", None) or ""),
        task=task_name,
        job_queue=str(headers.get(envelope.JOB_QUEUE) or declared_job_queue or task_name),
        priority=delivered_priority(request, declared),
        attempt=envelope.attempt_of(getattr(request, "retries", 0)),
        tenant_id=str(tenant) if tenant is not None else None,
        enqueued_at_s=_float_or_none(headers.get(envelope.ENQUEUED_AT)),
        replay_of=str(replay_of) if replay_of is not None else None,
        replay_count=int(replay_count) if isinstance(replay_count, int | float | str) else 0,
        headers=headers,
        worker=getattr(request, "hostname", None),
        promoted_from=_priority_or_none(headers.get(envelope.PROMOTED_FROM)),
    )


def job_context(task: Any, request: Any = None) -> JobContext:
    """The context of the delivery ``request`` (default: the task's current request), built once.

    ``task`` is a :class:`~storefront_jobs.jobs.task.PriorityTask`; its
    declared priority and job queue fill in what the message does not say.
    """
    request = task.request if request is None else request
    cached = getattr(request, _CACHE_ATTRIBUTE, None)
    if isinstance(cached, JobContext):
        return cached
    context = build_job_context(
        request,
        task_name=str(task.name),
        declared=task.lane_priority,
        declared_job_queue=str(getattr(task, "job_queue", "") or ""),
    )
    # A request type without a __dict__ rebuilds it next time, still correct.
    with contextlib.suppress(AttributeError):
        setattr(request, _CACHE_ATTRIBUTE, context)
    return context
