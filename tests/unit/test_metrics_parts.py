from __future__ import annotations

import datetime as dt
import json

import pytest
from prometheus_client import CollectorRegistry

from storefront_jobs.broker.admission import enqueued_field, parse_enqueued_field
from storefront_jobs.broker.snapshot import enqueued_at_of, reserved_by_lane
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.metrics.definitions import (
    BROKER_METRICS,
    DURATION_BUCKETS_S,
    WAIT_BUCKETS_S,
    create_pool_metrics,
    metric_names,
)
from storefront_jobs.metrics.serve import token_matches
from storefront_jobs.metrics.timing import parse_eta_s, wait_time_s
from storefront_jobs.worker.heartbeat import FORGET_AFTER_S, STALE_AFTER_S, WorkerBeat


def test_a_first_run_waits_from_its_enqueue_and_a_retry_from_its_due_time() -> None:
    eta = dt.datetime.fromtimestamp(1_000.0, dt.UTC).isoformat()
    assert wait_time_s(1_002.5, enqueued_at=990.0, eta=None) == 12.5
    assert wait_time_s(1_000.25, enqueued_at=990.0, eta=eta) == 0.25
    assert wait_time_s(1_000.0, enqueued_at=1_005.0, eta=None) == 0.0  # clock skew floors at 0
    assert wait_time_s(1_000.0, enqueued_at=None, eta=None) is None
    assert wait_time_s(1_000.0, enqueued_at="garbage", eta="not a date") is None


def test_naive_etas_are_utc() -> None:
    assert parse_eta_s("1970-01-01T00:16:40") == 1_000.0


def test_buckets_span_every_latency_target() -> None:
    for target in (1, 5, 30, 120):
        assert WAIT_BUCKETS_S[0] < target < WAIT_BUCKETS_S[-1]
        assert target in WAIT_BUCKETS_S or any(b > target for b in WAIT_BUCKETS_S)
    assert DURATION_BUCKETS_S[-1] >= 3600


def test_the_oldest_job_age_comes_from_the_enqueued_header() -> None:
    message = json.dumps({"body": "e30=", "headers": {"enqueuedAt": 123.5, "task": "x"}})
    assert enqueued_at_of(message) == 123.5
    assert enqueued_at_of(json.dumps({"headers": {}})) is None
    assert enqueued_at_of(b"not json") is None
    assert enqueued_at_of(None) is None


def test_held_jobs_are_counted_per_lane() -> None:
    values = [json.dumps([{"m": 1}, "", "p0.critical"]).encode()] * 2 + [
        json.dumps([{}, "", "p4.bulk"]).encode(),
        b"corrupt",
    ]
    assert reserved_by_lane(values) == {"p0.critical": 2, "p4.bulk": 1}


def test_enqueue_counter_fields_round_trip() -> None:
    field = enqueued_field(Priority.HIGH, "notifications", "shop.jobs.notify", "web-1")
    assert parse_enqueued_field(field) == ("high", "notifications", "shop.jobs.notify", "web-1")
    assert parse_enqueued_field("broken") is None


def test_a_silent_pool_is_down_then_forgotten() -> None:
    beat = WorkerBeat("critical-high@pod-1", ["p0.critical", "p1.high"], 4, 1, 42, at_s=1_000.0)
    assert beat.hostname == "pod-1"
    assert beat.alive(1_000.0 + STALE_AFTER_S)
    assert not beat.alive(1_000.0 + STALE_AFTER_S + 1)
    assert WorkerBeat.decode(beat.encode()) == beat
    assert WorkerBeat.decode("{}") is None
    assert FORGET_AFTER_S > 15 * 60, "CeleryWorkerDown (for: 15m) must be able to fire"


@pytest.mark.parametrize(
    ("header", "token", "ok"),
    [
        (None, None, True),
        (None, "s3cret-token", False),
        ("Bearer s3cret-token", "s3cret-token", True),
        ("Bearer wrong", "s3cret-token", False),
        ("Basic s3cret-token", "s3cret-token", False),
    ],
)
def test_metrics_tokens(header: str | None, token: str | None, ok: bool) -> None:
    assert token_matches(header, token) is ok


def test_metric_names_and_label_sets_are_fixed() -> None:
    metrics = create_pool_metrics(CollectorRegistry())
    assert metrics.celery_failed._labelnames == ("name", "hostname", "exception", "queue_name")
    assert metrics.celery_received._labelnames == ("name", "hostname", "queue_name")
    assert metrics.job_failed._labelnames == ("queue", "priority", "attempt")
    names = metric_names()
    assert "storefront_jobs_queue_depth" in names
    assert not any(name.endswith("_milliseconds") for name in names)
    for name, (kind, doc, labels) in BROKER_METRICS.items():
        assert kind in {"gauge", "counter"}, name
        assert doc, name
        assert "id" not in labels, name
