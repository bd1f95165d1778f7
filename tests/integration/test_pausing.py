"""Pausing a lane: durable across restarts, and strict priority order survives the resume."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from storefront_jobs.cli import main
from tests.integration import jobs
from tests.support.workers import WorkerFactory, WorkerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.delivery]


def consumed_lanes(app: Any, worker: WorkerProcess) -> set[str]:
    """The lanes the pool consumes, as it answers; asked again until it does (a busy pool may be late)."""

    def answer() -> tuple[list[dict[str, Any]]] | None:
        replies = app.control.inspect([worker.nodename], timeout=1.0).active_queues() or {}
        return (replies[worker.nodename],) if worker.nodename in replies else None

    [queues] = wait_until(answer)
    return {queue["name"] for queue in queues}


def started(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange("test:starts:order", 0, -1)]


def run_marker(client: redis.Redis, tag: str) -> None:
    """Send a HIGH marker job and wait until it ran: the pool (one process, lanes polled in priority
    order) has then started every CRITICAL job it would have fetched, since those were sent first."""
    jobs.high_marker.delay(tag)
    wait_until(lambda: tag in [json.loads(raw)["tag"] for raw in client.lrange("test:markers", 0, -1)])


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_paused_lane_waits_across_a_restart_and_resumes_in_priority_order(
    app: Any, redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given a pool on CRITICAL and HIGH, with CRITICAL paused and three CRITICAL jobs sent
    first = workers.start("CRITICAL,HIGH", concurrency=1)
    assert "paused" in cli("queues", "pause", "CRITICAL")
    wait_until(lambda: "p0.critical" not in consumed_lanes(app, first))
    for n in range(3):
        jobs.urgent.delay(n)
    run_marker(redis_client, "paused")
    assert started(redis_client) == []

    # When the pool restarts
    first.stop()
    second = workers.start("CRITICAL,HIGH", concurrency=1)

    # Then the new pool does not consume the paused lane either
    assert consumed_lanes(app, second) == {"p1.high"}
    run_marker(redis_client, "restarted")
    assert started(redis_client) == []
    assert redis_client.llen("p0.critical") == 3
    critical_row = json.loads(cli("queues", "--format", "json"))[0]
    assert (critical_row["lane"], critical_row["paused"], critical_row["waiting"]) == ("p0.critical", True, 3)
    assert critical_row["consumers"] == 0

    # When CRITICAL resumes while the pool is busy, and HIGH jobs queue up behind it
    jobs.blocking_high.delay(0)
    wait_until(lambda: started(redis_client))
    assert "resumed" in cli("queues", "resume", "CRITICAL")
    wait_until(lambda: "p0.critical" in consumed_lanes(app, second))
    for n in range(3):
        jobs.ordered_high.delay(n)
    redis_client.set("test:release", 1)

    # Then CRITICAL still goes first: a lane consumed again keeps its place
    wait_until(lambda: len(started(redis_client)) == 7)
    kinds = [s["kind"] for s in started(redis_client)]
    assert kinds == ["blocker", "critical", "critical", "critical", "high", "high", "high"]
    [lane_row] = [
        row for row in json.loads(cli("queues", "--format", "json")) if row["lane"] == "p0.critical"
    ]
    assert lane_row["paused"] is False


def test_a_pool_that_missed_the_broadcast_catches_up(
    app: Any, redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    from storefront_jobs import Priority
    from storefront_jobs.worker import pausing

    worker = workers.start("CRITICAL,HIGH", concurrency=1)

    # Only the durable record changes: no broadcast reaches the pool.
    pausing.pause(redis_client, Priority.HIGH)
    wait_until(lambda: consumed_lanes(app, worker) == {"p0.critical"})
    pausing.resume(redis_client, Priority.HIGH)
    wait_until(lambda: consumed_lanes(app, worker) == {"p0.critical", "p1.high"})


def test_queues_says_which_broker_it_shows(redis_client: redis.Redis) -> None:
    from storefront_jobs import get_default_app

    url = get_default_app().conf.broker_url
    shown = CliRunner().invoke(main, ["queues"])
    assert shown.exit_code == 0, shown.output
    assert f"storefront-jobs: broker {url}" in shown.stderr
    # (a long URL, as a Sentinel group's, wraps in the table's title)
    assert f"lanes on {url}".replace(" ", "") in "".join(shown.stdout.split())
    # ...and JSON stays JSON
    assert len(json.loads(CliRunner().invoke(main, ["queues", "--format", "json"]).stdout)) == 5
