"""Celery's signals, routed to the hooks of the app they concern; and the signal storefront-jobs sends.

Sent by storefront-jobs:

``job_exhausted(sender=task, failure=JobFailure)``
    A job failed for good and will not run again: retries spent, a
    non-retryable error, BULK's first failure, a lost worker or a hard time
    limit. Sent exactly once per final failure, from the process that saw it,
    after the DLQ has the job (:class:`storefront_jobs.worker.callbacks.ExhaustedCallbacks`).

Receivers on Celery's signals: one stateless function per signal, connected
once with a ``dispatch_uid`` (Celery holds receivers weakly and swallows their
errors). Each finds the app of the task or worker that sent the signal, builds
the delivery's job context once when the task is a storefront job, and
passes both to the app's :class:`~storefront_jobs.worker.hooks.HookChain`.
Two receivers need no app: ``before_task_publish`` stamps the storefront
headers on every message, and ``setup_logging`` makes worker logs JSON.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals as celery_signals
from celery.utils.dispatch import Signal

from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.context import JobContext, job_context
from storefront_jobs.jobs.task import PriorityTask
from storefront_jobs.jobs.tenancy import current_tenant
from storefront_jobs.logs import configure_logging
from storefront_jobs.settings import get_settings
from storefront_jobs.worker.hooks import HookChain

job_exhausted = Signal(name="job_exhausted", providing_args=["failure"])

#: Celery loggers that write a line for every job received and succeeded.
PER_JOB_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


def hooks_of(app: Any) -> HookChain | None:
    """The hook chain of a storefront app; None for any other app."""
    chain = getattr(app, "storefront_hooks", None)
    return chain if isinstance(chain, HookChain) else None


def job_of(task: Any, request: Any = None) -> JobContext | None:
    """The delivery's job context for a storefront job, None for any other task."""
    return job_context(task, request) if isinstance(task, PriorityTask) else None


def stamp_headers(
    sender: Any = None, headers: dict[str, Any] | None = None, routing_key: str | None = None, **_: Any
) -> None:
    if headers is not None:
        envelope.stamp(headers, lane=routing_key, now_s=time.time(), tenant_id=current_tenant())


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


def _lifecycle(event: str) -> Any:
    def receive(sender: Any = None, **_: Any) -> None:
        chain = hooks_of(getattr(sender, "app", None))
        if chain is not None:
            chain.emit(event, sender)

    receive.__name__ = receive.__qualname__ = f"on_{event}"
    return receive


on_worker_init = _lifecycle("worker_init")
on_worker_ready = _lifecycle("worker_ready")
on_worker_shutdown = _lifecycle("worker_shutdown")


def on_task_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    chain = hooks_of(getattr(sender, "app", None))
    if chain is not None and request is not None:
        chain.emit("message_received", request)


def on_task_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    chain = hooks_of(getattr(sender, "app", None))
    if chain is not None and request is not None:
        chain.emit("message_revoked", request)


def on_task_prerun(sender: Any = None, task: Any = None, **_: Any) -> None:
    chain = hooks_of(getattr(task, "app", None))
    if chain is not None:
        chain.emit("job_started", task, job_of(task))


def on_task_postrun(sender: Any = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    chain = hooks_of(getattr(task, "app", None))
    if chain is not None:
        chain.emit("job_finished", task, job_of(task), state)


def on_task_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    chain = hooks_of(getattr(sender, "app", None))
    if chain is not None:
        request = request if request is not None else sender.request
        chain.emit("job_retried", sender, job_of(sender, request), request, reason)


def on_task_failure(
    sender: Any = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    chain = hooks_of(getattr(sender, "app", None))
    if chain is None or exception is None:
        return
    job = job_of(sender)
    chain.emit("job_failed", sender, job, exception, einfo)
    if job is not None:
        failure = sender.final_failure(
            job, exception, args=args, kwargs=kwargs, einfo=einfo, now_s=time.time()
        )
        chain.emit("job_exhausted", sender, failure, exception, einfo)


_RECEIVERS: list[tuple[Signal, Any]] = [
    (celery_signals.before_task_publish, stamp_headers),
    (celery_signals.setup_logging, setup_worker_logging),
    (celery_signals.worker_init, on_worker_init),
    (celery_signals.worker_ready, on_worker_ready),
    (celery_signals.worker_shutdown, on_worker_shutdown),
    (celery_signals.task_received, on_task_received),
    (celery_signals.task_revoked, on_task_revoked),
    (celery_signals.task_prerun, on_task_prerun),
    (celery_signals.task_postrun, on_task_postrun),
    (celery_signals.task_retry, on_task_retry),
    (celery_signals.task_failure, on_task_failure),
]


def install() -> None:
    """Connect every receiver; idempotent (each has a dispatch_uid)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(
            receiver, weak=False, dispatch_uid=f"storefront_jobs.worker.signals.{receiver.__name__}"
        )
