"""DeadLetterStore behaviour, the same for the Redis store and the in-memory one."""

from __future__ import annotations

import pytest

from storefront_jobs.deadletter.query import Filter, build_filter
from storefront_jobs.deadletter.record import AttemptError
from storefront_jobs.deadletter.store import DeadLetterStore, Move, iter_json
from storefront_jobs.jobs.failures import FailureReason
from storefront_jobs.jobs.priorities import Priority
from tests.support.dlq import make_record
from tests.unit.deadletter.conftest import Clock, StoreFactory

T0 = 1_800_000_000.0


EVERYTHING = Filter()


def ids(store: DeadLetterStore, flt: Filter = EVERYTHING, limit: int = 10_000) -> list[str]:
    return [r.execution_id for r in store.page(flt, None, limit).records()]


def test_an_execution_id_is_stored_once(store: DeadLetterStore) -> None:
    record = make_record("e-1", tenant="t-1", kwargs={"order": {"id": 7, "lines": [1, 2]}})

    assert store.add(record) is True
    assert store.add(record) is False

    assert store.count(Filter()) == 1
    assert store.get("e-1") == record
    assert store.get("nope") is None
    assert store.stats().counters["added:exhausted"] == 1


def test_pages_are_newest_first_and_cursors_visit_each_entry_once(store: DeadLetterStore) -> None:
    # Given entries, several of them failing at the very same instant
    for i in range(25):
        store.add(make_record(f"e-{i:02d}", failed_at=T0 + (i // 5)))

    # When the DLQ is read five at a time
    seen, cursor = [], None
    while True:
        page = store.page(Filter(), cursor, 5)
        seen += [r.execution_id for r in page.records()]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    # Then every entry shows up exactly once, newest first
    assert sorted(seen) == [f"e-{i:02d}" for i in range(25)]
    failed = [store.get(i).failed_at for i in seen]  # type: ignore[union-attr]
    assert failed == sorted(failed, reverse=True)
    assert list(iter_json(store, Filter(), batch=7)) == store.page(Filter(), None, 100).items


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter(queue="payments"), {"a", "b"}),
        (Filter(queue="all"), {"a", "b", "c", "d"}),
        (Filter(priority=Priority.CRITICAL), {"a", "c"}),
        (Filter(task="jobs.charge"), {"a"}),
        (Filter(tenant="t-9"), {"b", "d"}),
        (Filter(error="TimeoutError"), {"c"}),
        (Filter(reason=FailureReason.WORKER_LOST), {"d"}),
        (Filter(queue="payments", tenant="t-9"), {"b"}),
        (Filter(priority=Priority.CRITICAL, error="RuntimeError"), {"a"}),
        (Filter(since_s=T0 + 2), {"c", "d"}),
        (Filter(until_s=T0 + 1), {"a", "b"}),
        (Filter(queue="payments", since_s=T0 + 1, until_s=T0 + 1), {"b"}),
        (Filter(queue="nothing"), set()),
    ],
)
def test_filters(store: DeadLetterStore, flt: Filter, expected: set[str]) -> None:
    store.add(make_record("a", failed_at=T0, queue="payments", priority="CRITICAL", task="jobs.charge"))
    store.add(make_record("b", failed_at=T0 + 1, queue="payments", tenant="t-9"))
    store.add(make_record("c", failed_at=T0 + 2, priority="CRITICAL", error="TimeoutError"))
    store.add(make_record("d", failed_at=T0 + 3, tenant="t-9", reason="worker_lost"))

    assert set(ids(store, flt)) == expected
    assert store.count(flt) == len(expected)


def test_a_filtered_page_skips_non_matching_entries_across_calls(store: DeadLetterStore) -> None:
    for i in range(60):
        store.add(make_record(f"e-{i:02d}", failed_at=T0 + i, tenant="t-1" if i % 10 == 0 else None))
    flt = Filter(tenant="t-1", queue="reporting.export")

    page = store.page(flt, None, 4)
    rest = store.page(flt, page.next_cursor, 4)

    assert [r.execution_id for r in page.records()] == ["e-50", "e-40", "e-30", "e-20"]
    assert [r.execution_id for r in rest.records()] == ["e-10", "e-00"]
    assert rest.next_cursor is None


