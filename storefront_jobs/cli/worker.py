"""``storefront-jobs worker``: a Celery worker pool for some lanes, drained in priority order."""

from __future__ import annotations

import click

from storefront_jobs.broker import keys
from storefront_jobs.jobs.priorities import Priority, parse_priorities
from storefront_jobs.settings import load_settings


def worker_argv(
    priorities: list[Priority],
    *,
    concurrency: int | None,
    pool: str | None,
    loglevel: str,
    hostname: str | None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The ``celery worker`` arguments of a pool consuming ``priorities``."""
    lanes = [keys.lane_name(p) for p in sorted(priorities)]
    name = hostname or "-".join(p.label for p in sorted(priorities)) + "@%h"
    argv = ["worker", "-Q", ",".join(lanes), "-n", name, "-l", loglevel]
    if concurrency is not None:
        argv += ["-c", str(concurrency)]
    if pool is not None:
        argv += ["-P", pool]
    return argv + list(extra)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--priorities",
    "-p",
    metavar="LIST",
    help="Lanes to consume, e.g. CRITICAL,HIGH (default: WORKER_PRIORITY_FILTER, else all).",
)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Pool processes (default: CPU count).")
@click.option("--pool", "-P", help="Celery pool implementation (prefork, threads, solo, ...).")
@click.option("--loglevel", "-l", help="Log level (default: STOREFRONT_JOBS_LOG_LEVEL).")
@click.option("--hostname", "-n", help="Node name (default: <lanes>@<host>).")
@click.option(
    "--imports",
    metavar="MODULES",
    help="Comma-separated modules holding tasks (overrides STOREFRONT_JOBS_IMPORTS).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    priorities: str | None,
    concurrency: int | None,
    pool: str | None,
    loglevel: str | None,
    hostname: str | None,
    imports: str | None,
) -> None:
    """Run a worker pool for some priority lanes; other options go to `celery worker`."""
    from storefront_jobs.application import configure_pool, get_default_app  # noqa: PLC0415

    settings = load_settings()
    try:
        lanes = parse_priorities(priorities) if priorities else list(settings.worker_priority_filter)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--priorities") from None
    modules = [m.strip() for m in imports.split(",") if m.strip()] if imports is not None else None
    app = get_default_app()
    configure_pool(app, lanes, settings, modules)
    argv = worker_argv(
        lanes,
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel or settings.log_level,
        hostname=hostname,
        extra=tuple(ctx.args),
    )
    app.worker_main(argv)
