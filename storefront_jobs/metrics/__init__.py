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
