"""``storefront-jobs worker``: a Celery worker pool for some lanes, drained in priority order."""

from __future__ import annotations

import os

import click

from storefront_jobs.broker import keys
from storefront_jobs.broker.clients import check_tls
from storefront_jobs.jobs.priorities import Priority, parse_priorities
from storefront_jobs.settings import load_settings
from storefront_jobs.worker.reservation import Reservation, parse_reservation


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
@click.option(
    "--reserve",
    metavar="LANES=N",
    help="Keep N processes for these lanes, e.g. CRITICAL,HIGH=1 (default: STOREFRONT_JOBS_WORKER_RESERVE).",
)
@click.option(
    "--lend-reserved/--no-lend-reserved",
    default=None,
    help="Let reserved processes take other lanes' jobs while the reserved lanes are empty "
    "(default: STOREFRONT_JOBS_WORKER_LEND_RESERVED).",
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
    reserve: str | None,
    lend_reserved: bool | None,
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
    lend = settings.worker_lend_reserved if lend_reserved is None else lend_reserved
    reservation = _reservation(reserve, settings.worker_reserve, lend=lend)
    pool_size = concurrency or app.conf.worker_concurrency or os.cpu_count() or 1
    try:
        configure_pool(
            app,
            lanes,
            settings,
            modules,
            reservation=reservation,
            concurrency=pool_size if reservation else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reserve") from None
    # A certificate that does not verify stops the pool here, with the setting to fix, not at a job.
    check_tls(app.redis, settings)
    argv = worker_argv(
        lanes,
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel or settings.log_level,
        hostname=hostname,
        extra=tuple(ctx.args),
    )
    app.worker_main(argv)


def _reservation(option: str | None, setting: Reservation | None, *, lend: bool) -> Reservation | None:
    """The pool's reservation: ``--reserve`` over the setting, with lending as chosen."""
    if option is not None:
        try:
            return parse_reservation(option, lend=lend) if option.strip() else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--reserve") from None
    if setting is None:
        return None
    return Reservation(setting.priorities, setting.processes, lend)
