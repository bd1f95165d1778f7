"""The worker's bookkeeping of unacknowledged messages, on Redis's clock.

kombu's Redis ``QoS`` records a fetched message in ``unacked_index`` scored
with the fetching worker's clock, and its restore sweep gives back every
message whose score is older than the visibility timeout by the *sweeping*
worker's clock. Two workers whose clocks disagree by more than the timeout
then run a job twice at once: a worker behind records fetch times in the
past, which any sweeper takes as expired; a worker ahead takes every other
worker's running jobs. Here both sides read one clock, Redis's (``TIME``):
the fetch script scores with it (``scripts/fetch.lua``), a message recorded
outside the script is scored by ``scripts/record_unacked.lua``, and the sweep
computes its deadline from it (:mod:`storefront_jobs.broker.clock`). A
worker's own clock then decides nothing about redelivery.

It also skips the second record of a message the fetch script already
recorded, and carries the wake token of a reserved pool in the
acknowledgement's transaction (:mod:`storefront_jobs.broker.fetch`). The
kombu names used here are listed in :mod:`storefront_jobs.broker.internals`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from storefront_jobs.broker import scripts
from storefront_jobs.broker.clock import redis_now_s

if TYPE_CHECKING:
    from storefront_jobs.broker.fetch import FetchingChannel


class QoS(kombu_redis.QoS):
    """kombu's, on Redis's clock, recording nothing the fetch script already recorded."""

    #: kombu's count of restore_visible calls (set in its __init__), for the sweep's throttle.
    _vrestore_count: int

    def ack(self, delivery_tag: str) -> None:
        # kombu's ack (remove from the unacked indexes, then the in-memory bookkeeping), with the
        # wake token of a gated wait in the same transaction: no round trip of its own.
        pipe = self._remove_from_indices(delivery_tag)  # type: ignore[attr-defined]
        cast("FetchingChannel", self.channel)._queue_wake(pipe)
        pipe.execute()
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if requeue:
            super().reject(delivery_tag, requeue)
            return
        self.ack(delivery_tag)  # kombu's reject without requeue is its ack

    def append(self, message: Any, delivery_tag: str) -> None:
        recorded = cast("FetchingChannel", self.channel)._recorded_tags
        if delivery_tag in recorded:
            recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # only the in-memory bookkeeping
            return
        # A message kombu's own BRPOP took (a foreign queue): recorded as kombu would, on Redis's clock.
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
            scripts.RECORD_UNACKED(client, [self.unacked_key, self.unacked_index_key], [delivery_tag, record])
        virtual.QoS.append(self, message, delivery_tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        # kombu's sweep (every ``interval``-th call, one sweeper at a time under kombu's mutex, the
        # ``num`` oldest expired messages back to their queues), with the deadline on Redis's clock.
        self._vrestore_count += 1
        if (self._vrestore_count - 1) % (interval or 1):
            return
        with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
            deadline_s = redis_now_s(client) - self.visibility_timeout
            try:
                with kombu_redis.Mutex(client, self.unacked_mutex_key, self.unacked_mutex_expire):
                    expired = client.zrange(
                        self.unacked_index_key,
                        deadline_s,
                        0,
                        desc=True,
                        byscore=True,
                        offset=start if num else None,
                        num=num or None,
                    )
                    for tag in expired:
                        self.restore_by_tag(tag, client)
            except kombu_redis.MutexHeld:
                pass
