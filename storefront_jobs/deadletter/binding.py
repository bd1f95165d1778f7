"""The DLQ of an app: its store and a replayer, for the worker's capture, the CLI and the admin API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from storefront_jobs.deadletter.messages import KombuMessageBuilder
from storefront_jobs.deadletter.replay import Replayer
from storefront_jobs.deadletter.store import DeadLetterStore


def _storefront_app(app: Any) -> Any:
    # Duck-typed: the app module builds the store and imports this package.
    if getattr(app, "storefront_settings", None) is None:
        raise TypeError("the DLQ needs an app built by storefront_jobs.create_app()")
    return app


def store_for(app: Any) -> DeadLetterStore:
    """The DLQ store of an app: on the broker's Redis, bounded by the app's DLQ settings."""
    store: DeadLetterStore = _storefront_app(app).dead_letter_store
    return store


@contextlib.contextmanager
def replayer_for(app: Any) -> Iterator[Replayer]:
    """A replayer on the app's broker that respects its lane capacities; one per thread."""
    sf = _storefront_app(app)
    builder = KombuMessageBuilder(app)
    try:
        yield Replayer(store_for(app), builder, sf.capacity_gate)
    finally:
        builder.close()
