from __future__ import annotations

import pytest

from storefront_jobs import Priority
from storefront_jobs.broker.keys import LANES, lane_lists, lane_name, priority_of_lane
from storefront_jobs.jobs.priorities import parse_priorities


def test_priorities_are_ordered_highest_first() -> None:
    assert sorted(Priority, reverse=True)[0] is Priority.BULK
    assert [p.name for p in Priority] == ["CRITICAL", "HIGH", "DEFAULT", "LOW", "BULK"]
    assert [p.target_latency_s for p in Priority] == [1.0, 5.0, 30.0, 120.0, None]


@pytest.mark.parametrize("text", ["critical", "CRITICAL", " Critical ", 0])
def test_a_priority_parses_from_names_and_orders(text: str | int) -> None:
    assert Priority.parse(text) is Priority.CRITICAL


def test_an_unknown_priority_names_the_accepted_values() -> None:
    with pytest.raises(ValueError, match="accepted values: CRITICAL, HIGH, DEFAULT, LOW, BULK"):
        Priority.parse("URGENT")


def test_a_priority_list_is_deduplicated_and_sorted() -> None:
    assert parse_priorities("bulk,CRITICAL,high,critical") == [
        Priority.CRITICAL,
        Priority.HIGH,
        Priority.BULK,
    ]
    assert parse_priorities("all") == list(Priority)
    with pytest.raises(ValueError, match="no priority"):
        parse_priorities(" , ")


def test_lane_names_sort_in_priority_order() -> None:
    # The `sorted` queue-order strategy relies on this.
    assert sorted(LANES.values()) == [lane_name(p) for p in Priority]
    assert lane_name(Priority.CRITICAL) == "p0.critical"
    assert priority_of_lane("p4.bulk") is Priority.BULK
    assert priority_of_lane("celery") is None


def test_lane_lists_cover_every_kombu_priority_sub_list() -> None:
    assert lane_lists("p2.default") == [
        "p2.default",
        "p2.default\x06\x163",
        "p2.default\x06\x166",
        "p2.default\x06\x169",
    ]
