"""Aging on real workers: a starving job climbs one lane and is a job of that lane from then on."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis

from storefront_jobs import Priority, get_default_app
from storefront_jobs.broker import aging, keys
from storefront_jobs.deadletter import store_for
from storefront_jobs.metrics.broker import BrokerCollector
from storefront_jobs.settings import load_settings
from tests.integration import aging_jobs
from tests.support.broker import wait_broker_idle
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration

HIGH, DEFAULT, LOW = (keys.lane_name(p) for p in (Priority.HIGH, Priority.DEFAULT, Priority.LOW))
#: Settings of every worker here: sweeps five times a second, on whichever pool holds the lease.
FAST_SWEEPS = {"imports": aging_jobs.IMPORTS, "aging__sweep_interval_s": "0.2"}


def _runs(client: redis.Redis, tag: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, client.lrange(aging_jobs.RUNS, 0, -1)) if r["tag"] == tag]


def _promoted_total(client: redis.Redis, source: str, target: str) -> float:
    """storefront_jobs_job_promoted_total as the admin service exports it."""
    collector = BrokerCollector(client, load_settings())
    [family] = [f for f in collector.collect() if f.name == "storefront_jobs_job_promoted"]
    return sum(s.value for s in family.samples if s.labels == {"from": source, "to": target})


def _waited_in_lane_s(client: redis.Redis, lane: str, execution_id: str) -> float | None:
    """How long the job has waited in ``lane`` by its laneSince stamp; None when it is not there."""
    for raw in client.lrange(lane, 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["id"] == execution_id:
            return time.time() - float(headers["laneSince"])
    return None


def test_a_low_job_behind_a_stream_of_high_work_is_promoted_and_runs_as_a_default_job(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given a one-process pool on HIGH and LOW, a pool on DEFAULT, LOW jobs aging after 1 s
    settings = {**FAST_SWEEPS, "aging__low_s": "1"}
    pools = [
        workers.start("HIGH,LOW", concurrency=1, settings=settings),
        workers.start("DEFAULT", concurrency=1, settings=settings),
    ]

    # When a LOW job is sent while HIGH work keeps the first pool busy
    stop = threading.Event()
    stream = _busy_on_high(redis_client, stop)
    try:
        sent = aging_jobs.low_probe.delay("starving")
        stream.start()

        # Then it is promoted to DEFAULT and runs there, as a DEFAULT job that came from LOW
        [run] = wait_until(lambda: _runs(redis_client, "starving"))
        assert run["id"] == sent.id
        assert (run["lane"], run["priority"], run["promotedFrom"]) == (DEFAULT, "DEFAULT", "LOW")
    finally:
        _end(stream, stop)

    # and it is counted once, as the admin service exports it, and logged by the pool that swept
    assert _promoted_total(redis_client, "low", "default") == 1

    def promotion_lines() -> list[dict[str, Any]]:
        return [r for pool in pools for r in pool.log_records() if r.get("message") == "Jobs promoted"]

    [line] = wait_until(promotion_lines)
    assert line["promoted"] == {"LOW->DEFAULT": 1}
    assert line["logger"] == "storefront_jobs.worker.aging"
    wait_broker_idle(redis_client)
    assert len(_runs(redis_client, "starving")) == 1


def test_with_aging_off_the_low_job_waits_out_the_stream_and_runs_as_low(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given the same pools with aging off for LOW (HIGH and DEFAULT keep theirs: the sweeper runs)
    settings = {**FAST_SWEEPS, "aging__low_s": "0"}
    workers.start("HIGH,LOW", concurrency=1, settings=settings)
    workers.start("DEFAULT", concurrency=1, settings=settings)

    # When a LOW job waits behind HIGH work three times as long as the threshold of the other test,
    # with a sweeper holding the lease all along
    stop = threading.Event()
    stream = _busy_on_high(redis_client, stop)
    try:
        sent = aging_jobs.low_probe.delay("patient")
        stream.start()

        def starved_while_swept() -> bool:
            waited_s = _waited_in_lane_s(redis_client, LOW, sent.id)
            return waited_s is not None and waited_s >= 3 and redis_client.exists(keys.AGING_LEASE) == 1

        wait_until(starved_while_swept)
    finally:
        _end(stream, stop)

    # Then once the stream ends it runs from its own lane, as a LOW job, and nothing was promoted
    [run] = wait_until(lambda: _runs(redis_client, "patient"))
    assert (run["id"], run["lane"], run["priority"], run["promotedFrom"]) == (sent.id, LOW, "LOW", None)
    assert _promoted_total(redis_client, "low", "default") == 0
    assert not redis_client.exists(keys.PROMOTED_COUNTS)


def test_sweepers_racing_on_one_redis_promote_each_job_once(redis_client: redis.Redis, app: Any) -> None:
    # Given 300 LOW jobs waiting, nothing consuming, all of them due
    sent = {aging_jobs.low_probe.delay(f"race-{n}").id for n in range(300)}
    settings = load_settings(aging={"low_s": 1})
    now_s = time.time() + 5

    # When four sweepers sweep at the same instant, each until LOW is empty
    barrier = threading.Barrier(4)
    results: list[aging.SweepResult] = []
    errors: list[BaseException] = []

    def sweeper() -> None:
        client = redis.Redis.from_url(app.conf.broker_url)
        try:
            barrier.wait(30)
            while client.llen(LOW):
                results.append(aging.sweep(client, settings, now_s))
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors

    # Then every job is in DEFAULT exactly once, and counted once
    ids = Counter(json.loads(raw)["headers"]["id"] for raw in redis_client.lrange(DEFAULT, 0, -1))
    assert set(ids) == sent
    assert set(ids.values()) == {1}
    assert redis_client.llen(LOW) == 0
    step = (Priority.LOW, Priority.DEFAULT)
    assert sum(r.promoted[step] for r in results) == 300
    assert aging.read_counts(redis_client)[0] == {step: 300}


def test_a_promoted_job_that_fails_retries_and_is_dead_lettered_as_a_job_of_its_new_lane(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given a pool on LOW only, and BULK jobs aging after 1 s
    workers.start("LOW", concurrency=1, settings={**FAST_SWEEPS, "aging__bulk_s": "1"})

    # When an always-failing BULK job is sent (BULK never retries; nothing consumes p4.bulk)
    sent = aging_jobs.bulk_failing.delay("dead")

    # Then it is promoted to LOW and fails there on LOW's table: four runs, then the DLQ
    store = store_for(get_default_app())
    record = wait_until(lambda: store.get(sent.id))
    wait_broker_idle(redis_client)
    runs = _runs(redis_client, "dead")
    assert [(r["lane"], r["priority"], r["promotedFrom"]) for r in runs] == [(LOW, "LOW", "BULK")] * 4
    assert {r["id"] for r in runs} == {sent.id}
    assert (record.priority, record.promoted_from) == (Priority.LOW, Priority.BULK)
    assert (record.reason.value, record.attempt_number) == ("exhausted", 4)
    assert record.headers["promotedFrom"] == "BULK"
    assert json.loads(record.to_json())["promotedFrom"] == "BULK"
    # Its retries stayed in LOW without being promoted again.
    assert _promoted_total(redis_client, "bulk", "low") == 1
    assert _promoted_total(redis_client, "low", "default") == 0


def _busy_on_high(client: redis.Redis, stop: threading.Event, depth: int = 10) -> threading.Thread:
    """Make a one-process pool on HIGH busy with HIGH work; the thread returned keeps it so.

    Queues twice ``depth`` HIGH jobs of 50 ms and waits for the first to start, so a job sent
    next waits behind HIGH work; the thread, once started, keeps at least ``depth`` of them
    waiting until ``stop`` is set.
    """
    for _ in range(2 * depth):
        aging_jobs.high_work.delay(0.05)
    wait_until(lambda: client.llen(aging_jobs.HIGH_STARTS) > 0)

    def top_up() -> None:
        while not stop.wait(0.02):
            if client.llen(HIGH) < depth:
                for _ in range(depth):
                    aging_jobs.high_work.delay(0.05)

    return threading.Thread(target=top_up, daemon=True)


def _end(stream: threading.Thread, stop: threading.Event) -> None:
    stop.set()
    if stream.is_alive():
        stream.join(10)
