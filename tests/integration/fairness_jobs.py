"""Jobs of the tenant fairness tests (tests/integration/test_tenant_fairness.py); workers import them with
tests.integration.jobs.

Each run appends its tenant and number to one Redis list as it starts, so the test reads the order in
which the worker took the jobs.
"""

from __future__ import annotations

import functools
import json
import time

import redis

from storefront_jobs import Priority, current_tenant, priority_task
from tests.support.broker import broker_redis

#: The STOREFRONT_JOBS_IMPORTS of a worker that runs these jobs.
IMPORTS = "tests.integration.jobs,tests.integration.fairness_jobs"
STARTS = "test:fair:starts"
TASK = "tests.integration.fairness_jobs.tenant_work"


@functools.cache
def _redis() -> redis.Redis:
    """One client per pool process: the jobs are short, and a connection each would dominate."""
    return broker_redis()


@priority_task(Priority.DEFAULT, queue="fairness.tests", name=TASK)
def tenant_work(n: int, sleep_s: float) -> None:
    """Records its start, then takes ``sleep_s``; the test sends it through an app of its own."""
    _redis().rpush(STARTS, json.dumps({"tenant": current_tenant(), "n": n}))
    time.sleep(sleep_s)