def test_retention_by_count_keeps_the_newest_and_counts_the_trims(make_store: StoreFactory) -> None:
    store = make_store(max_entries=1000)

    for i in range(1500):
        store.add(make_record(f"e-{i:04d}", failed_at=T0 + i))

    assert store.count(Filter()) == 1000
    assert store.get("e-0499") is None
    assert store.get("e-0500") is not None
    assert store.stats().counters["removed:trim"] == 500


def test_retention_by_age_expires_old_entries_and_counts_them(make_store: StoreFactory, clock: Clock) -> None:
    store = make_store(retention_s=3600)
    clock.now_s = T0 + 100
    store.add(make_record("old", failed_at=T0))
    store.add(make_record("recent", failed_at=T0 + 90))

    clock.now_s = T0 + 3650
    assert ids(store) == ["recent"]  # hidden from reads at once, removed by the next trim
    assert store.trim() == (1, 0)

    assert ids(store) == ["recent"]
    assert store.stats().counters["removed:expire"] == 1


def test_delete_counts_and_cleans_every_index(store: DeadLetterStore) -> None:
    store.add(make_record("a", tenant="t-1", queue="q1"))
    store.add(make_record("b", tenant="t-1", queue="q2", failed_at=T0 + 1))

    assert store.delete(["a", "missing"]) == 1

    stats = store.stats()
    assert stats.total == 1
    assert stats.by_field["tenant"] == {"t-1": 1}
    assert stats.by_field["queue"] == {"q2": 1}
    assert stats.counters["removed:delete"] == 1
    assert ids(store, Filter(queue="q1")) == []


def test_move_pushes_and_removes_once(store: DeadLetterStore) -> None:
    store.add(make_record("a"))

    first = store.move([Move("a", "p2.default", "message-a", "new-a")])
    second = store.move([Move("a", "p2.default", "message-a-again", "new-a2")])

    assert first == ["new-a"]
    assert second == [""]
    assert store.get("a") is None
    assert store.replayed_as("a") == "new-a"
    assert store.stats().counters["removed:replay"] == 1


def test_stats_count_by_field(store: DeadLetterStore) -> None:
    store.add(make_record("a", queue="q1", priority="HIGH", reason="exhausted"))
    store.add(make_record("b", queue="q1", priority="BULK", reason="no_retry", failed_at=T0 + 5))

    stats = store.stats()

    assert stats.total == 2
    assert stats.by_field["queue"] == {"q1": 2}
    assert stats.by_field["priority"] == {"HIGH": 1, "BULK": 1}
    assert stats.by_field["reason"] == {"exhausted": 1, "no_retry": 1}
    assert stats.oldest_failed_at == pytest.approx(T0)
    assert stats.newest_failed_at == pytest.approx(T0 + 5)


def test_attempt_errors_are_kept_until_capture(store: DeadLetterStore) -> None:
    store.record_attempt("e-1", AttemptError(attempt=1, type="TimeoutError", message="slow", at=T0))
    store.record_attempt("e-1", AttemptError(attempt=2, type="TimeoutError", message="slower", at=T0 + 1))

    assert [a.attempt for a in store.attempts("e-1")] == [1, 2]
    store.add(make_record("e-1"))
    assert store.attempts("e-1") == []


def test_build_filter_reads_the_cli_and_http_spellings() -> None:
    flt = build_filter(queue="all", priority="critical", reason="WORKER_LOST", since="2h", now_s=T0)
    assert flt == Filter(
        queue="all", priority=Priority.CRITICAL, reason=FailureReason.WORKER_LOST, since_s=T0 - 7200
    )
    assert flt.terms() == [("priority", "CRITICAL"), ("reason", "worker_lost")]
