"""kombu's Redis transport, with the lane capacity check inside the publish and a reliable fetch.

A job's first publish into a lane is one Lua call (``scripts/admit_and_push.lua``)
that sums the lane's lists, refuses the job when the lane is full (counting
the overflow), and otherwise counts the enqueue and pushes the message. One
round trip, like plain kombu, and atomic: with any number of producers a lane
never holds more than its capacity, and a refused job was never pushed.

Only first publishes into a storefront lane are checked: retries (Celery's
``retries`` header above 0) were accepted once and are pushed as kombu
would, and so is anything published to another queue or collected into a
caller's publish batch (the DLQ replay checks capacity itself). The refusal is a
:class:`QueueOverflowError` raised out of kombu's publish, which does not
retry it (it is neither a connection nor a channel error).

In a lane with a fair share per tenant (``settings.tenant_fairness``), a first
publish or a retry of a job with a ``tenantId`` goes to its tenant's list
instead, by the same kind of script (``scripts/tenants/``), and ``_size`` and
``_purge`` count and delete those lists too (:mod:`storefront_jobs.broker.tenants`).

Workers take messages with a reliable fetch (:mod:`storefront_jobs.broker.fetch`,
which :class:`Channel` extends); every push here also rings the lane's
doorbell there (a retry's push is ``scripts/push.lua``). The kombu methods
overridden here are listed in :mod:`storefront_jobs.broker.internals`.

Select it with ``broker_transport = "storefront_jobs.broker.transport:Transport"``
(:func:`storefront_jobs.application.create_app` does, for ``redis://``,
``rediss://`` and ``sentinel://`` brokers).
"""

from __future__ import annotations

import time
from typing import Any

from kombu import Connection
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from storefront_jobs.broker import keys, lanepush, scripts, tenants
from storefront_jobs.broker.fetch import FetchingChannel
from storefront_jobs.broker.replicas import Quorum
from storefront_jobs.jobs import envelope

#: Transport option holding ``{lane: capacity}``; set by create_app from QUEUE_CAPACITY__*.
CAPACITY_OPTION = "storefront_lane_capacity"


def needs_admission(queue: str, message: dict[str, Any], capacities: dict[str, int]) -> bool:
    """Whether this publish is a job's first entry into a storefront lane."""
    if queue not in capacities:
        return False
    headers = message.get("headers") or {}
    return not int(headers.get(envelope.RETRIES) or 0)


