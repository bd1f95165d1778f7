"""Building DLQ records and stores for tests."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import redis

from storefront_jobs.broker import keys
from storefront_jobs.deadletter.record import DeadLetter
from storefront_jobs.deadletter.store import RedisDeadLetterStore
from tests.support.workers import REPO_ROOT, worker_env


def make_record(
    execution_id: str,
    *,
    failed_at: float = 1_800_000_000.0,
    queue: str = "reporting.export",
    priority: str = "DEFAULT",
    task: str = "tests.integration.jobs.noop",
    tenant: str | None = None,
    error: str = "RuntimeError",
    reason: str = "exhausted",
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    replay_count: int = 0,
) -> DeadLetter:
    args = [1] if args is None else args
    kwargs = {} if kwargs is None else kwargs
    headers: dict[str, Any] = {"jobQueue": queue}
    if tenant:
        headers["tenantId"] = tenant
    return DeadLetter.model_validate(
        {
            "executionId": execution_id,
            "task": task,
            "queue": queue,
            "priority": priority,
            "attemptNumber": 4,
            "payload": {"task": task, "args": args, "kwargs": kwargs, "headers": headers},
            "args": args,
            "kwargs": kwargs,
            "headers": headers | {"attempt": 4, "enqueuedAt": failed_at - 10},
            "tenantId": tenant,
            "lastError": {"type": error, "message": "boom", "traceback": "Traceback ..."},
            "errors": [{"attempt": 4, "type": error, "message": "boom", "at": failed_at}],
            "reason": reason,
            "enqueuedAt": failed_at - 10,
            "failedAt": failed_at,
            "worker": "w1@host",
            "replayCount": replay_count,
        }
    )


def fill_redis(
    client: redis.Redis,
    n: int,
    *,
    start_s: float = 1_800_000_000.0,
    task: str = "tests.integration.jobs.noop",
    queue: str = "bulk.fill",
    batch: int = 2_000,
) -> None:
    """Add ``n`` records fast, pipelined, one second apart from ``start_s``."""
    store = RedisDeadLetterStore(client, max_entries=10_000_000, retention_s=10**9, now=lambda: start_s + n)
    template = make_record("x", task=task, queue=queue)
    for offset in range(0, n, batch):
        store.add_many(
            [
                template.model_copy(update={"execution_id": f"fill-{i:07d}", "failed_at": start_s + i})
                for i in range(offset, min(n, offset + batch))
            ]
        )


def _resp(*commands: list[str]) -> bytes:
    """Commands in the Redis protocol, encoded by hand: redis-py's encoder is the slow part of a bulk load."""
    parts: list[str] = []
    for command in commands:
        parts.append(f"*{len(command)}\r\n")
        for arg in command:
            parts.append(f"${len(arg.encode())}\r\n{arg}\r\n")
    return "".join(parts).encode()


def bulk_load(
    client: redis.Redis,
    n: int,
    *,
    start_s: int = 1_800_000_000,
    variety: int = 1,
    task: str = "tests.integration.jobs.noop",
    chunk: int = 5_000,
) -> None:
    """Write ``n`` entries straight into the store's layout (not through its ADD script): for
    read-path tests and benchmarks that need a large DLQ fast. Entry ``i`` is ``bulk-<i>``, fails
    at ``start_s + i``; queue, tenant and error type cycle through ``variety`` values, so an
    equality filter selects 1/variety of the DLQ."""
    record = make_record("__ID__", task=task, queue="__Q__", tenant="__T__", error="__E__")
    template = record.to_json().replace(f'"failedAt":{record.failed_at!r}', '"failedAt":__AT__')
    fixed = {"priority": record.priority.name, "task": task, "reason": record.reason.value}
    connection = client.connection_pool.get_connection()
    try:
        for first in range(0, n, chunk):
            records, metas, timeline = [keys.DLQ_RECORDS], [keys.DLQ_META], [keys.DLQ_TIMELINE]
            indexes: dict[str, list[str]] = {}
            for i in range(first, min(n, first + chunk)):
                k = i % variety
                eid, at = f"bulk-{i:08d}", str(start_s + i)
                values = fixed | {"queue": f"queue-{k}", "tenant": f"tenant-{k}", "error": f"Error{k}"}
                body = template.replace("__ID__", eid).replace("__AT__", at).replace("__Q__", values["queue"])
                body = body.replace("__T__", values["tenant"]).replace("__E__", values["error"])
                records += [eid, body]
                metas += [eid, json.dumps(values, sort_keys=True)]
                timeline += [at, eid]
                for field, value in values.items():
                    indexes.setdefault(f"{field}:{value}", []).extend((at, eid))
            commands = [records, metas, timeline]
            for name, members in indexes.items():
                field, value = name.split(":", 1)
                commands.append(["ZADD", keys.DLQ_INDEX_PREFIX + name, *members])
                commands.append(["HINCRBY", keys.dlq_counts(field), value, str(len(members) // 2)])
            commands[0:3] = [["HSET", *records], ["HSET", *metas], ["ZADD", *timeline]]
            connection.send_packed_command([_resp(*commands)])
            for _ in commands:
                connection.read_response()
    finally:
        client.connection_pool.release(connection)


def dlq_command(broker_url: str, *args: str, **settings: str) -> list[str]:
    """``storefront-jobs dlq ...`` as a subprocess argv (its broker comes from ``worker_env``)."""
    return [sys.executable, "-m", "storefront_jobs", "dlq", *args]


def run_dlq(broker_url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run ``storefront-jobs dlq ...`` against ``broker_url`` with ``settings``; its output captured."""
    return subprocess.run(
        dlq_command(broker_url, *args),
        env=worker_env(broker_url, **settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
