"""``/q/metrics`` and ``/metrics`` on the admin service: the broker-side series.

The registry holds only :class:`BrokerCollector`, which reads Redis at
scrape time; the worker pools serve their own counters on ``METRICS_PORT``.
Both are scraped by one Prometheus job (see docs/metrics.md), and no series
is served by both.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from storefront_jobs.admin.problems import ProblemError
from storefront_jobs.admin.strict import accepts
from storefront_jobs.metrics.broker import BrokerCollector
from storefront_jobs.metrics.serve import token_matches


def broker_registry(celery_app: Any, dlq_stats: Any = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(celery_app.redis, celery_app.storefront_settings, dlq_stats))
    return registry


def metrics_router(celery_app: Any, dlq_stats: Any = None) -> APIRouter:
    """Prometheus exposition; asks for ``METRICS_TOKEN`` as a bearer token when one is set."""
    registry = broker_registry(celery_app, dlq_stats)
    secret = celery_app.storefront_settings.metrics_token
    token = secret.get_secret_value() if secret is not None else None
    router = APIRouter(tags=["metrics"])

    def exposition(request: Request) -> Response:
        if not token_matches(request.headers.get("authorization"), token):
            raise ProblemError(
                401,
                "Unauthorized",
                "a bearer token is required for metrics",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    for path in ("/q/metrics", "/metrics"):
        router.add_api_route(
            path,
            exposition,
            methods=["GET"],
            response_class=Response,
            # name[]: prometheus-client's filter of the exposition by metric name
            dependencies=[Depends(accepts("name[]"))],
            summary="Prometheus metrics read from the broker",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        )
    return router
