"""Prometheus metrics: where each number comes from (the full story is docs/metrics.md).

* **Worker pools** count what happens to jobs (started, completed, failed,
  retried, exhausted, durations, waits, and celery-exporter's task counters)
  in prometheus-client's multiprocess mode, and serve the sum from the pool's
  main process on ``METRICS_PORT`` (:mod:`.pool`).
* **The admin service** reads the broker at scrape time: lane depths over
  every Redis sub-list, jobs held by workers, oldest job age, enqueue and
  overflow counts (counted in Redis by producers), DLQ depth and counts,
  and which pools are alive (:mod:`.broker`). These are right even when every
  pool of a lane is scaled to zero.

Each series comes from exactly one of the two, so summing over targets
never counts twice.
"""

from __future__ import annotations

import logging
from typing import Any

from storefront_jobs.settings import Settings

logger = logging.getLogger("storefront_jobs.metrics")

_server: dict[str, Any] = {"server": None}


class ActiveTasksCollector:
    """``celery_worker_tasks_active``: jobs this pool is running now, read at scrape time."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname

    def collect(self) -> Any:
        from celery.worker import state  # noqa: PLC0415 - only meaningful inside a worker
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        family = GaugeMetricFamily(
            "celery_worker_tasks_active",
            "The number of tasks the worker is currently processing",
            labels=["hostname"],
        )
        family.add_metric([self._hostname], len(state.active_requests))
        yield family


def start_pool_metrics(settings: Settings, nodename: str) -> None:
    """In a pool's main process, before it forks: count in files, serve their sum."""
    from storefront_jobs.metrics import pool  # noqa: PLC0415

    pool.prepare_multiprocess_dir()
    from prometheus_client import CollectorRegistry  # noqa: PLC0415
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

    from storefront_jobs.metrics.definitions import create_pool_metrics  # noqa: PLC0415
    from storefront_jobs.metrics.serve import serve_in_thread  # noqa: PLC0415

    pool.install(create_pool_metrics(registry=None))
    if not settings.metrics_port:
        return
    registry = CollectorRegistry(support_collectors_without_names=True)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(ActiveTasksCollector(nodename.split("@", 1)[-1]))
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    _server["server"] = serve_in_thread(registry, settings.metrics_port, token)


def stop_pool_metrics() -> None:
    from storefront_jobs.metrics import pool  # noqa: PLC0415

    server = _server.pop("server", None)
    if server is not None:
        server.shutdown()
    pool.remove_multiprocess_dir()
