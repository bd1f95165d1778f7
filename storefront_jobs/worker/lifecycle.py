"""What a worker pool's main process does around its own life: metrics, heartbeat, pauses.

``worker_init`` (before the pool forks)  start counting in multiprocess files and serve them;
                                        drop paused lanes before anything is fetched
``worker_ready`` (consuming)            announce the pool every few seconds, and on each
                                        beat apply pauses and resumes (:mod:`.pausing`)
``worker_shutdown``                     withdraw the announcement, stop the endpoint
"""

from __future__ import annotations

import logging
from typing import Any

from storefront_jobs.settings import get_settings
from storefront_jobs.worker import pausing
from storefront_jobs.worker.heartbeat import Heartbeat, describe_active, describe_processed

logger = logging.getLogger("storefront_jobs.worker")

_running: dict[str, Any] = {}


def on_worker_init(sender: Any = None, **_: Any) -> None:
    from storefront_jobs.metrics import start_pool_metrics  # noqa: PLC0415 - workers only

    start_pool_metrics(get_settings(), str(getattr(sender, "hostname", "") or ""))
    app = getattr(sender, "app", None)
    client = getattr(app, "redis", None)
    if app is None or client is None:
        return
    queues = app.amqp.queues
    _running["configured"] = sorted(queues.consume_from)
    try:
        paused = pausing.paused_lanes(client)
    except Exception as exc:
        # Redis down at start: the first heartbeat reconciles once it is back.
        logger.warning("could not read paused lanes at start: %s", exc)
        return
    skipped = sorted(set(_running["configured"]) & paused)
    if skipped:
        queues.deselect(skipped)
        logger.warning("lanes paused, not consuming them until resumed: %s", ", ".join(skipped))


def _consuming(app: Any) -> list[str]:
    return sorted(app.amqp.queues.consume_from)


def _apply_pauses(consumer: Any) -> None:
    """Make the consumer consume its configured lanes minus the paused ones."""
    app = consumer.app
    change = pausing.reconcile(
        _running.get("configured", []), _consuming(app), pausing.paused_lanes(app.redis)
    )
    for lane in change.cancel:
        logger.warning("pausing lane %s", lane)
        consumer.call_soon(consumer.cancel_task_queue, lane)
    for lane in change.add:
        logger.warning("resuming lane %s", lane)
        consumer.call_soon(consumer.add_task_queue, lane)


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    from celery.worker import state  # noqa: PLC0415

    app = getattr(sender, "app", None)
    client = getattr(app, "redis", None)
    if sender is None or app is None or client is None:
        return
    controller = getattr(sender, "controller", None)
    concurrency = int(getattr(controller, "concurrency", 0) or 1)
    heartbeat = Heartbeat(
        client,
        sender.hostname,
        _running.get("configured") or _consuming(app),
        concurrency,
        describe_active(state),
        consuming=lambda: _consuming(app),
        processed=describe_processed(state),
        on_beat=lambda: _apply_pauses(sender),
    )
    try:
        heartbeat.start()
    except Exception as exc:
        logger.warning("heartbeat not started: %s", exc)
        return
    _running["heartbeat"] = heartbeat


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    from storefront_jobs.metrics import stop_pool_metrics  # noqa: PLC0415

    heartbeat = _running.pop("heartbeat", None)
    if heartbeat is not None:
        heartbeat.stop()
    stop_pool_metrics()
