from __future__ import annotations

from storefront_jobs.worker.pausing import Reconciliation, reconcile


def test_a_pool_consumes_its_configured_lanes_minus_the_paused_ones() -> None:
    configured = ["p0.critical", "p1.high"]
    assert reconcile(configured, configured, {"p1.high"}) == Reconciliation(cancel=["p1.high"], add=[])
    assert reconcile(configured, ["p0.critical"], set()) == Reconciliation(cancel=[], add=["p1.high"])
    assert reconcile(configured, configured, set()) == Reconciliation(cancel=[], add=[])


def test_a_pause_of_a_lane_the_pool_does_not_serve_changes_nothing() -> None:
    assert reconcile(["p4.bulk"], ["p4.bulk"], {"p0.critical"}) == Reconciliation(cancel=[], add=[])
