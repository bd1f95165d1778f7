"""Chunked items: many items per message, each item's outcome its own."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import redis

from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.embedded import EmbeddedRedis
from tests.integration import chunk_jobs
from tests.support.dlq import run_dlq
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration

IMPORTS = {"imports": "tests.integration.chunk_jobs"}


def runs(client: redis.Redis) -> Counter[int]:
    return Counter(int(v) for v in client.lrange(chunk_jobs.RUNS, 0, -1))


def dead_items(app: Any, task: str) -> list[Any]:
    return store_for(app).page(Filter(task=task), None, 100).records()


def test_a_chunk_of_1000_items_with_7_failures_leaves_993_done_and_7_replayable_records(
    app: Any, workers: WorkerFactory, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    failing = [3, 141, 142, 500, 777, 998, 999]
    redis_client.sadd(chunk_jobs.FAILING, *failing)
    workers.start("BULK", concurrency=2, settings=IMPORTS)

    # When 1,000 BULK items are sent as four chunks of 250
    results = chunk_jobs.archive_row.enqueue_chunked([(row,) for row in range(1000)], chunk_size=250)
    assert len(results) == 4

    # Then 993 items complete once each, and the 7 that failed are in the DLQ, one record each
    task = chunk_jobs.archive_row.name
    wait_until(lambda: len(dead_items(app, task)) == 7 and redis_client.llen(chunk_jobs.RUNS) >= 993)
    done = runs(redis_client)
    assert sorted(done) == sorted(set(range(1000)) - set(failing))
    assert set(done.values()) == {1}
    records = dead_items(app, task)
    assert sorted(r.args[0] for r in records) == failing
    for record in records:
        assert (record.priority.name, record.reason.value, record.queue) == (
            "BULK",
            "no_retry",
            "archive.rows",
        )
        assert record.last_error.type == "RowLockedError"
        assert record.kwargs == {}
        assert "itemChunk" not in record.headers
    assert len({r.execution_id for r in records}) == 7
    assert all(r.execution_id.startswith(results[r.args[0] // 250].id + ".") for r in records)

    # When the rows are unlocked and each record is replayed on its own
    redis_client.delete(chunk_jobs.FAILING)
    for record in records:
        replay = run_dlq(redis_server.url, "replay", record.execution_id, "--yes")
        assert replay.returncode == 0, replay.stderr

    # Then each runs as an ordinary job of the task, and every row is done exactly once
    wait_until(lambda: redis_client.llen(chunk_jobs.RUNS) >= 1000)
    assert runs(redis_client) == Counter(range(1000))
    assert dead_items(app, task) == []


def test_a_low_item_that_fails_is_retried_alone_and_the_rest_complete(
    app: Any, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    redis_client.sadd(chunk_jobs.FAIL_ONCE, 4)
    workers.start("LOW", concurrency=1, settings=IMPORTS)

    [chunk] = chunk_jobs.reindex_row.enqueue_chunked([(row,) for row in range(10)])

    # The nine others complete in the chunk; row 4 fails once and is sent again as its own job
    wait_until(lambda: redis_client.llen(chunk_jobs.RUNS) >= 10)
    assert runs(redis_client) == Counter(range(10))
    attempts = dict(a.decode().split(":") for a in redis_client.lrange(chunk_jobs.ATTEMPTS, 0, -1))
    assert attempts == {**{str(row): "1" for row in range(10)}, "4": "2"}
    assert dead_items(app, chunk_jobs.reindex_row.name) == []
    assert chunk.id


def test_items_are_checked_against_the_signature_at_the_call(app: Any, redis_client: redis.Redis) -> None:
    with pytest.raises(TypeError):
        chunk_jobs.archive_row.enqueue_chunked([(1,), (1, 2, 3)])
    assert redis_client.llen("p4.bulk") == 0
