"""``priority_task``: declare a function as a storefront job, reading nothing at import.

Declaring checks every option at once (a bad declaration fails at import,
not at 3 am) but builds no app and reads no environment: the task is
registered on each app as the app finalizes (Celery's ``shared_task``), and
its retry policies are resolved from that app's settings when it binds
(:meth:`PriorityTask.on_bound <storefront_jobs.jobs.task.PriorityTask.on_bound>`).
What the decorator returns is a proxy that resolves, on use, to the task of
the current storefront app, or of the default app (``storefront_jobs.app``),
which reads the settings then: so ``confirm_payment.delay(...)`` works as
Celery users expect, and a bad setting stops the producer on its first job,
naming the variable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from celery import shared_task
from celery.app import app_or_default
from celery.local import Proxy

from storefront_jobs.broker.keys import lane_name
from storefront_jobs.errors import ConfigurationError
from storefront_jobs.jobs.failures import JobFailure
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.retry import DEFAULT_RETRY_POLICIES, RetryPolicy, build_policy
from storefront_jobs.jobs.task import PriorityTask

if TYPE_CHECKING:
    _ProxyBase = Proxy[Any]  # generic only in the type stubs
else:
    _ProxyBase = Proxy

_JOB_QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")

#: Celery task options that would fight the retry table; priority_task refuses them.
_CONFLICTING_OPTIONS = {
    "max_retries": "set retry={'max_retries': N} instead",
    "default_retry_delay": "set retry={'initial_delay_s': S} instead",
    "retry_backoff": "the priority's retry table computes every countdown",
    "retry_backoff_max": "set retry={'max_delay_s': S} instead",
    "retry_jitter": "set retry={'jitter': True} instead",
    "queue": "the lane comes from the priority; `queue=` names the job queue",
    "priority": "priority is the first argument of priority_task",
    "base": "priority_task always uses PriorityTask",
}


def _exception_classes(value: Any, what: str, task_name: str) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, tuple | list) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigurationError(f"task {task_name}: {what} must be exception classes, got {item!r}")
    return tuple(items)


def _storefront_task(name: str) -> Any:
    """The task ``name`` of the current storefront app, else of the default app."""
    app: Any = app_or_default(None)  # the current app itself, not Celery's proxy of it
    if getattr(app, "storefront_settings", None) is None:
        from storefront_jobs.application import get_default_app  # noqa: PLC0415 - built on first use only

        app = get_default_app()
    return app.tasks[name]


class DeclaredTask(_ProxyBase):
    """What ``priority_task`` returns without ``app``: the task of the app in use, resolved on use.

    The declaration's own facts (``name``, ``lane_priority``, ``job_queue``)
    are at hand without an app, so code that lists or indexes tasks at import
    (a registry of jobs by name) builds none.
    """

    def __init__(self, name: str, priority: Priority, job_queue: str) -> None:
        super().__init__(functools.partial(_storefront_task, name), name=name)
        # Set on the proxy itself (Proxy keeps a __dict__): found before it forwards to the task.
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "lane_priority", priority)
        object.__setattr__(self, "job_queue", job_queue)


def priority_task(
    priority: Priority | str = Priority.DEFAULT,
    queue: str | None = None,
    *,
    retry: RetryPolicy | Mapping[str, Any] | None = None,
    retry_on: Any = (Exception,),
    non_retryable: Any = (),
    on_exhausted: Callable[[JobFailure], Any] | None = None,
    app: Any = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a function as a storefront job of ``priority`` in job queue ``queue``.

    ``retry`` overrides fields of the priority's retry policy; ``non_retryable``
    lists exception classes that fail the job at once (``PermanentFailure``
    always does). Everything else is passed to Celery's ``app.task``. With
    ``app``, the task is declared on that app only; without, on every app.
    """
    if callable(priority) and not isinstance(priority, Priority | str):
        raise ConfigurationError(
            "priority_task needs arguments: use @priority_task(Priority.DEFAULT), not @priority_task"
        )

    def decorate(fun: Callable[..., Any]) -> Any:
        task_name = options.get("name") or f"{fun.__module__}.{fun.__qualname__}"
        try:
            prio = Priority.parse(priority)
        except ValueError as exc:
            raise ConfigurationError(f"task {task_name}: {exc}") from None
        for option, advice in _CONFLICTING_OPTIONS.items():
            if option in options:
                raise ConfigurationError(f"task {task_name}: option {option!r} is not allowed: {advice}")
        if queue is not None and (not isinstance(queue, str) or not _JOB_QUEUE_RE.match(queue)):
            raise ConfigurationError(
                f"task {task_name}: job queue {queue!r} must be 1-100 characters of letters, digits, '_.:-'"
            )
        if on_exhausted is not None and not callable(on_exhausted):
            raise ConfigurationError(f"task {task_name}: on_exhausted must be callable")
        retry_classes = retry_on
        if "autoretry_for" in options and retry_on == (Exception,):
            # Celery's autoretry names what to retry; anything else is final.
            retry_classes = options["autoretry_for"]
        # Checked now against the runbook's table; resolved again, against the
        # app's settings, when the task binds.
        build_policy(prio, DEFAULT_RETRY_POLICIES[prio], retry, task_name)
        task_options: dict[str, Any] = {
            **options,
            "name": task_name,
            "base": PriorityTask,
            "lane_priority": prio,
            "job_queue": queue or task_name,
            "retry_spec": retry,
            "retry_on": _exception_classes(retry_classes, "retry_on", task_name),
            "non_retryable": _exception_classes(non_retryable, "non_retryable", task_name),
            "exhausted_hook": staticmethod(on_exhausted) if on_exhausted is not None else None,
            "queue": lane_name(prio),
        }
        if app is not None:
            return app.task(**task_options)(fun)
        shared_task(**task_options)(fun)
        return DeclaredTask(task_name, prio, task_options["job_queue"])

    return decorate
