"""The private names of Celery, billiard and kombu that code outside this package needs, behind functions.

Each function reads or calls names listed in :mod:`storefront_jobs.broker.internals`
(and so checked against every upgrade), so the worker, metrics and DLQ
modules never name them: when Celery renames one, this module changes and
its callers do not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def request_context(request: Any) -> Any:
    """The task-side request (``celery.app.task.Context``) of a worker-side ``Request``, or None.

    Celery builds it from the message on first use (``Request._context``); it
    is what the task sees as ``task.request`` while the job runs.
    """
    return getattr(request, "_context", None)


@contextlib.contextmanager
def request_pushed(request: Any) -> Iterator[Any]:
    """Make a worker-side request's context its task's current request for the block; yields the context.

    Celery runs a lost pool child's or a rejected message's failure handlers
    in the worker's main process without the job's request on the task; with
    it pushed, ``task.request`` and every ``task_failure`` receiver read the job's.
    """
    context = request_context(request)
    stack = request.task.request_stack
    stack.push(context)
    try:
        yield context
    finally:
        stack.pop()


def raised_error(exc_info: Any) -> BaseException | None:
    """The error of a failure's ``ExceptionInfo``, unwrapped from billiard's ``ExceptionWithTraceback``."""
    exc = getattr(exc_info, "exception", None)
    exc = getattr(exc, "exc", exc)
    return exc if isinstance(exc, BaseException) else None


def active_request_count() -> int:
    """Jobs this worker's main process is running now (``celery.worker.state.active_requests``)."""
    from celery.worker import state  # noqa: PLC0415 - the worker's own bookkeeping, workers only

    return len(state.active_requests)


def reserved_request_lanes() -> list[str]:
    """The lane of every job this pool holds for a process (``celery.worker.state.reserved_requests``).

    Running, or handed to the pool and waiting for a free process; a job
    waiting out a retry countdown joins only when its time comes. This is
    the set Celery's own ``worker_disable_prefetch`` counts.
    """
    from celery.worker import state  # noqa: PLC0415 - the worker's own bookkeeping, workers only

    return [
        str((request.delivery_info or {}).get("routing_key") or "") for request in state.reserved_requests
    ]


def processed_count() -> int:
    """Jobs this worker finished, kept by its main process (``celery.worker.state.total_count``)."""
    from celery.worker import state  # noqa: PLC0415 - the worker's own bookkeeping, workers only

    return int(sum(state.total_count.values()))


class _CollectedPublish:
    """Stands in for kombu's PublishBatch: keeps the Redis commands instead of running them."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple[Any, ...]]] = []

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, args))


def collect_publish(channel: Any, message: Any, routing_key: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The Redis commands kombu's publish of ``message`` to a queue would run, collected instead of run.

    kombu 5.7's publish-batch hook: ``basic_publish(..., _publish_batch=batch)``
    reaches the channel's ``_put``, which calls ``batch.add("lpush", key,
    payload)`` instead of pushing. The DLQ replay runs that push in its own
    script; a kombu that stops calling the hook leaves the list empty, and the
    caller fails rather than publish anything behind the store's back.
    """
    collected = _CollectedPublish()
    channel.basic_publish(message, exchange="", routing_key=routing_key, _publish_batch=collected)
    return collected.commands
