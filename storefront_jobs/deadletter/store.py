"""``DeadLetterStore``: the one DLQ model under the worker capture, the CLI and the admin API.

Like Sidekiq's ``DeadSet``, the store is bounded and every removal is
counted: adding an entry trims, in the same Redis script, the entries older
than ``retention_s`` and the oldest beyond ``max_entries`` (counted as
``removed:expire`` and ``removed:trim``). Entries are keyed by execution id,
so capturing the same failure twice (a redelivery after a crash) stores it
once.

Storage layout (keys built only by :mod:`storefront_jobs.broker.keys`)::

    storefront:dlq:records              hash    id -> record JSON (the export line)
    storefront:dlq:meta                 hash    id -> {field: value} of its indexes
    storefront:dlq:timeline             zset    id -> score (failedAt, made unique)
    storefront:dlq:idx:<field>:<value>  zset    id -> score, per queue/priority/task/tenant/error/reason
    storefront:dlq:count:<field>        hash    value -> entries
    storefront:dlq:stats                hash    added:<reason>, removed:<action>, imported
    storefront:dlq:attempts:<id>        list    attempt errors of a job still retrying (expires)
    storefront:dlq:replayed:<id>        string  the execution id an entry was replayed as (expires)
    storefront:dlq:audit[:<op>]         zset + hashes, see deadletter.audit

Reads walk the smallest index of a filter newest-first (``broker/scripts/dlq/page.lua``),
so one page costs about the entries it skips, whatever the DLQ's size.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import redis

from storefront_jobs.broker import keys, replicas, scripts
from storefront_jobs.deadletter.audit import AuditLog, RedisAuditLog
from storefront_jobs.deadletter.query import Filter, score_bounds
from storefront_jobs.deadletter.record import AttemptError, DeadLetter

#: Entries one PAGE call may look at before it returns (keeps every script short).
SCAN_BUDGET = 20_000
#: Entries trimmed per script call; larger backlogs are trimmed in several calls.
TRIM_BATCH = 1_000
#: How long the attempt errors of a retrying job are kept if it never fails for good.
ATTEMPTS_TTL_S = 86_400


@dataclasses.dataclass(frozen=True)
class Page:
    """Records as stored (JSON text), newest first, and the cursor of the next page."""

    items: list[str]
    next_cursor: str | None

    def records(self) -> list[DeadLetter]:
        return [DeadLetter.from_json(item) for item in self.items]


@dataclasses.dataclass(frozen=True)
class Move:
    """One replay: the entry, the lane list it goes to, kombu's message, the new execution id,
    and the field of the enqueued counter (``broker.admission.enqueued_field``) it counts under."""

    execution_id: str
    lane_list: str
    message: str
    new_id: str
    enqueued_field: str = ""


@dataclasses.dataclass(frozen=True)
class Stats:
    total: int
    by_field: dict[str, dict[str, int]]
    counters: dict[str, int]
    oldest_failed_at: float | None
    newest_failed_at: float | None
    max_entries: int
    retention_s: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "byField": self.by_field,
            "counters": self.counters,
            "oldestFailedAt": self.oldest_failed_at,
            "newestFailedAt": self.newest_failed_at,
            "maxEntries": self.max_entries,
            "retentionS": self.retention_s,
        }


class DeadLetterStore(Protocol):
    """What every DLQ surface calls; Redis in production, memory in unit tests."""

    audit: AuditLog
    max_entries: int
    retention_s: int

    def add(self, record: DeadLetter, *, counter: str | None = None) -> bool:
        """Store an entry unless its execution id is there; trim; True if added."""

    def add_many(self, records: Sequence[DeadLetter], *, counter: str | None = None) -> list[bool]:
        """``add`` for each record, in one round trip; per record, True if added."""

    def get(self, execution_id: str) -> DeadLetter | None: ...

    def page(self, flt: Filter, cursor: str | None = None, limit: int = 50) -> Page: ...

    def ids(self, flt: Filter, limit: int) -> list[str]:
        """The execution ids of the newest ``limit`` matching entries."""

    def count(self, flt: Filter) -> int: ...

    def delete(self, execution_ids: Sequence[str], operation_id: str | None = None) -> int: ...

    def move(self, moves: Sequence[Move], operation_id: str | None = None) -> list[str]:
        """Atomically push each message and remove its entry; per move, the new id or '' if gone."""

    def replayed_as(self, execution_id: str) -> str | None: ...

    def trim(self) -> tuple[int, int]:
        """Remove expired and excess entries now; (expired, trimmed)."""

    def stats(self) -> Stats: ...

    def record_attempt(self, execution_id: str, error: AttemptError) -> None: ...

    def attempts(self, execution_id: str) -> list[AttemptError]: ...

    def forget_attempts(self, execution_id: str) -> None: ...


def iter_json(store: DeadLetterStore, flt: Filter, batch: int = 1_000) -> Iterator[str]:
    """Every matching record as stored, newest first, one page in memory at a time."""
    cursor: str | None = None
    while True:
        page = store.page(flt, cursor, batch)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _decode_counts(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


class RedisDeadLetterStore:
    """The DLQ in Redis; see the module docstring for the layout."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        *,
        max_entries: int,
        retention_s: int,
        now: Callable[[], float] = time.time,
        quorum: replicas.Quorum | None = None,
    ) -> None:
        self._client = client
        #: Replicas a capture and a replay wait for (BROKER_MIN_REPLICAS, broker/replicas.py).
        self._quorum = quorum or replicas.Quorum()
        self.max_entries = max_entries
        self.retention_s = retention_s
        self._now = now
        self.audit: AuditLog = RedisAuditLog(client)
        self._base_keys = [keys.DLQ_RECORDS, keys.DLQ_META, keys.DLQ_TIMELINE, keys.DLQ_STATS]
        self._prefixes = [keys.DLQ_INDEX_PREFIX, keys.DLQ_COUNT_PREFIX]

    def _trim_args(self) -> list[Any]:
        cutoff = self._now() - self.retention_s
        return [*self._prefixes, repr(cutoff), self.max_entries, TRIM_BATCH]

    def add(self, record: DeadLetter, *, counter: str | None = None) -> bool:
        return self.add_many([record], counter=counter)[0]

    def add_many(self, records: Sequence[DeadLetter], *, counter: str | None = None) -> list[bool]:
        if not records:
            return []
        args: list[Any] = [*self._trim_args(), keys.dlq_attempts("")]
        for r in records:
            index_values = json.dumps(r.index_values(), sort_keys=True)
            args += [
                r.execution_id,
                r.to_json(),
                index_values,
                repr(r.failed_at),
                counter or f"added:{r.reason.value}",
            ]
        with replicas.one_connection(self._client, self._quorum) as client:
            added = [bool(int(v)) for v in scripts.DLQ_ADD(client, self._base_keys, args)]
            job_id = records[0].execution_id if len(records) == 1 else None
            replicas.confirm(client, self._quorum, "dlq_capture", "keep the job in the DLQ", job_id)
        return added

    def get(self, execution_id: str) -> DeadLetter | None:
        raw = self._client.hget(keys.DLQ_RECORDS, execution_id)
        return DeadLetter.from_json(raw) if raw is not None else None

    def _call_page(
        self, flt: Filter, cursor: str | None, limit: int, mode: str
    ) -> tuple[str | None, int, list[str]]:
        # Entries past the retention are hidden even before a trim removes them: reads never trim.
        flt = flt.not_before(self._now() - self.retention_s)
        upper, lower = score_bounds(flt, cursor)
        sets = [keys.dlq_index(field, value) for field, value in flt.terms()] or [keys.DLQ_TIMELINE]
        args = [upper, lower, limit, SCAN_BUDGET, mode]
        raw = scripts.DLQ_PAGE(self._client, [keys.DLQ_RECORDS, *sets], args)
        next_cursor = raw[0].decode() if raw[0] else None
        return next_cursor, int(raw[1]), [item.decode() for item in raw[2:] if item]

    def _collect(
        self, flt: Filter, cursor: str | None, limit: int, mode: str
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` items from as many PAGE calls as the scan budget needs."""
        items: list[str] = []
        while True:
            cursor, _, found = self._call_page(flt, cursor, limit - len(items), mode)
            items.extend(found)
            if cursor is None or len(items) >= limit:
                return items, cursor

    def page(self, flt: Filter, cursor: str | None = None, limit: int = 50) -> Page:
        return Page(*self._collect(flt, cursor, limit, "json"))

    def ids(self, flt: Filter, limit: int) -> list[str]:
        return self._collect(flt, None, limit, "ids")[0]

    def count(self, flt: Filter) -> int:
        terms = flt.terms()
        flt = flt.not_before(self._now() - self.retention_s)
        if len(terms) <= 1:
            key = keys.dlq_index(*terms[0]) if terms else keys.DLQ_TIMELINE
            upper, lower = score_bounds(flt, None)
            return int(self._client.zcount(key, lower, upper))
        total, cursor = 0, None
        while True:
            cursor, found, _ = self._call_page(flt, cursor, 2**31, "count")
            total += found
            if cursor is None:
                return total

    def delete(self, execution_ids: Sequence[str], operation_id: str | None = None) -> int:
        if not execution_ids:
            return 0
        audit_key = keys.dlq_audit_entry(operation_id) if operation_id else ""
        script_keys = [*self._base_keys, audit_key]
        return int(scripts.DLQ_DELETE(self._client, script_keys, [*self._prefixes, *execution_ids]))

    def move(self, moves: Sequence[Move], operation_id: str | None = None) -> list[str]:
        if not moves:
            return []
        audit_key = keys.dlq_audit_entry(operation_id) if operation_id else ""
        args: list[Any] = [*self._prefixes, keys.dlq_replayed(""), self.retention_s, keys.DOORBELL_LAST_INDEX]
        for m in moves:
            bell = keys.doorbell(keys.lane_of_list(m.lane_list))
            args += [m.execution_id, m.lane_list, m.message, m.new_id, m.enqueued_field or "unknown", bell]
        script_keys = [*self._base_keys, audit_key, keys.ENQUEUED_COUNTS]
        with replicas.one_connection(self._client, self._quorum) as client:
            moved = [v.decode() for v in scripts.DLQ_MOVE(client, script_keys, args)]
            job_id = moves[0].new_id if len(moves) == 1 else None
            replicas.confirm(client, self._quorum, "replay", f"replay {len(moves)} DLQ entries", job_id)
        return moved

    def replayed_as(self, execution_id: str) -> str | None:
        raw = self._client.get(keys.dlq_replayed(execution_id))
        return raw.decode() if raw is not None else None

    def trim(self) -> tuple[int, int]:
        expired = trimmed = 0
        while True:
            e, t = (int(v) for v in scripts.DLQ_TRIM(self._client, self._base_keys, self._trim_args()))
            expired, trimmed = expired + e, trimmed + t
            if e < TRIM_BATCH and t < TRIM_BATCH:
                return expired, trimmed

    def stats(self) -> Stats:
        pipe = self._client.pipeline(transaction=True)
        pipe.zcard(keys.DLQ_TIMELINE)
        pipe.zrange(keys.DLQ_TIMELINE, 0, 0, withscores=True)
        pipe.zrevrange(keys.DLQ_TIMELINE, 0, 0, withscores=True)
        pipe.hgetall(keys.DLQ_STATS)
        for field in keys.DLQ_INDEX_FIELDS:
            pipe.hgetall(keys.dlq_counts(field))
        total, oldest, newest, counters, *by_field = pipe.execute()
        return Stats(
            total=int(total),
            by_field={f: _decode_counts(c) for f, c in zip(keys.DLQ_INDEX_FIELDS, by_field, strict=True)},
            counters=_decode_counts(counters),
            oldest_failed_at=float(oldest[0][1]) if oldest else None,
            newest_failed_at=float(newest[0][1]) if newest else None,
            max_entries=self.max_entries,
            retention_s=self.retention_s,
        )

    def record_attempt(self, execution_id: str, error: AttemptError) -> None:
        key = keys.dlq_attempts(execution_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.rpush(key, error.model_dump_json())
        pipe.expire(key, ATTEMPTS_TTL_S)
        pipe.execute()

    def attempts(self, execution_id: str) -> list[AttemptError]:
        raw = self._client.lrange(keys.dlq_attempts(execution_id), 0, -1)
        return [AttemptError.model_validate_json(item) for item in raw]

    def forget_attempts(self, execution_id: str) -> None:
        self._client.delete(keys.dlq_attempts(execution_id))
