"""The example jobs that run on a schedule: cache warming and analytics aggregation, both LOW.

Celery beat (``storefront-jobs beat``) sends them: importing
:mod:`storefront_jobs.examples` connects :func:`on_beat_init`, which adds them
to the schedule of a beat as it starts, so a worker or producer that imports
the examples sends nothing by itself (and importing builds no app). Beat sends
only while ``SCHEDULER_ENABLED`` is true (the runbook's scheduler flag), and
exactly one beat may run per deployment, or every job here goes out twice.

The intervals are short on purpose: ``storefront-jobs dev`` should show the
scheduler at work within a minute. A shop would warm its caches every few
minutes and aggregate once a night (a ``celery.schedules.crontab``).

``aggregate_analytics`` rolls up one metric of one given day, and a periodic
entry's arguments are fixed when the schedule is built, so "yesterday" cannot
be one of them: :func:`aggregate_yesterday` works out the date when it runs
and sends one ``aggregate_analytics`` job per metric, each retried on its own.
Re-sending a day is harmless (the rollup overwrites the day's row), which
matters because a retry of the fan-out re-sends every metric.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import Celery

from storefront_jobs import Priority, priority_task
from storefront_jobs.examples import analytics

#: Seconds between two cache warm-ups of each hot page.
WARM_CACHE_EVERY_S = 60.0
#: Seconds between two runs of yesterday's analytics aggregation.
AGGREGATE_EVERY_S = 60.0
#: Pages whose cache is warmed, with the number of keys each one renders.
HOT_PAGES = {"home": 200, "catalog": 500}


@priority_task(Priority.LOW, queue="analytics.aggregation")
def aggregate_yesterday() -> list[str]:
    """Send one aggregation job per metric for yesterday (UTC); returns their execution ids."""
    day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    return [analytics.aggregate_analytics.delay(metric, day).id for metric in sorted(analytics.METRICS)]


def entry_names() -> list[str]:
    """Names of the beat schedule entries this module adds, as beat logs them."""
    return [f"examples.warm_cache.{page}" for page in HOT_PAGES] + ["examples.aggregate_yesterday"]


def register(app: Celery) -> None:
    """Add the entries to ``app``'s beat schedule; idempotent (entries are keyed by name)."""
    for page, n_keys in HOT_PAGES.items():
        app.add_periodic_task(
            WARM_CACHE_EVERY_S, analytics.warm_cache.s(page, n_keys), name=f"examples.warm_cache.{page}"
        )
    app.add_periodic_task(AGGREGATE_EVERY_S, aggregate_yesterday.s(), name="examples.aggregate_yesterday")


def on_beat_init(sender: Any = None, **_: Any) -> None:
    """``beat_init`` receiver: add the entries to the starting beat's app and to its scheduler.

    Beat's scheduler has read the app's schedule by then (its start-up banner
    shows it), so the entries are merged into the scheduler as well.
    """
    register(sender.app)
    sender.scheduler.merge_inplace(sender.app.conf.beat_schedule)
