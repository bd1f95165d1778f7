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

from storefront_jobs.metrics.timing import wait_time_s

logger = logging.getLogger("storefront_jobs.metrics")

#: Module state of this process: the metrics, where each job started, which label sets exist.
_state: dict[str, Any] = {"metrics": None, "started": {}, "seen": set(), "dir": None, "owns_dir": False}


def prepare_multiprocess_dir() -> str:
    """Point prometheus-client at an empty multiprocess directory; before any metric is created."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        _state["owns_dir"] = False
    else:
        path = tempfile.mkdtemp(prefix="storefront-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _state["owns_dir"] = True
    from prometheus_client import values  # noqa: PLC0415 - must see the variable set above

    # prometheus-client picks its value class when first imported; re-pick it
    # in case something imported it before the worker started.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _state["dir"] = path
    return path


def remove_multiprocess_dir() -> None:
    if _state["owns_dir"] and _state["dir"]:
        shutil.rmtree(_state["dir"], ignore_errors=True)


def install(metrics: Any) -> None:
    """Use ``metrics`` (a PoolMetrics) for every receiver of this module in this process tree."""
    _state["metrics"] = metrics
    _state["started"] = {}
    _state["seen"] = set()
    _children.clear()


#: (metric, label values) -> labelled child. prometheus-client's labels() validates
#: and locks on every call; a job touches about ten children, always the same ones.
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _host(request: Any) -> str:
    nodename = getattr(request, "hostname", None) or ""
    return nodesplit(nodename)[1] or nodename or "unknown"


def _celery_labels(task_name: str, request: Any) -> tuple[str, str, str]:
    delivery = getattr(request, "delivery_info", None) or {}
    queue = delivery.get("routing_key") or getattr(request, "queue", None) or "unknown"
    return task_name or "unknown", _host(request), str(queue)


def _job_labels(task: Any) -> tuple[str, str] | None:
    from storefront_jobs.jobs.task import PriorityTask  # noqa: PLC0415 - avoids an import cycle

    if not isinstance(task, PriorityTask):
        return None
    return task.job_queue or task.name, task.lane_priority.label


def _attempt(request: Any) -> str:
    return str(int(getattr(request, "retries", 0) or 0) + 1)


def _zero_init(labels: tuple[str, str, str]) -> None:
    # celery-exporter creates every per-task series at zero on first sight so
    # that increase() sees the first real event; do the same.
    m = _state["metrics"]
    if labels in _state["seen"]:
        return
    _state["seen"].add(labels)
    for counter in m.celery_counters_without_exception():
        _child(counter, *labels).inc(0)
    name, host, queue = labels
    _child(m.celery_failed, name, host, "", queue).inc(0)


def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    m = _state["metrics"]
    if m is None or request is None:
        return
    labels = _celery_labels(request.name, request)
    _zero_init(labels)
    _child(m.celery_received, *labels).inc()


def on_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    m = _state["metrics"]
    if m is None or task is None:
        return
    request = task.request
    now_s = time.time()
    _state["started"][task_id] = time.perf_counter()
    labels = _celery_labels(task.name, request)
    _zero_init(labels)
    _child(m.celery_started, *labels).inc()
    headers = getattr(request, "headers", None) or {}
    wait = wait_time_s(
        now_s,
        enqueued_at=headers.get("enqueuedAt", getattr(request, "enqueuedAt", None)),
        eta=getattr(request, "eta", None),
    )
    job = _job_labels(task)
    if job is not None:
        _child(m.job_started, *job).inc()
        if wait is not None:
            _child(m.job_wait_time, *job).observe(wait)


def on_postrun(
    sender: Any = None, task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    m = _state["metrics"]
    started = _state["started"].pop(task_id, None)
    if m is None or task is None:
        return
    runtime_s = time.perf_counter() - started if started is not None else None
    labels = _celery_labels(task.name, task.request)
    job = _job_labels(task)
    if state == "SUCCESS":
        _child(m.celery_succeeded, *labels).inc()
        if runtime_s is not None:
            _child(m.celery_runtime, *labels).observe(runtime_s)
        if job is not None:
            _child(m.job_completed, *job).inc()
            attempt = _attempt(task.request)
            if attempt != "1":
                _child(m.job_retry_success, *job, attempt).inc()
    elif state == "REJECTED":
        _child(m.celery_rejected, *labels).inc()
    if job is not None and runtime_s is not None and state in {"SUCCESS", "FAILURE", "RETRY"}:
        status = "success" if state == "SUCCESS" else "failed"
        _child(m.job_duration, *job, status).observe(runtime_s)


def on_retry(sender: Any = None, request: Any = None, **_: Any) -> None:
    m = _state["metrics"]
    if m is None or sender is None:
        return
    request = request if request is not None else sender.request
    _child(m.celery_retried, *_celery_labels(sender.name, request)).inc()
    job = _job_labels(sender)
    if job is not None:
        attempt = _attempt(request)
        _child(m.job_failed, *job, attempt).inc()
        _child(m.job_retried, *job, attempt).inc()


def on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    m = _state["metrics"]
    if m is None or sender is None:
        return
    request = sender.request
    name, host, queue = _celery_labels(sender.name, request)
    exception_name = type(exception).__name__ if exception is not None else "UnknownException"
    _child(m.celery_failed, name, host, exception_name, queue).inc()
    job = _job_labels(sender)
    if job is not None:
        _child(m.job_failed, *job, _attempt(request)).inc()


def on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    m = _state["metrics"]
    if m is None or request is None:
        return
    _child(m.celery_revoked, *_celery_labels(request.name, request)).inc()


def on_exhausted(sender: Any = None, failure: Any = None, **_: Any) -> None:
    m = _state["metrics"]
    if m is None or failure is None:
        return
    _child(m.job_exhausted, failure.job_queue, failure.priority.lower(), failure.reason.value).inc()
