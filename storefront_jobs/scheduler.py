"""The periodic-job scheduler (Celery beat) and the runbook's switch for it.

``storefront-jobs beat`` runs Celery beat with :class:`StorefrontScheduler`,
which records each tick in Redis so ``/q/health`` can say whether the
scheduler runs. ``STOREFRONT_JOBS_SCHEDULER_ENABLED=false`` (the runbook's
scheduler flag) keeps beat from sending anything: the process stays up,
reports itself disabled and waits, so a Kubernetes Deployment does not
crash-loop while the flag is off.

Run exactly one scheduler per deployment: two would send every periodic job
twice.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import redis
from celery.beat import PersistentScheduler

from storefront_jobs.broker import keys

#: How often a running scheduler refreshes its record.
TICK_RECORD_INTERVAL_S = 5.0
#: A scheduler whose last recorded tick is older than this is not running.
SCHEDULER_STALE_AFTER_S = 60.0


def record(client: redis.Redis[bytes], *, enabled: bool, now_s: float | None = None) -> None:
    client.hset(keys.SCHEDULER, mapping={"enabled": int(enabled), "tick": now_s or time.time()})


def scheduler_state(client: redis.Redis[bytes], now_s: float | None = None) -> dict[str, Any]:
    """``{"enabled": bool | None, "running": bool, "lastTickAgeS": float | None}`` for health checks."""
    now_s = time.time() if now_s is None else now_s
    raw = client.hgetall(keys.SCHEDULER)
    if not raw:
        return {"enabled": None, "running": False, "lastTickAgeS": None}
    enabled = raw.get(b"enabled") == b"1"
    age = now_s - float(raw.get(b"tick", b"0"))
    return {
        "enabled": enabled,
        "running": enabled and age <= SCHEDULER_STALE_AFTER_S,
        "lastTickAgeS": round(age, 3),
    }


class StorefrontScheduler(PersistentScheduler):
    """Celery's persistent scheduler that also says, in Redis, that it is alive."""

    _recorded_at = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now - self._recorded_at >= TICK_RECORD_INTERVAL_S:
            self._recorded_at = now
            # If Redis is briefly away, health shows the scheduler as stale; scheduling goes on.
            with contextlib.suppress(redis.RedisError):
                record(self.app.redis, enabled=True)  # type: ignore[attr-defined]
        interval: float = super().tick(*args, **kwargs)
        return min(interval, TICK_RECORD_INTERVAL_S)
