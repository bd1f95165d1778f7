"""Fixtures of the chaos tests: a ledger per test and a private, durable Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis
from tests.chaos.accounting import LEDGER_URL_VAR, Ledger


@pytest.fixture
def ledger(redis_client: redis.Redis, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """This test's ledger, on the session server; workers and producers started later find it."""
    monkeypatch.setenv(LEDGER_URL_VAR, redis_server.url)
    return Ledger(redis_client, uuid.uuid4().hex[:12])


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A broker of the test's own, durable as production's (AOF, fsync every second), free to restart."""
    data = tmp_path / "redis-data"
    data.mkdir()
    server = EmbeddedRedis(data_dir=data, appendonly=True).start()
    yield server
    server.close()
