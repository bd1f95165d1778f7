"""Workers whose clocks disagree by hours: every job still runs exactly once.

The fetch scores each held message with Redis's clock and the restore sweep judges with Redis's clock
(storefront_jobs.broker.qos), so a worker's own clock decides nothing about redelivery. Before, a worker
two hours behind recorded fetch times two hours old and another worker's sweep gave its running jobs to
someone else (measured: 20 jobs, 39 runs, 17 of them while an earlier run still went on); a worker ahead
took everyone else's. Debian's libfaketime shifts one worker's clock (``.ci/run`` installs ``faketime``).
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs.admin.health import health
from storefront_jobs.deadletter import store_for
from tests.chaos.accounting import Ledger, account, assert_nothing_lost, publish, settle
from tests.chaos.test_worker_crashes import enqueue
from tests.support.workers import WorkerFactory

#: Debian's libfaketime, preloaded through ``env`` (which execs: the worker keeps its pid and pool,
#: where the ``faketime`` command would fork and leave the worker one process further down).
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)

pytestmark = pytest.mark.chaos


@pytest.fixture(autouse=True)
def _libfaketime() -> None:
    if LIBFAKETIME is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's faketime is required in CI (.ci/run installs it)")
        pytest.skip("Debian's faketime is not installed")


#: Short, so that a sweep judging by the wrong clock has many chances to give a running job away.
VT_S = 20
TWO_HOURS_S = 7200.0
JOBS = 16


def with_clock(offset: str) -> tuple[str, ...]:
    """The command prefix that runs a worker with its clock ``offset`` ("-2h") off."""
    return ("env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={offset}", "FAKETIME_DONT_RESET=1")


@pytest.mark.parametrize("offset", ["-2h", "+2h"])
def test_two_workers_hours_apart_run_every_job_exactly_once(
    offset: str, app: Any, workers: WorkerFactory, ledger: Ledger, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Given two workers on one lane with a visibility timeout of 20 s, one of them with its clock
    # two hours off, and 16 jobs of 3 to 6 s (each sweep of either worker, every 2 s, sees them held)
    started = time.monotonic()
    # (fetching nothing ahead: a job fetched ahead that waited out the timeout would rightly run again)
    settings = {"visibility_timeout_s": str(VT_S), "bulk_prefetch_multiplier": "1"}
    on_time = workers.start("DEFAULT", concurrency=2, settings=settings)
    skewed = workers.start("DEFAULT", concurrency=2, settings=settings, wrapper=with_clock(offset))
    ids = [job_id for n in range(JOBS) for job_id in enqueue(ledger, f"sk{n}", 1, sleep_s=3 + n % 4)]

    # When they all run
    settle(ledger, store_for(app), redis_client, ids, timeout_s=120)

    # Then each job ran exactly once, never twice at the same time, and both workers took jobs
    skewed_pids, on_time_pids = set(skewed.children()), set(on_time.children())
    ran_by = ledger.ran_by()
    outcome = account(
        f"two workers, one with its clock {offset}",
        ledger=ledger,
        store=store_for(app),
        enqueued=ids,
        started_s=started,
        extra={
            "visibilityTimeoutS": VT_S,
            "ranBySkewedWorker": sum(1 for pid in ran_by.values() if pid in skewed_pids),
            "ranByOnTimeWorker": sum(1 for pid in ran_by.values() if pid in on_time_pids),
        },
    )
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    assert ledger.starts() == dict.fromkeys(ids, 1), outcome.summary()
    assert ledger.runs() == dict.fromkeys(ids, 1), outcome.summary()
    assert outcome.concurrent_runs == 0, outcome.summary()
    assert outcome.extra["ranBySkewedWorker"] > 0, outcome.summary()
    assert outcome.extra["ranByOnTimeWorker"] > 0, outcome.summary()

    # And the skewed pool counts as alive in /q/health, which names it as drifting, as its log does
    _, body = health(app)
    assert body["workersPerLane"]["p2.default"] >= 2, body
    drifting = body["workerClocks"]["drifting"]
    assert on_time.nodename not in drifting, body
    assert abs(abs(drifting[skewed.nodename]) - TWO_HOURS_S) < 60, body
    assert (drifting[skewed.nodename] > 0) == offset.startswith("+"), body
    assert "this pool's clock is 7200." in skewed.log_text()
