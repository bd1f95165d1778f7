"""The lean enqueue's held connection survives a Redis restart: the next job reconnects and is queued."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from storefront_jobs import create_app, load_settings
from storefront_jobs.broker import held
from storefront_jobs.embedded import EmbeddedRedis
from tests.integration import jobs

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A server of this test's own, so that it can be restarted."""
    with EmbeddedRedis() as server:
        yield server


@pytest.mark.parametrize("check_after_idle_s", [0.0, 3600.0], ids=["checked", "within-the-idle-window"])
def test_a_job_sent_after_a_redis_restart_reconnects_and_is_queued_once(
    own_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch, check_after_idle_s: float
) -> None:
    # The liveness poll before every use, or none at all: the restart found by the poll or by the send
    monkeypatch.setattr(held, "CHECK_AFTER_IDLE_S", check_after_idle_s)
    app = create_app(load_settings(broker_url=own_redis.url), main="lean-restart")
    task = app.tasks[jobs.interop_record.name]
    task.delay("o-0")  # loads the script
    first = task.delay("o-1")  # sent packed, on the held connection

    # When Redis restarts (its scripts gone, the held connection closed by the server)
    own_redis.restart()
    second = task.delay("o-2")

    # Then the job is queued on a new connection, its script loaded again
    client = redis.Redis.from_url(own_redis.url)
    waiting = [json.loads(raw)["headers"]["id"] for raw in client.lrange("p2.default", 0, -1)]
    assert waiting.count(second.id) == 1
    assert first.id != second.id
    client.close()
