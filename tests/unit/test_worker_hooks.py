"""The worker's hooks and the signal router, called directly: Celery would swallow their exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from billiard.exceptions import WorkerLostError
from celery import signals as celery_signals

from storefront_jobs import (
    FailureReason,
    Hook,
    JobContext,
    JobFailure,
    Priority,
    create_app,
    job_exhausted,
    load_settings,
    priority_task,
    tenant,
)
from storefront_jobs.jobs.failures import build_failure
from storefront_jobs.worker import signals as router
from storefront_jobs.worker.callbacks import ExhaustedCallbacks
from storefront_jobs.worker.hooks import HookChain


class Recorder(Hook):
    """Writes down every event it receives, with the job context it was handed."""

    def __init__(self, log: list[tuple[str, Any]], name: str = "recorder") -> None:
        self.log = log
        self.name = name

    def job_started(self, task: Any, job: JobContext | None) -> None:
        self.log.append((f"{self.name}.job_started", job))

    def job_failed(self, task: Any, job: JobContext | None, exception: BaseException, einfo: Any) -> None:
        self.log.append((f"{self.name}.job_failed", job))

    def job_exhausted(self, task: Any, failure: JobFailure, exception: BaseException, einfo: Any) -> None:
        self.log.append((f"{self.name}.job_exhausted", failure))


class Broken(Hook):
    def job_failed(self, task: Any, job: JobContext | None, exception: BaseException, einfo: Any) -> None:
        raise RuntimeError("a broken hook")


events: list[tuple[str, Any]] = []
seen_by_task_hook: list[JobFailure] = []
# Never publishes: no broker is contacted.
app = create_app(
    load_settings(broker_url="redis://127.0.0.1:1/0"),
    main="hooks",
    hooks=[Recorder(events, "first"), Broken(), ExhaustedCallbacks(), Recorder(events, "last")],
)


@priority_task(Priority.CRITICAL, queue="payments.webhooks", app=app, on_exhausted=seen_by_task_hook.append)
def confirm_payment(order_id: str) -> None:
    return None


@pytest.fixture
def delivery() -> Iterator[dict[str, Any]]:
    """A delivery of confirm_payment, as Celery's tracer pushes it on the task's request stack."""
    fields: dict[str, Any] = {
        "id": "e-1",
        "retries": 5,
        "hostname": "critical-high@pod-1",
        "delivery_info": {"exchange": "p0.critical", "routing_key": "p0.critical"},
        "headers": {"enqueuedAt": 10.0, "tenantId": "t-42", "jobQueue": "payments.webhooks"},
    }
    events.clear()
    yield fields
    while confirm_payment.request_stack.top is not None:
        confirm_payment.pop_request()


def test_publishing_stamps_the_producers_tenant() -> None:
    headers: dict[str, Any] = {"retries": 0}
    with tenant("t-7"):
        router.stamp_headers(headers=headers, routing_key="p1.high")
    assert headers["tenantId"] == "t-7"
    assert headers["priority"] == "HIGH"
    assert headers["attempt"] == 1


def test_a_job_sent_to_another_lane_is_a_job_of_that_lane(delivery: dict[str, Any]) -> None:
    # Given a CRITICAL task whose job was sent to the BULK lane
    delivery["delivery_info"] = {"exchange": "p4.bulk", "routing_key": "p4.bulk"}
    delivery["retries"] = 0
    confirm_payment.push_request(**delivery)
    # Then its context, its retry budget and its target are BULK's
    job = confirm_payment.job
    assert job.priority is Priority.BULK
    assert job.lane == "p4.bulk"
    assert job.target_latency_s is None
    assert confirm_payment.max_retries == 0
    # and the context is built once per delivery
    assert confirm_payment.job is job


def test_a_delivery_without_delivery_info_falls_back_to_the_stamped_priority(
    delivery: dict[str, Any],
) -> None:
    del delivery["delivery_info"]
    delivery["headers"]["priority"] = "LOW"
    confirm_payment.push_request(**delivery)
    assert confirm_payment.job.priority is Priority.LOW
    assert confirm_payment.default_retry_delay == 32.0  # LOW's table for retry 6: 1 s doubled five times


def test_a_final_failure_becomes_one_job_failure(delivery: dict[str, Any]) -> None:
    confirm_payment.push_request(**delivery)
    job = confirm_payment.job
    failure = build_failure(
        job,
        RuntimeError("gateway down"),
        policy=confirm_payment.policy_for(job.priority),
        args=["o-1"],
        traceback="Traceback ...",
        now_s=20.0,
    )
    assert failure.reason is FailureReason.EXHAUSTED
    assert failure.attempt == 6
    assert failure.priority is Priority.CRITICAL
    assert failure.job_queue == "payments.webhooks"
    assert failure.tenant_id == "t-42"
    assert failure.enqueued_at == 10.0
    assert failure.args == ["o-1"]
    assert failure.worker == "critical-high@pod-1"
    assert failure.error_type == "RuntimeError"


def test_a_lost_worker_is_its_own_reason(delivery: dict[str, Any]) -> None:
    delivery.update(retries=1, headers={})
    confirm_payment.push_request(**delivery)
    job = confirm_payment.job
    failure = build_failure(
        job,
        WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."),
        policy=confirm_payment.policy_for(job.priority),
        kwargs={"order_id": "o-2"},
        now_s=1.0,
    )
    assert failure.reason is FailureReason.WORKER_LOST
    assert failure.kwargs == {"order_id": "o-2"}
    assert failure.tenant_id is None
    assert failure.job_queue == "payments.webhooks"  # the task's declared job queue


def test_a_final_failure_reaches_every_hook_in_order_with_one_context(delivery: dict[str, Any]) -> None:
    received: list[JobFailure] = []

    def receiver(sender: Any = None, failure: JobFailure | None = None, **_: Any) -> None:
        assert failure is not None
        received.append(failure)

    job_exhausted.connect(receiver, weak=False, dispatch_uid="test.receiver")
    confirm_payment.push_request(**delivery)
    try:
        router.on_task_failure(sender=confirm_payment, exception=RuntimeError("x"), args=["o-1"], kwargs={})
    finally:
        job_exhausted.disconnect(receiver, dispatch_uid="test.receiver")
    # The broken hook between them stops nothing.
    assert [name for name, _ in events] == [
        "first.job_failed",
        "last.job_failed",
        "first.job_exhausted",
        "last.job_exhausted",
    ]
    assert events[0][1] is events[1][1] is confirm_payment.job
    assert [f.execution_id for f in received] == ["e-1"]
    assert seen_by_task_hook[-1] == received[0] == events[2][1]


def test_foreign_tasks_get_no_job_and_no_final_failure() -> None:
    events.clear()
    plain = SimpleNamespace(name="other", app=app, request=SimpleNamespace(id="x"))
    router.on_task_failure(sender=plain, exception=RuntimeError())
    assert events == [("first.job_failed", None), ("last.job_failed", None)]


def test_a_chain_calls_only_the_hooks_that_implement_an_event() -> None:
    log: list[tuple[str, Any]] = []
    chain = HookChain([Recorder(log), Hook()])
    chain.emit("job_started", None, None)
    chain.emit("worker_init", None)
    assert log == [("recorder.job_started", None)]
    assert chain.find(Recorder) is chain.hooks[0]


def test_receivers_are_installed_once() -> None:
    router.install()
    router.install()
    uids = [key for key, _ in celery_signals.task_failure.receivers if "on_task_failure" in str(key)]
    assert len(uids) == 1
