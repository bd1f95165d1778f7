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

**Reliable fetch.** kombu takes a message out of its list with ``BRPOP`` and
records it as unacknowledged (``unacked``) only afterwards, in a second
command: a worker killed between the two loses the message for good. Here a
worker takes a message with one Lua call that pops it and records it as
unacknowledged in the same step, so from its push until its
acknowledgement a message is always in a lane or in ``unacked``, from where
the visibility timeout brings it back. A script cannot block, so an idle
worker blocks on its lanes' *doorbells* (``storefront:doorbell:<lane>``): every
push into a lane by this transport also pushes a token there. A token is
only a wake-up: after one, after a message, and after every second without
one (``brpop_timeout``), the worker runs the fetch script, which is what
takes messages; so a push that rings no bell (a producer on plain kombu)
is still taken, within a second when the worker is idle. Jobs, retries,
kombu's restores and DLQ replays all ring. The
script deletes the doorbells of lanes it finds empty, so stale tokens never
pile up. Only a channel that consumes nothing but lanes, with
acknowledgements (a worker's), fetches this way; any other consumer (a
control reply, a foreign queue) gets kombu's own BRPOP.

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
import time
import uuid
from queue import Empty
from typing import Any

from kombu import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from storefront_jobs import keys
from storefront_jobs.backpressure import enqueued_field
from storefront_jobs.errors import ConfigurationError, QueueOverflowError

#: Transport option holding ``{lane: capacity}``; set by create_app from QUEUE_CAPACITY__*.
CAPACITY_OPTION = "storefront_lane_capacity"

# KEYS: the lane's lists..., the overflow hash, the enqueued hash, the list to push to, the lane's doorbell.
# ARGV: capacity, priority label, enqueued-counter field, message, last doorbell index kept.
# Returns the depth before the push, or -(depth + 1) when the lane is full.
_ADMIT_AND_PUSH_LUA = """
local n = #KEYS - 4
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
redis.call('LPUSH', KEYS[n + 4], '1')
redis.call('LTRIM', KEYS[n + 4], 0, tonumber(ARGV[5]))
return depth
"""
_ADMIT_AND_PUSH_SHA = hashlib.sha1(_ADMIT_AND_PUSH_LUA.encode()).hexdigest()  # Redis names scripts by SHA-1

# Reliable fetch: takes the first message of the lists, in the order given, and
# records it as unacknowledged exactly as kombu's QoS.append would (the index
# scored with the fetch time; the message with an empty exchange and its
# queue as routing key, which kombu's restore resolves to that queue).
# KEYS: the lists..., the unacked hash, the unacked index, the doorbells...
# ARGV: the time (the worker's clock: kombu's restore compares with it), the
# number of lists, the queue of each list.
# Returns {list, message, 1 if recorded} or nil. A message without a delivery
# tag is not kombu's: returned unrecorded, for the worker to dead-letter.
_FETCH_LUA = """
local n = tonumber(ARGV[2])
for i = 1, n do
  local raw = redis.call('RPOP', KEYS[i])
  if raw then
    local ok, message = pcall(cjson.decode, raw)
    local tag = nil
    if ok and type(message) == 'table' and type(message.properties) == 'table' then
      tag = message.properties.delivery_tag
    end
    if type(tag) ~= 'string' then
      return {KEYS[i], raw, 0}
    end
    redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
    redis.call('HSET', KEYS[n + 1], tag, '[' .. raw .. ',"",' .. cjson.encode(ARGV[2 + i]) .. ']')
    return {KEYS[i], raw, 1}
  end
end
for i = n + 3, #KEYS do
  redis.call('DEL', KEYS[i])
end
return false
"""
_FETCH_SHA = hashlib.sha1(_FETCH_LUA.encode()).hexdigest()

_HOST = socket.gethostname()

#: Content type of a wrapped list item that was not a kombu message; no worker accepts it.
WRAPPED_CONTENT_TYPE = "application/x-storefront-undeliverable"
#: Headers of a wrapped item: why kombu could not read it, and the lane it was popped from.
WRAP_ERROR_HEADER = "x-storefront-error"
WRAP_LANE_HEADER = "x-storefront-lane"


