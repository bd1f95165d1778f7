"""Replay: DLQ entries go back to their lane as new executions, atomically, throttled and audited.

Each replayed entry becomes a new job: a new execution id, ``replayOf`` set to
the entry's id, ``replayCount`` one more than the entry's, ``attempt`` 1 (a
fresh retry budget, as Sidekiq's manual retries). It goes to the lane of its
priority, or to the lane of ``priority`` when the caller overrides it.

Safety, in order of the loop:

* **Atomic per entry.** The store's MOVE script pushes the message and removes
  the entry in one step (:mod:`storefront_jobs.deadletter.messages`), so a
  replay killed at any point leaves every entry either replayed once or still
  in the DLQ. Run it again: the rest is replayed, nothing twice.
* **Idempotent.** An entry replayed before is gone; asking for it by id again
  reports the execution id it was replayed as and sends nothing.
* **Capacity-aware.** Before each batch the lane's capacity gate says how much
  room is left; a full lane stops the replay with a message, and the entries
  not yet replayed stay in the DLQ.
* **Throttled.** ``rate_per_s`` spaces batches so the average stays at or
  under the rate.
* **Audited.** The operation is in the audit log from its start; the MOVE
  script counts each entry into it.
* **Only jobs.** An ``undecodable`` entry holds a message that was never a
  job: it is reported as not replayable and stays in the DLQ.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from storefront_jobs.broker import keys
from storefront_jobs.broker.admission import enqueued_field
from storefront_jobs.deadletter.messages import BuiltMessage, MessageBuilder
from storefront_jobs.deadletter.query import Filter
from storefront_jobs.deadletter.record import DeadLetter
from storefront_jobs.deadletter.store import DeadLetterStore, Move
from storefront_jobs.errors import QueueOverflowError
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.priorities import Priority

#: Replayed (old id -> new id) pairs a report keeps; the count is always exact.
REPORT_SAMPLE = 1_000
#: Why an undecodable entry is refused.
NOT_REPLAYABLE = (
    "an undecodable message holds no job to send again; its raw message is in the entry (rawMessage): "
    "read it with `dlq show`, then delete the entry"
)
_HOST = socket.gethostname()


class LaneRoom(Protocol):
    """How much a lane can take: :class:`CapacityGate` in production, a fake in unit tests.

    The gate's ``admit`` checks and counts one job; a replay checks once per
    batch (:meth:`CapacityGate.room`) and counts each job in the MOVE script
    that pushes it (exactly the jobs that reach the lane). A full lane counts
    as one refused enqueue in the gate's overflow counter, as a refused
    ``delay`` would: ``room`` applies the capacity rule every admission does.
    """

    def room(self, priority: Priority) -> int:
        """Jobs the lane can still take; raises QueueOverflowError when it is full."""


@dataclasses.dataclass(frozen=True)
class ReplayRequest:
    execution_ids: tuple[str, ...] = ()
    filter: Filter | None = None
    limit: int | None = None
    priority: Priority | None = None
    rate_per_s: float | None = None
    batch_size: int = 500

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.execution_ids:
            out["executionIds"] = len(self.execution_ids)
        if self.filter is not None:
            out.update(self.filter.describe())
        if self.limit is not None:
            out["limit"] = self.limit
        if self.priority is not None:
            out["priority"] = self.priority.name
        if self.rate_per_s is not None:
            out["ratePerS"] = self.rate_per_s
        return out


@dataclasses.dataclass
class ReplayReport:
    operation_id: str | None = None
    replayed_count: int = 0
    #: (entry's execution id, new execution id), at most REPORT_SAMPLE of them.
    replayed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: Asked-for ids that were replayed before: id -> the execution id it became.
    already_replayed: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Asked-for ids that are neither in the DLQ nor known as replayed.
    missing: list[str] = dataclasses.field(default_factory=list)
    #: Why the replay stopped early (a full lane), or None.
    stopped: str | None = None
    #: Entries that cannot be replayed (undecodable messages), at most REPORT_SAMPLE: id -> why.
    not_replayable: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operationId": self.operation_id,
            "replayedCount": self.replayed_count,
            "replayed": [{"executionId": old, "newExecutionId": new} for old, new in self.replayed],
            "alreadyReplayed": self.already_replayed,
            "missing": self.missing,
            "stopped": self.stopped,
            "notReplayable": self.not_replayable,
        }


def replay_headers(record: DeadLetter, now_s: float) -> dict[str, Any]:
    """Headers of the new execution of ``record``."""
    headers = dict(record.payload.headers)
    headers[envelope.REPLAY_OF] = record.execution_id
    headers[envelope.REPLAY_COUNT] = record.replay_count + 1
    headers[envelope.ENQUEUED_AT] = now_s
    headers.setdefault(envelope.JOB_QUEUE, record.queue)
    if record.tenant_id:
        headers[envelope.TENANT_ID] = record.tenant_id
    return headers


def throttle_delay_s(sent: int, elapsed_s: float, rate_per_s: float | None) -> float:
    """How long to wait so that ``sent`` jobs over ``elapsed_s`` stay at or under the rate."""
    if not rate_per_s:
        return 0.0
    return max(0.0, sent / rate_per_s - elapsed_s)


def batch_size_for(request: ReplayRequest) -> int:
    """Batches no bigger than one second's worth at the requested rate."""
    size = request.batch_size
    if request.rate_per_s:
        size = min(size, max(1, int(request.rate_per_s)))
    return max(1, size)