class Channel(FetchingChannel):
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
        if keys.priority_of_lane(queue) is None:
            super()._put(queue, message, **kwargs)
            return
        if "_publish_batch" in kwargs:
            # Every push into a lane records when: aging measures a job's wait in the lane it waits in.
            envelope.stamp_lane_entry(message, time.time())
            super()._put(queue, message, **kwargs)
            return
        target = self._target_list(queue, message)
        tenant = self._fair_tenant(queue, message, target)
        quorum = self._quorum()
        if not needs_admission(queue, message, capacities):
            lanepush.push(
                self._admission_client(), queue, message, target=target, tenant=tenant, quorum=quorum
            )
            return
        lanepush.admit_and_push(
            self._admission_client(),
            queue,
            message,
            capacity=capacities[queue],
            target=target,
            tenant=tenant,
            quorum=quorum,
        )

    def _quorum(self) -> Quorum:
        client = self.connection.client
        return Quorum.from_options(client.transport_options if client is not None else None)

    def _fair_tenant(self, queue: str, message: dict[str, Any], target: str) -> str | None:
        """The tenant whose list this push goes to, or None for the lane's own lists.

        Only a lane this process publishes fairly (``settings.tenant_fairness``),
        a job with a tenant, and kombu's priority 0: a foreign producer's message
        priority keeps its sub-list, which the fetch takes after every lane's first list.
        """
        if target != queue:
            return None
        client = self.connection.client
        return lanepush.fair_tenant(client.transport_options if client is not None else None, queue, message)

    def _size(self, queue: str) -> int:
        # kombu counts the queue's lists (queue_declare's message count) in a MULTI, which a Redis over
        # maxmemory refuses whatever it holds: a worker could not start there, nor Celery's path
        # publish. The same counts in a plain pipeline; a fair lane holds its tenant lists too.
        client = self._admission_client()
        pipe = client.pipeline(transaction=False)
        for step in self.priority_steps:
            pipe.llen(self._q_for_pri(queue, step))  # type: ignore[attr-defined]
        size = sum(int(n) for n in pipe.execute())
        if keys.priority_of_lane(queue) is None:
            return size
        return size + tenants.waiting(client, queue)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        # kombu records a binding in a MULTI (a lane) or a script without allow-oom (a control reply
        # queue, which expires), both refused over maxmemory: a worker could not start on a full
        # Redis. The same records as one script a full Redis runs (scripts/bind.lua).
        if self.typeof(exchange).type == "fanout":
            self._fanout_queues[queue] = (exchange, routing_key.replace("#", "*"))  # type: ignore[attr-defined]
        table = self.keyprefix_queue % (exchange,)
        member = self.sep.join([routing_key or "", pattern or "", queue or ""])
        if queue in self._expires:  # type: ignore[attr-defined]
            script_keys = [table, self._script_binding_deadlines]  # type: ignore[attr-defined]
            args = [member, "expires", exchange, self._binding_ttl(queue)]  # type: ignore[attr-defined]
        else:
            script_keys = [table, self.keyprefix_binding_permanent % (exchange,)]  # type: ignore[attr-defined]
            args = [member, "permanent"]
        with self.conn_or_acquire() as client:
            scripts.BIND(client, script_keys, args)

    def _purge(self, queue: str) -> int:
        # `celery purge`: kombu deletes the lane's lists; the tenant lists and their counts go too.
        purged = int(super()._purge(queue))
        if keys.priority_of_lane(queue) is None:
            return purged
        return purged + tenants.purge(self._admission_client(), queue)

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

    def _target_list(self, queue: str, message: dict[str, Any]) -> str:
        """The list of ``queue`` that kombu pushes this message onto (by its message priority)."""
        name: str = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))  # type: ignore[attr-defined]
        return name


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The same channel on the primary that kombu's Sentinel channel finds (``sentinel://`` brokers).

    kombu's Sentinel channel only changes where the connection pool points
    (the primary of ``master_name``, asked of the Sentinel nodes for each new
    connection); everything this transport adds runs on that pool unchanged.
    """


class Transport(kombu_redis.Transport):
    Channel = Channel


class SecureTransport(Transport):
    """The same transport for ``rediss://`` brokers; only its URI scheme differs."""


class SentinelTransport(Transport):
    """The same transport for ``sentinel://`` brokers: Sentinel's port, and the Sentinel channel."""

    Channel = SentinelChannel
    default_port = kombu_redis.SentinelTransport.default_port


TRANSPORT = "storefront_jobs.broker.transport:Transport"
SECURE_TRANSPORT = "storefront_jobs.broker.transport:SecureTransport"
SENTINEL_TRANSPORT = "storefront_jobs.broker.transport:SentinelTransport"
_SCHEMES = {"redis": TRANSPORT, "rediss": SECURE_TRANSPORT, "sentinel": SENTINEL_TRANSPORT}


def transport_for(broker_url: str) -> str | None:
    """The transport serving ``broker_url``: ours for Redis and Sentinel, kombu's own for anything else."""
    scheme = broker_url.split("://", 1)[0]
    return _SCHEMES.get(scheme)


def register_uri_schemes() -> None:
    """Make connections on these transports write their URI as ``redis://``/``rediss://``.

    kombu writes a connection's URI with the transport's name as the scheme;
    Flower reads the broker's URI back to pick its queue-length client, and
    would not recognise ``storefront_jobs.broker.transport:Transport://``. The entry
    only renames our transports in URIs; every other transport is untouched.
    """
    for scheme, transport in _SCHEMES.items():
        Connection.resolve_aliases.setdefault(transport, scheme)
