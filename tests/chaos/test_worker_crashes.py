"""Killed pool children, killed workers, poison jobs, warm shutdown: no job is lost.

Each test runs real `storefront-jobs worker` processes against Redis, kills or stops them mid-run, and
ends with the ledger's sum (tests/chaos/accounting.py): every acknowledged enqueue completed or is in
the DLQ; duplicates are counted and reported.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs.deadletter import store_for
from tests.chaos.accounting import Ledger, account, assert_nothing_lost, publish, settle
from tests.integration import jobs
from tests.support.workers import WorkerFactory, WorkerProcess, wait_until

pytestmark = pytest.mark.chaos

#: Short visibility timeout of the tests where a whole worker dies (production: 3600 s).
SHORT_VT_S = 5
#: kombu's restore sweep period at that timeout: application.transport_options, min(10, VT / 10), >= 1.
SWEEP_S = 1
#: How much later than its sweep a restore may be seen on a loaded machine (see the test that uses it).
LATE_S = 5


def enqueue(ledger: Ledger, prefix: str, count: int, sleep_s: float, gate: str | None = None) -> list[str]:
    """``count`` chaos jobs of ``sleep_s`` each; with ``gate``, each also holds its process until the
    test opens it (:func:`tests.chaos.accounting.wait_for_gate`)."""
    ids = [f"{prefix}-{n:05d}" for n in range(count)]
    for job_id in ids:
        jobs.chaos_work.apply_async((ledger.run, job_id, sleep_s), {"gate": gate}, task_id=job_id)
    return ids


def broker_idle_lanes(broker: redis.Redis) -> bool:
    return int(broker.llen("p2.default")) == 0


def fetched_since(broker: redis.Redis, since: float) -> int:
    """How many messages held now were fetched after ``since`` (the unacked index scores fetch times)."""
    return int(broker.zcount("unacked_index", f"({since!r}", "+inf"))


def fetch_times(broker: redis.Redis, held: dict[str, str]) -> dict[str, float]:
    """Task id -> fetch time of each held message."""
    return {job_id: float(broker.zscore("unacked_index", tag) or 0.0) for job_id, tag in held.items()}


def unacked_ids(broker: redis.Redis) -> set[str]:
    """Task ids of the messages kombu holds as delivered but not acknowledged."""
    return set(unacked_tags(broker))


def unacked_tags(broker: redis.Redis) -> dict[str, str]:
    """Task id -> delivery tag of every message held as delivered but not acknowledged."""
    held = {}
    for tag, raw in broker.hgetall("unacked").items():
        payload, _exchange, _routing_key = json.loads(raw)
        held[payload["headers"]["id"]] = tag.decode()
    return held


def wait_for_return(
    broker: redis.Redis, held: dict[str, str], since: float, timeout_s: float
) -> dict[str, float]:
    """Time (``time.time()``) by which each held message was seen restored: gone from ``unacked`` (back
    in its lane), or recorded again with a fetch time after ``since`` (restored and fetched again).
    Polled, so each time is no earlier than the restore itself."""
    back: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(back) < len(held) and time.monotonic() < deadline:
        for job_id, tag in held.items():
            score = broker.zscore("unacked_index", tag)
            if job_id not in back and (score is None or score > since):
                back[job_id] = time.time()
        time.sleep(0.05)
    return back


def test_pool_children_killed_mid_job_lose_nothing(
    app: Any, workers: WorkerFactory, ledger: Ledger, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Given a 2,000-job run on a pool of four processes
    started = time.monotonic()
    worker = workers.start("DEFAULT", concurrency=4)
    ids = enqueue(ledger, "s1", 2_000, sleep_s=0.02)
    store = store_for(app)

    # When a pool child is SIGKILLed in the middle of a job, again and again (the OOM killer at work)
    killed: dict[int, str] = {}
    while len(killed) < 15 and ledger.completed_count() < len(ids) - 200:
        children = set(worker.children())
        running = {
            int(pid): job.decode()
            for pid, job in redis_client.hgetall(ledger.key("current")).items()
            if int(pid) in children and int(pid) not in killed
        }
        if running:
            pid, job_id = next(iter(running.items()))
            os.kill(pid, signal.SIGKILL)
            killed[pid] = job_id
        time.sleep(0.3)
    settle(ledger, store, redis_client, ids, timeout_s=120)

    # Then nothing is lost: each killed job ran again (a retry on worker loss) or is dead-lettered
    starts, runs = ledger.starts(), ledger.runs()
    dead = {eid: store.get(eid) for eid in killed.values() if store.get(eid) is not None}
    retried = [j for j in killed.values() if j in runs and starts[j] >= 2]
    outcome = account(
        "1. pool child SIGKILLed mid-job, repeatedly",
        ledger=ledger,
        store=store,
        enqueued=ids,
        started_s=started,
        extra={"kills": len(killed), "killedJobsRetried": len(retried), "killedJobsDeadLettered": len(dead)},
    )
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    assert len(killed) >= 10, f"only {len(killed)} kills landed: {outcome.summary()}"
    assert all(r is not None and r.reason.value == "worker_lost" for r in dead.values()), dead
    # A kill can land just after its job finished; most land mid-job and make it run again.
    assert len(retried) + len(dead) >= len(killed) // 2, outcome.summary()


def test_a_killed_worker_s_jobs_come_back_within_the_visibility_timeout(
    app: Any, workers: WorkerFactory, ledger: Ledger, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Every message the worker held (running and fetched ahead) runs again after the visibility timeout.

    The kill lands while the worker holds its full prefetch and the lane is empty, so what comes back
    is exactly what it held; kills in the middle of fetching are the next test's.
    """
    # Given a pool that fetches ahead (one DEFAULT lane: 2 processes x prefetch 4) holding the run's
    # last 8 jobs: two running, six fetched ahead. Those 8 hold their processes until the test opens
    # their gate, and this pool keeps production's visibility timeout, so its own restore sweep leaves
    # them alone: the state lasts until the kill however slowly the test gets to it. What comes back,
    # and when, is the doing of the next worker, which has the short timeout.
    started = time.monotonic()
    settings = {"visibility_timeout_s": str(SHORT_VT_S)}
    gate = ledger.key("gate")
    long_ids = {f"s2-long-{n:05d}" for n in range(8)}
    first = workers.start("DEFAULT", concurrency=2)
    ids = enqueue(ledger, "s2-short", 50, sleep_s=0.02)
    ids += enqueue(ledger, "s2-long", 8, sleep_s=0.0, gate=gate)
    store = store_for(app)
    wait_until(
        lambda: (
            broker_idle_lanes(redis_client)
            and unacked_ids(redis_client) == long_ids
            and len(ledger.live_running()) == 2
        ),
        timeout_s=60,
        interval_s=0.01,
    )

    # When the whole worker (main process and pool) is SIGKILLed, as a lost node would be, and the
    # run goes on with a new worker
    first.kill()
    killed_at = time.time()
    held = unacked_tags(redis_client)
    fetched_at = fetch_times(redis_client, held)
    redis_client.set(gate, 1)  # the runs to come need not wait
    wait_until(lambda: int(redis_client.info("clients")["blocked_clients"]) == 0)
    ids += enqueue(ledger, "s2-after", 50, sleep_s=0.02)
    second = workers.start("DEFAULT", concurrency=2, settings=settings)
    consuming_at = time.time()  # it answered a ping: its consumer, which runs the restore sweep, is up
    back_at = wait_for_return(redis_client, held, killed_at, timeout_s=60)
    settle(ledger, store, redis_client, ids, timeout_s=90)

    # Then every message it held came back, not before the visibility timeout, and ran
    due_at = {job_id: max(fetched_at[job_id] + SHORT_VT_S, consuming_at) for job_id in fetched_at}
    late_s = {job_id: round(at - due_at[job_id], 2) for job_id, at in back_at.items()}
    outcome = account(
        "2. whole worker SIGKILLed, new worker started",
        ledger=ledger,
        store=store,
        enqueued=ids,
        started_s=started,
        extra={
            "visibilityTimeoutS": SHORT_VT_S,
            "heldAtKill": len(held),
            "maxBackAfterS": max((round(at - killed_at, 2) for at in back_at.values()), default=None),
            "maxLateS": max(late_s.values(), default=None),
        },
    )
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    assert set(held) == long_ids, held
    assert set(back_at) == set(held), back_at
    # A held message may be restored only once it has been held a whole visibility timeout (the sweep
    # compares its fetch time with the clock): a strict lower bound, whatever the load.
    assert all(back_at[j] >= fetched_at[j] + SHORT_VT_S for j in held), (fetched_at, back_at)
    # And it is restored by the first sweep after that, once a consumer runs (every SWEEP_S). The
    # upper bound allows two sweeps and LATE_S more: on a loaded machine the sweep waits its turn in
    # the new worker's event loop, and this test polls every 50 ms.
    assert all(late <= 2 * SWEEP_S + LATE_S for late in late_s.values()), late_s
    assert second.proc.poll() is None


