"""``GET /q/health``: is the broker reachable (which primary, behind Sentinel), which lanes have workers.

Workers are read from their heartbeats in Redis (one ``HGETALL``), not by a
broadcast to every worker: a health check must be cheap enough to be probed
every few seconds, and must not wait on a slow worker.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from storefront_jobs.broker import clients, clock, keys
from storefront_jobs.scheduler import scheduler_state
from storefront_jobs.worker import pausing
from storefront_jobs.worker.heartbeat import WorkerBeat, read_workers


def workers_per_lane(beats: list[WorkerBeat], now_s: float) -> dict[str, int]:
    """For each lane, the pools alive (recent heartbeat) that consume it now."""
    counts = dict.fromkeys(keys.LANES.values(), 0)
    for beat in beats:
        if not beat.alive(now_s):
            continue
        for lane in beat.consuming:
            if lane in counts:
                counts[lane] += 1
    return counts


def worker_clocks(beats: list[WorkerBeat], now_s: float) -> dict[str, Any]:
    """How far the live pools' clocks are off Redis's: the largest offset, and the pools beyond the bound."""
    alive = [b for b in beats if b.alive(now_s)]
    return {
        "maxOffsetS": max((abs(b.clock_offset_s) for b in alive), default=0.0),
        "boundS": clock.DRIFT_WARN_S,
        "drifting": {b.nodename: b.clock_offset_s for b in alive if clock.drifting(b.clock_offset_s)},
    }


def health(app: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when the broker answers, 503 when it does not."""
    started = time.monotonic()
    now_s = time.time()
    settings_enabled = bool(app.storefront_settings.scheduler_enabled)
    try:
        client = app.redis
        # TIME is the ping: heartbeats are on Redis's clock (storefront_jobs.broker.clock).
        redis_s = clock.redis_now_s(client)
        broker: dict[str, Any] = {"reachable": True, "latencyS": round(time.monotonic() - started, 6)}
        # Behind Sentinel: the primary the nodes name now (a failover changes it).
        broker["primary"] = clients.primary_address(client)
        beats = read_workers(client, redis_s)
        lanes: dict[str, int] | None = workers_per_lane(beats, redis_s)
        clocks: dict[str, Any] | None = worker_clocks(beats, redis_s)
        paused: list[str] | None = sorted(pausing.paused_lanes(client))
        scheduler = scheduler_state(client, now_s)
    except redis.RedisError as exc:
        broker = {"reachable": False, "error": str(exc)}
        lanes, paused, clocks = None, None, None
        scheduler = {"enabled": None, "running": False, "lastTickAgeS": None}
    body = {
        "status": "UP" if broker["reachable"] else "DOWN",
        "broker": broker,
        "workersPerLane": lanes,
        "pausedLanes": paused,
        "workerClocks": clocks,
        # `enabled` is this service's SCHEDULER_ENABLED; `beat` is what the running scheduler reports.
        "scheduler": {"enabled": settings_enabled, "beat": scheduler},
    }
    return (200 if broker["reachable"] else 503), body
