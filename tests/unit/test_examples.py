"""The example jobs: priorities and job queues as the runbook lists them, and input validation."""

from __future__ import annotations

from typing import Any

import pytest

from storefront_jobs import PermanentFailure, Priority
from storefront_jobs.examples import JOBS, progress, reporting
from storefront_jobs.examples.support import fails_now, require_date, require_email, require_int
from storefront_jobs.jobs.task import PriorityTask

RUNBOOK_EXPORT: dict[str, Any] = {
    "report_name": "sales_by_period",
    "fmt": "csv",
    "params": {"start": "2025-01-01", "end": "2025-01-31"},
    "requested_by": "admin@villagecompute.com",
}


@pytest.mark.parametrize(
    ("job", "priority", "job_queue"),
    [
        ("process_payment_webhook", Priority.CRITICAL, "payments.webhooks"),
        ("confirm_order", Priority.CRITICAL, "orders.confirmations"),
        ("send_notification", Priority.HIGH, "notifications.send"),
        ("update_inventory", Priority.HIGH, "inventory.updates"),
        ("generate_report", Priority.DEFAULT, "reporting.export"),
        ("process_email", Priority.DEFAULT, "email.inbound"),
        ("aggregate_analytics", Priority.LOW, "analytics.aggregation"),
        ("warm_cache", Priority.LOW, "cache.warming"),
        ("archive_orders", Priority.BULK, "archive.orders"),
        ("migrate_data", Priority.BULK, "data.migrations"),
    ],
)
def test_each_runbook_job_sits_at_its_priority(job: str, priority: Priority, job_queue: str) -> None:
    task = JOBS[job]
    assert isinstance(task, PriorityTask)
    assert task.lane_priority is priority
    assert task.job_queue == job_queue


def test_jobs_lists_exactly_the_ten_examples() -> None:
    assert len(JOBS) == 10
    assert {task.lane_priority for task in JOBS.values()} == set(Priority)


def test_the_runbook_export_is_valid_and_renders() -> None:
    assert reporting.export_problems(**RUNBOOK_EXPORT) == []
    assert reporting.generate_report(**RUNBOOK_EXPORT) == "exports/sales_by_period-2025-01-31-2025-01-01.csv"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fmt": "xlsx"}, "unknown report format 'xlsx'; accepted: csv, json"),
        ({"report_name": "sales_by_planet"}, "unknown report 'sales_by_planet'"),
        ({"requested_by": "admin"}, "requested_by must be an e-mail address"),
        ({"params": {"start": "2025-01-01"}}, "missing report parameter(s) end"),
        ({"params": {"start": "2025-02-01", "end": "2025-01-01"}}, "must run forward"),
        ({"params": {"start": "January", "end": "2025-01-01"}}, "must be ISO dates"),
        ({"params": {"start": 1, "end": 2}}, "params must map names to strings"),
    ],
)
def test_a_bad_export_fails_the_job_for_good_with_the_reason(change: dict[str, Any], message: str) -> None:
    # Given a request with one thing wrong, when the job runs, then no retry could help: PermanentFailure.
    with pytest.raises(PermanentFailure, match=message.replace("(", r"\(").replace(")", r"\)")):
        reporting.generate_report(**{**RUNBOOK_EXPORT, **change})


def test_the_service_refuses_a_bad_export_before_enqueueing() -> None:
    with pytest.raises(ValueError, match="cannot enqueue export: unknown report format 'xlsx'"):
        reporting.ReportingJobService().enqueue_export(
            "sales_by_period",
            "xlsx",
            {"start": "2025-01-01", "end": "2025-01-31"},
            "admin@villagecompute.com",
        )


@pytest.mark.parametrize(
    ("job", "kwargs", "message"),
    [
        (
            "process_payment_webhook",
            {"event_id": "e1", "provider": "bank", "order_id": "o1", "amount_cents": 100},
            "unknown provider 'bank'",
        ),
        (
            "process_payment_webhook",
            {"event_id": "e1", "provider": "stripe", "order_id": "o1", "amount_cents": True},
            "amount_cents must be an integer",
        ),
        ("confirm_order", {"order_id": "o1", "customer_email": "x", "total_cents": 1}, "e-mail address"),
        (
            "confirm_order",
            {"order_id": " ", "customer_email": "a@b.co", "total_cents": 1},
            "order_id must be",
        ),
        (
            "send_notification",
            {"user_id": "u", "channel": "fax", "template": "order_shipped"},
            "unknown channel",
        ),
        ("update_inventory", {"sku": "S", "delta": 0, "warehouse": "eu-1"}, "delta must not be 0"),
        ("process_email", {"message_id": "m", "mailbox": "support", "size_kb": 0}, "size_kb must be"),
        ("aggregate_analytics", {"metric": "orders", "day": "2025-13-01"}, "day must be an ISO date"),
        ("warm_cache", {"page": "/", "n_keys": 10**6}, "n_keys must be an integer from 1 to 10000"),
        ("archive_orders", {"before": "2024-01-01", "batch_size": "100"}, "batch_size must be"),
        (
            "migrate_data",
            {"migration": "DROP TABLE", "batch": 1, "batch_size": 10},
            "migration must look like",
        ),
    ],
)
def test_bad_input_is_a_permanent_failure_with_a_clear_message(
    job: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentFailure, match=message):
        JOBS[job](**kwargs)


def test_validators_accept_good_values() -> None:
    assert require_int(5, "n", 1, 10) == 5
    assert require_email("a@example.com", "e") == "a@example.com"
    assert require_date("2025-01-31", "d").day == 31


@pytest.mark.parametrize(
    ("flaky", "attempt", "replayed", "fails"),
    [
        (0, 1, False, False),
        (2, 1, False, True),
        (2, 2, False, True),
        (2, 3, False, False),
        (2, 1, True, False),
    ],
)
def test_a_simulated_outage_fails_the_first_attempts_but_never_a_replay(
    flaky: int, attempt: int, replayed: bool, fails: bool
) -> None:
    assert fails_now(flaky, attempt, replayed) is fails


def test_progress_counts_only_example_tasks() -> None:
    assert progress.job_name(JOBS["warm_cache"]) == "warm_cache"
    assert progress.job_name(object()) is None
