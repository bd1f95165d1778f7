"""The consuming side of storefront-jobs' Redis transport: reliable fetch.

kombu takes a message out of its list with ``BRPOP`` and records it as
unacknowledged (``unacked``) only afterwards, in a second command: a worker
killed between the two loses the message for good. Here a worker takes a
message with one Lua call (``scripts/fetch.lua``) that pops it and records it
as unacknowledged in the same step, so from its push until its
acknowledgement a message is always in a lane or in ``unacked``, from where
the visibility timeout brings it back, scored with Redis's clock
(:mod:`storefront_jobs.broker.qos`). The kombu methods overridden here are
listed in :mod:`storefront_jobs.broker.internals`.

A script cannot block, so an idle worker blocks on its lanes' *doorbells*
(``storefront:doorbell:<lane>``): every push into a lane by storefront-jobs
also pushes a token there (jobs and retries in :mod:`storefront_jobs.broker.transport`,
kombu's restores here, DLQ replays in their MOVE script). A token is only a
wake-up: after one, after a message, and after every second without one
(``brpop_timeout``), the worker runs the fetch script, which is what takes
messages; so a push that rings no bell (a producer on plain kombu) is still
taken, within a second when the worker is idle. The script deletes the
doorbells of lanes it finds empty, so stale tokens never pile up. Only a
channel that consumes nothing but lanes, with acknowledgements (a worker's),
fetches this way; any other consumer (a control reply, a foreign queue) gets
kombu's own BRPOP.

Where a lane's first list is, the script also takes the lane's tenant lists,
tenant by tenant (a fair share per tenant, :mod:`storefront_jobs.broker.tenants`),
so a lane with tenants waiting costs no extra round trip.

A pool started with reserved processes (``--reserve``,
:mod:`storefront_jobs.worker.reservation`) narrows the lanes of each fetch to
the ones the reservation leaves open. While lower lanes are closed, the
worker also blocks on its own *wake* list (``storefront:wake:<channel>``),
into which the acknowledgement of a lower-lane job pushes a token: the
process it held is free, and the next fetch may take a lower lane's job at
once instead of after the second-long wait.

It also keeps the worker alive when a lane holds something that is not a
kombu message (``LPUSH p2.default garbage``): kombu would raise out of the
worker's event loop, the worker would exit and the item would be gone. The
channel wraps such an item into a message no worker accepts, carrying the
item, and delivers it; the worker's consumer stores it in the DLQ as
``undecodable`` (:mod:`storefront_jobs.deadletter.undecodable`).
"""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError, ResponseError

from storefront_jobs.broker import keys, scripts, tenants
from storefront_jobs.broker.accessors import reserved_request_lanes
from storefront_jobs.broker.qos import QoS
from storefront_jobs.errors import ConfigurationError
from storefront_jobs.worker.reservation import Reservation, lanes_open

#: Content type of a wrapped list item that was not a kombu message; no worker accepts it.
WRAPPED_CONTENT_TYPE = "application/x-storefront-undeliverable"
#: Headers of a wrapped item: why kombu could not read it, and the lane it was popped from.
WRAP_ERROR_HEADER = "x-storefront-error"
WRAP_LANE_HEADER = "x-storefront-lane"
#: Transport option of a pool with reserved processes (written by ``configure_pool``): priorities,
#: processes, lend, and the pool's concurrency.
RESERVATION_OPTION = "storefront_reservation"
#: Seconds a wake list outlives its last token: a worker that died leaves nothing behind for long.
WAKE_TTL_S = 60


def reservation_from_options(options: dict[str, Any] | None) -> tuple[Reservation, int] | None:
    """The reservation and pool concurrency a transport option describes, or None."""
    described = (options or {}).get(RESERVATION_OPTION)
    if not described:
        return None
    from storefront_jobs.jobs.priorities import Priority  # noqa: PLC0415 - only for pools with a reservation

    reservation = Reservation(
        tuple(Priority.parse(p) for p in described["priorities"]),
        int(described["processes"]),
        bool(described.get("lend", False)),
    )
    return reservation, int(described["concurrency"])


def reservation_option(reservation: Reservation, concurrency: int) -> dict[str, Any]:
    """The transport option describing ``reservation`` on a pool of ``concurrency`` processes."""
    return {
        "priorities": [p.name for p in reservation.priorities],
        "processes": reservation.processes,
        "lend": reservation.lend,
        "concurrency": concurrency,
    }


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