def test_a_worker_killed_while_fetching_loses_nothing(
    app: Any, workers: WorkerFactory, ledger: Ledger, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The gap plain kombu leaves: it pops a message with BRPOP, then records it as unacknowledged.

    A worker killed between the two would lose that message for good. storefront-jobs' transport takes
    and records a message in one script (docs/reliability.md, "Reliable fetch"), so killing workers
    while they fetch as fast as they can must lose nothing.
    """
    # Given workers fetching as fast as they can (jobs that do nothing)
    started = time.monotonic()
    settings = {"visibility_timeout_s": str(SHORT_VT_S)}
    gate = ledger.key("gate")
    ids = enqueue(ledger, "s2b", 200, sleep_s=0.0)
    store = store_for(app)

    # When each is SIGKILLed while it fetches, and replaced, six times. Each round first tops the lane
    # up (an earlier worker may have drained it) and ends it with two jobs that hold their processes
    # until the gate opens, so the new worker is sure to hold messages of its own fetching: the kill
    # waits for the first message it fetched (most often mid-burst), not for a moment that may be over.
    held: set[str] = set()
    kills = 0
    for round_number in range(6):
        ids += enqueue(ledger, f"s2b-r{round_number}", 98, sleep_s=0.0)
        ids += enqueue(ledger, f"s2b-r{round_number}-held", 2, sleep_s=0.0, gate=gate)
        round_started = time.time()
        worker = workers.start("DEFAULT", concurrency=2, settings=settings, wait=False)

        def fetched(worker: WorkerProcess = worker, since: float = round_started) -> int:
            assert worker.proc.poll() is None, f"worker exited:\n{worker.log_text()[-3000:]}"
            return fetched_since(redis_client, since)

        wait_until(fetched, interval_s=0.005)
        worker.kill()
        kills += 1
        held |= unacked_ids(redis_client)
    redis_client.set(gate, 1)
    workers.start("DEFAULT", concurrency=2, settings=settings)
    settle(ledger, store, redis_client, ids, timeout_s=90)

    # Then every job ran or is in the DLQ; the ones held at a kill came back with the visibility timeout
    outcome = account(
        "2b. whole worker SIGKILLed while fetching",
        ledger=ledger,
        store=store,
        enqueued=ids,
        started_s=started,
        extra={"kills": kills, "heldAtKills": len(held), "visibilityTimeoutS": SHORT_VT_S},
    )
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    assert held, "no kill landed while the worker held messages"
    assert set(ledger.runs()) >= held


def test_a_poison_job_is_dead_lettered_after_bounded_attempts_while_others_flow(
    app: Any, workers: WorkerFactory, ledger: Ledger, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Given a pool of two processes, 300 ordinary jobs and, among them, three that kill their process
    started = time.monotonic()
    workers.start("DEFAULT", concurrency=2)
    store = store_for(app)
    ids, poison = [], []
    for n in range(300):
        if n % 100 == 0:
            job_id = f"s4-poison-{n:03d}"
            jobs.chaos_poison.apply_async((ledger.run, job_id), task_id=job_id)
            poison.append(job_id)
        job_id = f"s4-{n:05d}"
        jobs.chaos_work.apply_async((ledger.run, job_id, 0.02), task_id=job_id)
        ids.append(job_id)

    # When they run
    settle(ledger, store, redis_client, ids + poison, timeout_s=90)

    # Then each poison job ran exactly 1 + max_retries times and is in the DLQ as worker_lost
    attempts = 1 + jobs.chaos_poison.retry_policy.max_retries
    records = {p: store.get(p) for p in poison}
    starts = ledger.starts()
    # ... while the ordinary jobs kept completing between the first poison run and the last dead letter
    done_at = ledger.done_at()
    dead = [r for r in records.values() if r is not None]
    first_loss = min((r.errors[0].at for r in dead), default=0.0)
    last_loss = max((r.failed_at for r in dead), default=0.0)
    flowing = sum(1 for at in done_at.values() if first_loss <= at <= last_loss)
    outcome = account(
        "4. poison job kills its worker every time",
        ledger=ledger,
        store=store,
        enqueued=ids + poison,
        started_s=started,
        extra={"poisonJobs": len(poison), "attemptsEach": [starts.get(p) for p in poison],
               "completedWhilePoisonRetried": flowing},
    )  # fmt: skip
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    for job_id, record in records.items():
        assert record is not None, job_id
        assert (record.reason.value, record.attempt_number) == ("worker_lost", attempts), record
        assert starts[job_id] == attempts, (job_id, starts[job_id])
    assert outcome.completed == len(ids)
    assert flowing > 0, outcome.summary()


def test_warm_shutdown_finishes_running_jobs_and_gives_back_reserved_ones(
    app: Any, workers: WorkerFactory, ledger: Ledger, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Given a pool that fetches ahead (2 processes x prefetch 4) busy with half-second jobs
    started = time.monotonic()
    first = workers.start("DEFAULT", concurrency=2)
    ids = enqueue(ledger, "s7", 60, sleep_s=0.5)
    store = store_for(app)
    wait_until(lambda: ledger.completed_count() >= 4 and len(ledger.running()) == 2)

    # When it gets SIGTERM (a deploy, a scale-down)
    held = unacked_ids(redis_client)
    stopped_at = time.time()
    first.proc.send_signal(signal.SIGTERM)
    running = ledger.running()
    # Running jobs take 0.5 s; a busy prefork pool's warm shutdown can also wait ~30 s in billiard for
    # its result pipe (upstream, seen with bare Celery too: tests/support/workers.py), then exits 0.
    assert first.proc.wait(120) == 0, first.log_text()[-3000:]

    # Then the running jobs finished, the reserved ones went back to the lane at once (not after the
    # visibility timeout), and a new worker runs them
    assert redis_client.hlen("unacked") == 0
    restored = sum(int(n) for n in re.findall(r"Restoring (\d+) unacknowledged message", first.log_text()))
    back_in_lane = redis_client.llen("p2.default")
    done_at = ledger.done_at()
    finished = {j: done_at.get(j, 0) for j in running}
    workers.start("DEFAULT", concurrency=2)
    settle(ledger, store, redis_client, ids, timeout_s=60)
    outcome = account(
        "7. warm shutdown (SIGTERM) under load",
        ledger=ledger,
        store=store,
        enqueued=ids,
        started_s=started,
        extra={"runningAtSigterm": len(running), "heldAtSigterm": len(held), "restored": restored},
    )
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    assert all(at > stopped_at for at in finished.values()), finished
    assert 0 < restored <= len(held - running), (restored, held, running)
    assert back_in_lane >= restored
    assert outcome.duplicates == 0, outcome.summary()
    assert outcome.in_dlq == 0, outcome.summary()
