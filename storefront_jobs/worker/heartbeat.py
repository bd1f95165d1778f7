"""Worker pools announce themselves in Redis, so that who consumes which lane is known centrally.

Each pool's main process writes one field of the ``storefront:workers`` hash
every few seconds (its lanes, processes, running jobs, a timestamp) and
deletes it on a clean shutdown. A pool whose field stops changing is down:
metrics report it with ``celery_worker_up 0`` until it is forgotten an hour
later, so a crash stays visible long enough for an alert; a pool scaled down
on purpose disappears at once. Health checks, ``storefront-jobs queues`` and
the metrics all read the same hash.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import redis

from storefront_jobs.broker import clock, keys, scripts
from storefront_jobs.broker.accessors import active_request_count, processed_count
from storefront_jobs.broker.fetch import reservation_from_options
from storefront_jobs.worker.hooks import Hook, HookChain
from storefront_jobs.worker.reservation import Reservation

logger = logging.getLogger("storefront_jobs.worker.heartbeat")

HEARTBEAT_INTERVAL_S = 5.0
#: A pool silent for this long counts as down.
STALE_AFTER_S = 30.0
#: A pool silent for this long is forgotten.
FORGET_AFTER_S = 3600.0


@dataclasses.dataclass(frozen=True)
class WorkerBeat:
    """One pool's announcement: ``lanes`` it was started for, ``consuming`` now (minus paused ones)."""

    nodename: str
    lanes: list[str]
    concurrency: int
    active: int
    pid: int
    at_s: float
    consuming: list[str] = dataclasses.field(default_factory=list)
    #: Jobs finished (any outcome) since the pool started; `capacity` derives throughput from it.
    processed: int = 0
    #: Lanes the pool keeps ``reserved_processes`` processes for (``--reserve``); empty: none.
    reserved_lanes: list[str] = dataclasses.field(default_factory=list)
    reserved_processes: int = 0
    #: Whether those processes take other lanes' jobs while the reserved lanes are empty.
    lend_reserved: bool = False
    #: How far the pool's clock is ahead of Redis's (negative: behind), measured at the beat;
    #: ``at_s`` is on Redis's clock, so a drifting pool is neither taken for dead nor kept alive.
    clock_offset_s: float = 0.0

    def reserves(self, lane: str) -> int:
        """Processes this pool keeps for a group of lanes that includes ``lane``."""
        return self.reserved_processes if lane in self.reserved_lanes else 0

    @property
    def hostname(self) -> str:
        """The part after the ``@``, as celery-exporter labels workers."""
        return self.nodename.split("@", 1)[-1]

    def alive(self, now_s: float) -> bool:
        return now_s - self.at_s <= STALE_AFTER_S

    def encode(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> WorkerBeat | None:
        try:
            data = json.loads(raw)
            return cls(**data)
        except (ValueError, TypeError):
            return None


def read_workers(client: redis.Redis[bytes], now_s: float | None = None) -> list[WorkerBeat]:
    """Every known pool; forgets (deletes) the ones silent for longer than FORGET_AFTER_S.

    ``now_s`` is on Redis's clock, as the beats are (:func:`clock.redis_now_s`; read when not given).
    """
    now_s = clock.redis_now_s(client) if now_s is None else now_s
    beats = []
    for field, raw in client.hgetall(keys.WORKERS).items():
        beat = WorkerBeat.decode(raw)
        if beat is None or now_s - beat.at_s > FORGET_AFTER_S:
            client.hdel(keys.WORKERS, field)
            continue
        beats.append(beat)
    return sorted(beats, key=lambda b: b.nodename)


class Heartbeat:
    """Writes this pool's beat every HEARTBEAT_INTERVAL_S from a daemon thread."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        nodename: str,
        lanes: list[str],
        concurrency: int,
        active: Callable[[], int],
        *,
        consuming: Callable[[], list[str]] | None = None,
        processed: Callable[[], int] | None = None,
        on_beat: Callable[[], None] | None = None,
        reservation: Reservation | None = None,
    ) -> None:
        self._client = client
        self._nodename = nodename
        self._lanes = lanes
        self._concurrency = concurrency
        self._active = active
        self._consuming = consuming or (lambda: list(lanes))
        self._processed = processed or (lambda: 0)
        # Runs after each beat in the heartbeat thread (the pause reconciler).
        self._on_beat = on_beat
        self._reservation = reservation
        self._stop = threading.Event()
        self._drifting = False
        self._thread = threading.Thread(target=self._run, name="storefront-heartbeat", daemon=True)

    def beat(self) -> None:
        at_s, offset_s = clock.clock_offset_s(self._client)
        self._check_clock(offset_s)
        beat = WorkerBeat(
            nodename=self._nodename,
            lanes=self._lanes,
            concurrency=self._concurrency,
            active=self._active(),
            pid=os.getpid(),
            at_s=at_s,
            consuming=self._consuming(),
            processed=self._processed(),
            reserved_lanes=sorted(self._reservation.lanes) if self._reservation else [],
            reserved_processes=self._reservation.processes if self._reservation else 0,
            lend_reserved=bool(self._reservation and self._reservation.lend),
            clock_offset_s=round(offset_s, 3),
        )
        scripts.HEARTBEAT(self._client, [keys.WORKERS], [self._nodename, beat.encode()])

    def _check_clock(self, offset_s: float) -> None:
        """Says so when this pool's clock starts or stops drifting from Redis's (not at every beat)."""
        now_drifting = clock.drifting(offset_s)
        if now_drifting and not self._drifting:
            logger.warning(
                "this pool's clock is %.1f s %s Redis's: redelivery goes by Redis's clock, but this "
                "pool's log times and the ETAs of the retries it schedules are off by as much; fix "
                "its time sync (NTP)",
                abs(offset_s),
                "ahead of" if offset_s > 0 else "behind",
            )
        elif self._drifting and not now_drifting:
            logger.info("this pool's clock is within %.1f s of Redis's again", clock.DRIFT_WARN_S)
        self._drifting = now_drifting

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            try:
                self.beat()
                if self._on_beat is not None:
                    self._on_beat()
            except redis.RedisError as exc:
                # Redis may be restarting: keep beating, the next one will land.
                logger.warning("heartbeat not written: %s", exc)
            except Exception:
                logger.exception("heartbeat hook failed")

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove this pool: it is leaving on purpose."""
        self._stop.set()
        try:
            self._client.hdel(keys.WORKERS, self._nodename)
        except redis.RedisError as exc:
            logger.warning("could not remove the heartbeat of %s: %s", self._nodename, exc)


def pool_reservation(app: Any) -> Reservation | None:
    """The reservation a pool was started with (``--reserve``), or None."""
    reserved = reservation_from_options(app.conf.broker_transport_options)
    return reserved[0] if reserved else None


def consumed_lanes(app: Any) -> list[str]:
    """The lanes a pool's consumer consumes now."""
    return sorted(app.amqp.queues.consume_from)


class WorkerHeartbeat(Hook):
    """Announces the pool from worker_ready to shutdown; each beat also runs the chain's ``heartbeat``.

    Runs before :class:`~storefront_jobs.worker.pausing.LanePausing` in the
    chain: it records the lanes the pool was started for before paused ones
    are dropped.
    """

    def __init__(self) -> None:
        self._chain: HookChain | None = None
        self._configured: list[str] = []
        self._heartbeat: Heartbeat | None = None

    def attach(self, chain: HookChain) -> None:
        self._chain = chain

    def worker_init(self, worker: Any) -> None:
        self._configured = consumed_lanes(worker.app)

    def worker_ready(self, consumer: Any) -> None:
        app = consumer.app
        client = getattr(app, "redis", None)
        if client is None:
            return
        chain = self._chain
        controller = getattr(consumer, "controller", None)
        heartbeat = Heartbeat(
            client,
            consumer.hostname,
            self._configured or consumed_lanes(app),
            int(getattr(controller, "concurrency", 0) or 1),
            active_request_count,
            consuming=lambda: consumed_lanes(app),
            processed=processed_count,
            on_beat=(lambda: chain.emit("heartbeat", consumer)) if chain is not None else None,
            reservation=pool_reservation(app),
        )
        try:
            heartbeat.start()
        except Exception as exc:
            logger.warning("heartbeat not started: %s", exc)
            return
        self._heartbeat = heartbeat

    def worker_shutdown(self, worker: Any) -> None:
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.stop()
