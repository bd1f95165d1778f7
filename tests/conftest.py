"""Test harness: a private redis-server for the whole run, and real worker subprocesses.

The server is started in ``pytest_configure``, before test modules are
imported, because importing a module of tasks builds the default app from
the environment. Tests never touch the machine's own Redis.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis
from tests.support.workers import WorkerFactory

_SERVER: EmbeddedRedis | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _SERVER  # noqa: PLW0603 - one server for the whole run, started before collection
    for name in list(os.environ):
        if name.startswith("STOREFRONT_JOBS_") or name == "WORKER_PRIORITY_FILTER":
            del os.environ[name]
    _SERVER = EmbeddedRedis().start()
    os.environ["STOREFRONT_JOBS_BROKER_URL"] = _SERVER.url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER is not None:
        _SERVER.close()


@pytest.fixture(scope="session")
def redis_server() -> EmbeddedRedis:
    assert _SERVER is not None
    return _SERVER


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client on a freshly emptied broker database."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def app(redis_client: redis.Redis):  # type: ignore[no-untyped-def]
    """The default app, as producers in the test process see it."""
    from storefront_jobs import get_default_app

    return get_default_app()


@pytest.fixture
def workers(app, redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[WorkerFactory]:  # type: ignore[no-untyped-def]
    factory = WorkerFactory(redis_server.url, tmp_path, app.control.ping)
    yield factory
    factory.stop_all()