class FetchingChannel(kombu_redis.Channel):
    """kombu's Redis channel, taking messages with the fetch script (the transport's Channel extends it).

    kombu's event loop calls _brpop_start to send a command on the channel's
    poll connection when the worker can take a message, and _brpop_read when
    the reply is readable. One command is outstanding at a time: the fetch
    script (takes a message), a BRPOP on the doorbells (waits for a push), or,
    for a channel that consumes anything but lanes with acknowledgements (a
    control reply, a foreign queue), kombu's own BRPOP on the lists.
    """

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Whether the next command is the fetch script; False only after a fetch found nothing.
        self._fetch_next = True
        #: The command outstanding on the poll connection: "fetch", "wait", "brpop" or None.
        self._polling: str | None = None
        #: Whether Redis knows the fetch script (it forgets it on a restart).
        self._fetch_loaded = True
        #: Consumer tag -> queue of the consumers that never acknowledge (kombu keeps no_ack in a closure).
        self._no_ack_consumers: dict[str, str] = {}
        #: Tags of fetched messages the script already recorded as unacknowledged, until QoS.append.
        self._recorded_tags: set[str] = set()
        #: The list an acknowledgement pushes to while lower lanes are closed by the reservation.
        self._wake_key = keys.wake(uuid.uuid4().hex)
        #: Whether the command outstanding waits with lower lanes closed (an ack must wake it).
        self._gated = False
        super().__init__(*args, **kwargs)
        client = self.connection.client
        self._reservation = reservation_from_options(client.transport_options if client is not None else None)
        #: The fetch script's (tenant, jobs per turn) pairs: settings.tenant_fairness.weights.
        self._tenant_weights = tenants.weight_args(client.transport_options if client is not None else None)
        if self.global_keyprefix:
            # The scripts name their keys directly, as do the admission and the DLQ.
            raise ConfigurationError("storefront-jobs' Redis transport does not support global_keyprefix")

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str | None, **kwargs: Any
    ) -> Any:
        # kombu keeps no_ack inside its callback; the choice of fetch needs it.
        if no_ack and consumer_tag is not None:
            self._no_ack_consumers[consumer_tag] = queue
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_cancel(self, consumer_tag: str) -> Any:
        self._no_ack_consumers.pop(consumer_tag, None)
        return super().basic_cancel(consumer_tag)

    def _fetches_reliably(self, queues: list[str]) -> bool:
        """Lanes consumed with acknowledgements (a worker's); a message without acks is never recorded."""
        no_ack = set(self._no_ack_consumers.values())
        return all(keys.priority_of_lane(q) is not None and q not in no_ack for q in queues)

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues: list[str] = self._queue_cycle.consume(len(self.active_queues))  # type: ignore[attr-defined]
        if not queues:
            return
        if not self._fetches_reliably(queues):
            super()._brpop_start(timeout)  # type: ignore[misc]
            self._polling = "brpop"
            return
        connection = self.client.connection
        lanes = self._open_lanes(queues)
        self._gated = len(lanes) < len(queues)
        wake = [self._wake_key] if self._gated else []
        if not lanes:
            # Every open lane is paused: wait for a process to free up (or the second to pass).
            self._send_poll(connection, "wait", ["BRPOP", *wake, self.brpop_timeout or 1])
            return
        queues = lanes
        if self._fetch_next:
            # kombu's BRPOP order: every queue at priority 0, then at 3, ...
            pairs = [(self._q_for_pri(q, pri), q) for pri in self.priority_steps for q in queues]  # type: ignore[attr-defined]
            script_keys = [*(name for name, _ in pairs), self.unacked_key, self.unacked_index_key]
            script_keys += [keys.doorbell(q) for q in queues]
            args = [len(pairs), *(q for _, q in pairs)]
            # Each lane's tenant lists, taken in turn at its first list (storefront_jobs.broker.tenants).
            fair_keys, fair_args = tenants.fetch_part(queues, self._tenant_weights)
            script_keys += fair_keys
            args += fair_args
            command = scripts.FETCH.command(script_keys, args, cached=self._fetch_loaded)
            self._polling = "fetch"
        else:
            wait_s = self.brpop_timeout if timeout is None else timeout
            command = ["BRPOP", *(keys.doorbell(q) for q in queues), *wake, wait_s or 0]
            self._polling = "wait"
        self._send_poll(connection, self._polling, command)

    def _send_poll(self, connection: Any, polling: str, command: list[Any]) -> None:
        self._polling = polling
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()
        connection.send_command(*command)

    def _open_lanes(self, queues: list[str]) -> list[str]:
        """The lanes this fetch may take from: all of them, unless the pool's reservation closes some."""
        if self._reservation is None:
            return queues
        reservation, concurrency = self._reservation
        return lanes_open(queues, reservation, concurrency=concurrency, busy_lanes=reserved_request_lanes())

    def _wake_target(self) -> tuple[str, int] | None:
        """The wake list and its time to live, when the outstanding wait has lower lanes closed: a job's
        acknowledgement ends that wait (QoS.ack)."""
        return (self._wake_key, WAKE_TTL_S) if self._gated else None

    def _restore_targets(
        self, payload: dict[str, Any], exchange: str, routing_key: str
    ) -> tuple[list[str], list[str], dict[str, Any]]:
        """Where a restore pushes a held message, as kombu's restore does: the lists of its queues (by
        its message priority), the lanes' doorbells, and the message marked redelivered."""
        with contextlib.suppress(KeyError, TypeError):
            payload["headers"]["redelivered"] = True
            payload["properties"]["delivery_info"]["redelivered"] = True
        priority = self._get_message_priority(payload, reverse=False)
        queues = list(self._lookup(exchange, routing_key))
        lists = [self._q_for_pri(queue, priority) for queue in queues]  # type: ignore[attr-defined]
        bells = [keys.doorbell(queue) for queue in queues if keys.priority_of_lane(queue) is not None]
        return lists, bells, payload

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
            except ResponseError as exc:
                if polling != "fetch" or not scripts.FETCH.falls_back(exc):
                    raise
                # A Redis before 7 refused the script's flags: its plain text next time.
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
                if polling == "fetch":
                    self._fetch_next = False
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
                self._recorded_tags.add(payload["properties"]["delivery_tag"])
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

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        # kombu's restore (visibility timeout, warm shutdown, requeue) pushes the
        # message back; ring so an idle worker takes it now, not at its next look.
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)  # type: ignore[misc]
        for queue in self._lookup(exchange, routing_key):
            if keys.priority_of_lane(queue) is not None:
                scripts.RING(pipe, [keys.doorbell(queue)], [keys.DOORBELL_LAST_INDEX])


def delivery_tag_of(payload: Any) -> str | None:
    """The delivery tag a decoded item carries, if it is shaped enough like a kombu message to have one."""
    properties = payload.get("properties") if isinstance(payload, dict) else None
    tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
    return tag if isinstance(tag, str) else None
