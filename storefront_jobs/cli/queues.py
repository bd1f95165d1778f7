"""``storefront-jobs queues``: the lanes at a glance, and pausing or resuming one on every worker.

``--tenants`` shows instead, for each lane with a fair share per tenant or with
jobs in tenant lists, the tenants with the most waiting jobs
(:mod:`storefront_jobs.broker.tenants`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from storefront_jobs.broker import clock, keys, tenants
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
    # Heartbeats are on Redis's clock (storefront_jobs.broker.clock); ages are on this process's.
    redis_s = clock.redis_now_s(client)
    alive = [beat for beat in read_workers(client, redis_s) if beat.alive(redis_s)]
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


#: ``--top 0``: every tenant (the read is still one pipelined ZREVRANGE per lane).
TENANTS_ALL = 1_000_000


def tenant_rows(app: Any, top: int) -> list[dict[str, Any]]:
    """One row per lane that is fair or holds tenant jobs: its tenants, the ``top`` ones (0: all)."""
    client = app.redis
    lanes = read_lanes(client)
    fairness = app.storefront_settings.tenant_fairness
    rows = []
    for priority, side in tenants.read_tenants(client, top or TENANTS_ALL).items():
        if not (fairness.enabled(priority) or side.tenants):
            continue
        shown = sum(n for _, n in side.top)
        rows.append(
            {
                "lane": keys.lane_name(priority),
                "priority": priority.name,
                "fair": fairness.enabled(priority),
                "tenants": side.tenants,
                # Jobs in the lane's own lists: without a tenant, restored, replayed, promoted.
                "withoutTenant": max(0, lanes[priority].depth - side.waiting),
                "top": [{"tenant": tenant, "waiting": n} for tenant, n in side.top],
                "otherTenantsWaiting": max(0, side.waiting - shown),
            }
        )
    return rows


def _print_tenants(rows: list[dict[str, Any]], label: str) -> None:
    table = Table("lane", "tenant", "waiting", title=f"waiting jobs per tenant on {label}")
    for row in rows:
        lane = row["lane"] + ("" if row["fair"] else " (fairness off)")
        for entry in row["top"]:
            table.add_row(lane, entry["tenant"], str(entry["waiting"]))
            lane = ""
        hidden = row["tenants"] - len(row["top"])
        if hidden:
            table.add_row(lane, f"({hidden} more tenants)", str(row["otherTenantsWaiting"]))
            lane = ""
        table.add_row(lane, "(no tenant)", str(row["withoutTenant"]))
    Console().print(table)


@click.group(invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--tenants",
    "per_tenant",
    is_flag=True,
    help="Show the waiting jobs per tenant of the lanes with a fair share per tenant instead.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="With --tenants: the tenants shown per lane, those with the most waiting jobs (0: all).",
)
@click.pass_context
def queues(ctx: click.Context, fmt: str, per_tenant: bool, top: int) -> None:
    """Show every lane: waiting, reserved, oldest age, capacity, paused, consumers, processes kept."""
    from storefront_jobs.application import get_default_app  # noqa: PLC0415

    label = broker.announce(get_default_app())
    if ctx.invoked_subcommand is not None:
        return
    if per_tenant:
        tenant_table = tenant_rows(get_default_app(), top)
        if fmt == "json":
            click.echo(json.dumps(tenant_table, indent=2))
        else:
            _print_tenants(tenant_table, label)
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
