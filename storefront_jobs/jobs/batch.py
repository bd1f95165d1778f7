"""Many jobs from one call: ``enqueue_many`` (a job per call), ``enqueue_chunked`` (items per message).

Both are methods of every :class:`~storefront_jobs.jobs.task.PriorityTask`
and both end in one sender: on Redis the lane publisher's ``send_many`` (a
chunk of jobs per script call, :mod:`storefront_jobs.jobs.publish`); on
another broker, or in eager mode, Celery's own path one job at a time. Either
way a call that stops part way raises
:class:`~storefront_jobs.errors.PartialEnqueueError`, which says which jobs
are queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kombu.exceptions import OperationalError

from storefront_jobs.errors import PartialEnqueueError, StorefrontJobsError
from storefront_jobs.jobs import chunks, envelope, message, publish
from storefront_jobs.jobs.priorities import Priority

if TYPE_CHECKING:
    from storefront_jobs.jobs.task import PriorityTask

Calls = Iterable[Sequence[Any] | Mapping[str, Any]]


def enqueue_many(
    task: PriorityTask, calls: Calls, *, priority: Priority | None, chunk_size: int
) -> list[Any]:
    """One job per call (see ``PriorityTask.enqueue_many``); their AsyncResults, in order."""
    headers = {envelope.JOB_QUEUE: task.job_queue or task.name}
    return _send(task, calls, priority=priority, headers=headers, chunk_size=chunk_size)


def enqueue_chunked(
    task: PriorityTask, calls: Calls, *, priority: Priority | None, chunk_size: int
) -> list[Any]:
    """The calls as messages of up to ``chunk_size`` items each (see :mod:`.chunks`); an AsyncResult each."""
    message.check_chunk_size(chunk_size)
    groups = [(items,) for items in message.chunks_of(chunks.item_calls(task, calls), chunk_size)]
    headers = {envelope.JOB_QUEUE: task.job_queue or task.name, envelope.ITEM_CHUNK: True}
    # The items were checked against the task's signature; the messages' one argument is the list.
    return _send(task, groups, priority=priority, headers=headers, check_arguments=False)


def _send(
    task: PriorityTask,
    calls: Calls,
    *,
    priority: Priority | None,
    headers: dict[str, Any],
    chunk_size: int = publish.DEFAULT_CHUNK_SIZE,
    check_arguments: bool = True,
) -> list[Any]:
    lane_priority = priority if priority is not None else task.lane_priority
    app = task._storefront_app()
    if publish.serves(task, {}):
        sent: list[Any] = app.lane_publisher.send_many(
            task,
            calls,
            priority=lane_priority,
            headers=headers,
            chunk_size=chunk_size,
            check_arguments=check_arguments,
        )
        return sent
    # Another broker, or eager mode: Celery's path, one job at a time, with the same error.
    results: list[Any] = []
    pending = [message.split_call(task.name, call) for call in calls]
    for args, kwargs in pending:
        try:
            results.append(task.apply_async(args, kwargs, priority=lane_priority, headers=headers))
        except (StorefrontJobsError, OperationalError) as exc:
            raise PartialEnqueueError(task.name, results, len(pending), exc) from exc
    return results
