"""storefront-jobs tasks of the tenant fairness benchmark (``python -m bench.fairness``).

Declared on every app (``priority_task`` without ``app``), so that importing
this module builds none: bench.fairness sends them through apps of its own,
with fairness on or off, and its pools load them with ``--imports bench.tenant_jobs``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.probes import probe_redis
from storefront_jobs import Priority, current_tenant, priority_task
from storefront_jobs.jobs import envelope

NOOP = "bench.tenant_jobs.noop"
TIMED = "bench.tenant_jobs.timed"
#: Redis list the timed jobs append their start records to.
STARTS_KEY = "bench:fair:starts"


@priority_task(Priority.DEFAULT, queue="bench.tenants", name=NOOP)
def noop() -> None:
    """Does nothing: what the rate phase measures is the platform's cost per job, fetch included."""


@priority_task(Priority.DEFAULT, queue="bench.tenants", name=TIMED, bind=True)
def timed(self: Any, n: int, sleep_s: float) -> None:
    """Records its tenant, enqueue and start times, then takes ``sleep_s``."""
    record = {
        "tenant": current_tenant(),
        "n": n,
        "enqueued_at": float(envelope.read(self.request, envelope.ENQUEUED_AT)),
        "started_at": time.time(),
    }
    probe_redis().rpush(STARTS_KEY, json.dumps(record))
    time.sleep(sleep_s)
