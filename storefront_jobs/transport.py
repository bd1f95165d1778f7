"""kombu's Redis transport, with the lane capacity check inside the publish.

A job's first publish into a lane is one Lua call that sums the lane's
lists, refuses the job when the lane is full (counting the overflow), and
otherwise counts the enqueue and pushes the message. One round trip, like
plain kombu, and atomic: with any number of producers a lane never holds
more than its capacity, and a refused job was never pushed.

Only first publishes into a storefront lane are checked: retries (Celery's
``retries`` header above 0) were accepted once and are pushed as kombu
would, and so is anything published to another queue or collected into a
caller's publish batch (the DLQ replay checks capacity itself). The refusal is a
:class:`QueueOverflowError` raised out of kombu's publish, which does not
retry it (it is neither a connection nor a channel error).

It also keeps the worker alive when a lane holds something that is not a
kombu message (``LPUSH p2.default garbage``): kombu would raise out of the
worker's event loop, the worker would exit and the item would be gone. The
channel wraps such an item into a message no worker accepts, carrying the
item, and delivers it; the worker's consumer stores it in the DLQ as
``undecodable`` (:mod:`storefront_jobs.deadletter.undecodable`).

Select it with ``broker_transport = "storefront_jobs.transport:Transport"``
(:func:`storefront_jobs.application.create_app` does, for ``redis://`` and
``rediss://`` brokers).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import uuid
from queue import Empty
from typing import Any

from kombu import Connection
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from storefront_jobs import keys
from storefront_jobs.backpressure import enqueued_field
from storefront_jobs.errors import QueueOverflowError

#: Transport option holding ``{lane: capacity}``; set by create_app from QUEUE_CAPACITY__*.
CAPACITY_OPTION = "storefront_lane_capacity"

# KEYS: the lane's lists..., the overflow hash, the enqueued hash, the list to push to.
# ARGV: capacity, priority label, enqueued-counter field, message.
# Returns the depth before the push, or -(depth + 1) when the lane is full.
_ADMIT_AND_PUSH_LUA = """
local n = #KEYS - 3
local depth = 0
for i = 1, n do
  depth = depth + redis.call('LLEN', KEYS[i])
end
if depth >= tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[n + 1], ARGV[2], 1)
  return -depth - 1
end
redis.call('HINCRBY', KEYS[n + 2], ARGV[3], 1)
redis.call('LPUSH', KEYS[n + 3], ARGV[4])
return depth
"""
_ADMIT_AND_PUSH_SHA = hashlib.sha1(_ADMIT_AND_PUSH_LUA.encode()).hexdigest()  # Redis names scripts by SHA-1

_HOST = socket.gethostname()

#: Content type of a wrapped list item that was not a kombu message; no worker accepts it.
WRAPPED_CONTENT_TYPE = "application/x-storefront-undeliverable"
#: Headers of a wrapped item: why kombu could not read it, and the lane it was popped from.
WRAP_ERROR_HEADER = "x-storefront-error"
WRAP_LANE_HEADER = "x-storefront-lane"


def wrap_list_item(item: bytes, lane: str, error: BaseException) -> dict[str, Any]:
    """A kombu message carrying a list item that was not one, for the worker to dead-letter."""
    return {
        "body": base64.b64encode(item).decode(),
        "content-type": WRAPPED_CONTENT_TYPE,
        "content-encoding": "binary",
        "headers": {WRAP_ERROR_HEADER: f"{type(error).__name__}: {error}"[:2_000], WRAP_LANE_HEADER: lane},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": lane, "routing_key": lane},
            "priority": 0,
        },
    }


def needs_admission(queue: str, message: dict[str, Any], capacities: dict[str, int]) -> bool:
    """Whether this publish is a job's first entry into a storefront lane."""
    if queue not in capacities:
        return False
    headers = message.get("headers") or {}
    return not int(headers.get("retries") or 0)


