"""The scheduler switch: disabled, beat sends nothing; enabled, periodic jobs flow."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storefront_jobs.broker import keys
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
        proc.wait(60)


def test_a_disabled_scheduler_sends_nothing(redis_client: redis.Redis, start_beat: object) -> None:
    beat = start_beat(enabled=False)  # type: ignore[operator]

    # The disabled scheduler records its state at start, then again every 5 s from its idle loop. Its
    # second record proves it has idled for 5 s: ten periods of the 0.5 s job an enabled one sends.
    wait_until(lambda: scheduler_state(redis_client)["enabled"] is False)
    first_tick = redis_client.hget(keys.SCHEDULER, "tick")
    wait_until(lambda: redis_client.hget(keys.SCHEDULER, "tick") != first_tick)

    assert redis_client.llen("p3.low") == 0
    assert scheduler_state(redis_client)["running"] is False
    beat.terminate()
    assert beat.wait(60) == 0


def test_an_enabled_scheduler_sends_the_periodic_jobs(redis_client: redis.Redis, start_beat: object) -> None:
    start_beat(enabled=True)  # type: ignore[operator]

    wait_until(lambda: redis_client.llen("p3.low") >= 3)
    state = scheduler_state(redis_client)
    assert state["enabled"] is True
    assert state["running"] is True
