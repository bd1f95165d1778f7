from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from storefront_jobs.deadletter.memory import MemoryDeadLetterStore
from storefront_jobs.deadletter.store import DeadLetterStore, RedisDeadLetterStore


class Clock:
    def __init__(self, now_s: float = 1_800_000_100.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


StoreFactory = Callable[..., DeadLetterStore]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest, clock: Clock) -> StoreFactory:
    """Builds the store under test: the in-memory one, or Redis on an emptied database."""

    def build(max_entries: int = 100_000, retention_s: int = 30 * 86400) -> DeadLetterStore:
        if request.param == "memory":
            return MemoryDeadLetterStore(max_entries=max_entries, retention_s=retention_s, now=clock)
        client: redis.Redis = request.getfixturevalue("redis_client")
        return RedisDeadLetterStore(client, max_entries=max_entries, retention_s=retention_s, now=clock)

    return build


@pytest.fixture
def store(make_store: StoreFactory) -> DeadLetterStore:
    return make_store()
