"""The dead-letter queue: capture, a bounded store, replay, export/import, audit.

One model, :class:`DeadLetterStore`, sits under every surface: the worker's
capture (:mod:`.capture`), ``storefront-jobs dlq`` and the admin HTTP API.
The surfaces parse input, call the store (or :class:`Replayer`,
:mod:`.maintenance`) and format output; they hold no DLQ logic of their own.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from celery import Celery

from storefront_jobs.deadletter.errors import (
    DeadLetterError,
    DeadLetterNotFound,
    InvalidFilterError,
    MalformedImportError,
)
from storefront_jobs.deadletter.memory import MemoryDeadLetterStore
from storefront_jobs.deadletter.messages import KombuMessageBuilder
from storefront_jobs.deadletter.query import Filter, build_filter
from storefront_jobs.deadletter.record import DeadLetter
from storefront_jobs.deadletter.replay import GateRoom, Replayer, ReplayReport, ReplayRequest
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

_STORES: weakref.WeakKeyDictionary[Celery, DeadLetterStore] = weakref.WeakKeyDictionary()


def _storefront_app(app: Celery) -> Any:
    from storefront_jobs.application import StorefrontCelery  # noqa: PLC0415 - the app module imports us

    if not isinstance(app, StorefrontCelery):
        raise TypeError("the DLQ needs an app built by storefront_jobs.create_app()")
    return app


def store_for(app: Celery) -> DeadLetterStore:
    """The DLQ store of an app: on the broker's Redis, bounded by the app's DLQ settings."""
    store = _STORES.get(app)
    if store is None:
        sf = _storefront_app(app)
        dlq = sf.storefront_settings.dlq
        store = RedisDeadLetterStore(sf.redis, max_entries=dlq.max_entries, retention_s=dlq.retention_s)
        _STORES[app] = store
    return store


@contextlib.contextmanager
def replayer_for(app: Celery) -> Iterator[Replayer]:
    """A replayer on the app's broker that respects its lane capacities; one per thread."""
    sf = _storefront_app(app)
    lanes = GateRoom(sf.capacity_gate, sf.storefront_settings.capacity, sf.redis)
    builder = KombuMessageBuilder(app)
    try:
        yield Replayer(store_for(app), builder, lanes)
    finally:
        builder.close()
