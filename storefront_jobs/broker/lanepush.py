"""Putting a job into its lane: the one place a push is admitted, counted, routed to a tenant and rung.

Two publishers push storefront jobs: the transport (:mod:`storefront_jobs.broker.transport`),
under kombu's ``publish`` (retries, foreign callers, anything Celery sends)
and the lean enqueue (:mod:`storefront_jobs.jobs.publish`), which builds the
same message itself. Both hand the kombu message (the dict kombu would
``LPUSH``, :mod:`storefront_jobs.broker.wire`) to the functions here, so the
capacity rule, the enqueue count, the tenant's list and the doorbell cannot
differ between them:

* :func:`admit_and_push`: a job's first publish, one script call
  (``admit_and_push``, or ``tenants/admit_and_push`` for a tenant's job in a
  fair lane);
* :func:`push`: a retry (accepted once, never refused);
* :func:`admit_and_push_many`: a chunk of first publishes into a lane's plain
  list, one script call that refuses the chunk whole when it does not fit.

Every push stamps ``laneSince`` first (aging measures a job's wait in the lane
it waits in).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import redis
from redis.exceptions import OutOfMemoryError  # type: ignore[attr-defined]  # not in types-redis

from storefront_jobs.broker import keys, replicas, scripts, tenants, wire
from storefront_jobs.broker.admission import admission_call, depth_or_refuse, enqueued_field
from storefront_jobs.broker.held import HeldConnection
from storefront_jobs.broker.replicas import Quorum
from storefront_jobs.errors import BrokerFullError, BrokerUnavailableError
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.priorities import Priority

#: Redis's acknowledgement alone (BROKER_MIN_REPLICAS=0).
NO_QUORUM = Quorum()
#: The producer host, a label of the enqueue counter.
HOST = socket.gethostname()


def counter_field(priority: Priority, message: Mapping[str, Any]) -> str:
    """The enqueue-counter field of a message: its priority, job queue, task and this host."""
    headers = message.get("headers") or {}
    return enqueued_field(
        priority,
        str(headers.get(envelope.JOB_QUEUE) or "unknown"),
        str(headers.get(envelope.TASK_NAME)),
        HOST,
    )


def fair_tenant(options: Mapping[str, Any] | None, lane: str, message: Mapping[str, Any]) -> str | None:
    """The tenant whose list a push of ``message`` into ``lane`` goes to, or None for the lane's own lists.

    Only a lane the producer's settings make fair (``options`` are the
    transport options) and a job with a tenant.
    """
    if lane not in tenants.fair_lanes(options):
        return None
    return tenants.tenant_of(message)


def admit_and_push(
    client: Any,
    lane: str,
    message: dict[str, Any],
    *,
    capacity: int,
    target: str,
    tenant: str | None,
    held: HeldConnection | None = None,
    quorum: Quorum = NO_QUORUM,
) -> int:
    """A job's first publish: the lane's depth before it, or :class:`QueueOverflowError` (nothing pushed).

    ``target`` is the list of the lane the message belongs on (kombu's
    priority sub-list; the lane's name for priority 0), used when the job
    has no ``tenant`` list to go to. With ``held`` (the lean enqueue), the
    call is packed once per lane and label set and sent on that connection.
    An admitted job waits for ``quorum``'s replicas (:mod:`storefront_jobs.broker.replicas`).
    """
    priority = _priority(lane)
    envelope.stamp_lane_entry(message, time.time())
    script_keys, args = admission_call(priority, capacity, counter_field(priority, message))
    with _refused(lambda: _enqueue_of(message, lane), lambda: _job_id(message)):
        # The held connection's fallback sends a call again on another connection, where a WAIT
        # would not see the write: with replicas awaited, the write and its WAIT share one connection.
        if held is not None and tenant is None and not quorum.wanted:
            return depth_or_refuse(
                _admit_held(held, lane, message, target, script_keys, args), lane, capacity
            )
        with replicas.one_connection(client, quorum) as one:
            if tenant is not None:
                reply = scripts.TENANT_ADMIT_AND_PUSH(
                    one,
                    [*script_keys, *tenants.push_keys(lane, tenant)],
                    [*args, wire.to_json(message), keys.DOORBELL_LAST_INDEX, tenant],
                )
            else:
                reply = scripts.ADMIT_AND_PUSH(
                    one,
                    [*script_keys, target, keys.doorbell(lane)],
                    [*args, wire.to_json(message), keys.DOORBELL_LAST_INDEX],
                )
            depth = depth_or_refuse(reply, lane, capacity)
            if quorum.wanted:
                replicas.confirm(one, quorum, "enqueue", _enqueue_of(message, lane), _job_id(message))
        return depth


def _admit_held(
    held: HeldConnection,
    lane: str,
    message: dict[str, Any],
    target: str,
    script_keys: list[str],
    args: list[Any],
) -> Any:
    """The admission script sent on the lean enqueue's held connection, packed once per lane and label set."""
    call_keys = [*script_keys, target, keys.doorbell(lane)]
    payload = wire.to_json(message)
    # Only the message differs between two jobs of a task: the rest is packed once.
    head = _admit_head(tuple(call_keys), tuple(args))
    packed = head + scripts.resp_bulk(payload.encode()) + _LAST_INDEX
    return scripts.ADMIT_AND_PUSH.call_packed(
        held, packed, call_keys, [*args, payload, keys.DOORBELL_LAST_INDEX]
    )


#: How Redis starts its refusal of a write on a primary with too few replicas (``min-replicas-to-write``).
NO_REPLICAS = "NOREPLICAS"

_LAST_INDEX = scripts.resp_bulk(str(keys.DOORBELL_LAST_INDEX).encode())


@functools.lru_cache(maxsize=1024)
def _admit_head(call_keys: tuple[str, ...], args: tuple[Any, ...]) -> bytes:
    """The packed start of one admit_and_push call, up to its message (one per lane and label set)."""
    return scripts.ADMIT_AND_PUSH.packed_head(call_keys, args, total_args=len(args) + 2)


def push(
    client: Any,
    lane: str,
    message: dict[str, Any],
    *,
    target: str,
    tenant: str | None,
    quorum: Quorum = NO_QUORUM,
) -> None:
    """A message that needs no admission (a retry) into its lane, the lane's doorbell rung."""
    envelope.stamp_lane_entry(message, time.time())
    with replicas.one_connection(client, quorum) as one:
        if tenant is not None:
            # A retry keeps its tenant's share: onto the tenant's list, as its first publish.
            scripts.TENANT_PUSH(
                one,
                tenants.push_keys(lane, tenant),
                [wire.to_json(message), keys.DOORBELL_LAST_INDEX, tenant],
            )
        else:
            scripts.PUSH(
                one, [target, keys.doorbell(lane)], [wire.to_json(message), keys.DOORBELL_LAST_INDEX]
            )
        doing = f"retry {_task(message)} in lane {lane!r}"
        replicas.confirm(one, quorum, "retry", doing, _job_id(message))


def admit_and_push_many(
    client: Any, lane: str, messages: Sequence[dict[str, Any]], *, capacity: int, quorum: Quorum = NO_QUORUM
) -> int:
    """A chunk of first publishes of one task into the lane's plain list, admitted as one.

    Returns the lane's depth before the chunk, or raises
    :class:`QueueOverflowError` when the chunk does not fit (nothing of it
    pushed). The messages share a task and job queue: one counter field.
    """
    priority = _priority(lane)
    now_s = time.time()
    for message in messages:
        envelope.stamp_lane_entry(message, now_s)
    script_keys, args = admission_call(priority, capacity, counter_field(priority, messages[0]))
    doing = f"enqueue {len(messages)} jobs of {_task(messages[0])} into lane {lane!r}"
    with _refused(lambda: doing, lambda: None), replicas.one_connection(client, quorum) as one:
        reply = scripts.ADMIT_AND_PUSH_MANY(
            one,
            [*script_keys, lane, keys.doorbell(lane)],
            [*args, keys.DOORBELL_LAST_INDEX, *(wire.to_json(m) for m in messages)],
        )
        depth = depth_or_refuse(reply, lane, capacity)
        replicas.confirm(one, quorum, "enqueue", doing, None)
    return depth


@contextlib.contextmanager
def _refused(doing: Callable[[], str], job_id: Callable[[], str | None]) -> Iterator[None]:
    """A publish Redis refuses ends in a documented error, not in redis-py's error naming a Lua line.

    A full Redis refuses the admission scripts (they are not ``allow-oom``):
    :class:`BrokerFullError`. A primary with ``min-replicas-to-write`` and too
    few replicas connected refuses every write (``NOREPLICAS``):
    :class:`BrokerUnavailableError`. Either way the script did not run, so
    nothing was pushed.
    """
    try:
        yield
    except OutOfMemoryError:
        raise BrokerFullError(doing()) from None
    except redis.ResponseError as exc:
        if not str(exc).startswith(NO_REPLICAS):
            raise
        refused_id = job_id()
        raise BrokerUnavailableError(
            f"cannot {doing()}: the primary refuses writes while fewer replicas are connected than its "
            f"min-replicas-to-write ({exc}); {f'job {refused_id} was' if refused_id else 'the jobs were'} "
            "not enqueued: send again once the replicas are back",
            maybe_sent=False,
        ) from exc


def _enqueue_of(message: Mapping[str, Any], lane: str) -> str:
    """What a first publish was doing, for its error (built only when there is one)."""
    return f"enqueue {_task(message)} into lane {lane!r}"


def _task(message: Mapping[str, Any]) -> str:
    return str((message.get("headers") or {}).get(envelope.TASK_NAME))


def _job_id(message: Mapping[str, Any]) -> str | None:
    job_id = (message.get("headers") or {}).get("id")
    return str(job_id) if job_id is not None else None


def _priority(lane: str) -> Priority:
    priority = keys.priority_of_lane(lane)
    if priority is None:
        raise ValueError(f"{lane!r} is not a storefront lane")
    return priority
