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
import logging
from collections.abc import Iterable
from typing import Any

import redis

from storefront_jobs.broker import keys
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.worker.hooks import Hook

logger = logging.getLogger("storefront_jobs.worker")


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


class LanePausing(Hook):
    """Keeps a pool's consumption equal to the lanes it was started for minus the paused ones."""

    def __init__(self) -> None:
        self._configured: list[str] = []

    def worker_init(self, worker: Any) -> None:
        app = worker.app
        queues = app.amqp.queues
        self._configured = sorted(queues.consume_from)
        client = getattr(app, "redis", None)
        if client is None:
            return
        try:
            paused = paused_lanes(client)
        except Exception as exc:
            # Redis down at start: the first heartbeat reconciles once it is back.
            logger.warning("could not read paused lanes at start: %s", exc)
            return
        skipped = sorted(set(self._configured) & paused)
        if skipped:
            queues.deselect(skipped)
            logger.warning("lanes paused, not consuming them until resumed: %s", ", ".join(skipped))

    def heartbeat(self, consumer: Any) -> None:
        """Apply pauses and resumes; runs in the heartbeat thread, so changes go through the event loop."""
        app = consumer.app
        change = reconcile(self._configured, sorted(app.amqp.queues.consume_from), paused_lanes(app.redis))
        for lane in change.cancel:
            logger.warning("pausing lane %s", lane)
            consumer.call_soon(consumer.cancel_task_queue, lane)
        for lane in change.add:
            logger.warning("resuming lane %s", lane)
            consumer.call_soon(consumer.add_task_queue, lane)
