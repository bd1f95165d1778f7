"""``CapturingRequest``: the worker-side request of every storefront job.

When a pool child dies mid-job (OOM killer, segfault, SIGKILL), Celery's
``Request.on_failure`` runs in the worker's main process. With no retry
left it acknowledges the message first and sends ``task_failure`` after
(celery/worker/request.py), so a main process killed in between would lose
the job without a record. This subclass writes the DLQ record *before*
handing over to Celery; the ``job_exhausted`` capture that follows finds the
entry already there and adds nothing. It also puts the job's request on the
task while Celery's main-process failure handlers run (a rejected message,
a hard time limit), so every ``task_failure`` receiver sees the job's
headers. Everything else is Celery's own.

Only imported by workers: :class:`~storefront_jobs.jobs.task.PriorityTask` names
it by path (``Request = "storefront_jobs.worker.request:CapturingRequest"``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from storefront_jobs.deadletter import capture, store_for
from storefront_jobs.jobs.task import PriorityTask
from storefront_jobs.worker import signals


def is_final_worker_loss(exc: BaseException, task: Any, retries: int) -> bool:
    """Whether Celery will fail (not retry, not requeue) a job whose child was lost."""
    if not isinstance(exc, WorkerLostError):
        return False
    max_retries = getattr(task, "max_retries", None)
    retries_left = max_retries is None or retries < max_retries
    resent = retries_left and bool(task.retry_on_worker_lost or task.reject_on_worker_lost)
    return not resent


class CapturingRequest(Request):
    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # ExceptionWithTraceback wraps the real error
        task = self.task
        context: Any = getattr(self, "_context", None)
        if (
            isinstance(task, PriorityTask)
            and isinstance(exc, BaseException)
            and is_final_worker_loss(exc, task, int(getattr(context, "retries", 0) or 0))
        ):
            failure = signals.build_failure(
                task,
                context,
                task_id=self.id,
                exception=exc,
                args=self.args,
                kwargs=self.kwargs,
                einfo=exc_info,
                now_s=time.time(),
            )
            capture.capture(store_for(task.app), failure)
        with self._request_pushed():
            return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> Any:
        with self._request_pushed():
            return super().on_timeout(soft, timeout)

    @contextlib.contextmanager
    def _request_pushed(self) -> Iterator[None]:
        # Celery sends task_failure from the main process without the job's
        # request on the task for a rejected message and a hard time limit
        # (only the lost-worker path pushes it): make `sender.request` the
        # job's everywhere, so the record gets its headers, tenant and worker.
        context: Any = getattr(self, "_context", None)
        self.task.request_stack.push(context)
        try:
            yield
        finally:
            self.task.request_stack.pop()