def wrap_list_item(
    item: bytes, lane: str, error: BaseException, delivery_tag: str | None = None
) -> dict[str, Any]:
    """A kombu message carrying a list item that was not one, for the worker to dead-letter.

    ``delivery_tag``: the item's own tag when the fetch already recorded it as
    unacknowledged under that tag, so acknowledging the wrapper clears it.
    """
    return {
        "body": base64.b64encode(item).decode(),
        "content-type": WRAPPED_CONTENT_TYPE,
        "content-encoding": "binary",
        "headers": {WRAP_ERROR_HEADER: f"{type(error).__name__}: {error}"[:2_000], WRAP_LANE_HEADER: lane},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": delivery_tag or str(uuid.uuid4()),
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


def recorded_tags(channel: Any) -> set[str]:
    """Tags of the channel's fetched messages that the fetch script already recorded as unacknowledged."""
    tags: set[str] | None = channel.__dict__.get("_storefront_recorded")
    if tags is None:
        tags = channel.__dict__["_storefront_recorded"] = set()
    return tags


class QoS(kombu_redis.QoS):
    """kombu's, except that a message the fetch script recorded is not recorded a second time."""

    def append(self, message: Any, delivery_tag: str) -> None:
        recorded = recorded_tags(self.channel)
        if delivery_tag in recorded:
            recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # only the in-memory bookkeeping
            return
        super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS

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
        if "_publish_batch" in kwargs or keys.priority_of_lane(queue) is None:
            super()._put(queue, message, **kwargs)
            return
        if not needs_admission(queue, message, capacities):
            self._push_and_ring(queue, message)
            return
        priority = keys.priority_of_lane(queue)
        assert priority is not None  # every capacity key is a lane
        headers = message.get("headers") or {}
        field = enqueued_field(
            priority, str(headers.get("jobQueue") or "unknown"), str(headers.get("task")), _HOST
        )
        target = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))  # type: ignore[attr-defined]
        script_keys = [
            *keys.lane_lists(queue), keys.OVERFLOW_COUNTS, keys.ENQUEUED_COUNTS, target, keys.doorbell(queue)
        ]  # fmt: skip
        args = [capacities[queue], priority.label, field, dumps(message), keys.DOORBELL_MAX - 1]
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

    def _push_and_ring(self, queue: str, message: dict[str, Any]) -> None:
        """Push a message that needs no admission (a retry) into its lane and ring the lane's doorbell."""
        target = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))  # type: ignore[attr-defined]
        pipe = self._admission_client().pipeline(transaction=True)
        pipe.lpush(target, dumps(message))
        ring(pipe, queue)
        pipe.execute()

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        # kombu's restore (visibility timeout, warm shutdown, requeue) pushes the
        # message back; ring so an idle worker takes it now, not at its next look.
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)  # type: ignore[misc]
        for queue in self._lookup(exchange, routing_key):
            if keys.priority_of_lane(queue) is not None:
                ring(pipe, queue)

    # --- reliable fetch -------------------------------------------------------------------------
    # kombu's event loop calls _brpop_start to send a command on the channel's
    # poll connection when the worker can take a message, and _brpop_read when
    # the reply is readable. One command is outstanding at a time: the fetch
    # script (takes a message), a BRPOP on the doorbells (waits for a push), or,
    # for a channel that consumes anything but lanes with acknowledgements (a
    # control reply, a foreign queue), kombu's own BRPOP on the lists.

    #: Whether the next command is the fetch script; False only after a fetch found nothing.
    _fetch_next = True
    #: The command outstanding on the poll connection: "fetch", "wait", "brpop" or None.
    _polling: str | None = None
    #: Whether Redis knows the fetch script (it forgets it on a restart).
    _fetch_loaded = True

    def _no_ack_consumers(self) -> dict[str, str]:
        """Consumer tag -> queue of this channel's consumers that never acknowledge."""
        consumers: dict[str, str] | None = self.__dict__.get("_storefront_no_ack")
        if consumers is None:
            consumers = self.__dict__["_storefront_no_ack"] = {}
        return consumers

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str | None, **kwargs: Any
    ) -> Any:
        # kombu keeps no_ack inside its callback; the choice of fetch needs it.
        if no_ack and consumer_tag is not None:
            self._no_ack_consumers()[consumer_tag] = queue
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_cancel(self, consumer_tag: str) -> Any:
        self._no_ack_consumers().pop(consumer_tag, None)
        return super().basic_cancel(consumer_tag)

    def _fetches_reliably(self, queues: list[str]) -> bool:
        """Lanes consumed with acknowledgements (a worker's); a message without acks is never recorded."""
        no_ack = set(self._no_ack_consumers().values())
        return all(keys.priority_of_lane(q) is not None and q not in no_ack for q in queues)

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.global_keyprefix:
            raise ConfigurationError("storefront-jobs' Redis transport does not support global_keyprefix")
        queues: list[str] = self._queue_cycle.consume(len(self.active_queues))  # type: ignore[attr-defined]
        if not queues:
            return
        if not self._fetches_reliably(queues):
            super()._brpop_start(timeout)  # type: ignore[misc]
            self._polling = "brpop"
            return
        connection = self.client.connection
        if self._fetch_next:
            # kombu's BRPOP order: every queue at priority 0, then at 3, ...
            pairs = [(self._q_for_pri(q, pri), q) for pri in self.priority_steps for q in queues]  # type: ignore[attr-defined]
            script_keys = [*(name for name, _ in pairs), self.unacked_key, self.unacked_index_key]
            script_keys += [keys.doorbell(q) for q in queues]
            args = [repr(time.time()), len(pairs), *(q for _, q in pairs)]
            script = ["EVALSHA", _FETCH_SHA] if self._fetch_loaded else ["EVAL", _FETCH_LUA]
            command = [*script, len(script_keys), *script_keys, *args]
            self._polling = "fetch"
        else:
            wait_s = self.brpop_timeout if timeout is None else timeout
            command = ["BRPOP", *(keys.doorbell(q) for q in queues), wait_s or 0]
            self._polling = "wait"
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()
        connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        # kombu 5.7's own loop step, reading whichever command _brpop_start sent.
        polling, self._polling = self._polling, None
        try:
            try:
                reply = self.client.parse_response(
                    self.client.connection, "EVALSHA" if polling == "fetch" else "BRPOP", **options
                )
            except NoScriptError:
                # Redis restarted and forgot the script: send its text next time.
                self._fetch_loaded = False
                raise Empty() from None
            except self.connection_errors:  # type: ignore[attr-defined]
                # if there's a ConnectionError, disconnect so the next
                # iteration will reconnect automatically.
                self.client.connection.disconnect()
                raise
            if polling == "wait":
                # A doorbell token or a second without one: look into the lanes now.
                self._fetch_next = True
                raise Empty()
            if not reply:
                self._fetch_next = polling != "fetch"
                raise Empty()
            recorded = False
            if polling == "fetch":
                self._fetch_loaded = self._fetch_next = True
                raw_dest, item, recorded = reply
            else:
                raw_dest, item = reply
            dest = bytes_to_str(raw_dest).rsplit(self.sep, 1)[0]
            payload = self._deliverable(item, dest)
            if recorded:
                recorded_tags(self).add(payload["properties"]["delivery_tag"])
            self._queue_cycle.rotate(dest)  # type: ignore[attr-defined]
            self.connection._deliver(payload, dest)
            return True
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _deliverable(self, item: bytes, lane: str) -> dict[str, Any]:
        """The item as kombu's payload, or wrapped when kombu could not build a message from it."""
        payload: Any = None
        try:
            payload = loads(bytes_to_str(item))
            self.Message(payload, channel=self)  # raises on anything but a kombu message
        except Exception as exc:
            raw = item if isinstance(item, bytes) else str(item).encode()
            return wrap_list_item(raw, lane, exc, delivery_tag_of(payload))
        result: dict[str, Any] = payload
        return result


def delivery_tag_of(payload: Any) -> str | None:
    """The delivery tag a decoded item carries, if it is shaped enough like a kombu message to have one."""
    properties = payload.get("properties") if isinstance(payload, dict) else None
    tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
    return tag if isinstance(tag, str) else None


def ring(pipe: Any, lane: str) -> None:
    """Queue the commands that push one wake-up token for ``lane`` (kept to the newest DOORBELL_MAX)."""
    bell = keys.doorbell(lane)
    pipe.lpush(bell, 1)
    pipe.ltrim(bell, 0, keys.DOORBELL_MAX - 1)


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
