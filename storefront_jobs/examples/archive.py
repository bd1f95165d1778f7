"""BULK jobs (best effort, never retried): big, slow, restartable housekeeping.

A BULK job's first failure is final and goes to the dead-letter queue for a
person to look at, because retrying a half-done migration batch blindly can
do more harm than waiting for someone to replay it. Each job handles one
batch, so a replay redoes one batch, not the whole archive.
"""

from __future__ import annotations

import re

from storefront_jobs import Priority, priority_task
from storefront_jobs.examples.support import external_call, require, require_date, require_int, require_text

MAX_BATCH_SIZE = 5_000
_MIGRATION_RE = re.compile(r"^\d{4}_[a-z0-9_]+$")


@priority_task(Priority.BULK, queue="archive.orders")
def archive_orders(before: str, batch_size: int) -> int:
    """Move up to ``batch_size`` orders placed before ``before`` to cold storage; returns the count."""
    require_date(before, "before")
    require_int(batch_size, "batch_size", 1, MAX_BATCH_SIZE)
    external_call("archive-bucket", 0.1 + batch_size * 0.0001)
    return batch_size


@priority_task(Priority.BULK, queue="data.migrations")
def migrate_data(migration: str, batch: int, batch_size: int) -> int:
    """Run batch number ``batch`` of a data migration such as ``0042_split_addresses``; returns rows."""
    require_text(migration, "migration")
    require(
        bool(_MIGRATION_RE.match(migration)),
        f"migration must look like 0042_split_addresses, got {migration!r}",
    )
    require_int(batch, "batch", 0, 10_000_000)
    require_int(batch_size, "batch_size", 1, MAX_BATCH_SIZE)
    external_call("orders-db", 0.1 + batch_size * 0.0001)
    return batch_size
