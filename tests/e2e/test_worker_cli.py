"""The worker command: start-up errors, and plain `celery -A storefront_jobs worker`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

from tests.integration import jobs
from tests.support.workers import REPO_ROOT, WorkerFactory, wait_until, worker_env

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT", "lots", "STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT='lots'"),
        ("WORKER_PRIORITY_FILTER", "CRITICAL,URGENT", "accepted values: CRITICAL, HIGH, DEFAULT, LOW, BULK"),
    ],
)
@pytest.mark.parametrize("command", ["storefront-jobs", "celery"])
def test_a_bad_setting_stops_start_up_naming_the_variable(
    redis_server: object, variable: str, value: str, expected: str, command: str
) -> None:
    env = worker_env("redis://127.0.0.1:1/0")
    env[variable] = value
    if command == "storefront-jobs":
        argv = [sys.executable, "-m", "storefront_jobs", "worker"]
    else:
        argv = [sys.executable, "-m", "celery", "-A", "storefront_jobs", "worker"]
    done = subprocess.run(
        argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    if command == "storefront-jobs":
        assert done.returncode == 2
        assert done.stderr.startswith("storefront-jobs: error: invalid settings")
    assert expected in done.stderr


def test_an_unknown_priority_option_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "storefront_jobs", "worker", "--priorities", "SOON"],
        env=worker_env("redis://127.0.0.1:1/0"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown priority 'SOON'" in done.stderr


def test_plain_celery_workers_still_work(redis_client: redis.Redis, workers: WorkerFactory) -> None:
    workers.start(celery_queues="p0.critical,p1.high", concurrency=1)

    jobs.urgent.delay(7)

    [start] = wait_until(lambda: redis_client.lrange("test:starts:order", 0, -1))
    assert json.loads(start)["n"] == 7
