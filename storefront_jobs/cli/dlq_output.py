"""How ``storefront-jobs dlq`` shows things: tables for people, JSON for scripts, progress on stderr."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from storefront_jobs.broker.keys import lane_name
from storefront_jobs.deadletter.query import utc_time
from storefront_jobs.deadletter.record import DeadLetter
from storefront_jobs.jobs.priorities import Priority

FORMATS = ("table", "json", "jsonl")


def short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


#: Width of a table written to a pipe or a file: as wide as its values, never cut at 80 columns.
UNBOUNDED_WIDTH = 100_000


def stdout() -> Console:
    """Tables for a terminal fit it; for a pipe or a file they keep every value whole."""
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=UNBOUNDED_WIDTH)
    return console


def entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def records_table(
    records: Sequence[DeadLetter], *, title: str | None = None, target: Priority | None = None
) -> Table:
    """One row per entry; ``target`` adds the lane a replay would send each to."""
    table = Table(show_lines=False, title=title)
    # An execution id is copied into the next command: never wrapped over two lines.
    table.add_column(
        "executionId", no_wrap=True, min_width=max((len(r.execution_id) for r in records), default=11)
    )
    for column in (
        "failedAt (UTC)",
        "priority",
        "queue",
        "task",
        "att",
        "reason",
        "lastError",
        "tenant",
    ):
        table.add_column(column, overflow="fold")
    if target is not None:
        table.add_column("replays to", no_wrap=True)
    for r in records:
        table.add_row(
            r.execution_id,
            utc_time(r.failed_at),
            r.priority.name,
            r.queue,
            r.task,
            str(r.attempt_number),
            r.reason.value,
            short(f"{r.last_error.type}: {r.last_error.message}"),
            r.tenant_id or "-",
            *([lane_name(target)] if target is not None else []),
        )
    return table


def mapping_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        table.add_row(key, shown)
    return table


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def emit_jsonl(values: Sequence[Any]) -> None:
    for value in values:
        click.echo(json.dumps(value, default=str))


def note(message: str) -> None:
    """A line for the person at the terminal, never mixed into stdout data."""
    click.echo(message, err=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr while long work runs; silent when stderr is not a terminal."""
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (console.is_terminal and sys.stderr.isatty()),
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def audit_table(entries: Sequence[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("startedAt (UTC)", "action", "actor", "source", "filter", "count", "status", "detail"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            utc_time(e["startedAt"]),
            e["action"],
            e["actor"],
            e["source"],
            json.dumps(e["filter"], sort_keys=True),
            str(e["count"]),
            e["status"],
            e["detail"] or "",
        )
    return table


def show_preview(
    count: int, sample: list[DeadLetter], fmt: str, dry_run: bool, target: Priority | None = None
) -> None:
    """How many would be replayed, and a sample of them (never more rows than that count)."""
    sample = sample[:count]
    where = f" to {lane_name(target)}" if target is not None else ""
    if fmt == "table":
        note(f"{'dry run: ' if dry_run else ''}{entries(count)} would be replayed{where}")
        if sample:
            stdout().print(records_table(sample, target=target))
    else:
        emit_json(
            {
                "dryRun": dry_run,
                "count": count,
                "toPriority": target.name if target is not None else None,
                "sample": [r.execution_id for r in sample],
            }
        )


def show_report(report: dict[str, Any], fmt: str) -> None:
    if fmt == "table":
        shown = {k: v for k, v in report.items() if k != "replayed"}
        stdout().print(mapping_table("replay", shown))
    else:
        emit_json(report)
