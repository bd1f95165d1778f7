"""A lease in Redis: a job for one process at a time among many that could do it.

Every worker pool runs an aging sweeper (:mod:`storefront_jobs.worker.aging`),
but one sweep at a time is enough; the lease says whose turn it is. It is a
string key holding the holder's name with a time to live: a process takes it
when nobody holds it (``SET`` only if absent) and keeps it by renewing it
before it expires, each in one script (``scripts/lease/hold.lua``) so that a
former holder whose lease expired meanwhile cannot renew the new holder's.
A holder that dies stops renewing, and another process takes over after one
time to live; one that stops on purpose gives the lease up at once.

A lease is no lock for correctness: a holder paused for longer than the time
to live (a stopped VM) may act once more while another holds it. What the
holder does must stay safe then, as the aging sweep is (each promotion is one
atomic script that finds its job gone if another sweeper moved it first).
"""

from __future__ import annotations

from typing import Any

import redis

from storefront_jobs.broker import scripts


class Lease:
    """One lease (``key``) as seen by one would-be holder (``holder``, e.g. a worker node name)."""

    def __init__(self, client: redis.Redis[Any], key: str, holder: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError(f"a lease needs a positive time to live, not {ttl_s}")
        self._client = client
        self.key = key
        self.holder = holder
        self.ttl_s = ttl_s

    def hold(self) -> bool:
        """Take the lease if nobody holds it, renew it if this holder does; True while it is ours."""
        ttl_ms = max(1, round(self.ttl_s * 1000))
        return bool(scripts.LEASE_HOLD(self._client, [self.key], [self.holder, ttl_ms]))

    def release(self) -> bool:
        """Give the lease up if this holder still holds it; True if it did."""
        return bool(scripts.LEASE_RELEASE(self._client, [self.key], [self.holder]))

    def holder_now(self) -> str | None:
        """Who holds the lease now, if anyone."""
        raw = self._client.get(self.key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
