"""``storefront-jobs dev``: the whole platform on one machine (the work is in storefront_jobs.devserver)."""

from __future__ import annotations

from pathlib import Path

import click

from storefront_jobs.devserver import DevOptions, parse_rate, run_dev


def _rate(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--demo/--no-demo", default=True, help="Send the demo workload of example jobs (default: on).")
@click.option(
    "--rate",
    metavar="N/s",
    default="5/s",
    callback=_rate,
    show_default=True,
    help="Demo jobs sent per second.",
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Share of demo jobs that fail at least once (transient or bad input).",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes per pool.",
)
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds of workload."
)
@click.option("--seed", type=int, help="Seed of the demo workload, to repeat a run.")
@click.option(
    "--beat/--no-beat", default=True, help="Run Celery beat with the example schedule (default: on)."
)
@click.option(
    "--admin/--no-admin",
    default=True,
    help="Run the admin API (storefront-jobs serve) on STOREFRONT_JOBS_ADMIN_PORT or a free port.",
)
@click.option(
    "--flower/--no-flower",
    default=True,
    help="Run Flower on STOREFRONT_JOBS_FLOWER_PORT or a free port, behind basic auth (default: on).",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where child process logs go (default: a new temporary directory).",
)
def dev(
    demo: bool,
    rate: float,
    failure_rate: float,
    concurrency: int,
    duration: float | None,
    seed: int | None,
    beat: bool,
    admin: bool,
    flower: bool,
    log_dir: Path | None,
) -> None:
    """Run the platform locally: Redis, a worker pool per priority, beat, admin API, Flower, a demo.

    Without STOREFRONT_JOBS_BROKER_URL an embedded redis-server is started.
    Without STOREFRONT_JOBS_ADMIN_TOKENS or STOREFRONT_JOBS_FLOWER_BASIC_AUTH, credentials are made for this
    run and printed with every URL. Ctrl-C stops everything it started; a
    second Ctrl-C stops without waiting.
    """
    run_dev(
        DevOptions(
            demo=demo,
            rate_per_s=rate,
            concurrency=concurrency,
            duration_s=duration,
            failure_rate=failure_rate,
            seed=seed,
            log_dir=log_dir,
            beat=beat,
            admin=admin,
            flower=flower,
        )
    )
