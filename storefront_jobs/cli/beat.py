"""``storefront-jobs beat``: the periodic-job scheduler, honouring SCHEDULER_ENABLED."""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
from pathlib import Path

import click

from storefront_jobs.logs import configure_logging
from storefront_jobs.settings import load_settings

logger = logging.getLogger("storefront_jobs.scheduler")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--loglevel", "-l", help="Log level (default: STOREFRONT_JOBS_LOG_LEVEL).")
@click.option(
    "--schedule-file",
    "-s",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where beat keeps the last run times (default: a file in the temp directory).",
)
@click.pass_context
def beat(ctx: click.Context, loglevel: str | None, schedule_file: Path | None) -> None:
    """Run Celery beat for the periodic jobs; idles when STOREFRONT_JOBS_SCHEDULER_ENABLED=false."""
    from storefront_jobs import scheduler  # noqa: PLC0415
    from storefront_jobs.application import get_default_app  # noqa: PLC0415

    settings = load_settings()
    app = get_default_app()
    level = loglevel or settings.log_level
    if not settings.scheduler_enabled:
        configure_logging(level, settings.log_format)
        scheduler.record(app.redis, enabled=False)
        logger.warning("scheduler disabled (SCHEDULER_ENABLED=false): no periodic job will be sent")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.wait(scheduler.TICK_RECORD_INTERVAL_S):
            scheduler.record(app.redis, enabled=False)
        return
    schedule = schedule_file or Path(tempfile.gettempdir()) / "storefront-jobs-beat-schedule"
    argv = ["beat", "-S", "storefront_jobs.scheduler:StorefrontScheduler", "-l", level, "-s", str(schedule)]
    app.start([*argv, *ctx.args])
