"""The ``storefront-jobs`` command line: one module per command, one group here.

Errors of storefront-jobs (bad settings, a full lane, Redis down) end the
command with a one-line message on stderr and exit code 2; usage errors are
click's own (also 2); success is 0.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from storefront_jobs.errors import StorefrontJobsError

EXIT_ERROR = 2


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StorefrontJobsError as exc:
            click.echo(f"storefront-jobs: error: {exc}", err=True)
            sys.exit(EXIT_ERROR)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="storefront-jobs")
def main() -> None:
    """Priority lanes, retries and a dead-letter queue for Celery on Redis."""


def _register() -> None:
    from storefront_jobs.cli import beat, capacity, dev, dlq, flower, queues, serve, worker  # noqa: PLC0415 - commands register themselves

    main.add_command(worker.worker)
    main.add_command(dev.dev)
    main.add_command(dlq.dlq)
    main.add_command(serve.serve)
    main.add_command(flower.flower)
    main.add_command(queues.queues)
    main.add_command(capacity.capacity)
    main.add_command(beat.beat)


_register()
