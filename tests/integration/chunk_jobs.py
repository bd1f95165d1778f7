"""Jobs of the chunked-items tests: tiny items that record themselves, and fail on request.

An item fails while its number is in ``test:chunk:failing`` (a set the test
fills and empties), so a dead-lettered item can be fixed and replayed.
"""

from __future__ import annotations

import functools
from typing import Any

import redis

from storefront_jobs import Priority, priority_task
from tests.support.broker import broker_redis

FAILING = "test:chunk:failing"
#: Every completed run of an item, one entry per run: duplicates would show here.
RUNS = "test:chunk:runs"


@functools.cache
def _redis() -> redis.Redis:
    # One client per process: an item takes microseconds, a new connection would dwarf it.
    return broker_redis()


class RowLockedError(Exception):
    pass


@priority_task(Priority.BULK, queue="archive.rows")
def archive_row(row: int, *, table: str = "orders") -> None:
    client = _redis()
    if client.sismember(FAILING, row):
        raise RowLockedError(f"row {row} of {table} is locked")
    client.rpush(RUNS, row)


#: Rows of reindex_row that fail once: the first run takes the row out of the set and fails.
FAIL_ONCE = "test:chunk:fail_once"
#: The attempt of every completed reindex_row run, as "row:attempt".
ATTEMPTS = "test:chunk:attempts"


@priority_task(Priority.LOW, queue="search.reindex", bind=True)
def reindex_row(self: Any, row: int) -> None:
    """A LOW item: retried alone on LOW's schedule."""
    client = _redis()
    if client.srem(FAIL_ONCE, row):
        raise RowLockedError(f"row {row} is locked")
    client.rpush(RUNS, row)
    client.rpush(ATTEMPTS, f"{row}:{self.job.attempt}")
