"""``PriorityTask``: a Celery task that knows its lane, its retry table and its final failure.

Users rarely subclass it; :func:`priority_task` declares one from a function::

    @priority_task(Priority.CRITICAL, queue="payments.webhooks")
    def confirm_payment(order_id: str) -> None: ...

Any exception the body raises is retried on the priority's schedule
(:mod:`storefront_jobs.jobs.retry`) unless it is non-retryable. When no retry is
left, Celery's ``task_failure`` fires once and :mod:`storefront_jobs.worker.signals`
turns it into ``job_exhausted`` with the reason; ``on_exhausted`` runs there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from kombu import serialization
from kombu.exceptions import EncodeError

from storefront_jobs.broker import keys
from storefront_jobs.errors import ConfigurationError, EnqueueError, PayloadError
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.failures import JobFailure, is_retryable
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.retry import DEFAULT_RETRY_POLICIES, RetryPolicy, countdown_s

if TYPE_CHECKING:
    from storefront_jobs.application import StorefrontCelery

if TYPE_CHECKING:
    _TaskBase = Task[Any, Any]
else:
    _TaskBase = Task

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


class PriorityTask(_TaskBase):
    """Base class of every storefront job."""

    #: Priority (and so lane) of the job; set by priority_task. Not named
    #: ``priority``: Celery reads that attribute as a per-message priority.
    lane_priority: ClassVar[Priority] = Priority.DEFAULT
    #: The runbook's ``queue_name``: a logical family of jobs; defaults to the task name.
    job_queue: ClassVar[str] = ""
    retry_policy: ClassVar[RetryPolicy] = DEFAULT_RETRY_POLICIES[Priority.DEFAULT]
    #: Errors that are retried; anything else fails at once.
    retry_on: ClassVar[tuple[type[BaseException], ...]] = (Exception,)
    #: Errors that are never retried, even if they match ``retry_on``.
    non_retryable: ClassVar[tuple[type[BaseException], ...]] = ()
    #: Called with the JobFailure of every final failure.
    exhausted_hook: ClassVar[Callable[[JobFailure], Any] | None] = None

    acks_late = True
    abstract = True
    #: Writes the DLQ record of a job whose pool child died before Celery acks it.
    Request = "storefront_jobs.worker.request:CapturingRequest"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:
            if (
                self.request.called_directly
                or self.retry_policy.max_retries == 0
                or not is_retryable(exc, retry_on=self.retry_on, non_retryable=self.non_retryable)
            ):
                raise
            # Re-raises `exc` itself once the retries are spent, so the final
            # failure carries the job's own error type (never MaxRetriesExceeded).
            raise self.retry(exc=exc) from None

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Exception | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Celery's retry, with the countdown taken from the priority's table."""
        if eta is None and countdown is None:
            countdown = countdown_s(self.retry_policy, int(self.request.retries or 0) + 1)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> Any:
        """Enqueue the job on its lane, refusing it if the lane is full.

        ``priority=Priority.X`` sends this one job to another lane. Retries
        (``retries`` in options) skip the capacity check: the job was already
        accepted once, and refusing its retry would drop it.
        """
        is_retry = bool(options.get("retries"))
        priority = self._resolve_lane(options, is_retry)
        options["queue"] = keys.lane_name(priority)
        headers = dict(options.get("headers") or {})
        headers.setdefault(envelope.JOB_QUEUE, self.job_queue or self.name)
        options["headers"] = headers
        app = self._storefront_app()
        if not is_retry and not self.app.conf.task_always_eager:
            check_payload(self.name, args, kwargs, app.storefront_settings.max_payload_bytes, self.serializer)
        # On Redis the transport admits the job inside the publish (one round
        # trip, atomic); on other brokers the gate checks before publishing.
        if not is_retry and not self.app.conf.task_always_eager and not app.checks_capacity_in_transport:
            app.capacity_gate.admit(priority, job_queue=headers[envelope.JOB_QUEUE], task=self.name)
        try:
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)
        except EncodeError as exc:
            raise PayloadError(
                f"cannot enqueue {self.name}: arguments are not JSON-serializable: {exc}"
            ) from exc

    def on_exhausted(self, failure: JobFailure) -> None:
        """Hook: the job failed for good. Runs in the worker, once per final failure."""
        # Stored as a staticmethod on the generated task class.
        hook: Callable[[JobFailure], Any] | None = getattr(type(self), "exhausted_hook", None)
        if hook is not None:
            hook(failure)

    def _storefront_app(self) -> StorefrontCelery:
        from storefront_jobs.application import StorefrontCelery  # noqa: PLC0415 - avoids an import cycle

        if not isinstance(self.app, StorefrontCelery):
            raise ConfigurationError(
                f"task {self.name} is bound to a plain Celery app; "
                "build the app with storefront_jobs.create_app()"
            )
        return self.app

    def _resolve_lane(self, options: dict[str, Any], is_retry: bool) -> Priority:
        requested = options.pop("priority", None)
        queue = options.get("queue")
        if isinstance(requested, Priority):
            return requested
        if requested is not None and not is_retry:
            # Celery passes the delivery priority (0) back on retries; from a
            # caller, an int priority would be a per-message priority.
            raise EnqueueError(
                "per-message priority is not supported; pass priority=Priority.<NAME> to choose the lane"
            )
        if queue is not None:
            name = getattr(queue, "name", queue)
            lane_priority = keys.priority_of_lane(str(name))
            if lane_priority is None:
                raise EnqueueError(
                    f"queue {name!r} is not a storefront lane; lanes are {', '.join(keys.LANES.values())}"
                )
            return lane_priority
        return self.lane_priority


