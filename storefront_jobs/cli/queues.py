"""``storefront-jobs queues``: the lanes at a glance, and pausing or resuming one on every worker."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from storefront_jobs.broker import keys
from storefront_jobs.broker.snapshot import read_lanes
from storefront_jobs.cli import broker
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.worker import pausing
from storefront_jobs.worker.heartbeat import WorkerBeat, read_workers


def _priority(ctx: click.Context, param: click.Parameter, value: str) -> Priority:
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def lane_rows(app: Any, now_s: float) -> list[dict[str, Any]]:
    """One row per lane: waiting, reserved, oldest age, capacity, paused, consumers, processes kept."""
    client = app.redis
    lanes = read_lanes(client)
    paused = pausing.paused_lanes(client)
    alive = [beat for beat in read_workers(client, now_s) if beat.alive(now_s)]
    rows = []
    for priority, state in lanes.items():
        lane = keys.lane_name(priority)
        consuming = [b for b in alive if lane in b.consuming]
        rows.append(
            {
                "lane": lane,
                "priority": priority.name,
                "waiting": state.depth,
                "reserved": state.reserved,
                "oldestAgeS": round(state.oldest_age_s(now_s), 3),
                "capacity": app.storefront_settings.capacity(priority),
                "paused": lane in paused,
                "consumers": len(consuming),
                "processes": sum(b.concurrency for b in consuming),
                # Processes pools keep for a group of lanes that includes this one (--reserve).
                "keptProcesses": sum(b.reserves(lane) for b in consuming),
            }
        )
    return rows


@click.group(invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def queues(ctx: click.Context, fmt: str) -> None:
    """Show every lane: waiting, reserved, oldest age, capacity, paused, consumers, processes kept."""
    from storefront_jobs.application import get_default_app  # noqa: PLC0415

    label = broker.announce(get_default_app())
    if ctx.invoked_subcommand is not None:
        return
    rows = lane_rows(get_default_app(), time.time())
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "lane",
        "waiting",
        "reserved",
        "oldest age",
        "capacity",
        "paused",
        "consumers",
        "processes",
        "kept",
        title=f"lanes on {label}",
    )
    for row in rows:
        table.add_row(
            row["lane"],
            str(row["waiting"]),
            str(row["reserved"]),
            f"{row['oldestAgeS']:.1f} s",
            str(row["capacity"]),
            "yes" if row["paused"] else "no",
            str(row["consumers"]),
            str(row["processes"]),
            str(row["keptProcesses"]) if row["keptProcesses"] else "-",
        )
    Console().print(table)


def _pools_for(lane: str, beats: list[WorkerBeat]) -> list[str]:
    return [beat.nodename for beat in beats if lane in beat.lanes]


@queues.command()
@click.argument("priority", callback=_priority)
def pause(priority: Priority) -> None:
    """Stop consuming PRIORITY's lane on every worker, until `resume`; survives worker restarts."""
    from storefront_jobs.application import get_default_app  # noqa: PLC0415

    app = get_default_app()
    lane = keys.lane_name(priority)
    newly = pausing.pause(app.redis, priority)
    # The broadcast makes it near-instant; pools that miss it catch up at their next heartbeat.
    replies = app.control.cancel_consumer(lane, reply=True, timeout=1.0) or []
    state = "paused" if newly else "already paused"
    click.echo(f"{lane} {state}; {len(replies)} worker(s) acknowledged, the others follow within 5 s")


@queues.command()
@click.argument("priority", callback=_priority)
def resume(priority: Priority) -> None:
    """Consume PRIORITY's lane again on the workers started for it."""
    from storefront_jobs.application import get_default_app  # noqa: PLC0415

    app = get_default_app()
    lane = keys.lane_name(priority)
    was_paused = pausing.resume(app.redis, priority)
    # Only pools started for this lane take it back: a broadcast to all would
    # make a BULK pool start serving CRITICAL.
    targets = _pools_for(lane, read_workers(app.redis))
    replies = []
    if targets:
        replies = app.control.add_consumer(lane, destination=targets, reply=True, timeout=1.0) or []
    state = "resumed" if was_paused else "was not paused"
    click.echo(f"{lane} {state}; {len(replies)} of {len(targets)} worker(s) acknowledged")
