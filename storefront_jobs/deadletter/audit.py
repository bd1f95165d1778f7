"""The audit log of DLQ mutations: who replayed, purged or imported what, when, and how many.

An operation is written when it starts (status ``running``) and finished when
it ends (``done``, ``stopped`` by a full lane, or ``failed``). Its ``count``
is bumped by the same Redis script that moves or deletes entries, so even an
operation killed halfway shows exactly how many entries it changed, with
status ``running`` forever after. Dry runs change nothing and are not logged.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import socket
import time
import uuid
from typing import Any, Protocol

import redis

from storefront_jobs.broker import keys

#: Newest operations kept; older ones are dropped as new ones are written.
MAX_AUDIT_ENTRIES = 10_000


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    operation_id: str
    action: str  #: replay | purge | import
    actor: str
    source: str  #: cli | http
    filter: dict[str, Any]
    count: int
    status: str  #: running | done | stopped | failed
    started_at: float
    finished_at: float | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "operationId": self.operation_id,
            "action": self.action,
            "actor": self.actor,
            "source": self.source,
            "filter": self.filter,
            "count": self.count,
            "status": self.status,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "detail": self.detail,
        }


def cli_actor() -> str:
    """``user@host`` of the process running a command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def token_actor(token: str) -> str:
    """An admin token as the audit log shows it: a fingerprint, never the secret."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def new_operation_id(now_s: float) -> str:
    """Sortable by start time, unique across processes."""
    return f"{int(now_s * 1000):013d}-{uuid.uuid4().hex[:8]}"


class AuditLog(Protocol):
    def begin(self, action: str, actor: str, source: str, filter: dict[str, Any]) -> str:
        """Record the start of an operation; return its id."""

    def add(self, operation_id: str, count: int) -> None:
        """Count entries changed outside the store's own scripts (import)."""

    def finish(self, operation_id: str, status: str, detail: str | None = None) -> None: ...

    def entries(self, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""


def _entry(operation_id: str, fields: dict[str, Any]) -> AuditEntry:
    finished = fields.get("finished_at")
    return AuditEntry(
        operation_id=operation_id,
        action=str(fields.get("action", "")),
        actor=str(fields.get("actor", "")),
        source=str(fields.get("source", "")),
        filter=json.loads(fields.get("filter") or "{}"),
        count=int(fields.get("count") or 0),
        status=str(fields.get("status", "")),
        started_at=float(fields.get("started_at") or 0),
        finished_at=float(finished) if finished else None,
        detail=fields.get("detail") or None,
    )


class RedisAuditLog:
    """Operations as hashes, ordered by a sorted set; see keys.DLQ_AUDIT."""

    def __init__(self, client: redis.Redis[bytes]) -> None:
        self._client = client

    def begin(self, action: str, actor: str, source: str, filter: dict[str, Any]) -> str:
        now = time.time()
        op = new_operation_id(now)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(
            keys.dlq_audit_entry(op),
            mapping={
                "action": action,
                "actor": actor,
                "source": source,
                "filter": json.dumps(filter, sort_keys=True),
                "count": 0,
                "status": "running",
                "started_at": repr(now),
            },
        )
        pipe.zadd(keys.DLQ_AUDIT, {op: now})
        pipe.execute()
        self._drop_oldest()
        return op

    def _drop_oldest(self) -> None:
        old = self._client.zrange(keys.DLQ_AUDIT, 0, -(MAX_AUDIT_ENTRIES + 1))
        if old:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(*(keys.dlq_audit_entry(op.decode()) for op in old))
            pipe.zrem(keys.DLQ_AUDIT, *old)
            pipe.execute()

    def add(self, operation_id: str, count: int) -> None:
        if count:
            self._client.hincrby(keys.dlq_audit_entry(operation_id), "count", count)

    def finish(self, operation_id: str, status: str, detail: str | None = None) -> None:
        mapping: dict[str, str] = {"status": status, "finished_at": repr(time.time())}
        if detail:
            mapping["detail"] = detail
        self._client.hset(keys.dlq_audit_entry(operation_id), mapping=mapping)  # type: ignore[arg-type]

    def entries(self, limit: int = 50) -> list[AuditEntry]:
        ops = [op.decode() for op in self._client.zrevrange(keys.DLQ_AUDIT, 0, max(0, limit - 1))]
        pipe = self._client.pipeline(transaction=False)
        for op in ops:
            pipe.hgetall(keys.dlq_audit_entry(op))
        found = []
        for op, raw in zip(ops, pipe.execute(), strict=True):
            if raw:
                found.append(_entry(op, {k.decode(): v.decode() for k, v in raw.items()}))
        return found


class MemoryAuditLog:
    """The audit log of :class:`~storefront_jobs.deadletter.memory.MemoryDeadLetterStore`."""

    def __init__(self) -> None:
        self._ops: dict[str, dict[str, Any]] = {}

    def begin(self, action: str, actor: str, source: str, filter: dict[str, Any]) -> str:
        now = time.time()
        op = new_operation_id(now)
        self._ops[op] = {
            "action": action,
            "actor": actor,
            "source": source,
            "filter": json.dumps(filter, sort_keys=True),
            "count": 0,
            "status": "running",
            "started_at": now,
        }
        return op

    def add(self, operation_id: str, count: int) -> None:
        self._ops[operation_id]["count"] += count

    def finish(self, operation_id: str, status: str, detail: str | None = None) -> None:
        self._ops[operation_id].update(status=status, finished_at=time.time(), detail=detail)

    def entries(self, limit: int = 50) -> list[AuditEntry]:
        newest = sorted(self._ops, reverse=True)[:limit]
        return [_entry(op, self._ops[op]) for op in newest]
