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
acknowledgement (:mod:`storefront_jobs.broker.fetch`). Everything a worker
does with a message it holds (acknowledge, restore, take the sweep's lock)
is a script a full Redis still runs (``allow-oom``): kombu's MULTI and SET NX
are refused over maxmemory, which killed the worker that could free memory. The
kombu names used here are listed in :mod:`storefront_jobs.broker.internals`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from storefront_jobs.broker import keys, scripts
from storefront_jobs.broker.clock import redis_now_s
from storefront_jobs.broker.lease import Lease

if TYPE_CHECKING:
    from storefront_jobs.broker.fetch import FetchingChannel


class QoS(kombu_redis.QoS):
    """kombu's, on Redis's clock, recording nothing the fetch script already recorded."""

    #: kombu's count of restore_visible calls (set in its __init__), for the sweep's throttle.
    _vrestore_count: int

    def ack(self, delivery_tag: str) -> None:
        # kombu's ack (remove from the unacked indexes, then the in-memory bookkeeping) as one script,
        # with the wake token of a gated wait in it: no round trip of its own. A script, not kombu's
        # MULTI: a Redis over maxmemory refuses every command queued in a MULTI.
        script_keys: list[str] = [self.unacked_key, self.unacked_index_key]
        args: list[Any] = [delivery_tag]
        wake = cast("FetchingChannel", self.channel)._wake_target()
        if wake is not None:
            script_keys.append(wake[0])
            args.append(wake[1])
        with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
            scripts.ACK(client, script_keys, args)
        virtual.QoS.ack(self, delivery_tag)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        # kombu's restore (a WATCH, then a MULTI that removes the record and pushes the message) as one
        # script that a full Redis still runs; the message is pushed only if it is still held.
        with self.channel.conn_or_acquire(client) as conn:  # type: ignore[attr-defined]
            raw = conn.hget(self.unacked_key, tag)
            if raw is None:
                return
            message, exchange, routing_key = loads(bytes_to_str(raw))
            lists, bells, payload = cast("FetchingChannel", self.channel)._restore_targets(
                message, exchange, routing_key
            )
            scripts.RESTORE(
                conn,
                [self.unacked_key, self.unacked_index_key, *lists, *bells],
                [tag, dumps(payload), len(lists), "1" if leftmost else "0", keys.DOORBELL_LAST_INDEX],
            )

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
            # One sweeper at a time, as under kombu's mutex (same key and expiry), but taken by a
            # script a full Redis still runs: kombu's SET NX is refused there, and the worker exited.
            sweep = Lease(client, self.unacked_mutex_key, uuid.uuid4().hex, float(self.unacked_mutex_expire))
            if not sweep.hold():
                return
            try:
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
                    self.restore_by_tag(bytes_to_str(tag), client)
            finally:
                sweep.release()