class Channel(kombu_redis.Channel):
    @property
    def supports_batch_publish(self) -> bool:
        # A batched publish is pushed later in a pipeline, where a refusal could
        # no longer reach its caller: publish one by one through _put instead.
        return False

    def _admission_client(self) -> Any:
        """One redis-py client per channel and connection pool.

        kombu builds a fresh client for every publish (``conn_or_acquire``),
        which costs about half a millisecond of Python per job; the client is
        only a thin handle on the channel's connection pool, so keep one.
        """
        pool = self.pool
        cached = getattr(self, "_storefront_client", None)
        if cached is None or cached.connection_pool is not pool:
            cached = self._storefront_client = self._create_client()  # type: ignore[attr-defined]
        return cached

    def _capacities(self) -> dict[str, int]:
        client = self.connection.client
        options = (client.transport_options if client is not None else None) or {}
        capacities: dict[str, int] = options.get(CAPACITY_OPTION) or {}
        return capacities

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        capacities = self._capacities()
        # A caller that hands kombu a batch collects the push instead of sending
        # it (the DLQ replay does, then pushes and removes the entry in one
        # script, checking capacity itself): leave that to kombu unchanged.
        if "_publish_batch" in kwargs or not needs_admission(queue, message, capacities):
            super()._put(queue, message, **kwargs)
            return
        priority = keys.priority_of_lane(queue)
        assert priority is not None  # every capacity key is a lane
        headers = message.get("headers") or {}
        field = enqueued_field(
            priority, str(headers.get("jobQueue") or "unknown"), str(headers.get("task")), _HOST
        )
        target = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))  # type: ignore[attr-defined]
        script_keys = [*keys.lane_lists(queue), keys.OVERFLOW_COUNTS, keys.ENQUEUED_COUNTS, target]
        args = [capacities[queue], priority.label, field, dumps(message)]
        client = self._admission_client()
        try:
            result = int(client.evalsha(_ADMIT_AND_PUSH_SHA, len(script_keys), *script_keys, *args))
        except NoScriptError:
            result = int(client.eval(_ADMIT_AND_PUSH_LUA, len(script_keys), *script_keys, *args))
        if result < 0:
            raise QueueOverflowError(queue, -result - 1, capacities[queue])

    def _connparams(self, asynchronous: bool = False) -> Any:
        # kombu's Channel.close drops the channel's connection pools, then
        # restores the unacknowledged messages, which needs a pool again; after
        # a lost broker connection the kombu Connection may be gone by then, and
        # the AttributeError that follows stops the worker ("Unrecoverable
        # error") instead of letting it reconnect. A closed connection is a
        # connection error: Celery ignores it there and reconnects, and the
        # messages come back with the visibility timeout.
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection of this channel is closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]

    def _brpop_read(self, **options: Any) -> bool:
        # kombu 5.7's own, except that the popped item is checked before delivery
        # (kombu.transport.redis.Channel._brpop_read delivers `loads(item)` as is).
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:  # type: ignore[attr-defined]
                # if there's a ConnectionError, disconnect so the next
                # iteration will reconnect automatically.
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)  # type: ignore[attr-defined]
            self.connection._deliver(self._deliverable(item, dest), dest)
            return True
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _deliverable(self, item: bytes, lane: str) -> dict[str, Any]:
        """The item as kombu's payload, or wrapped when kombu could not build a message from it."""
        try:
            payload: dict[str, Any] = loads(bytes_to_str(item))
            self.Message(payload, channel=self)  # raises on anything but a kombu message
        except Exception as exc:
            return wrap_list_item(item if isinstance(item, bytes) else str(item).encode(), lane, exc)
        return payload


class Transport(kombu_redis.Transport):
    Channel = Channel


class SecureTransport(Transport):
    """The same transport for ``rediss://`` brokers; only its URI scheme differs."""


TRANSPORT = "storefront_jobs.transport:Transport"
SECURE_TRANSPORT = "storefront_jobs.transport:SecureTransport"


def transport_for(broker_url: str) -> str | None:
    """The transport serving ``broker_url``: ours for Redis, kombu's own for anything else."""
    scheme = broker_url.split("://", 1)[0]
    return {"redis": TRANSPORT, "rediss": SECURE_TRANSPORT}.get(scheme)


def register_uri_schemes() -> None:
    """Make connections on these transports write their URI as ``redis://``/``rediss://``.

    kombu writes a connection's URI with the transport's name as the scheme;
    Flower reads the broker's URI back to pick its queue-length client, and
    would not recognise ``storefront_jobs.transport:Transport://``. The entry
    only renames our transports in URIs; every other transport is untouched.
    """
    Connection.resolve_aliases.setdefault(TRANSPORT, "redis")
    Connection.resolve_aliases.setdefault(SECURE_TRANSPORT, "rediss")
