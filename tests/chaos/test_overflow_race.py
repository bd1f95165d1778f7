"""Eight producer processes race into a lane of capacity 1,000: the capacity holds, every refusal is told
and counted, and every accepted job runs.

docs/backpressure.md: on Redis the check is inside the publish (one Lua script), so a lane never holds
more than its capacity; the bound for a check made before the publish would be capacity + producers - 1.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs.broker import keys
from storefront_jobs.deadletter import store_for
from storefront_jobs.embedded import EmbeddedRedis
from tests.chaos.accounting import Ledger, account, assert_nothing_lost, publish, settle
from tests.chaos.producer import start_producer
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.chaos

CAPACITY = 1_000
PRODUCERS = 8
ATTEMPTS_EACH = 250


def lane_depth(client: redis.Redis) -> int:
    pipe = client.pipeline(transaction=False)
    for name in keys.lane_lists("p2.default"):
        pipe.llen(name)
    return sum(int(n) for n in pipe.execute())


def test_racing_producers_never_overfill_a_lane_and_every_refusal_is_counted(
    app: Any,
    workers: WorkerFactory,
    ledger: Ledger,
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    # Given eight producer processes, ready at the same start line, for a DEFAULT lane of capacity 1,000
    started = time.monotonic()
    settings = {"queue_capacity__default": str(CAPACITY)}
    go = ledger.key("go")
    producers = [
        start_producer(
            redis_server.url, tmp_path, run=ledger.run, prefix=f"s6-p{n}", count=ATTEMPTS_EACH, go_key=go,
            settings=settings,
        )
        for n in range(PRODUCERS)
    ]  # fmt: skip
    wait_until(lambda: int(redis_client.get(f"{go}:ready") or 0) == PRODUCERS, timeout_s=120)

    # When they all enqueue as fast as they can, 2,000 jobs in all, while the depth is sampled
    peak, racing = [0], threading.Event()

    def sample() -> None:
        sampler = redis.Redis.from_url(redis_server.url)
        while racing.is_set():
            peak[0] = max(peak[0], lane_depth(sampler))
        sampler.close()

    racing.set()
    sampler = threading.Thread(target=sample)
    sampler.start()
    redis_client.set(go, 1)
    for producer in producers:
        producer.wait()
    racing.clear()
    sampler.join()

    # Then the lane holds exactly its capacity, never held more, and every refusal reached its producer
    # as QueueOverflowError and is in the overflow counter
    acknowledged = [j for p in producers for j in p.acknowledged()]
    refused = {j: e for p in producers for j, e in p.refused().items()}
    depth = lane_depth(redis_client)
    overflow = int(redis_client.hget(keys.OVERFLOW_COUNTS, "default") or 0)
    assert len(acknowledged) + len(refused) == PRODUCERS * ATTEMPTS_EACH
    assert set(refused.values()) == {"QueueOverflowError"}, refused
    assert overflow == len(refused)
    assert max(peak[0], depth) <= CAPACITY + PRODUCERS - 1  # the documented worst case of a separate check
    assert max(peak[0], depth) <= CAPACITY  # and on Redis the check is inside the publish: exact
    assert depth == len(acknowledged) == CAPACITY

    # And every accepted job runs once a worker drains the lane
    workers.start("DEFAULT", concurrency=2)
    settle(ledger, store_for(app), redis_client, acknowledged, timeout_s=60)
    outcome = account(
        "6. eight producers racing into a lane of capacity 1,000",
        ledger=ledger,
        store=store_for(app),
        enqueued=acknowledged,
        refused=refused,
        started_s=started,
        extra={"capacity": CAPACITY, "producers": PRODUCERS, "peakDepth": max(peak[0], depth),
               "overflowCounter": overflow},
    )  # fmt: skip
    publish(outcome, tmp_path)
    assert_nothing_lost(outcome)
    assert outcome.refused_but_ran == 0
