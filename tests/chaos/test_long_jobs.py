"""A job longer than the visibility timeout is never run twice at the same time.

kombu restores any message that stayed unacknowledged longer than the visibility timeout, even while
the worker that fetched it is still running it; another process then starts it again (Celery's
"executed again, and again in a loop"). Measured before the fix, with a 3 s timeout and an 8 s job:
three runs, two of them concurrent. ``create_app`` now sets a hard time limit below the timeout
(``application.job_time_limit_s``), so such a job is stopped and dead-lettered (reason
``time_limit``) before anyone else can start it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs import load_settings
from storefront_jobs.application import job_time_limit_s
from storefront_jobs.deadletter import store_for
from storefront_jobs.embedded import EmbeddedRedis
from tests.chaos.accounting import Ledger, account, assert_nothing_lost, publish, settle
from tests.chaos.producer import start_producer
from tests.support.workers import WorkerFactory

pytestmark = pytest.mark.chaos

VT_S = 3


def test_a_job_longer_than_the_visibility_timeout_never_runs_twice_at_once(
    app: Any,
    workers: WorkerFactory,
    ledger: Ledger,
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    # Given two workers with a 3 s visibility timeout, so a second one is free to take a redelivery
    started = time.monotonic()
    settings = {"visibility_timeout_s": str(VT_S)}
    limit_s = job_time_limit_s(load_settings(visibility_timeout_s=VT_S))
    assert limit_s < VT_S
    workers.start("DEFAULT", concurrency=1, settings=settings)
    workers.start("DEFAULT", concurrency=1, settings=settings)
    store = store_for(app)

    # When one job runs for 8 s, far past the timeout, and another finishes within the limit (sent by
    # producers with the same settings: every process must share the visibility timeout)
    producers = [
        start_producer(
            redis_server.url,
            tmp_path,
            run=ledger.run,
            prefix=prefix,
            count=1,
            sleep_s=sleep_s,
            settings=settings,
        )
        for prefix, sleep_s in (("s5-long", 8.0), ("s5-short", limit_s / 4))
    ]
    for producer in producers:
        producer.wait()
    ids = [job_id for producer in producers for job_id in producer.acknowledged()]
    assert len(ids) == 2
    settle(ledger, store, redis_client, ids, timeout_s=90)

    # Then it ran once, was stopped by the hard time limit and dead-lettered; the short one completed
    starts = ledger.starts()
    record = store.get("s5-long-00000")
    outcome = account(
        "5. job longer than the visibility timeout",
        ledger=ledger,
        store=store,
        enqueued=ids,
        started_s=started,
        extra={"visibilityTimeoutS": VT_S, "timeLimitS": limit_s, "longJobRuns": starts.get("s5-long-00000")},
    )
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    assert outcome.concurrent_runs == 0, outcome.summary()
    assert starts == {"s5-long-00000": 1, "s5-short-00000": 1}, outcome.summary()
    assert record is not None
    assert record.reason.value == "time_limit", record
    assert ledger.runs() == {"s5-short-00000": 1}
