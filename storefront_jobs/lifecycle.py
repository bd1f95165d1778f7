"""What a worker pool's main process does around its own life: metrics and heartbeat.

``worker_init`` (before the pool forks)  start counting in multiprocess files and serve them
``worker_ready`` (consuming)            announce the pool and its lanes every few seconds
``worker_shutdown``                     withdraw the announcement, stop the endpoint
"""

from __future__ import annotations

import logging
from typing import Any

from storefront_jobs.heartbeat import Heartbeat, describe_active
from storefront_jobs.settings import get_settings

logger = logging.getLogger("storefront_jobs.worker")

_running: dict[str, Any] = {}


def on_worker_init(sender: Any = None, **_: Any) -> None:
    from storefront_jobs.metrics import start_pool_metrics  # noqa: PLC0415 - workers only

    start_pool_metrics(get_settings(), str(getattr(sender, "hostname", "") or ""))


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    from celery.worker import state  # noqa: PLC0415

    app = getattr(sender, "app", None)
    client = getattr(app, "redis", None)
    if sender is None or app is None or client is None:
        return
    lanes = sorted(app.amqp.queues.consume_from)
    controller = getattr(sender, "controller", None)
    concurrency = int(getattr(controller, "concurrency", 0) or 1)
    heartbeat = Heartbeat(client, sender.hostname, lanes, concurrency, describe_active(state))
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
