"""Counting inside a worker pool: exact with prefork, cheap per job, served by the main process.

Celery runs signal receivers in two kinds of process: the pool children (a
job's start, success, retry and ordinary failure) and the main process (a
message received, a lost child, a hard time limit). prometheus-client's
multiprocess mode gives each process a memory-mapped file that every ``inc``
writes at once; the main process serves the sum of all files. So:

* no count is lost to a per-child registry (only one child would be scraped);
* a child recycled by ``max_tasks_per_child``, or killed, leaves its file
  behind and its counts stay in the sum;
* an increment costs a few microseconds: no network round trip per job.

The directory is ``PROMETHEUS_MULTIPROC_DIR`` when the deployment sets one (a
Kubernetes ``emptyDir``), else a fresh temporary directory; it is emptied at
start, before any metric exists, so a restarted pool does not add up its
previous life's counts.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import time
from typing import Any

from celery.utils.nodenames import nodesplit

from storefront_jobs.jobs.context import JobContext
from storefront_jobs.jobs.failures import JobFailure
from storefront_jobs.metrics.timing import wait_time_s
from storefront_jobs.settings import Settings
from storefront_jobs.worker.heartbeat import pool_reservation
from storefront_jobs.worker.hooks import Hook

logger = logging.getLogger("storefront_jobs.metrics")


def prepare_multiprocess_dir() -> tuple[str, bool]:
    """Point prometheus-client at an empty multiprocess directory; before any metric is created.

    Returns the directory and whether this process created it (and so removes it at the end).
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    owned = not path
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix="storefront-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    from prometheus_client import values  # noqa: PLC0415 - must see the variable set above

    # prometheus-client picks its value class when first imported; re-pick it
    # in case something imported it before the worker started.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path, owned


def _host(request: Any) -> str:
    nodename = getattr(request, "hostname", None) or ""
    return nodesplit(nodename)[1] or nodename or "unknown"


def _queue_of(request: Any, job: JobContext | None) -> str:
    # celery-exporter's queue_name: the lane a storefront job was sent to, else the routing key.
    if job is not None:
        return job.lane
    delivery = getattr(request, "delivery_info", None) or {}
    return str(delivery.get("routing_key") or getattr(request, "queue", None) or "unknown")


