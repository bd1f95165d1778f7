"""``PriorityTask``: a Celery task whose every job runs by the facts of the lane it was sent to.

Users rarely subclass it; :func:`~storefront_jobs.jobs.declare.priority_task`
declares one from a function::

    @priority_task(Priority.CRITICAL, queue="payments.webhooks")
    def confirm_payment(order_id: str) -> None: ...

The declared priority is the *default* lane. A job sent elsewhere
(``apply_async(priority=Priority.BULK)``) is a job of that lane everywhere:
each delivery reads its priority from its :class:`~storefront_jobs.jobs.context.JobContext`,
and the retry policy, Celery's ``max_retries`` and the countdown follow it.

Any exception the body raises is retried on the job's schedule
(:mod:`storefront_jobs.jobs.retry`) unless it is non-retryable. When no
retry is left the failure is final: the worker's hooks
(:mod:`storefront_jobs.worker.hooks`) dead-letter it, count it and run
``on_exhausted``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import redis
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from kombu import serialization
from kombu.exceptions import EncodeError, OperationalError

from storefront_jobs.broker.clients import unavailable
from storefront_jobs.broker.keys import LANES, lane_name, priority_of_lane
from storefront_jobs.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    EnqueueError,
    PayloadError,
)
from storefront_jobs.jobs import batch, chunks, envelope, publish
from storefront_jobs.jobs.context import JobContext, job_context
from storefront_jobs.jobs.failures import JobFailure, build_failure, is_retryable
from storefront_jobs.jobs.message import payload_error
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.retry import DEFAULT_RETRY_POLICIES, RetryPolicy, countdown_s, task_policies

if TYPE_CHECKING:
    _TaskBase = Task[Any, Any]
else:
    _TaskBase = Task


class PriorityTask(_TaskBase):
    """Base class of every storefront job."""

    #: The declared priority: the lane of a job sent without another. Not named
    #: ``priority``: Celery reads that attribute as a per-message priority.
    lane_priority: ClassVar[Priority] = Priority.DEFAULT
    #: The runbook's ``queue_name``: a logical family of jobs; defaults to the task name.
    job_queue: ClassVar[str] = ""
    #: The declaration's own retry fields, for jobs of the declared priority.
    retry_spec: ClassVar[RetryPolicy | Mapping[str, Any] | None] = None
    #: The retry policy of a job of each priority, resolved when the task binds to its app.
    retry_policies: ClassVar[Mapping[Priority, RetryPolicy]] = DEFAULT_RETRY_POLICIES
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

    @classmethod
    def on_bound(cls, app: Any) -> None:
        """Resolve the retry policies from the app's settings (Celery calls this when binding)."""
        settings = getattr(app, "storefront_settings", None)
        base = {p: settings.retry_policy(p) for p in Priority} if settings is not None else None
        cls.retry_policies = task_policies(cls.lane_priority, cls.retry_spec, str(cls.name), base)

    # --- the job of the current delivery ----------------------------------------------

    @property
    def job(self) -> JobContext:
        """The context of the delivery being executed (built once per delivery)."""
        return job_context(self)

    def policy_for(self, priority: Priority) -> RetryPolicy:
        """The retry policy of this task's jobs of ``priority``."""
        return self.retry_policies[priority]

    @property
    def retry_policy(self) -> RetryPolicy:
        """The policy of a job of the declared priority."""
        return self.policy_for(self.lane_priority)

    # Celery reads these two in Task.retry and, for a lost pool child, in the
    # worker's main process with the job's request pushed: both follow the job.
    @property
    def max_retries(self) -> int:  # type: ignore[override]  # a plain attribute in Celery

        return self.policy_for(self.job.priority).max_retries

    @property
    def default_retry_delay(self) -> float:  # type: ignore[override]  # an int attribute in Celery

        job = self.job
        return countdown_s(self.policy_for(job.priority), job.attempt)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and not self.request.called_directly and chunks.is_chunk(self.request):
            return chunks.run_chunk(self, args[0])
        try:
            return super().__call__(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:
            if (
                self.request.called_directly
                or self.max_retries == 0
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
        """Celery's retry, with the countdown and the budget taken from the job's retry table."""
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    # --- enqueueing ---------------------------------------------------------------------

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
        (``retries`` in options) stay in the lane of the job they retry and
        skip the capacity check: the job was already accepted once, and
        refusing its retry would drop it.
        """
        is_retry = bool(options.get("retries"))
        priority = self._resolve_lane(options, is_retry)
        # The lane's own exchange and routing key, not those a retry copies from its delivery.
        options["queue"] = lane_name(priority)
        options.pop("exchange", None)
        options.pop("routing_key", None)
        headers = dict(options.get("headers") or {})
        headers.setdefault(envelope.JOB_QUEUE, self.job_queue or self.name)
        options["headers"] = headers
        app = self._storefront_app()
        if not is_retry and publish.serves(
            self, {**options, "link": link, "link_error": link_error, "producer": producer, "shadow": shadow}
        ):
            return app.lane_publisher.send(
                self, args, kwargs, priority=priority, headers=headers, task_id=task_id
            )
        if not is_retry and not self.app.conf.task_always_eager:
            check_payload(self.name, args, kwargs, app.storefront_settings.max_payload_bytes, self.serializer)
            # On Redis the transport admits the job inside the publish (one round
            # trip, atomic); on other brokers the gate checks before publishing.
            if not app.checks_capacity_in_transport:
                app.capacity_gate.admit(priority, job_queue=headers[envelope.JOB_QUEUE], task=self.name)
        try:
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)
        except EncodeError as exc:
            raise PayloadError(
                f"cannot enqueue {self.name}: arguments are not JSON-serializable: {exc}"
            ) from exc
        except BrokerUnavailableError:
            raise
        except (OperationalError, redis.ConnectionError, redis.TimeoutError) as exc:
            # kombu's OperationalError wraps redis-py's error; the job's id is Celery's, in options.
            cause = exc.__cause__ or exc.__context__ or exc
            raise unavailable(f"enqueue {self.name}", cause, job_id=task_id) from exc

    def enqueue_many(
        self,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        priority: Priority | None = None,
        chunk_size: int = publish.DEFAULT_CHUNK_SIZE,
    ) -> list[Any]:
        """Enqueue one job per call, many per Redis round trip; their AsyncResults, in order.

        A call is a list or tuple of positional arguments, or a mapping of
        keyword arguments: ``send_receipt.enqueue_many([("o-1",), ("o-2",)])``.
        Each chunk of ``chunk_size`` jobs is admitted as one: a chunk that
        would overfill the lane is refused whole. When a chunk cannot be
        enqueued, :class:`~storefront_jobs.errors.PartialEnqueueError` says
        which jobs are queued (those before it). Every job is the job
        ``apply_async`` would send: same message, same signals, same rules.
        """
        return batch.enqueue_many(self, calls, priority=priority, chunk_size=chunk_size)

    def enqueue_chunked(
        self,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        chunk_size: int = chunks.DEFAULT_CHUNK_ITEMS,
        priority: Priority | None = None,
    ) -> list[Any]:
        """Enqueue the calls as messages of up to ``chunk_size`` items each; an AsyncResult per message.

        For tiny, numerous jobs (archive rows, migrations): the worker runs
        the body once per item, and an item that fails is retried or
        dead-lettered alone, with its own DLQ record
        (:mod:`storefront_jobs.jobs.chunks`). Calls are given as for
        :meth:`enqueue_many`.
        """
        return batch.enqueue_chunked(self, calls, priority=priority, chunk_size=chunk_size)

    def final_failure(
        self, job: JobContext, exception: BaseException, *, args: Any, kwargs: Any, einfo: Any, now_s: float
    ) -> JobFailure:
        """The final failure of the delivery ``job``, classified by the policy of the job's own lane."""
        return build_failure(
            job,
            exception,
            policy=self.policy_for(job.priority),
            retry_on=self.retry_on,
            non_retryable=self.non_retryable,
            args=args,
            kwargs=kwargs,
            traceback=getattr(einfo, "traceback", None),
            now_s=now_s,
        )

    def on_exhausted(self, failure: JobFailure) -> None:
        """Hook: the job failed for good. Runs in the worker, once per final failure."""
        # Stored as a staticmethod on the generated task class.
        hook: Callable[[JobFailure], Any] | None = getattr(type(self), "exhausted_hook", None)
        if hook is not None:
            hook(failure)

    def _storefront_app(self) -> Any:
        if getattr(self.app, "storefront_settings", None) is None:
            raise ConfigurationError(
                f"task {self.name} is bound to a plain Celery app; "
                "build the app with storefront_jobs.create_app()"
            )
        return self.app

    def _resolve_lane(self, options: dict[str, Any], is_retry: bool) -> Priority:
        requested = options.pop("priority", None)
        if isinstance(requested, Priority):
            return requested
        if requested is not None and not is_retry:
            # Celery passes the delivery priority (0) back on retries; from a
            # caller, an int priority would be a per-message priority.
            raise EnqueueError(
                "per-message priority is not supported; pass priority=Priority.<NAME> to choose the lane"
            )
        queue = options.get("queue")
        if queue is not None:
            name = str(getattr(queue, "name", queue))
            lane_priority = priority_of_lane(name)
            if lane_priority is None:
                lanes = ", ".join(LANES.values())
                raise EnqueueError(f"queue {name!r} is not a storefront lane; lanes are {lanes}")
            return lane_priority
        # A retry carries the delivery info of the job it retries: its lane.
        routed = priority_of_lane(str(options.get("routing_key") or ""))
        return routed if routed is not None else self.lane_priority


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
    error = payload_error(task_name, size, limit_bytes)
    if error is not None:
        raise error
    return size
