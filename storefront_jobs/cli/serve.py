"""``storefront-jobs serve``: the admin HTTP API (DLQ endpoints, ``/q/health``, OpenAPI) under uvicorn."""

from __future__ import annotations

import click

from storefront_jobs.broker.clients import check_tls
from storefront_jobs.settings import load_settings


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 in a container)."
)
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port (default: STOREFRONT_JOBS_ADMIN_PORT, 8080)."
)
@click.option("--log-level", default="warning", show_default=True, help="uvicorn's access/error log level.")
def serve(host: str, port: int | None, log_level: str) -> None:
    """Serve the admin HTTP API: DLQ list/export/replay/delete with bearer tokens, and /q/health."""
    import uvicorn  # noqa: PLC0415 - only this command needs a web server

    from storefront_jobs.admin.app import create_admin_app  # noqa: PLC0415
    from storefront_jobs.admin.limits import SERVER_HEAD_BYTES  # noqa: PLC0415
    from storefront_jobs.application import get_default_app  # noqa: PLC0415

    settings = load_settings()
    if not settings.admin_tokens:
        click.echo(
            "storefront-jobs serve: no STOREFRONT_JOBS_ADMIN_TOKENS configured; /admin answers 401",
            err=True,
        )
    app = get_default_app()
    check_tls(app.redis, settings)
    api = create_admin_app(app)
    uvicorn.run(
        api,
        host=host,
        port=port or settings.admin_port,
        log_level=log_level.lower(),
        # h11, whose head limit we set, so an oversized header reaches HeaderSizeLimit (431)
        http="h11",
        h11_max_incomplete_event_size=SERVER_HEAD_BYTES,
    )
