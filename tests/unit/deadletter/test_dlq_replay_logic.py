"""Replay logic against the in-memory store: ids, filters, capacity, rate, audit."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from storefront_jobs.deadletter.memory import MemoryDeadLetterStore
from storefront_jobs.deadletter.messages import BuiltMessage
from storefront_jobs.deadletter.query import Filter
from storefront_jobs.deadletter.replay import Replayer, ReplayRequest, throttle_delay_s
from storefront_jobs.errors import QueueOverflowError
from storefront_jobs.jobs.priorities import Priority
from tests.support.dlq import make_record

T0 = 1_800_000_000.0


class JsonBuilder:
    """Builds a readable message instead of kombu's envelope."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def build(
        self, *, task: str, task_id: str, lane: str, headers: dict[str, Any], **kw: Any
    ) -> BuiltMessage:
        payload = json.dumps(
            {"task": task, "id": task_id, "args": kw["args"], "kwargs": kw["kwargs"], "headers": headers}
        )
        return BuiltMessage(task, task_id, lane, lane, payload, headers, None)

    def published(self, message: BuiltMessage) -> None:
        self.sent.append(message.task_id)


class Lanes:
    def __init__(self, room: dict[Priority, int] | None = None) -> None:
        self._room = room or {}

    def room(self, priority: Priority) -> int:
        left = self._room.get(priority, 10**9)
        if left <= 0:
            raise QueueOverflowError(f"p{priority.value}.{priority.label}", 5, 5)
        return left


@pytest.fixture
def store() -> MemoryDeadLetterStore:
    return MemoryDeadLetterStore(max_entries=10_000, retention_s=10**9)


def replayer(store: MemoryDeadLetterStore, lanes: Lanes | None = None, **kw: Any) -> Replayer:
    counter = itertools.count(1)
    return Replayer(store, JsonBuilder(), lanes or Lanes(), new_id=lambda: f"new-{next(counter)}", **kw)


def messages(store: MemoryDeadLetterStore, lane: str) -> list[dict[str, Any]]:
    return [json.loads(m) for m in store.published[lane]]


def test_a_replayed_entry_is_a_new_execution_on_its_own_lane(store: MemoryDeadLetterStore) -> None:
    store.add(
        make_record("e-1", priority="HIGH", tenant="t-1", args=[7], kwargs={"x": {"y": 1}}, replay_count=1)
    )

    report = replayer(store).replay(ReplayRequest(execution_ids=("e-1",)), actor="me", source="cli")

    assert report.replayed == [("e-1", "new-1")]
    [message] = messages(store, "p1.high")
    assert message["id"] == "new-1"
    assert message["args"] == [7]
    assert message["kwargs"] == {"x": {"y": 1}}
    assert message["headers"]["replayOf"] == "e-1"
    assert message["headers"]["replayCount"] == 2
    assert message["headers"]["tenantId"] == "t-1"
    assert store.get("e-1") is None


def test_replaying_the_same_id_again_sends_nothing(store: MemoryDeadLetterStore) -> None:
    store.add(make_record("e-1"))
    replayer(store).replay(ReplayRequest(execution_ids=("e-1",)), actor="me", source="cli")

    again = replayer(store).replay(ReplayRequest(execution_ids=("e-1", "ghost")), actor="me", source="cli")

    assert again.replayed_count == 0
    assert again.already_replayed == {"e-1": "new-1"}
    assert again.missing == ["ghost"]
    assert len(store.published["p2.default"]) == 1


def test_replay_by_filter_with_a_priority_override_and_a_limit(store: MemoryDeadLetterStore) -> None:
    for i in range(10):
        store.add(make_record(f"e-{i}", failed_at=T0 + i, queue="a" if i % 2 else "b"))

    request = ReplayRequest(filter=Filter(queue="a"), priority=Priority.LOW, limit=3, batch_size=2)
    report = replayer(store).replay(request, actor="me", source="cli")

    assert report.replayed_count == 3
    assert len(store.published["p3.low"]) == 3
    assert store.count(Filter(queue="a")) == 2
    assert store.count(Filter(queue="b")) == 5


def test_a_full_lane_stops_the_replay_and_leaves_the_rest(store: MemoryDeadLetterStore) -> None:
    for i in range(10):
        store.add(make_record(f"e-{i}", failed_at=T0 + i, priority="CRITICAL"))

    report = replayer(store, Lanes({Priority.CRITICAL: 4})).replay(
        ReplayRequest(filter=Filter(queue="all")), actor="me", source="cli"
    )

    assert report.replayed_count == 4
    assert report.stopped is not None
    assert "p0.critical" in report.stopped
    assert store.count(Filter()) == 6
    [entry] = store.audit.entries()
    assert (entry.status, entry.count) == ("stopped", 4)


def test_an_already_full_lane_replays_nothing(store: MemoryDeadLetterStore) -> None:
    store.add(make_record("e-1", priority="BULK"))

    report = replayer(store, Lanes({Priority.BULK: 0})).replay(
        ReplayRequest(execution_ids=("e-1",)), actor="me", source="cli"
    )

    assert report.replayed_count == 0
    assert "is full" in (report.stopped or "")
    assert store.get("e-1") is not None


def test_the_rate_spaces_batches(store: MemoryDeadLetterStore) -> None:
    for i in range(10):
        store.add(make_record(f"e-{i}", failed_at=T0 + i))
    sleeps: list[float] = []

    replayer(store, sleep=sleeps.append, clock=lambda: 0.0).replay(
        ReplayRequest(filter=Filter(queue="all"), rate_per_s=4), actor="me", source="cli"
    )

    assert sleeps == [1.0, 2.0, 2.5]  # batches of 4, 4, 2 at 4/s with no time passing


def test_throttle_delay() -> None:
    assert throttle_delay_s(100, 1.0, None) == 0
    assert throttle_delay_s(100, 1.0, 50) == 1.0
    assert throttle_delay_s(100, 3.0, 50) == 0


def test_preview_changes_nothing(store: MemoryDeadLetterStore) -> None:
    for i in range(7):
        store.add(make_record(f"e-{i}", failed_at=T0 + i))

    count, sample = replayer(store).preview(ReplayRequest(filter=Filter(queue="all")), sample=3)

    assert count == 7
    assert [r.execution_id for r in sample] == ["e-6", "e-5", "e-4"]
    assert store.count(Filter()) == 7
    assert store.audit.entries() == []


def test_every_replay_is_audited(store: MemoryDeadLetterStore) -> None:
    store.add(make_record("e-1"))

    report = replayer(store).replay(ReplayRequest(filter=Filter(queue="all")), actor="ann@box", source="http")

    [entry] = store.audit.entries()
    assert entry.operation_id == report.operation_id
    assert (entry.action, entry.actor, entry.source, entry.count, entry.status) == (
        "replay",
        "ann@box",
        "http",
        1,
        "done",
    )
    assert entry.filter == {"queue": "all"}
