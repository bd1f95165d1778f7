"""Flags shared by the ``storefront-jobs dlq`` commands, and how they are read."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from storefront_jobs.cli import dlq_output as out
from storefront_jobs.deadletter import build_filter
from storefront_jobs.deadletter.query import Filter

#: Exit code when a replay or purge is not confirmed (the whole table is in cli/dlq.py).
EXIT_NOT_CONFIRMED = 1


def filter_options(fn: Any) -> Any:
    options = [
        click.option(
            "--queue", "-q", metavar="NAME|all", help="Job queue (the runbook's queue_name), or all."
        ),
        click.option("--priority", "-p", metavar="PRIORITY", help="CRITICAL, HIGH, DEFAULT, LOW or BULK."),
        click.option("--task", metavar="NAME", help="Task name."),
        click.option("--tenant", metavar="ID", help="Tenant id."),
        click.option("--error", metavar="TYPE", help="Error type of the final failure, e.g. TimeoutError."),
        click.option(
            "--reason", metavar="REASON", help="exhausted, non_retryable, no_retry, worker_lost, ..."
        ),
        click.option("--since", metavar="TIME", help="Failed at or after: 15m, 2h, 7d, ISO 8601 or epoch s."),
        click.option("--until", metavar="TIME", help="Failed at or before (same forms as --since)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def parse_filter(kw: dict[str, Any]) -> Filter:
    names = ("queue", "priority", "task", "tenant", "error", "reason", "since", "until")
    return build_filter(**{n: kw.pop(n) for n in names}, now_s=time.time())


format_option = click.option(
    "--format", "fmt", type=click.Choice(out.FORMATS), default="table", show_default=True
)


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        out.note("not confirmed: no terminal to ask on; pass --yes")
        sys.exit(EXIT_NOT_CONFIRMED)
    if not click.confirm(question, default=False, err=True):
        out.note("nothing done")
        sys.exit(EXIT_NOT_CONFIRMED)


def parse_rate(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        rate = float(value.strip().lower().removesuffix("/s"))
    except ValueError:
        raise click.BadParameter("use N/s, e.g. 50/s", param_hint="--rate") from None
    if rate <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--rate")
    return rate