class JobMetrics(Hook):
    """Counts a pool's jobs into prometheus-client's multiprocess files; the main process serves the sum.

    ``metrics`` is a :class:`~storefront_jobs.metrics.definitions.PoolMetrics`;
    without one, :meth:`worker_init` creates it (after pointing
    prometheus-client at the multiprocess directory) and serves it on
    ``METRICS_PORT``. Every label of a storefront job comes from its context:
    ``priority`` and ``queue_name`` are those of the lane it was sent to.
    """

    def __init__(self, settings: Settings, metrics: Any = None) -> None:
        self._settings = settings
        self.metrics: Any = metrics
        #: Where each running job started (perf_counter), by task id.
        self._started: dict[str, float] = {}
        #: celery-exporter label sets already created at zero.
        self._seen: set[tuple[str, str, str]] = set()
        #: (metric, label values) -> labelled child. prometheus-client's labels()
        #: validates and locks on every call; a job touches about ten children.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._server: Any = None
        self._dir: tuple[str, bool] | None = None

    # --- lifecycle (main process) ------------------------------------------------------

    def worker_init(self, worker: Any) -> None:
        from storefront_jobs.metrics.definitions import create_pool_metrics  # noqa: PLC0415 - after the dir is set
        from storefront_jobs.metrics.serve import serve_pool_metrics  # noqa: PLC0415 - workers only

        self._dir = prepare_multiprocess_dir()
        self.metrics = create_pool_metrics(registry=None)
        self._started.clear()
        self._seen.clear()
        self._children.clear()
        hostname = str(getattr(worker, "hostname", "") or "").split("@", 1)[-1]
        self._server = serve_pool_metrics(self._settings, hostname, pool_reservation(worker.app))

    def worker_shutdown(self, worker: Any) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
        if self._dir is not None and self._dir[1]:
            shutil.rmtree(self._dir[0], ignore_errors=True)
        self._dir = None

    # --- counting ------------------------------------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _celery_labels(self, task_name: str, request: Any, job: JobContext | None) -> tuple[str, str, str]:
        labels = (task_name or "unknown", _host(request), _queue_of(request, job))
        if labels not in self._seen:
            # celery-exporter creates every per-task series at zero on first sight
            # so that increase() sees the first real event; do the same.
            self._seen.add(labels)
            for counter in self.metrics.celery_counters_without_exception():
                self._child(counter, *labels).inc(0)
            name, host, queue = labels
            self._child(self.metrics.celery_failed, name, host, "", queue).inc(0)
        return labels

    def message_received(self, request: Any) -> None:
        if self.metrics is None:
            return
        # A message's routing key is its lane: the same label its job's context gives.
        self._child(self.metrics.celery_received, *self._celery_labels(request.name, request, None)).inc()

    def job_started(self, task: Any, job: JobContext | None) -> None:
        m = self.metrics
        if m is None:
            return
        request = task.request
        self._started[request.id] = time.perf_counter()
        self._child(m.celery_started, *self._celery_labels(task.name, request, job)).inc()
        if job is None:
            return
        labels = (job.job_queue, job.priority.label)
        self._child(m.job_started, *labels).inc()
        wait = wait_time_s(time.time(), enqueued_at=job.enqueued_at_s, eta=getattr(request, "eta", None))
        if wait is not None:
            self._child(m.job_wait_time, *labels).observe(wait)

    def job_finished(self, task: Any, job: JobContext | None, state: str | None) -> None:
        m = self.metrics
        started = self._started.pop(task.request.id, None)
        if m is None:
            return
        runtime_s = time.perf_counter() - started if started is not None else None
        labels = self._celery_labels(task.name, task.request, job)
        if state == "SUCCESS":
            self._child(m.celery_succeeded, *labels).inc()
            if runtime_s is not None:
                self._child(m.celery_runtime, *labels).observe(runtime_s)
        elif state == "REJECTED":
            self._child(m.celery_rejected, *labels).inc()
        if job is None:
            return
        job_labels = (job.job_queue, job.priority.label)
        if state == "SUCCESS":
            self._child(m.job_completed, *job_labels).inc()
            if job.attempt > 1:
                self._child(m.job_retry_success, *job_labels, str(job.attempt)).inc()
        if runtime_s is not None and state in {"SUCCESS", "FAILURE", "RETRY"}:
            status = "success" if state == "SUCCESS" else "failed"
            self._child(m.job_duration, *job_labels, status).observe(runtime_s)

    def job_retried(self, task: Any, job: JobContext | None, request: Any, reason: Any) -> None:
        m = self.metrics
        if m is None:
            return
        self._child(m.celery_retried, *self._celery_labels(task.name, request, job)).inc()
        if job is not None:
            labels = (job.job_queue, job.priority.label, str(job.attempt))
            self._child(m.job_failed, *labels).inc()
            self._child(m.job_retried, *labels).inc()

    def job_failed(self, task: Any, job: JobContext | None, exception: BaseException, einfo: Any) -> None:
        m = self.metrics
        if m is None:
            return
        name, host, queue = self._celery_labels(task.name, task.request, job)
        self._child(m.celery_failed, name, host, type(exception).__name__, queue).inc()
        if job is not None:
            self._child(m.job_failed, job.job_queue, job.priority.label, str(job.attempt)).inc()

    def job_exhausted(self, task: Any, failure: JobFailure, exception: BaseException, einfo: Any) -> None:
        if self.metrics is not None:
            labels = (failure.job_queue, failure.priority.label, failure.reason.value)
            self._child(self.metrics.job_exhausted, *labels).inc()

    def message_revoked(self, request: Any) -> None:
        if self.metrics is not None:
            self._child(self.metrics.celery_revoked, *self._celery_labels(request.name, request, None)).inc()
