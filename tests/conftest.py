"""Test harness: a private redis-server for the whole run, and real worker subprocesses.

Importing a module of tasks reads no setting, so the server starts with the
first test that needs it; only the environment is cleaned before collection.
Tests never touch the machine's own Redis.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis
from tests.support.sentinel import BROKER_KIND_VAR, SentinelBroker, SentinelCluster
from tests.support.workers import WorkerFactory

#: The broker while tests are collected: nothing listens there, so an app built by an import-time
#: side effect fails loudly instead of reaching the machine's own Redis.
NO_BROKER_YET = "redis://127.0.0.1:1/0"


def pytest_configure(config: pytest.Config) -> None:
    # The machine's own storefront settings must not leak into the tests.
    for name in list(os.environ):
        if name.startswith("STOREFRONT_JOBS_") or name == "WORKER_PRIORITY_FILTER":
            del os.environ[name]
    os.environ["STOREFRONT_JOBS_BROKER_URL"] = NO_BROKER_YET


@pytest.fixture(scope="session", autouse=True)
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis | SentinelBroker]:
    """One private broker for the whole run, the broker of every app the tests build.

    A server of its own, or, with ``STOREFRONT_TEST_BROKER=sentinel``, a primary with two replicas
    behind three Sentinel nodes, which apps and workers reach through Sentinel (the delivery tests run
    so too: ``tox -e sentinel``). Either way ``.url`` is the broker URL and ``.direct_url`` the primary's.
    """
    from storefront_jobs.application import get_default_app

    # Importing tasks, examples included, must build no app (docs/jobs.md, "Declaring a job").
    assert get_default_app.cache_info().currsize == 0, "the default app was built while tests were collected"
    server: EmbeddedRedis | SentinelBroker
    if os.environ.get(BROKER_KIND_VAR) == "sentinel":
        server = SentinelBroker(SentinelCluster(tmp_path_factory.mktemp("sentinel")).start())
        os.environ.update(server.cluster.settings())
    else:
        server = EmbeddedRedis().start()
    os.environ["STOREFRONT_JOBS_BROKER_URL"] = server.url
    yield server
    server.close()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis | SentinelBroker) -> Iterator[redis.Redis]:
    """A client on a freshly emptied broker database."""
    client = redis.Redis.from_url(redis_server.direct_url)
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
