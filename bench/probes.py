"""Where probe jobs of both kinds write down when they started.

Shared by ``bench.bare`` and ``bench.jobs``, so it imports neither Celery app.
"""

from __future__ import annotations

import functools
import json
import os
import time

import redis

#: Set by bench.core for every process it starts: the embedded Redis, never 6379.
BROKER_URL_VAR = "BENCH_BROKER_URL"
#: Redis list that probe jobs append their start records to.
STARTS_KEY = "bench:starts"


@functools.cache
def probe_redis() -> redis.Redis[bytes]:
    """One client per pool child; created on first use, so after the fork."""
    return redis.Redis.from_url(os.environ[BROKER_URL_VAR])


def record_start(n: int, enqueued_at: float) -> None:
    """Append when probe ``n`` started, next to when it was enqueued, for bench.core to read."""
    started_at = time.time()
    record = {"n": n, "enqueued_at": enqueued_at, "started_at": started_at}
    probe_redis().rpush(STARTS_KEY, json.dumps(record))
