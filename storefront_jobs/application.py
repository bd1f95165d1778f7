"""The Celery app: lanes, transport options and worker defaults that make priority real.

:func:`create_app` is the only place that writes ``app.conf``. Every process
(producer, worker, Flower, CLI) builds its app here from the same settings,
so the transport options that are part of the wire format (``sep``,
``priority_steps``) and the visibility timeout agree everywhere: any consumer
restores unacknowledged messages older than *its own* timeout, so one process
with a shorter value would redeliver everybody's long jobs.

Choices, and why:

* **Lanes sorted by name** (``p0.critical`` < ... < ``p4.bulk``) with kombu's
  ``sorted`` queue-order strategy: a worker polls its lanes highest first
  whatever the ``-Q`` order, and a lane cancelled and consumed again (pause,
  resume) keeps its place, which the ``priority`` strategy does not.
* **Late ack + prefetch 1 + disabled prefetch** by default: a worker holds no
  job it cannot start now, so a CRITICAL job sent while BULK jobs wait is the
  next one fetched. ``configure_pool`` relaxes prefetch only for a pool that
  consumes one slow lane, where fetching ahead cannot invert priority.
* **Retry on worker loss, not reject**: a pool child killed mid-job (OOM,
  segfault) makes the job retry like any failure, within its priority's
  budget, then fail for good with reason ``worker_lost``. Requeueing on loss
  (``reject_on_worker_lost``) would loop forever on a poison job.
* **Cancel running jobs on connection loss**: a late-acked job cannot be
  acknowledged after the broker connection drops; running it to the end would
  run it twice once Redis redelivers it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from kombu import Exchange, Queue

from storefront_jobs.broker import clients, keys, replicas
from storefront_jobs.broker.admission import CapacityGate
from storefront_jobs.broker.fetch import RESERVATION_OPTION, reservation_option
from storefront_jobs.broker.tenants import FAIRNESS_OPTION, fairness_option
from storefront_jobs.broker.transport import CAPACITY_OPTION, register_uri_schemes, transport_for
from storefront_jobs.deadletter.capture import DeadLetterCapture
from storefront_jobs.deadletter.store import DeadLetterStore, RedisDeadLetterStore
from storefront_jobs.errors import ConfigurationError
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.publish import LanePublisher
from storefront_jobs.metrics.pool import JobMetrics
from storefront_jobs.settings import Settings, get_settings
from storefront_jobs.worker import signals
from storefront_jobs.worker.aging import Aging
from storefront_jobs.worker.callbacks import ExhaustedCallbacks
from storefront_jobs.worker.heartbeat import WorkerHeartbeat
from storefront_jobs.worker.hooks import Hook, HookChain
from storefront_jobs.worker.job_logs import JobLogs
from storefront_jobs.worker.pausing import LanePausing
from storefront_jobs.worker.reservation import Reservation

#: Where producers and workers look when no broker is configured (``dev`` sets one).
FALLBACK_BROKER_URL = "redis://127.0.0.1:6379/0"


def default_hooks(settings: Settings) -> list[Hook]:
    """The worker's components, in the order every event reaches them.

    Logs first, so the job's log fields are set before anything else logs;
    metrics next; the DLQ capture before the callbacks, so that a user's
    ``on_exhausted`` (or a ``job_exhausted`` receiver) that raises or hangs
    runs after the job is safe; the heartbeat before the pausing, which it
    drives and whose start-up deselection must not change the lanes the
    pool announces it was started for. The aging sweeper last: it only starts
    and stops with the pool.
    """
    return [
        JobLogs(),
        JobMetrics(settings),
        DeadLetterCapture(),
        ExhaustedCallbacks(),
        WorkerHeartbeat(),
        LanePausing(),
        Aging(settings),
    ]


class StorefrontCelery(Celery):
    """A Celery app that knows its storefront settings, lane capacities and hooks."""

    #: Its broker connections keep the storefront transport when they fail over to the next URL.
    amqp_cls = "storefront_jobs.broker.connection:StorefrontAMQP"

    def __init__(
        self, settings: Settings, *args: Any, hooks: list[Hook] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.storefront_settings = settings
        self.storefront_hooks = HookChain(default_hooks(settings) if hooks is None else hooks)

    @functools.cached_property
    def dead_letter_store(self) -> DeadLetterStore:
        """The DLQ on the broker's Redis, bounded by the DLQ settings."""
        dlq = self.storefront_settings.dlq
        return RedisDeadLetterStore(
            self.redis,
            max_entries=dlq.max_entries,
            retention_s=dlq.retention_s,
            quorum=replicas.Quorum.of(self.storefront_settings),
        )

    @functools.cached_property
    def redis(self) -> redis.Redis[bytes]:
        """A client for storefront's own keys, on the broker's Redis database."""
        return clients.redis_client(self.conf.broker_url, self.storefront_settings)

    @functools.cached_property
    def lane_publisher(self) -> LanePublisher:
        """The lean enqueue of this app's ordinary calls (storefront_jobs.jobs.publish)."""
        return LanePublisher(self)

    @functools.cached_property
    def capacity_gate(self) -> CapacityGate:
        return CapacityGate(self.redis, self.storefront_settings)

    @functools.cached_property
    def checks_capacity_in_transport(self) -> bool:
        """True when every first publish is admitted atomically by storefront_jobs.broker.transport."""
        return self.conf.broker_transport is not None and str(self.conf.broker_transport).startswith(
            "storefront_jobs.broker.transport:"
        )


