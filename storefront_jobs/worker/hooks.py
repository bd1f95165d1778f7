"""Hooks: one component per concern, called by the worker in one fixed order.

Every extension point of a worker is a method of :class:`Hook`, a no-op
here, listed with what calls it and in which process. A concern (metrics,
logs, DLQ capture, heartbeat, pausing, the ``on_exhausted`` callbacks) is one
subclass that overrides the methods it needs and keeps its state on the
instance. :func:`storefront_jobs.application.create_app` builds one
:class:`HookChain` per app from :func:`default_hooks`; Celery's signals reach
it through :mod:`storefront_jobs.worker.signals`, which builds each
delivery's :class:`~storefront_jobs.jobs.context.JobContext` once and hands
the same object to every hook. ``job`` is ``None`` for a task that is not a
storefront job (celery-exporter's counters still count it).

Processes: the *main* process of a pool receives messages, runs the
lifecycle and handles a lost child or a hard time limit; a *child* runs job
bodies (with ``--pool solo`` both are one process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from storefront_jobs.jobs.context import JobContext
from storefront_jobs.jobs.failures import JobFailure

logger = logging.getLogger("storefront_jobs.worker")


class Hook:
    """Base class of the worker's components: every hook, each a no-op."""

    def attach(self, chain: HookChain) -> None:
        """Called once when the chain is built; a hook that calls the chain back keeps it."""

    def worker_init(self, worker: Any) -> None:
        """Main process, before the pool forks and before anything is fetched."""

    def worker_ready(self, consumer: Any) -> None:
        """Main process, once the consumer consumes its lanes."""

    def heartbeat(self, consumer: Any) -> None:
        """Main process (heartbeat thread), every few seconds while the pool runs."""

    def worker_shutdown(self, worker: Any) -> None:
        """Main process, as the pool stops."""

    def message_received(self, request: Any) -> None:
        """Main process: a task message was received (any task, storefront job or not)."""

    def job_started(self, task: Any, job: JobContext | None) -> None:
        """Child: the body is about to run."""

    def job_finished(self, task: Any, job: JobContext | None, state: str | None) -> None:
        """Child: the body returned or raised; ``state`` is Celery's (SUCCESS, RETRY, FAILURE, ...)."""

    def job_retried(self, task: Any, job: JobContext | None, request: Any, reason: Any) -> None:
        """Child, or main after a lost child: a retry was sent; ``reason`` is Celery's Retry."""

    def job_failed(self, task: Any, job: JobContext | None, exception: BaseException, einfo: Any) -> None:
        """Child, or main (lost child, time limit, rejected): the run failed and will not be retried."""

    def job_exhausted(self, task: Any, failure: JobFailure, exception: BaseException, einfo: Any) -> None:
        """Right after ``job_failed`` for a storefront job: its final failure, classified."""

    def message_revoked(self, request: Any) -> None:
        """Main process: a message was revoked before or while it ran."""


#: The hook methods a chain dispatches, in the order of the table above.
EVENTS = tuple(
    name
    for name in vars(Hook)
    if not name.startswith("_") and name != "attach" and callable(vars(Hook)[name])
)


class HookChain:
    """An ordered list of hooks; calls each hook that implements an event, in order.

    A hook that raises is logged and skipped, never allowed to stop the
    hooks after it: a broken metrics hook must not keep a job out of the DLQ.
    """

    def __init__(self, hooks: Iterable[Hook]) -> None:
        self.hooks: tuple[Hook, ...] = tuple(hooks)
        # Only the hooks that override an event are called for it: most
        # events concern two or three hooks, and every job passes here.
        self._calls: dict[str, tuple[Callable[..., Any], ...]] = {
            event: tuple(
                getattr(hook, event)
                for hook in self.hooks
                if getattr(type(hook), event) is not getattr(Hook, event)
            )
            for event in EVENTS
        }
        for hook in self.hooks:
            hook.attach(self)

    def find(self, kind: type[Hook]) -> Hook | None:
        """The first hook of this class, if the chain has one."""
        return next((hook for hook in self.hooks if isinstance(hook, kind)), None)

    def emit(self, event: str, *args: Any) -> None:
        for call in self._calls[event]:
            try:
                call(*args)
            except Exception:
                logger.exception("hook %s.%s failed", type(getattr(call, "__self__", call)).__name__, event)

    def __repr__(self) -> str:
        return f"HookChain({', '.join(type(hook).__name__ for hook in self.hooks)})"
