"""``MemoryDeadLetterStore``: the DLQ in a dict, for unit tests (Dramatiq's StubBroker role).

Same behaviour as the Redis store (unique scores, trimming by age and count,
counted removals, cursors, idempotent adds); replayed messages land in
:attr:`MemoryDeadLetterStore.published` instead of a lane, so a test reads
like the feature: ``assert store.published[lane] == [...]``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from storefront_jobs.broker import keys
from storefront_jobs.deadletter.audit import AuditLog, MemoryAuditLog
from storefront_jobs.deadletter.query import Filter, decode_cursor
from storefront_jobs.deadletter.record import AttemptError, DeadLetter
from storefront_jobs.deadletter.store import Move, Page, Stats


class MemoryDeadLetterStore:
    def __init__(self, *, max_entries: int, retention_s: int, now: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.retention_s = retention_s
        self._now = now
        self.audit: AuditLog = MemoryAuditLog()
        self._entries: dict[str, tuple[float, str, dict[str, str]]] = {}
        self._counters: Counter[str] = Counter()
        self._attempts: dict[str, list[AttemptError]] = defaultdict(list)
        self._replayed: dict[str, str] = {}
        #: lane list -> messages pushed by replays, in push order.
        self.published: dict[str, list[str]] = defaultdict(list)

    def _remove(self, execution_id: str) -> bool:
        return self._entries.pop(execution_id, None) is not None

    def _newest_first(self) -> list[tuple[str, float]]:
        ordered = sorted(self._entries.items(), key=lambda item: item[1][0], reverse=True)
        return [(eid, entry[0]) for eid, entry in ordered]

    def add(self, record: DeadLetter, *, counter: str | None = None) -> bool:
        if record.execution_id in self._entries:
            return False
        score = record.failed_at
        taken = {entry[0] for entry in self._entries.values()}
        while score in taken:
            score += 0.000001
        self._entries[record.execution_id] = (score, record.to_json(), record.index_values())
        self._counters[counter or f"added:{record.reason.value}"] += 1
        self._attempts.pop(record.execution_id, None)
        self.trim()
        return True

    def add_many(self, records: Sequence[DeadLetter], *, counter: str | None = None) -> list[bool]:
        return [self.add(record, counter=counter) for record in records]

    def get(self, execution_id: str) -> DeadLetter | None:
        entry = self._entries.get(execution_id)
        return DeadLetter.from_json(entry[1]) if entry else None

    def _matching(self, flt: Filter, cursor: str | None) -> list[str]:
        flt = flt.not_before(self._now() - self.retention_s)
        after = decode_cursor(cursor) if cursor is not None else None
        return [
            eid
            for eid, score in self._newest_first()
            if (after is None or score < after) and flt.matches(self._entries[eid][2], score)
        ]

    def page(self, flt: Filter, cursor: str | None = None, limit: int = 50) -> Page:
        matching = self._matching(flt, cursor)
        chosen = matching[:limit]
        more = len(matching) > limit
        next_cursor = repr(self._entries[chosen[-1]][0]) if chosen and more else None
        return Page([self._entries[eid][1] for eid in chosen], next_cursor)

    def ids(self, flt: Filter, limit: int) -> list[str]:
        return self._matching(flt, None)[:limit]

    def count(self, flt: Filter) -> int:
        return len(self._matching(flt, None))

    def delete(self, execution_ids: Sequence[str], operation_id: str | None = None) -> int:
        n = sum(1 for eid in execution_ids if self._remove(eid))
        self._counters["removed:delete"] += n
        if operation_id and n:
            self.audit.add(operation_id, n)
        return n

    def move(self, moves: Sequence[Move], operation_id: str | None = None) -> list[str]:
        out = []
        for m in moves:
            if self._remove(m.execution_id):
                self.published[m.lane_list].append(m.message)
                self._replayed[m.execution_id] = m.new_id
                out.append(m.new_id)
            else:
                out.append("")
        n = sum(1 for v in out if v)
        self._counters["removed:replay"] += n
        if operation_id and n:
            self.audit.add(operation_id, n)
        return out

    def replayed_as(self, execution_id: str) -> str | None:
        return self._replayed.get(execution_id)

    def trim(self) -> tuple[int, int]:
        cutoff = self._now() - self.retention_s
        expired = [eid for eid, (score, _, _) in self._entries.items() if score < cutoff]
        for eid in expired:
            self._remove(eid)
        oldest_first = self._newest_first()[::-1]
        excess = [eid for eid, _ in oldest_first[: max(0, len(oldest_first) - self.max_entries)]]
        for eid in excess:
            self._remove(eid)
        self._counters["removed:expire"] += len(expired)
        self._counters["removed:trim"] += len(excess)
        return len(expired), len(excess)

    def stats(self) -> Stats:
        by_field: dict[str, dict[str, int]] = {f: {} for f in keys.DLQ_INDEX_FIELDS}
        for _, _, values in self._entries.values():
            for field, value in values.items():
                by_field[field][value] = by_field[field].get(value, 0) + 1
        scores = [entry[0] for entry in self._entries.values()]
        return Stats(
            total=len(self._entries),
            by_field=by_field,
            counters={k: v for k, v in self._counters.items() if v},
            oldest_failed_at=min(scores) if scores else None,
            newest_failed_at=max(scores) if scores else None,
            max_entries=self.max_entries,
            retention_s=self.retention_s,
        )

    def record_attempt(self, execution_id: str, error: AttemptError) -> None:
        self._attempts[execution_id].append(error)

    def attempts(self, execution_id: str) -> list[AttemptError]:
        return list(self._attempts.get(execution_id, []))

    def forget_attempts(self, execution_id: str) -> None:
        self._attempts.pop(execution_id, None)
