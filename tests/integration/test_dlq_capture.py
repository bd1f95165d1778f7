"""Capture with real workers: every final failure becomes exactly one DLQ record, whatever the reason."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
import redis

from storefront_jobs import tenant
from storefront_jobs.broker import keys
from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.deadletter.record import DeadLetter
from tests.integration import jobs
from tests.support.broker import wait_broker_idle
from tests.support.workers import WorkerFactory, WorkerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.delivery]

DESIGN_FIELDS = {
    "executionId", "task", "queue", "priority", "attemptNumber", "payload", "args", "kwargs",
    "headers", "tenantId", "lastError", "errors", "reason", "enqueuedAt", "failedAt", "worker",
    "replayOf", "replayCount",
    # DESIGN.md: "a promoted job (aging) ... records promotedFrom" (null for a job never promoted).
    "promotedFrom",
}  # fmt: skip


def dlq_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    return [r for r in worker.log_records() if r.get("message") == "Job moved to DLQ"]


def records(app: Any) -> dict[str, DeadLetter]:
    return {r.execution_id: r for r in store_for(app).page(Filter(), None, 1000).records()}


def test_each_final_failure_lands_in_the_dlq_exactly_once(
    app: Any, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    # Given a worker on every lane
    worker = workers.start(concurrency=4)

    # When jobs fail for good for every reason a body failure can have
    with tenant("t-42"):
        sent = {
            "exhausted": jobs.dlq_exhausts.delay({"id": "o-1", "lines": [1, 2]}, note="café").id,
            "non_retryable": jobs.permanently_failing.delay("nr").id,
            "no_retry": jobs.failing_bulk.delay("bulk").id,
            "rejected": jobs.dlq_rejects.delay("rj").id,
            "time_limit": jobs.dlq_overruns.delay("tl").id,
        }
    wait_until(lambda: len(records(app)) >= len(sent))
    # Anything captured twice, or logged twice, is written by the worker before it exits
    wait_broker_idle(redis_client)
    worker.stop()

    # Then each is in the DLQ once, with its reason and the record of DESIGN.md
    found = records(app)
    assert set(found) == set(sent.values())
    for reason, execution_id in sent.items():
        record = found[execution_id]
        data = json.loads(record.to_json())
        assert set(data) == DESIGN_FIELDS
        assert record.reason.value == reason
        assert record.tenant_id == "t-42"
        assert record.worker == worker.nodename
        assert record.payload.task == record.task
        assert record.enqueued_at is not None
        assert record.failed_at >= record.enqueued_at
        assert record.last_error.type
        assert record.errors[-1].type == record.last_error.type
        assert record.replay_of is None
        assert record.replay_count == 0

    exhausted = found[sent["exhausted"]]
    assert exhausted.args == [{"id": "o-1", "lines": [1, 2]}]
    assert exhausted.kwargs == {"note": "café"}
    assert exhausted.payload.args == exhausted.args
    assert exhausted.payload.headers["tenantId"] == "t-42"
    assert (exhausted.priority.name, exhausted.queue, exhausted.attempt_number) == ("HIGH", "dlq.tests", 3)
    assert [(e.attempt, e.type) for e in exhausted.errors] == [(n, "TimeoutError") for n in (1, 2, 3)]
    assert "upstream timed out for order o-1" in exhausted.last_error.message
    assert "TimeoutError" in (exhausted.last_error.traceback or "")
    assert found[sent["time_limit"]].last_error.type == "TimeLimitExceeded"
    assert found[sent["no_retry"]].attempt_number == 1

    # And the runbook's log line appears once per dead job, with lastError and tenantId
    lines = dlq_lines(worker)
    assert sorted(line["executionId"] for line in lines) == sorted(sent.values())
    assert all(line["tenantId"] == "t-42" and line["lastError"] for line in lines)


def _pid_of(client: redis.Redis, tag: str, nth: int = 0) -> int:
    raw = wait_until(lambda: client.lindex(f"test:pids:{tag}", nth))
    return int(json.loads(raw)["pid"])


def test_a_pool_child_killed_mid_job_leaves_a_worker_lost_record(
    app: Any, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    worker = workers.start("BULK", concurrency=1)
    result = jobs.dlq_blocks.delay("k1", 60.0)

    # When the pool child running it is killed, as the OOM killer would
    os.kill(_pid_of(redis_client, "k1"), signal.SIGKILL)

    # Then the job is in the DLQ as worker_lost, with its real arguments, and its message is gone
    record = wait_until(lambda: store_for(app).get(result.id))
    assert record.reason.value == "worker_lost"
    assert record.last_error.type == "WorkerLostError"
    assert record.args == ["k1", 60.0]
    assert record.worker == worker.nodename
    # And it is not run again: once its message is acked (after the record) and the worker has exited
    # (anything it would still do, done), nothing waits in the lane and it started once
    wait_until(lambda: redis_client.hlen("unacked") == 0)
    worker.stop()
    assert redis_client.llen(keys.lane_name(jobs.dlq_blocks.lane_priority)) == 0
    assert redis_client.hlen("unacked") == 0
    assert redis_client.llen("test:pids:k1") == 1
    assert len(dlq_lines(worker)) == 1


def test_a_pool_child_killed_with_retries_left_is_retried_not_dead_lettered(
    app: Any, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    worker = workers.start("HIGH", concurrency=1)
    result = jobs.dlq_blocks_then_succeeds.delay("k2", 60.0)

    os.kill(_pid_of(redis_client, "k2"), signal.SIGKILL)

    done = json.loads(wait_until(lambda: redis_client.lindex("test:done:k2", 0)))
    assert done["retries"] == 1
    # The success handlers (which drop the attempts list) run after the job's body, before the ack
    wait_broker_idle(redis_client)
    worker.stop()
    assert store_for(app).get(result.id) is None
    assert store_for(app).attempts(result.id) == []
