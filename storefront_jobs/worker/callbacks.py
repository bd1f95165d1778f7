"""After a final failure is safe in the DLQ: the task's ``on_exhausted``, then ``job_exhausted``.

Last in the hook chain on purpose: a user callback that raises or hangs runs
after the DLQ capture, so it can never keep the job out of the DLQ.
"""

from __future__ import annotations

import logging
from typing import Any

from storefront_jobs.jobs.failures import JobFailure
from storefront_jobs.worker.hooks import Hook
from storefront_jobs.worker.signals import job_exhausted

logger = logging.getLogger("storefront_jobs.jobs")


class ExhaustedCallbacks(Hook):
    """Calls the task's ``on_exhausted`` and sends the public ``job_exhausted`` signal."""

    def job_exhausted(self, task: Any, failure: JobFailure, exception: BaseException, einfo: Any) -> None:
        try:
            task.on_exhausted(failure)
        except Exception:
            logger.exception("on_exhausted hook failed", extra=task.job.log_fields())
        job_exhausted.send(sender=task, failure=failure)
