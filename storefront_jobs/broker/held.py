"""A Redis connection kept by each thread that sends on it: the enqueue's hot path skips the pool.

redis-py checks a connection out of its pool and back in for every command
(a lock, a list, a liveness poll): a sixth of what a lean enqueue costs in
Python. :class:`HeldConnection` keeps one connection of a client's pool per
thread and process instead, and checks it the way the pool does before a
use (a connection the server closed, or one with unread data, is replaced),
so a Redis restart costs the next call a reconnect, not an error. Like
redis-py's ``health_check_interval``, the check is skipped for a connection
that answered within the last :data:`CHECK_AFTER_IDLE_S`: at high rates that
poll is a tenth of an enqueue. A connection the server closed within that
second fails the send, and :meth:`Script.call_packed` sends the call again the
ordinary way (reconnecting, as redis-py retries a connection error).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis

#: A connection that answered this recently is used without the liveness poll.
CHECK_AFTER_IDLE_S = 1.0


class HeldConnection:
    """One connection of ``client``'s pool per thread and process, for :meth:`Script.call_packed`."""

    def __init__(self, client: redis.Redis[Any]) -> None:
        self.client = client
        self._local = threading.local()

    def get(self) -> Any:
        """This thread's connection, connected and with nothing left to read."""
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            # After a fork the parent's socket is not ours to use (or close): a new connection.
            connection = local.connection = self.client.connection_pool.make_connection()
            local.pid = os.getpid()
            local.used_s = 0.0
        now_s = time.monotonic()
        if now_s - local.used_s < CHECK_AFTER_IDLE_S:
            return connection
        try:
            connection.connect()
            if connection.can_read():
                raise redis.ConnectionError("connection has data")
        except redis.TimeoutError:
            # Redis accepted the connection but does not answer (frozen): asking again would only
            # double the caller's wait (storefront_jobs.broker.clients).
            connection.disconnect()
            raise
        except (redis.ConnectionError, OSError):
            connection.disconnect()
            connection.connect()
        return connection

    def answered(self) -> None:
        """This thread's connection just answered: no liveness poll for a while."""
        self._local.used_s = time.monotonic()

    def drop(self) -> None:
        """Disconnect this thread's connection (after an error that may have left a reply unread)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.disconnect()
        self._local.used_s = 0.0
