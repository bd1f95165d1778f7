"""Redis's clock: the one clock that decides redelivery and liveness.

Workers, producers and the admin service run on machines whose clocks may
disagree. Anything that compares a time written by one process with a time
read by another (a message's fetch time with a sweep's deadline, a pool's
heartbeat with a health check) reads Redis's clock (``TIME``) instead, so a
drifting clock decides nothing. A pool still measures how far its own clock
is off (:func:`clock_offset_s`) and says so when that is more than
:data:`DRIFT_WARN_S`: its log lines, and the ETAs of the retries it
schedules, are in its own time.
"""

from __future__ import annotations

import time
from typing import Any

#: A pool whose clock is off Redis's by more than this says so (log, /q/health, metrics). NTP keeps
#: hosts within milliseconds; a second is a clock nobody keeps.
DRIFT_WARN_S = 1.0


def redis_now_s(client: Any) -> float:
    """Redis's clock (``TIME``), in seconds since the epoch."""
    return from_time_reply(client.time())


def from_time_reply(reply: Any) -> float:
    """Seconds since the epoch from a ``TIME`` reply (seconds, microseconds)."""
    seconds, micros = reply
    return float(seconds) + float(micros) / 1_000_000


def clock_offset_s(client: Any) -> tuple[float, float]:
    """(Redis's time, how far this process's clock is ahead of it), the round trip's midpoint taken."""
    before_s = time.time()
    server_s = redis_now_s(client)
    after_s = time.time()
    return server_s, (before_s + after_s) / 2 - server_s


def drifting(offset_s: float) -> bool:
    return abs(offset_s) > DRIFT_WARN_S
