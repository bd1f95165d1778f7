"""The dead-letter queue: capture, a bounded store, replay, export/import, audit.

One model, :class:`DeadLetterStore`, sits under every surface: the worker's
capture (:mod:`.capture`), ``storefront-jobs dlq`` and the admin HTTP API.
The surfaces parse input, call the store (or :class:`Replayer`,
:mod:`.maintenance`) and format output; they hold no DLQ logic of their own.
"""

from __future__ import annotations

from storefront_jobs.deadletter.binding import replayer_for, store_for
from storefront_jobs.deadletter.errors import (
    DeadLetterError,
    DeadLetterNotFound,
    InvalidFilterError,
    MalformedImportError,
)
from storefront_jobs.deadletter.memory import MemoryDeadLetterStore
from storefront_jobs.deadletter.query import Filter, build_filter
from storefront_jobs.deadletter.record import DeadLetter
from storefront_jobs.deadletter.replay import Replayer, ReplayReport, ReplayRequest
from storefront_jobs.deadletter.store import DeadLetterStore, RedisDeadLetterStore

__all__ = [
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterNotFound",
    "DeadLetterStore",
    "Filter",
    "InvalidFilterError",
    "MalformedImportError",
    "MemoryDeadLetterStore",
    "RedisDeadLetterStore",
    "ReplayReport",
    "ReplayRequest",
    "Replayer",
    "build_filter",
    "replayer_for",
    "store_for",
]
