from __future__ import annotations

import pytest

from storefront_jobs import Priority
from storefront_jobs.scaling import plan_lane, recommended_replicas, throughput_per_worker_per_minute


def test_the_runbook_example_needs_600_replicas() -> None:
    # DEFAULT: 3,000 waiting, 10 jobs per worker per minute, 30 s target.
    assert recommended_replicas(3000, 10, 30.0) == 600


@pytest.mark.parametrize(
    ("depth", "rate", "target_s", "expected"),
    [(0, 10, 30.0, 0), (1, 10, 30.0, 1), (100, 60, 1.0, 100), (500, 120, 5.0, 50), (10, 1, None, None)],
)
def test_the_formula(depth: int, rate: float, target_s: float | None, expected: int | None) -> None:
    assert recommended_replicas(depth, rate, target_s) == expected


def test_nonsense_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        recommended_replicas(-1, 10, 30.0)
    with pytest.raises(ValueError, match="per minute"):
        recommended_replicas(10, 0, 30.0)


def test_a_lane_over_the_runbook_threshold_says_scale_up_now() -> None:
    assert plan_lane(Priority.CRITICAL, 150, 600.0, 2).action.startswith("scale up now")
    assert plan_lane(Priority.HIGH, 400, 10.0, 1).action == "scale up"
    assert plan_lane(Priority.LOW, 10, 100.0, 1).action == "ok"
    assert plan_lane(Priority.DEFAULT, 10, None, 0).action.startswith("unknown throughput")
    assert plan_lane(Priority.BULK, 4000, 10.0, 1).recommended_replicas is None


def test_throughput_is_averaged_over_pools_seen_twice() -> None:
    before = {"a@h": 100, "b@h": 50}
    after = {"a@h": 130, "b@h": 80, "c@h": 999}
    assert throughput_per_worker_per_minute(before, after, 60.0) == 30.0
    assert throughput_per_worker_per_minute({}, after, 60.0) is None
    assert throughput_per_worker_per_minute(before, before, 60.0) is None


def test_an_idle_lane_keeps_the_pools_minimum_and_says_why() -> None:
    idle = plan_lane(Priority.DEFAULT, 0, 120.0, 1)
    assert (idle.formula_replicas, idle.recommended_replicas) == (0, 1)
    assert "the formula gives 0; kept at the pool minimum of 1" in idle.note
    # Where KEDA scales to zero, the minimum is 0 and the formula stands
    keda = plan_lane(Priority.DEFAULT, 0, 120.0, 1, min_replicas=0)
    assert (keda.recommended_replicas, keda.note) == (0, "")
    # Best effort (BULK) has no formula, so no minimum either
    assert plan_lane(Priority.BULK, 0, 120.0, 1).recommended_replicas is None
