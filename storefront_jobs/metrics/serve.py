"""A small HTTP endpoint for a registry: ``/metrics`` and ``/q/metrics``, optionally behind a bearer token."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from storefront_jobs.broker.accessors import active_request_count
from storefront_jobs.settings import Settings
from storefront_jobs.worker.reservation import Reservation

logger = logging.getLogger("storefront_jobs.metrics")

METRICS_PATHS = ("/metrics", "/q/metrics")

StartResponse = Callable[..., Any]


def token_matches(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries ``token``; compared in constant time."""
    if token is None:
        return True
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode())


def metrics_app(
    registry: CollectorRegistry, token: str | None
) -> Callable[[dict[str, Any], StartResponse], Any]:
    inner = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in METRICS_PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found; metrics are at /metrics and /q/metrics\n"]
        if not token_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")]
            )
            return [b"a bearer token is required\n"]
        result: Iterable[bytes] = inner(environ, start_response)
        return result

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # One line per scrape would drown the job logs.
        return


def serve_in_thread(
    registry: CollectorRegistry, port: int, token: str | None, host: str = "0.0.0.0"
) -> ThreadingWSGIServer | None:
    """Serve ``registry`` on ``host:port`` from a daemon thread; ``None`` if the port is taken."""
    try:
        server = make_server(
            host, port, metrics_app(registry, token), ThreadingWSGIServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        logger.error("metrics endpoint not started: cannot listen on %s:%s: %s", host, port, exc)
        return None
    thread = threading.Thread(target=server.serve_forever, name="storefront-metrics", daemon=True)
    thread.start()
    return server


class ActiveTasksCollector:
    """What a pool's main process knows now, read at scrape time.

    ``celery_worker_tasks_active`` (jobs running), and for a pool with reserved
    processes ``storefront_jobs_pool_reserved_processes{priority}`` (processes
    kept for a group of lanes that includes this one, as ``--reserve`` set it).
    """

    def __init__(self, hostname: str, reservation: Reservation | None = None) -> None:
        self._hostname = hostname
        self._reservation = reservation

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        family = GaugeMetricFamily(
            "celery_worker_tasks_active",
            "The number of tasks the worker is currently processing",
            labels=["hostname"],
        )
        family.add_metric([self._hostname], active_request_count())
        yield family
        if self._reservation is not None:
            reserved = GaugeMetricFamily(
                "storefront_jobs_pool_reserved_processes",
                "Processes this pool keeps for a group of lanes that includes this one (--reserve).",
                labels=["priority"],
            )
            for priority in self._reservation.priorities:
                reserved.add_metric([priority.label], self._reservation.processes)
            yield reserved


def serve_pool_metrics(
    settings: Settings, hostname: str, reservation: Reservation | None = None
) -> ThreadingWSGIServer | None:
    """In a pool's main process: serve the sum of the multiprocess files on METRICS_PORT (0: not at all)."""
    if not settings.metrics_port:
        return None
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415 - needs the dir set

    registry = CollectorRegistry(support_collectors_without_names=True)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(ActiveTasksCollector(hostname, reservation))
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    return serve_in_thread(registry, settings.metrics_port, token)
