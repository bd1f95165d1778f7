"""Replay end to end: new executions on their lanes, and a replay killed halfway loses and doubles nothing."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from typing import Any

import pytest
import redis

from storefront_jobs.broker import keys
from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.jobs.priorities import Priority
from tests.integration import jobs
from tests.support.broker import client_ids, wait_disconnected
from tests.support.dlq import dlq_command, fill_redis, make_record, run_dlq
from tests.support.workers import REPO_ROOT, WorkerFactory, wait_until, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.delivery]


def test_a_replayed_job_runs_again_on_its_lane_as_a_new_execution(
    app: Any, workers: WorkerFactory, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    store = store_for(app)
    workers.start(concurrency=2)
    # Given a job that failed for good on a worker, and one restored into the DLQ at LOW priority
    dead = jobs.dlq_exhausts.delay({"id": "o-9"}).id
    wait_until(lambda: store.get(dead))
    restored = make_record(
        "restored-1",
        task=jobs.dlq_records_run.name,
        priority="LOW",
        tenant="t-7",
        args=[5],
        kwargs={"payload": {"a": [1]}},
    )
    store.add(restored)

    # When both are replayed from the command line
    done = run_dlq(redis_server.url, "replay", "--queue", "all", "--yes", "--format", "json")

    # Then each runs again as a new execution that names the entry it replays
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["replayedCount"] == 2
    run = json.loads(wait_until(lambda: redis_client.lindex("test:runs", 0)))
    assert run["id"] != "restored-1"
    assert (run["replayOf"], run["replayCount"], run["attempt"]) == ("restored-1", 1, 1)
    assert run["lane"] == keys.lane_name(Priority.LOW)
    assert (run["n"], run["payload"], run["tenantId"]) == (5, {"a": [1]}, "t-7")
    # And the job that fails again comes back with a fresh retry budget and its lineage
    again = wait_until(lambda: store.page(Filter(task=jobs.dlq_exhausts.name), None, 5).records())
    [record] = again
    assert record.execution_id != dead
    assert (record.replay_of, record.replay_count) == (dead, 1)
    assert [e.attempt for e in record.errors] == [1, 2, 3]
    assert store.get(dead) is None
    assert store.replayed_as(dead) == record.execution_id
    [audit] = store.audit.entries()
    assert (audit.action, audit.count, audit.status, audit.source) == ("replay", 2, "done", "cli")


def lane_messages(client: redis.Redis, lane: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(lane, 0, -1)]


@pytest.mark.chaos
def test_a_replay_killed_halfway_and_run_again_loses_nothing_and_sends_nothing_twice(
    app: Any, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    total = 10_000
    lane = keys.lane_name(Priority.DEFAULT)
    fill_redis(redis_client, total, task=jobs.dlq_records_run.name, queue="replay.chaos")
    settings = {"queue_capacity__default": str(total * 2)}
    store = store_for(app)
    store.count(Filter())  # this test's own connections are open before the replay's
    connected = client_ids(redis_client)

    # When a replay of everything is SIGKILLed partway through. Unthrottled it takes about a second,
    # so a kill after the first 1,000 could miss on a busy machine; at 1,000/s the other 9,000 take at
    # least 9 s. (Each batch moves in one script, so a kill between batches or inside one is alike.)
    proc = subprocess.Popen(
        dlq_command(redis_server.url, "replay", "--queue", "all", "--rate", "1000", "--yes"),
        env=worker_env(redis_server.url, **settings),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_until(
        lambda: redis_client.llen(lane) >= 1_000 or proc.poll() is not None, timeout_s=60, interval_s=0.002
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Redis still runs what the killed process had sent; once its connections are gone, nothing more
    # of it can change the lane or the DLQ.
    wait_disconnected(redis_client, connected)
    sent_before = redis_client.llen(lane)
    left = store.count(Filter())

    # Then every entry is either in the lane or still in the DLQ
    assert 0 < sent_before < total, "the kill landed before or after the replay; nothing was tested"
    assert sent_before + left == total

    # When the replay is run again
    done = run_dlq(redis_server.url, "replay", "--queue", "all", "--yes", **settings)

    # Then each entry was sent exactly once, each as its own new execution
    assert done.returncode == 0, done.stderr
    messages = lane_messages(redis_client, lane)
    replayed = Counter(m["headers"]["replayOf"] for m in messages)
    assert len(messages) == total
    assert set(replayed) == {f"fill-{i:07d}" for i in range(total)}
    assert max(replayed.values()) == 1
    assert len({m["headers"]["id"] for m in messages}) == total
    assert store_for(app).count(Filter()) == 0
    statuses = sorted(e.status for e in store_for(app).audit.entries())
    assert statuses == ["done", "running"]  # the killed run stays "running", with its exact count
    assert sum(e.count for e in store_for(app).audit.entries()) == total
