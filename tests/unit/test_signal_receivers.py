"""Signal receivers, called directly: Celery would swallow their exceptions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from billiard.exceptions import WorkerLostError

from storefront_jobs import (
    FailureReason,
    JobFailure,
    Priority,
    create_app,
    job_exhausted,
    load_settings,
    tenant,
)
from storefront_jobs.jobs.task import priority_task
from storefront_jobs.worker import signals as sj_signals

app = create_app(load_settings(), main="receivers")
seen_by_hook: list[JobFailure] = []


@priority_task(Priority.CRITICAL, queue="payments.webhooks", app=app, on_exhausted=seen_by_hook.append)
def confirm_payment(order_id: str) -> None:
    return None


def _request(**fields: Any) -> SimpleNamespace:
    base = {
        "id": "e-1",
        "retries": 5,
        "hostname": "critical-high@pod-1",
        "headers": {
            "enqueuedAt": 10.0,
            "tenantId": "t-42",
            "priority": "CRITICAL",
            "jobQueue": "payments.webhooks",
        },
    }
    return SimpleNamespace(**{**base, **fields})


def test_publishing_stamps_the_producers_tenant() -> None:
    headers: dict[str, Any] = {"retries": 0}
    with tenant("t-7"):
        sj_signals.stamp_headers(headers=headers, routing_key="p1.high")
    assert headers["tenantId"] == "t-7"
    assert headers["priority"] == "HIGH"
    assert headers["attempt"] == 1


def test_a_final_failure_becomes_one_job_failure() -> None:
    failure = sj_signals.build_failure(
        confirm_payment,
        _request(),
        task_id="e-1",
        exception=RuntimeError("gateway down"),
        args=["o-1"],
        kwargs={},
        einfo=SimpleNamespace(traceback="Traceback ..."),
        now_s=20.0,
    )
    assert failure.reason is FailureReason.EXHAUSTED
    assert failure.attempt == 6
    assert failure.priority == "CRITICAL"
    assert failure.job_queue == "payments.webhooks"
    assert failure.tenant_id == "t-42"
    assert failure.enqueued_at == 10.0
    assert failure.args == ["o-1"]
    assert failure.worker == "critical-high@pod-1"
    assert failure.error_type == "RuntimeError"


def test_a_lost_worker_is_its_own_reason() -> None:
    failure = sj_signals.build_failure(
        confirm_payment,
        _request(retries=1, headers=None),
        task_id="e-2",
        exception=WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."),
        args=[],
        kwargs={"order_id": "o-2"},
        einfo=None,
        now_s=1.0,
    )
    assert failure.reason is FailureReason.WORKER_LOST
    assert failure.kwargs == {"order_id": "o-2"}
    assert failure.tenant_id is None


def test_the_failure_receiver_runs_the_hook_and_sends_job_exhausted(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[JobFailure] = []

    def receiver(sender: Any = None, failure: JobFailure | None = None, **_: Any) -> None:
        assert failure is not None
        received.append(failure)

    job_exhausted.connect(receiver, weak=False, dispatch_uid="test.receiver")
    monkeypatch.setattr(type(confirm_payment), "request", _request(), raising=False)
    try:
        sj_signals.on_final_failure(
            sender=confirm_payment, task_id="e-1", exception=RuntimeError("x"), args=["o-1"], kwargs={}
        )
    finally:
        job_exhausted.disconnect(receiver, dispatch_uid="test.receiver")
    assert [f.execution_id for f in received] == ["e-1"]
    assert seen_by_hook[-1] == received[0]


def test_foreign_tasks_are_ignored() -> None:
    plain = SimpleNamespace(name="other")
    sj_signals.on_final_failure(sender=plain, task_id="x", exception=RuntimeError())


def test_receivers_are_installed_once() -> None:
    sj_signals.install()
    sj_signals.install()
    from celery import signals

    uids = [key for key, _ in signals.task_failure.receivers if "on_final_failure" in str(key)]
    assert len(uids) == 1