def restore_interval_s(settings: Settings) -> int:
    """How often kombu sweeps for expired unacknowledged messages (throttle 1: every interval).

    kombu's default, 10 s x throttle 10, brings a dead worker's jobs back up to
    100 s after their visibility timeout; sweep often enough that they come
    back soon after it.
    """
    return max(1, min(10, settings.visibility_timeout_s // 10))


def job_time_limit_s(settings: Settings) -> int:
    """Hard time limit of every job (``task_time_limit``): a run ends before its visibility timeout.

    kombu restores a message unacknowledged for longer than the visibility
    timeout even while its worker still runs it, and another worker starts it
    again, concurrently. Killing the run (DLQ reason ``time_limit``) a margin
    of two sweeps before that keeps it to one run at a time. The timeout counts
    from the fetch, so a job fetched ahead or held for a retry countdown has
    less: the visibility timeout must still cover those waits (docs/reliability.md).
    A task's own ``time_limit`` overrides this one.
    """
    return max(1, settings.visibility_timeout_s - 2 * restore_interval_s(settings))


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu Redis transport options; identical in every process."""
    return {
        "queue_order_strategy": "sorted",
        "visibility_timeout": settings.visibility_timeout_s,
        "unacked_restore_interval": restore_interval_s(settings),
        "unacked_restore_throttle": 1,
        "priority_steps": list(keys.KOMBU_PRIORITY_STEPS),
        "sep": keys.KOMBU_SEP,
        "health_check_interval": 25,
        **clients.timeouts(settings),
        **sentinel_transport_options(settings),
        # Read by the transport: the replicas its pushes (retries, Celery-path enqueues) wait for.
        replicas.QUORUM_OPTION: replicas.Quorum.of(settings).option(),
        # Read by storefront_jobs.broker.transport, which checks capacity inside the publish.
        CAPACITY_OPTION: {keys.lane_name(p): settings.capacity(p) for p in Priority},
        # Read by the transport (which lanes' tenant jobs go to tenant lists) and the fetch (weights).
        FAIRNESS_OPTION: fairness_option(settings.tenant_fairness),
    }


def sentinel_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Sentinel options (its Sentinel channel and Flower read them): group and nodes' login."""
    if not clients.is_sentinel(settings.broker_url or ""):
        return {}
    return {"master_name": settings.broker_master_name, "sentinel_kwargs": clients.sentinel_options(settings)}


def uses_atomic_admission(broker_url: str) -> bool:
    """Whether the storefront transport (capacity checked inside the publish) serves this broker."""
    return transport_for(broker_url) is not None


def lane_queues() -> list[Queue]:
    return [Queue(lane, Exchange(lane, type="direct"), routing_key=lane) for lane in keys.LANES.values()]


def create_app(
    settings: Settings | None = None, *, main: str = "storefront_jobs", hooks: list[Hook] | None = None
) -> StorefrontCelery:
    """Build a Celery app configured for storefront-jobs from ``settings``.

    ``hooks`` replaces :func:`default_hooks` (a test, or a deployment that
    adds a component of its own to the list).
    """
    settings = settings or get_settings()
    app = StorefrontCelery(settings, main, hooks=hooks, set_as_current=False)
    broker_url = settings.broker_url or FALLBACK_BROKER_URL
    app.conf.update(
        broker_url=broker_url,
        broker_transport=transport_for(broker_url),
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        # rediss://: BROKER_TLS__* (kombu hands these to redis-py, as our own clients get them).
        broker_use_ssl=clients.tls_options(broker_url, settings) or None,
        task_publish_retry_policy=clients.publish_retry_policy(),
        task_queues=lane_queues(),
        task_default_queue=keys.lane_name(Priority.DEFAULT),
        task_default_exchange=keys.lane_name(Priority.DEFAULT),
        task_default_routing_key=keys.lane_name(Priority.DEFAULT),
        task_create_missing_queues=False,
        task_default_priority=None,
        task_acks_late=True,
        task_acks_on_failure=True,
        task_acks_on_timeout=True,
        task_reject_on_worker_lost=False,
        task_retry_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_time_limit=job_time_limit_s(settings),
        # Keeps what Celery would log and drop (undecodable messages) in the DLQ first.
        worker_consumer="storefront_jobs.deadletter.undecodable:UndecodableCapturingConsumer",
        worker_hijack_root_logger=False,
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        imports=list(settings.imports),
        timezone="UTC",
        enable_utc=True,
    )
    register_uri_schemes()
    signals.install()
    return app


def pool_prefetch(priorities: Sequence[Priority], settings: Settings) -> tuple[int, bool]:
    """Prefetch multiplier and disable-prefetch flag for a pool consuming ``priorities``.

    A pool of one DEFAULT, LOW or BULK lane may fetch ahead: its messages all
    have the same priority, so holding some back cannot delay a more urgent
    one, and fetching ahead keeps throughput up. Anything else fetches only
    when a process is free.
    """
    if len(priorities) == 1 and priorities[0] >= Priority.DEFAULT:
        return settings.bulk_prefetch_multiplier, False
    return 1, True


def configure_pool(
    app: Celery,
    priorities: Sequence[Priority],
    settings: Settings,
    imports: Sequence[str] | None = None,
    *,
    reservation: Reservation | None = None,
    concurrency: int | None = None,
) -> None:
    """Worker-side settings of a pool; called by ``storefront-jobs worker`` before it starts.

    A ``reservation`` needs the pool's ``concurrency``; it must fit the pool
    (``Reservation.check_pool``), and reaches the pool's fetch as a transport
    option. A reserving pool never prefetches: a job fetched ahead would hold
    a place the rule counts only once the job reaches a process.
    """
    multiplier, disable = pool_prefetch(priorities, settings)
    if reservation is not None:
        if concurrency is None:
            raise ConfigurationError("a pool with reserved processes needs its concurrency")
        reservation.check_pool(priorities, concurrency)
        multiplier, disable = 1, True
        options = dict(app.conf.broker_transport_options or {})
        options[RESERVATION_OPTION] = reservation_option(reservation, concurrency)
        app.conf.broker_transport_options = options
    app.conf.worker_prefetch_multiplier = multiplier
    app.conf.worker_disable_prefetch = disable
    if imports is not None:
        app.conf.imports = list(imports)


@functools.cache
def get_default_app() -> StorefrontCelery:
    """The app behind ``storefront_jobs.app``, built on first use from the environment."""
    app = create_app()
    app.set_current()
    app.set_default()
    return app
