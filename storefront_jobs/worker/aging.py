"""The aging sweeper: in every pool's main process, one of them at a time sweeps the lanes.

Every pool runs one, so that aging goes on as long as any pool is up,
whatever lanes the pools consume. Each sweeper wakes every
``AGING__SWEEP_INTERVAL_S`` and tries to hold the aging lease
(``storefront:aging:lease``, :mod:`storefront_jobs.broker.lease`): the holder
sweeps every lane with aging on (:func:`storefront_jobs.broker.aging.sweep`),
the others only try again next time. A holder that dies stops renewing, and
another pool takes over after ``LEASE_INTERVALS`` intervals; a pool that
stops on purpose gives the lease up at once. Two sweeps that overlap anyway
(a holder frozen past its lease) are safe: each promotion is atomic and
finds its job gone if the other sweep moved it first.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from storefront_jobs.broker import keys
from storefront_jobs.broker.aging import SweepResult, aging_lanes, sweep
from storefront_jobs.broker.lease import Lease
from storefront_jobs.settings import Settings
from storefront_jobs.worker.hooks import Hook

logger = logging.getLogger("storefront_jobs.worker.aging")

#: Sweep intervals a lease lives without renewal: a missed renewal or two does not hand it over.
LEASE_INTERVALS = 3


def lease_ttl_s(sweep_interval_s: float) -> float:
    """Time to live of the aging lease for a sweep every ``sweep_interval_s``."""
    return LEASE_INTERVALS * sweep_interval_s


class AgingSweeper:
    """Holds the aging lease and sweeps while it does, from a daemon thread."""

    def __init__(self, client: redis.Redis[Any], settings: Settings, nodename: str) -> None:
        self._client = client
        self._settings = settings
        interval_s = settings.aging.sweep_interval_s
        self._interval_s = interval_s
        self.lease = Lease(client, keys.AGING_LEASE, nodename, lease_ttl_s(interval_s))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storefront-aging", daemon=True)

    def tick(self) -> SweepResult | None:
        """One turn: sweep if this pool holds (or takes) the lease; None when another pool does."""
        if not self.lease.hold():
            return None
        result = sweep(self._client, self._settings, time.time())
        if result.promoted or result.blocked:
            logger.info(
                "Jobs promoted",
                extra={
                    "promoted": {f"{a.name}->{b.name}": n for (a, b), n in sorted(result.promoted.items())},
                    "blocked": {f"{a.name}->{b.name}": n for (a, b), n in sorted(result.blocked.items())},
                },
            )
        return result

    def _run(self) -> None:
        while True:
            try:
                self.tick()
            except redis.RedisError as exc:
                # Redis may be restarting: the next turn tries again, the lease meanwhile expires.
                logger.warning("aging sweep not run: %s", exc)
            except Exception:
                logger.exception("aging sweep failed")
            if self._stop.wait(self._interval_s):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sweeping and give the lease up, so another pool sweeps at its next turn."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        try:
            self.lease.release()
        except redis.RedisError as exc:
            logger.warning("could not release the aging lease: %s", exc)


class Aging(Hook):
    """Runs an :class:`AgingSweeper` from worker_ready to shutdown, when any lane has aging on."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sweeper: AgingSweeper | None = None

    def worker_ready(self, consumer: Any) -> None:
        client = getattr(consumer.app, "redis", None)
        if client is None or not aging_lanes(self._settings.aging):
            return
        sweeper = AgingSweeper(client, self._settings, str(consumer.hostname))
        sweeper.start()
        self._sweeper = sweeper

    def worker_shutdown(self, worker: Any) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.stop()
