"""``storefront-jobs capacity``: recommended replicas per lane from live depth and measured throughput."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from storefront_jobs.broker import clock, keys
from storefront_jobs.broker.snapshot import read_lanes
from storefront_jobs.cli import broker
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.scaling import (
    DEFAULT_MIN_REPLICAS,
    LanePlan,
    plan_lane,
    throughput_per_worker_per_minute,
)
from storefront_jobs.worker.heartbeat import WorkerBeat, read_workers


def _processed_by_pool(beats: list[WorkerBeat], lane: str) -> dict[str, int]:
    return {b.nodename: b.processed for b in beats if lane in b.consuming}


def _measure(window_s: float) -> None:
    """Wait out the measuring window, saying so: a progress bar on a terminal, one line otherwise."""
    click.echo(f"storefront-jobs: measuring pool throughput for {window_s:g} s (--window) ...", err=True)
    console = Console(stderr=True)
    columns = (TextColumn("measuring"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("measuring", total=window_s)
        deadline = time.monotonic() + window_s
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.25, left))
            bar.update(task, completed=window_s - max(0.0, deadline - time.monotonic()))


def _row(plan: LanePlan) -> dict[str, Any]:
    return {
        "lane": keys.lane_name(plan.priority),
        "priority": plan.priority.name,
        "waiting": plan.depth,
        "targetLatencyS": plan.priority.target_latency_s,
        "jobsPerWorkerPerMinute": plan.jobs_per_worker_per_minute,
        "currentReplicas": plan.current_replicas,
        "formulaReplicas": plan.formula_replicas,
        "minReplicas": plan.min_replicas,
        "recommendedReplicas": plan.recommended_replicas,
        "note": plan.note,
        "scaleUpDepth": plan.threshold,
        "action": plan.action,
    }


@click.command()
@click.option("--priority", "-p", "only", help="One lane only (default: every lane).")
@click.option("--depth", type=click.IntRange(min=0), help="Waiting jobs to plan for (default: live depth).")
@click.option(
    "--jobs-per-worker-per-minute",
    "rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Throughput of one worker pool (default: measured from pool heartbeats over --window).",
)
@click.option(
    "--window", type=click.FloatRange(min=0), default=10.0, show_default=True, help="Seconds to measure."
)
@click.option(
    "--min-replicas",
    type=click.IntRange(min=0),
    default=DEFAULT_MIN_REPLICAS,
    show_default=True,
    help="Fewest replicas to recommend for a lane with a latency target (0 where KEDA scales to zero).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def capacity(
    only: str | None, depth: int | None, rate: float | None, window: float, min_replicas: int, fmt: str
) -> None:
    """ceil(depth / jobs_per_worker_per_minute / target_latency_minutes), per lane."""
    from storefront_jobs.application import get_default_app  # noqa: PLC0415

    try:
        priorities = [Priority.parse(only)] if only else list(Priority)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--priority") from None
    if depth is not None and not only:
        raise click.BadParameter("--depth needs --priority (it is one lane's depth)", param_hint="--depth")
    app = get_default_app()
    broker.announce(app)
    client = app.redis
    lanes = read_lanes(client)
    # Heartbeats are on Redis's clock (storefront_jobs.broker.clock).
    now = clock.redis_now_s(client)
    before = [b for b in read_workers(client, now) if b.alive(now)]
    measured: dict[Priority, float | None] = {}
    if rate is None and window > 0 and before:
        _measure(window)
        after_time = clock.redis_now_s(client)
        after = [b for b in read_workers(client, after_time) if b.alive(after_time)]
        for p in priorities:
            lane = keys.lane_name(p)
            measured[p] = throughput_per_worker_per_minute(
                _processed_by_pool(before, lane), _processed_by_pool(after, lane), after_time - now
            )
    plans = [
        plan_lane(
            p,
            depth if depth is not None else lanes[p].depth,
            rate if rate is not None else measured.get(p),
            sum(1 for b in before if keys.lane_name(p) in b.consuming),
            min_replicas,
        )
        for p in priorities
    ]
    rows = [_row(plan) for plan in plans]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "lane", "waiting", "target", "jobs/worker/min", "replicas", "recommended", "threshold", "action"
    )
    for row in rows:
        target = row["targetLatencyS"]
        table.add_row(
            row["lane"],
            str(row["waiting"]),
            f"{target:g} s" if target is not None else "best effort",
            f"{row['jobsPerWorkerPerMinute']:.1f}" if row["jobsPerWorkerPerMinute"] else "-",
            str(row["currentReplicas"]),
            str(row["recommendedReplicas"]) if row["recommendedReplicas"] is not None else "-",
            str(row["scaleUpDepth"]),
            row["action"] + (f"; {row['note']}" if row["note"] else ""),
        )
    Console(width=160).print(table)
