"""storefront-jobs tasks of the benchmark: the same bodies as ``bench.bare``, declared as storefront jobs.

Loaded by storefront workers through ``--imports bench.jobs`` and by the
storefront producer. Importing this module builds storefront's default app
from the ``STOREFRONT_JOBS_*`` environment that bench.core sets.
"""

from __future__ import annotations

import time
from typing import Any

from bench.probes import record_start
from storefront_jobs import Priority, priority_task
from storefront_jobs.jobs import envelope


@priority_task(Priority.DEFAULT, queue="bench.noop")
def noop() -> None:
    """Does nothing: what is measured is the platform's cost per job."""


@priority_task(Priority.BULK, queue="bench.flood")
def sleep_bulk(sleep_s: float) -> None:
    time.sleep(sleep_s)


@priority_task(Priority.CRITICAL, queue="bench.probe", bind=True)
def probe(self: Any, n: int) -> None:
    """A CRITICAL job; its enqueue time is the ``enqueuedAt`` header storefront stamps at publish."""
    record_start(n, float(envelope.read(self.request, envelope.ENQUEUED_AT)))
