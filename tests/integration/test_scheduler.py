"""The scheduler switch: disabled, beat sends nothing; enabled, periodic jobs flow."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.scheduler import scheduler_state
from tests.support.workers import REPO_ROOT, wait_until, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
def start_beat(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(enabled: bool) -> subprocess.Popen[bytes]:
        env = worker_env(redis_server.url, scheduler_enabled=str(enabled).lower())
        log = (tmp_path / f"beat-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "storefront_jobs", "beat", "-s", str(tmp_path / f"schedule-{len(procs)}")],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_a_disabled_scheduler_sends_nothing(redis_client: redis.Redis, start_beat: object) -> None:
    beat = start_beat(enabled=False)  # type: ignore[operator]

    wait_until(lambda: scheduler_state(redis_client)["enabled"] is False)
    time.sleep(3)

    assert redis_client.llen("p3.low") == 0
    assert scheduler_state(redis_client)["running"] is False
    beat.terminate()
    assert beat.wait(10) == 0


def test_an_enabled_scheduler_sends_the_periodic_jobs(redis_client: redis.Redis, start_beat: object) -> None:
    start_beat(enabled=True)  # type: ignore[operator]

    wait_until(lambda: redis_client.llen("p3.low") >= 3, timeout_s=20)
    state = scheduler_state(redis_client)
    assert state["enabled"] is True
    assert state["running"] is True
