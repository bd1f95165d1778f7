"""priority_task checks every option when the task is declared, not when it first fails."""

from __future__ import annotations

from typing import Any

import pytest

from storefront_jobs import (
    ConfigurationError,
    EnqueueError,
    PermanentFailure,
    Priority,
    PriorityTask,
    RetryPolicy,
    create_app,
    load_settings,
    priority_task,
)
from storefront_jobs.broker.keys import lane_name


@pytest.fixture
def app() -> Any:
    return create_app(load_settings(retry={"high": {"max_retries": 2}}), main="declarations")


def job(*_: Any) -> None:
    return None


def test_a_declared_task_carries_its_lane_job_queue_and_policy(app: Any) -> None:
    task = priority_task(Priority.CRITICAL, queue="payments.webhooks", app=app)(job)
    assert isinstance(task, PriorityTask)
    assert task.lane_priority is Priority.CRITICAL
    assert task.queue == lane_name(Priority.CRITICAL)
    assert task.job_queue == "payments.webhooks"
    assert task.max_retries == 5
    assert task.default_retry_delay == 0.5
    # Celery reads `priority` as a per-message priority: it must stay unset.
    assert task.priority is None


def test_settings_overrides_and_task_overrides_stack(app: Any) -> None:
    from_settings = priority_task(Priority.HIGH, app=app, name="a")(job)
    from_task = priority_task(Priority.HIGH, app=app, name="b", retry={"initial_delay_s": 3.0})(job)
    assert from_settings.retry_policy.max_retries == 2
    assert from_task.retry_policy == RetryPolicy(max_retries=2, initial_delay_s=3.0, max_delay_s=300.0)


def test_the_job_queue_defaults_to_the_task_name(app: Any) -> None:
    task = priority_task(Priority.LOW, app=app, name="shop.warm_cache")(job)
    assert task.job_queue == "shop.warm_cache"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("URGENT",), {}, "unknown priority 'URGENT'"),
        ((Priority.HIGH,), {"max_retries": 3}, "option 'max_retries' is not allowed"),
        ((Priority.HIGH,), {"retry_backoff": True}, "option 'retry_backoff' is not allowed"),
        ((Priority.HIGH, "bad queue name"), {}, "job queue 'bad queue name'"),
        ((Priority.HIGH,), {"retry": {"attempts": 3}}, "unknown retry policy field"),
        ((Priority.HIGH,), {"retry": {"multiplier": 0.1}}, "multiplier must be >= 1"),
        ((Priority.BULK,), {"retry": {"max_retries": 1}}, "BULK jobs never retry"),
        ((Priority.HIGH,), {"non_retryable": ("ValueError",)}, "non_retryable must be exception classes"),
        ((Priority.HIGH,), {"on_exhausted": "print"}, "on_exhausted must be callable"),
    ],
)
def test_a_bad_declaration_fails_at_once(
    app: Any, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        priority_task(*args, app=app, **kwargs)(job)


def test_using_the_decorator_without_arguments_is_explained() -> None:
    with pytest.raises(ConfigurationError, match="needs arguments"):
        priority_task(job)  # type: ignore[arg-type]


def test_non_retryable_classes_are_kept(app: Any) -> None:
    task = priority_task(Priority.HIGH, app=app, non_retryable=(KeyError,))(job)
    assert task.non_retryable == (KeyError,)
    assert issubclass(PermanentFailure, Exception)


def test_per_message_priorities_are_refused(app: Any) -> None:
    task = priority_task(Priority.HIGH, app=app, name="c")(job)
    with pytest.raises(EnqueueError, match="per-message priority is not supported"):
        task.apply_async(priority=9)


def test_only_lanes_are_accepted_as_queues(app: Any) -> None:
    task = priority_task(Priority.HIGH, app=app, name="d")(job)
    with pytest.raises(EnqueueError, match="'celery' is not a storefront lane"):
        task.apply_async(queue="celery")


def test_autoretry_for_names_what_is_retried(app: Any) -> None:
    task = priority_task(Priority.HIGH, app=app, name="e", autoretry_for=(ConnectionError,))(job)
    assert task.retry_on == (ConnectionError,)
