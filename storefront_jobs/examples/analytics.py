"""LOW jobs (started within 2 min, retried 3 times from 1 s): work nobody is waiting on right now.

Analytics aggregation and cache warming make the shop faster and the
dashboards fresher, but a minute's delay is invisible, so they yield to
everything above them.
"""

from __future__ import annotations

from storefront_jobs import Priority, priority_task
from storefront_jobs.examples.support import (
    external_call,
    require_choice,
    require_date,
    require_int,
    require_text,
)

METRICS = frozenset({"orders", "revenue", "sessions", "conversion"})
MAX_CACHE_KEYS = 10_000


@priority_task(Priority.LOW, queue="analytics.aggregation")
def aggregate_analytics(metric: str, day: str) -> str:
    """Roll one day's raw events of ``metric`` up into the daily table; returns the row's key."""
    require_choice(metric, "metric", METRICS)
    date = require_date(day, "day")
    external_call("analytics-db", 0.06)
    return f"{metric}:{date.isoformat()}"


@priority_task(Priority.LOW, queue="cache.warming")
def warm_cache(page: str, n_keys: int) -> int:
    """Pre-render ``n_keys`` cache entries of a storefront page; returns how many were written."""
    require_text(page, "page")
    require_int(n_keys, "n_keys", 1, MAX_CACHE_KEYS)
    # Cost grows with the number of keys, as a real warm-up's does.
    external_call("page-renderer", 0.02 + n_keys * 0.0002)
    return n_keys