def _records_by_id(store: DeadLetterStore, ids: Sequence[str], report: ReplayReport) -> list[DeadLetter]:
    found = []
    for eid in ids:
        record = store.get(eid)
        if record is not None and not record.replayable:
            report.not_replayable[eid] = NOT_REPLAYABLE
            continue
        if record is not None:
            found.append(record)
            continue
        new_id = store.replayed_as(eid)
        if new_id:
            report.already_replayed[eid] = new_id
        else:
            report.missing.append(eid)
    return found


def candidate_batches(
    store: DeadLetterStore, request: ReplayRequest, report: ReplayReport
) -> Iterator[list[DeadLetter]]:
    """The entries to replay, a batch at a time (newest first for a filter)."""
    size = batch_size_for(request)
    if request.execution_ids:
        ids = list(dict.fromkeys(request.execution_ids))
        for start in range(0, len(ids), size):
            yield _records_by_id(store, ids[start : start + size], report)
        return
    cursor: str | None = None
    while True:
        page = store.page(request.filter or Filter(), cursor, size)
        if page.items:
            records = page.records()
            for record in records:
                if not record.replayable and len(report.not_replayable) < REPORT_SAMPLE:
                    report.not_replayable[record.execution_id] = NOT_REPLAYABLE
            yield [r for r in records if r.replayable]
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class Replayer:
    """Moves DLQ entries back to their lanes; shared by the CLI and the admin API."""

    def __init__(
        self,
        store: DeadLetterStore,
        builder: MessageBuilder,
        lanes: LaneRoom,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._store = store
        self._builder = builder
        self._lanes = lanes
        self._sleep = sleep
        self._clock = clock
        self._new_id = new_id

    def unreplayable(self, execution_ids: Sequence[str]) -> dict[str, str]:
        """Those of ``execution_ids`` that are in the DLQ but cannot be replayed: id -> why."""
        records = (self._store.get(i) for i in dict.fromkeys(execution_ids))
        return {r.execution_id: NOT_REPLAYABLE for r in records if r is not None and not r.replayable}

    def preview(self, request: ReplayRequest, sample: int = 5) -> tuple[int, list[DeadLetter]]:
        """Dry run: how many entries would be replayed, and the first few of them."""
        if request.execution_ids:
            records = [
                r
                for r in (self._store.get(i) for i in dict.fromkeys(request.execution_ids))
                if r is not None and r.replayable
            ]
            count = len(records)
        else:
            flt = request.filter or Filter()
            count = self._store.count(flt)
            records = self._store.page(flt, None, sample).records()
        if request.limit is not None:
            count = min(count, request.limit)
        # Never show more than would be replayed: a sample of 5 under --limit 3 would say otherwise.
        return count, records[: min(sample, count)]

    def replay(
        self,
        request: ReplayRequest,
        *,
        actor: str,
        source: str,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayReport:
        report = ReplayReport()
        self._store.trim()  # entries past the retention are expired, never replayed
        op = self._store.audit.begin("replay", actor, source, request.describe())
        report.operation_id = op
        started = self._clock()
        status = "failed"
        try:
            for batch in candidate_batches(self._store, request, report):
                left = None if request.limit is None else request.limit - report.replayed_count
                moved = self._replay_batch(batch if left is None else batch[:left], request, op, report)
                if progress is not None:
                    progress(moved)
                self._sleep(
                    throttle_delay_s(report.replayed_count, self._clock() - started, request.rate_per_s)
                )
                if report.stopped or (request.limit is not None and report.replayed_count >= request.limit):
                    break
            status = "stopped" if report.stopped else "done"
        finally:
            self._store.audit.finish(op, status, report.stopped)
        return report

    def _replay_batch(
        self, batch: list[DeadLetter], request: ReplayRequest, op: str, report: ReplayReport
    ) -> int:
        by_lane: dict[Priority, list[DeadLetter]] = {}
        for record in batch:
            by_lane.setdefault(request.priority or record.priority, []).append(record)
        moved = 0
        for priority, records in by_lane.items():
            try:
                room = self._lanes.room(priority)
            except QueueOverflowError as exc:
                room, report.stopped = 0, str(exc)
            chosen = records[:room]
            if len(chosen) < len(records) and not report.stopped:
                report.stopped = (
                    f"lane {keys.lane_name(priority)!r} is full; the entries not replayed stay in the DLQ"
                )
            moved += self._move(chosen, priority, op, report)
        return moved

    def _move(self, records: list[DeadLetter], priority: Priority, op: str, report: ReplayReport) -> int:
        if not records:
            return 0
        now = time.time()
        lane = keys.lane_name(priority)
        built: list[tuple[DeadLetter, BuiltMessage]] = []
        for record in records:
            message = self._builder.build(
                task=record.payload.task,
                task_id=self._new_id(),
                args=record.payload.args,
                kwargs=record.payload.kwargs,
                lane=lane,
                headers=replay_headers(record, now),
            )
            built.append((record, message))
        moves = [
            Move(
                r.execution_id,
                m.list_key,
                m.payload,
                m.task_id,
                enqueued_field(priority, r.queue, m.task, _HOST),
            )
            for r, m in built
        ]
        results = self._store.move(moves, op)
        moved = 0
        for (record, message), new_id in zip(built, results, strict=True):
            if new_id:
                moved += 1
                self._builder.published(message)
                if len(report.replayed) < REPORT_SAMPLE:
                    report.replayed.append((record.execution_id, new_id))
            else:
                # Replayed by someone else between our read and the move.
                report.already_replayed[record.execution_id] = (
                    self._store.replayed_as(record.execution_id) or ""
                )
        report.replayed_count += moved
        return moved
