"""Pausing a lane: durable in Redis, applied by every pool within one heartbeat.

``storefront-jobs queues pause HIGH`` adds the lane to ``storefront:paused``
and broadcasts Celery's ``cancel_consumer`` so that pools stop fetching at
once. The broadcast is best effort (Redis pub/sub reaches only connected
workers), so each pool also reconciles on every heartbeat: the lanes it
consumes are the lanes it was started with minus the paused ones. A pool
that starts while a lane is paused drops the lane before it fetches anything.

Jobs already running finish; jobs waiting stay in Redis. Because lanes are
polled in sorted order (``p0.critical`` < ``p1.high`` ...), a lane consumed
again after a pause keeps its place in strict priority order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import redis

from storefront_jobs.broker import keys
from storefront_jobs.jobs.priorities import Priority


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    """What a pool must change to match the pause set."""

    cancel: list[str]
    add: list[str]


def reconcile(configured: Iterable[str], consuming: Iterable[str], paused: Iterable[str]) -> Reconciliation:
    """Lanes to stop and start consuming so that a pool consumes ``configured - paused``."""
    wanted = set(configured) - set(paused)
    current = set(consuming)
    return Reconciliation(cancel=sorted(current - wanted), add=sorted(wanted - current))


def paused_lanes(client: redis.Redis[bytes]) -> set[str]:
    return {member.decode() for member in client.smembers(keys.PAUSED_LANES)}


def pause(client: redis.Redis[bytes], priority: Priority) -> bool:
    """Record the pause; ``False`` if the lane was already paused."""
    return bool(client.sadd(keys.PAUSED_LANES, keys.lane_name(priority)))


def resume(client: redis.Redis[bytes], priority: Priority) -> bool:
    """Lift the pause; ``False`` if the lane was not paused."""
    return bool(client.srem(keys.PAUSED_LANES, keys.lane_name(priority)))
