"""The baseline: a bare Celery app with default settings, and its no-op, sleep and probe tasks.

Workers load it with ``python -m celery -A bench.bare:bare_app worker``; the
bare producer imports it directly. This module must not import
``storefront_jobs`` (directly or through ``bench.jobs``): storefront connects
receivers to Celery's global signals and configures logging, which would put
storefront's per-job costs into the baseline.
"""

from __future__ import annotations

import os
import time

from celery import Celery

from bench.probes import BROKER_URL_VAR, record_start

# Default settings on purpose: only the broker is given.
bare_app = Celery("bench_bare", broker=os.environ.get(BROKER_URL_VAR))


@bare_app.task(name="bench.bare.noop")
def noop() -> None:
    """Does nothing: what is measured is the platform's cost per job."""


@bare_app.task(name="bench.bare.sleep")
def sleep(sleep_s: float) -> None:
    time.sleep(sleep_s)


@bare_app.task(name="bench.bare.probe")
def probe(n: int, sent_at: float) -> None:
    """A CRITICAL-style job: bare Celery stamps no enqueue time, so the producer passes it."""
    record_start(n, sent_at)