def check_payload(task_name: str, args: Any, kwargs: Any, limit_bytes: int, serializer: Any = "json") -> int:
    """Size in bytes of a job's arguments as the serializer encodes them; PayloadError past the limit.

    Encoding them once more costs microseconds for ordinary arguments and
    refuses an unserializable or oversized job before anything is counted or sent.
    """
    try:
        _type, _encoding, data = serialization.dumps(
            (args or (), kwargs or {}), serializer=serializer or "json"
        )
    except EncodeError as exc:
        raise PayloadError(f"cannot enqueue {task_name}: arguments are not JSON-serializable: {exc}") from exc
    size = len(data.encode() if isinstance(data, str) else data)
    if size > limit_bytes:
        raise PayloadError(
            f"cannot enqueue {task_name}: its arguments take {size} bytes as JSON, over the limit of "
            f"{limit_bytes} (STOREFRONT_JOBS_MAX_PAYLOAD_BYTES); pass a reference to the data (an id, "
            "an object-store key) instead"
        )
    return size


def _exception_classes(value: Any, what: str, task_name: str) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, tuple | list) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigurationError(f"task {task_name}: {what} must be exception classes, got {item!r}")
    return tuple(items)


def build_policy(
    priority: Priority, base: RetryPolicy, retry: RetryPolicy | Mapping[str, Any] | None, task_name: str
) -> RetryPolicy:
    """The task's retry policy: the priority's (with settings overrides), then the task's own."""
    if retry is None:
        policy = base
    elif isinstance(retry, RetryPolicy):
        policy = retry
    elif isinstance(retry, Mapping):
        try:
            policy = base.with_overrides(retry)
        except (ConfigurationError, TypeError) as exc:
            raise ConfigurationError(f"task {task_name}: {exc}") from None
    else:
        raise ConfigurationError(f"task {task_name}: retry must be a RetryPolicy or a mapping, got {retry!r}")
    if priority is Priority.BULK and policy.max_retries > 0:
        raise ConfigurationError(
            f"task {task_name}: BULK jobs never retry (they go to the DLQ on their first failure); "
            "use Priority.LOW for a background job that should retry"
        )
    return policy


def priority_task(
    priority: Priority | str = Priority.DEFAULT,
    queue: str | None = None,
    *,
    retry: RetryPolicy | Mapping[str, Any] | None = None,
    retry_on: Any = (Exception,),
    non_retryable: Any = (),
    on_exhausted: Callable[[JobFailure], Any] | None = None,
    app: StorefrontCelery | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a function as a storefront job of ``priority`` in job queue ``queue``.

    ``retry`` overrides fields of the priority's retry policy; ``non_retryable``
    lists exception classes that fail the job at once (``PermanentFailure``
    always does). Everything else is passed to Celery's ``app.task``. Every
    option is checked here, so a bad declaration fails at import, not at 3 am.
    """
    if callable(priority) and not isinstance(priority, Priority | str):
        raise ConfigurationError(
            "priority_task needs arguments: use @priority_task(Priority.DEFAULT), not @priority_task"
        )

    def decorate(fun: Callable[..., Any]) -> Any:
        from storefront_jobs.application import get_default_app  # noqa: PLC0415 - lazy default app

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
        target = app or get_default_app()
        policy = build_policy(prio, target.storefront_settings.retry_policy(prio), retry, task_name)
        hook = staticmethod(on_exhausted) if on_exhausted is not None else None
        declare: Any = target.task
        return declare(
            base=PriorityTask,
            lane_priority=prio,
            job_queue=queue or task_name,
            retry_policy=policy,
            retry_on=_exception_classes(retry_classes, "retry_on", task_name),
            non_retryable=_exception_classes(non_retryable, "non_retryable", task_name),
            exhausted_hook=hook,
            max_retries=policy.max_retries,
            # Used by Celery when it retries a job whose pool child died.
            default_retry_delay=policy.initial_delay_s,
            queue=keys.lane_name(prio),
            **options,
        )(fun)

    return decorate
