"""`storefront-jobs capacity` against live lanes."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner

from storefront_jobs.cli import main
from tests.integration import jobs
from tests.support.workers import WorkerFactory

pytestmark = pytest.mark.e2e


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["capacity", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_runbook_example_prints_600(redis_client: redis.Redis) -> None:
    # Given 3,000 jobs really waiting in DEFAULT and no worker
    for n in range(3000):
        jobs.noop.delay(n)

    output = run("--priority", "DEFAULT", "--jobs-per-worker-per-minute", "10")

    assert "600" in output
    [row] = json.loads(run("--priority", "DEFAULT", "--jobs-per-worker-per-minute", "10", "--format", "json"))
    assert (row["waiting"], row["recommendedReplicas"], row["currentReplicas"]) == (3000, 600, 0)
    assert "600" in run("--priority", "DEFAULT", "--depth", "3000", "--jobs-per-worker-per-minute", "10")


def test_throughput_is_measured_from_running_pools(redis_client: redis.Redis, workers: WorkerFactory) -> None:
    for n in range(3000):
        jobs.noop.delay(n)
    workers.start("DEFAULT", concurrency=1)

    result = CliRunner().invoke(
        main, ["capacity", "--priority", "DEFAULT", "--window", "11", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)

    # The measuring window is announced, not silent
    assert "measuring pool throughput for 11 s (--window)" in result.stderr
    assert row["currentReplicas"] == 1
    assert row["jobsPerWorkerPerMinute"] > 0
    assert row["recommendedReplicas"] is not None


def test_an_idle_lane_with_a_running_pool_is_not_told_to_scale_to_zero(
    redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    workers.start("DEFAULT", concurrency=1)
    [row] = json.loads(run("--priority", "DEFAULT", "--jobs-per-worker-per-minute", "60", "--format", "json"))
    assert (row["waiting"], row["currentReplicas"], row["recommendedReplicas"]) == (0, 1, 1)
    assert "pool minimum of 1" in row["note"]


def test_depth_without_a_lane_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["capacity", "--depth", "3000"])
    assert result.exit_code == 2
    assert "--depth needs --priority" in result.output
