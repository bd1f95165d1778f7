"""``CapturingRequest``: the worker-side request of every storefront job.

When a pool child dies mid-job (OOM killer, segfault, SIGKILL), Celery's
``Request.on_failure`` runs in the worker's main process. With no retry
left it acknowledges the message first and sends ``task_failure`` after
(celery/worker/request.py), so a main process killed in between would lose
the job without a record. This subclass writes the DLQ record *before*
handing over to Celery; the capture on ``task_failure`` that follows finds
the entry already there and adds nothing.

It also puts the job's request on the task while Celery's main-process
failure handlers run, so the task's ``max_retries`` and
``default_retry_delay``, which Celery reads to retry a job after a lost
child, are those of the job's own priority (its job context), and every
``task_failure`` receiver sees the job's headers. Everything else is
Celery's own.

Only imported by workers: :class:`~storefront_jobs.jobs.task.PriorityTask` names
it by path (``Request = "storefront_jobs.worker.request:CapturingRequest"``).
"""

from __future__ import annotations

import time
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from storefront_jobs.broker.accessors import raised_error, request_pushed
from storefront_jobs.deadletter.binding import store_for
from storefront_jobs.deadletter.capture import capture
from storefront_jobs.jobs.context import job_context
from storefront_jobs.jobs.task import PriorityTask


def is_final_worker_loss(exc: BaseException, *, retries: int, max_retries: int, resent_on_loss: bool) -> bool:
    """Whether Celery will fail (not retry, not requeue) a job after ``retries`` retries whose child was lost.

    ``resent_on_loss``: the task retries or requeues a job whose child was lost.
    """
    if not isinstance(exc, WorkerLostError):
        return False
    return not (retries < max_retries and resent_on_loss)


def resends_on_loss(task: Any) -> bool:
    """Whether the task retries or requeues a job whose child was lost (while retries are left)."""
    # retry_on_worker_lost is new in Celery 5.7 (task_retry_on_worker_lost); no type stub has it yet.
    return bool(getattr(task, "retry_on_worker_lost", False) or task.reject_on_worker_lost)


class CapturingRequest(Request):
    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = raised_error(exc_info)
        task = self.task
        # Celery pushes the job's request only around its own task_failure on the
        # lost-worker path; push it for the whole handler, so that the retry
        # decision (max_retries, default_retry_delay) and every receiver read the job's context.
        with request_pushed(self) as context:
            if isinstance(task, PriorityTask) and exc is not None:
                job = job_context(task, context)
                final = is_final_worker_loss(
                    exc,
                    retries=job.retries,
                    max_retries=task.policy_for(job.priority).max_retries,
                    resent_on_loss=resends_on_loss(task),
                )
                if final:
                    failure = task.final_failure(
                        job, exc, args=self.args, kwargs=self.kwargs, einfo=exc_info, now_s=time.time()
                    )
                    capture(store_for(task.app), failure)
            return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> Any:
        with request_pushed(self):
            return super().on_timeout(soft, timeout)
