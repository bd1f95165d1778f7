"""Every metric storefront-jobs exports, declared once: name, HELP, labels, buckets.

Two families:

* the runbook's, prefixed ``storefront_jobs_``, labelled ``queue`` (job queue) and
  ``priority`` (lower case), in base units (seconds);
* celery-exporter's ``celery_*`` family, with its exact names, types and label
  names (``name``, ``hostname``, ``queue_name``, ``exception``), so its published
  dashboards and alerts work unchanged.

Worker-pool metrics are built by :func:`create_pool_metrics` in each pool's
main process before it forks (multiprocess mode: every process writes its own
memory-mapped file, the main process serves their sum). Broker-side metrics
are produced at scrape time by :mod:`storefront_jobs.metrics.broker`; their
names and HELP texts live here too, in :data:`BROKER_METRICS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

PREFIX = "storefront_jobs_"

#: Job durations: from a no-op to an hour, dense around the latency targets (1 s ... 2 min).
DURATION_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)
#: Waits before start: around each priority's target (1, 5, 30, 120 s) and well beyond.
WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 240, 300, 600, 1800, 3600)
#: celery-exporter's defaults, so percentiles match its dashboards.
CELERY_RUNTIME_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# celery-exporter's celery_task_queue_wait_time (unreleased upstream, used by none of its dashboards) is
# not exported: it would observe the same value as storefront_jobs_job_wait_time_seconds on every job.

JOB_LABELS = ("queue", "priority")
CELERY_LABELS = ("name", "hostname", "queue_name")


@dataclasses.dataclass(frozen=True)
class PoolMetrics:
    """Counters and histograms updated by signal receivers inside a worker pool."""

    job_started: Counter
    job_completed: Counter
    job_failed: Counter
    job_retried: Counter
    job_retry_success: Counter
    job_exhausted: Counter
    job_duration: Histogram
    job_wait_time: Histogram
    celery_received: Counter
    celery_started: Counter
    celery_succeeded: Counter
    celery_failed: Counter
    celery_retried: Counter
    celery_rejected: Counter
    celery_revoked: Counter
    celery_runtime: Histogram

    def celery_counters_without_exception(self) -> tuple[Counter, ...]:
        """The per-task counters celery-exporter creates at zero on first sight (all but sent/failed)."""
        return (
            self.celery_received,
            self.celery_started,
            self.celery_succeeded,
            self.celery_retried,
            self.celery_rejected,
            self.celery_revoked,
        )


_FAILED_LABELS = ("name", "hostname", "exception", "queue_name")

#: PoolMetrics field -> (name, HELP, labels) of each pool counter.
POOL_COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "job_started": (PREFIX + "job_started", "Job executions started, retries included.", JOB_LABELS),
    "job_completed": (PREFIX + "job_completed", "Job executions that succeeded.", JOB_LABELS),
    "job_failed": (
        PREFIX + "job_failed",
        "Job executions that failed, retried or not; attempt is 1 for the first run.",
        (*JOB_LABELS, "attempt"),
    ),
    "job_retried": (
        PREFIX + "job_retried",
        "Retries scheduled after a failed attempt.",
        (*JOB_LABELS, "attempt"),
    ),
    "job_retry_success": (
        PREFIX + "job_retry_success",
        "Jobs that succeeded on a retry, by the attempt that succeeded.",
        (*JOB_LABELS, "attempt"),
    ),
    "job_exhausted": (
        PREFIX + "job_exhausted",
        "Jobs that failed for good, by reason.",
        (*JOB_LABELS, "reason"),
    ),
    "celery_received": ("celery_task_received", "Sent when the worker receives a task.", CELERY_LABELS),
    "celery_started": (
        "celery_task_started",
        "Sent just before the worker executes the task.",
        CELERY_LABELS,
    ),
    "celery_succeeded": ("celery_task_succeeded", "Sent if the task executed successfully.", CELERY_LABELS),
    "celery_failed": ("celery_task_failed", "Sent if the execution of the task failed.", _FAILED_LABELS),
    "celery_retried": ("celery_task_retried", "Sent if the task failed, but will be retried.", CELERY_LABELS),
    "celery_rejected": (
        "celery_task_rejected",
        "The task was rejected by the worker, possibly to be re-queued or moved to a dead letter queue.",
        CELERY_LABELS,
    ),
    "celery_revoked": ("celery_task_revoked", "Sent if the task has been revoked.", CELERY_LABELS),
}

#: PoolMetrics field -> (name, HELP, labels, buckets) of each pool histogram.
POOL_HISTOGRAMS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    "job_duration": (
        PREFIX + "job_duration_seconds",
        "Run time of one job execution, by outcome (success or failed).",
        (*JOB_LABELS, "status"),
        DURATION_BUCKETS_S,
    ),
    "job_wait_time": (
        PREFIX + "job_wait_time_seconds",
        "Time from enqueue (or from a retry's due time) to the start of the execution.",
        JOB_LABELS,
        WAIT_BUCKETS_S,
    ),
    "celery_runtime": (
        "celery_task_runtime",
        "Histogram of task runtime measurements.",
        CELERY_LABELS,
        CELERY_RUNTIME_BUCKETS_S,
    ),
}


def create_pool_metrics(registry: CollectorRegistry | None) -> PoolMetrics:
    """Declare the pool metrics; ``registry=None`` in multiprocess mode (files, not a registry)."""
    counters: dict[str, Any] = {
        field: Counter(name, doc, labels, registry=registry)
        for field, (name, doc, labels) in POOL_COUNTERS.items()
    }
    histograms: dict[str, Any] = {
        field: Histogram(name, doc, labels, registry=registry, buckets=buckets)
        for field, (name, doc, labels, buckets) in POOL_HISTOGRAMS.items()
    }
    return PoolMetrics(**counters, **histograms)


#: Broker-side metrics (read from Redis at scrape time by the admin service): name -> (type, HELP, labels).
BROKER_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    PREFIX + "queue_depth": (
        "gauge", "Jobs waiting in a lane, over every Redis priority sub-list and tenant list.",
        ("priority",)),
    PREFIX + "queue_reserved": (
        "gauge", "Jobs of a lane held by workers: running, prefetched, or waiting out a retry countdown.",
        ("priority",)),
    PREFIX + "queue_capacity": (
        "gauge", "Most jobs a lane accepts waiting (backpressure limit).", ("priority",)),
    PREFIX + "job_age_seconds": (
        "gauge", "Age of the oldest waiting job of a lane (0 when the lane is empty).", ("priority",)),
    PREFIX + "queue_tenant_depth": (
        "gauge", "Jobs of one tenant waiting in a lane with a fair share per tenant; only the tenants with "
        "the most (settings.tenant_fairness.top_tenants per lane).", ("priority", "tenant")),
    PREFIX + "queue_tenants": (
        "gauge", "Tenants with jobs waiting in a lane's tenant lists (a fair share per tenant).",
        ("priority",)),
    PREFIX + "job_enqueued": (
        "counter", "Jobs accepted into a lane (first enqueues and replays; retries are not counted).",
        ("queue", "priority")),
    PREFIX + "queue_overflow": (
        "counter", "Enqueues refused because the lane was at capacity.", ("priority",)),
    PREFIX + "replica_shortfall": (
        "counter", "Writes (enqueue, retry, replay, dlq_capture) that fewer replicas confirmed than "
        "BROKER_MIN_REPLICAS within its timeout: each raised ReplicationError.", ("operation",)),
    PREFIX + "job_promoted": (
        "counter", "Jobs promoted one lane up by aging, from the lane they waited in to the one above.",
        ("from", "to")),
    PREFIX + "job_promotion_blocked": (
        "counter", "Due promotions left undone because the lane above was full (each job, each sweep).",
        ("from", "to")),
    PREFIX + "dlq_depth": ("gauge", "Entries in the dead-letter queue.", ("queue",)),
    PREFIX + "dlq_added": ("counter", "Entries added to the dead-letter queue, by reason.", ("reason",)),
    PREFIX + "dlq_removed": (
        "counter", "Entries removed from the dead-letter queue (replayed, purged, trimmed, expired).",
        ("action",)),
    PREFIX + "workers": ("gauge", "Worker pools alive that consume a lane.", ("priority",)),
    PREFIX + "reserved_processes": (
        "gauge", "Processes that pools alive keep for a group of lanes including this one (--reserve).",
        ("priority",)),
    PREFIX + "lane_paused": ("gauge", "1 while consumption of a lane is paused.", ("priority",)),
    PREFIX + "worker_clock_offset_seconds": (
        "gauge", "How far the clock of a host's live pools is ahead of Redis's (negative: behind).",
        ("hostname",)),
    "celery_task_sent": (
        "counter", "Sent when a task message is published.", ("name", "hostname", "queue_name")),
    "celery_queue_length": ("gauge", "The number of message in broker queue.", ("queue_name",)),
    "celery_worker_up": ("gauge", "Indicates if a worker has recently sent a heartbeat.", ("hostname",)),
    "celery_active_worker_count": ("gauge", "The number of active workers in broker queue.", ("queue_name",)),
    "celery_active_process_count": (
        "gauge", "The number of active processes in broker queue.", ("queue_name",)),
}  # fmt: skip

#: Served by the pool's main process from its own state at scrape time.
POOL_GAUGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "celery_worker_tasks_active": ("gauge", "The number of tasks the worker is currently processing",
                                   ("hostname",)),
}  # fmt: skip


def metric_names() -> set[str]:
    """Every metric family name storefront-jobs can expose (without _total/_bucket suffixes)."""
    pool = {name for name, *_ in POOL_COUNTERS.values()} | {name for name, *_ in POOL_HISTOGRAMS.values()}
    return pool | set(BROKER_METRICS) | set(POOL_GAUGES)
