"""``storefront-jobs dlq`` (and ``celery -A storefront_jobs dlq``): the dead-letter queue from a terminal.

Each command parses its flags into a filter or request, calls the DLQ model
(:mod:`storefront_jobs.deadletter`) and prints the answer; nothing else.

Exit codes (stable, for scripts):

====  ===========================================================
0     done
1     not confirmed (answer "no", or no terminal and no ``--yes``)
2     usage error, bad setting, Redis unreachable, other errors
3     ``show``: no entry with that execution id;
      ``replay IDS``: none of the ids is in the DLQ
      (ids that are all undecodable entries, which cannot be replayed: 2)
4     ``replay`` stopped at a full lane (the rest stays in the DLQ)
5     ``import``: the file is not a DLQ export (nothing was written)
====  ===========================================================
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from storefront_jobs.cli import broker
from storefront_jobs.cli import dlq_args as args
from storefront_jobs.cli import dlq_output as out
from storefront_jobs.deadletter import (
    DeadLetterNotFound,
    InvalidFilterError,
    MalformedImportError,
    ReplayRequest,
    maintenance,
    replayer_for,
    store_for,
    transfer,
)
from storefront_jobs.deadletter.audit import cli_actor
from storefront_jobs.deadletter.query import utc_time
from storefront_jobs.deadletter.store import DeadLetterStore, iter_json
from storefront_jobs.errors import StorefrontJobsError
from storefront_jobs.jobs.priorities import Priority

BROKER_META = "storefront_jobs.broker"
EXIT_OK = 0
EXIT_NOT_CONFIRMED = args.EXIT_NOT_CONFIRMED
EXIT_ERROR = 2
EXIT_NOT_FOUND = 3
EXIT_LANE_FULL = 4
EXIT_MALFORMED = 5


class _DlqGroup(click.Group):
    """Maps storefront errors to exit codes, under storefront-jobs and under celery alike."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DeadLetterNotFound as exc:
            out.note(f"storefront-jobs: {exc}")
            sys.exit(EXIT_NOT_FOUND)
        except MalformedImportError as exc:
            out.note(f"storefront-jobs: malformed import file, nothing imported: {exc}")
            sys.exit(EXIT_MALFORMED)
        except InvalidFilterError as exc:
            raise click.UsageError(str(exc), ctx) from None
        except StorefrontJobsError as exc:
            out.note(f"storefront-jobs: error: {exc}")
            sys.exit(EXIT_ERROR)


def _app(ctx: click.Context) -> Any:
    # Under `celery -A ...` the root context carries celery's CLIContext with the app.
    app = getattr(ctx.find_root().obj, "app", None)
    from storefront_jobs.application import StorefrontCelery, get_default_app  # noqa: PLC0415

    app = app if isinstance(app, StorefrontCelery) else get_default_app()
    if BROKER_META not in ctx.meta:
        ctx.meta[BROKER_META] = broker.announce(app)
    return app


def _broker(ctx: click.Context) -> str:
    """The broker's label, for table titles (after _app announced it)."""
    return str(ctx.meta.get(BROKER_META, ""))


def _store(ctx: click.Context) -> DeadLetterStore:
    return store_for(_app(ctx))


@click.group(cls=_DlqGroup)
def dlq() -> None:
    """Inspect, export, replay, purge and import dead-lettered jobs."""


@dlq.command("list")
@args.filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", help="nextCursor printed by the previous page.")
@args.format_option
@click.pass_context
def list_(ctx: click.Context, /, limit: int, cursor: str | None, fmt: str, **kw: Any) -> None:
    """One page of entries, newest first."""
    page = _store(ctx).page(args.parse_filter(kw), cursor, limit)
    if fmt == "table":
        out.stdout().print(out.records_table(page.records(), title=f"DLQ on {_broker(ctx)}"))
    elif fmt == "json":
        out.emit_json([r.model_dump(by_alias=True, mode="json") for r in page.records()])
    else:
        for item in page.items:
            click.echo(item)
    if page.next_cursor:
        out.note(f"more entries: --cursor {page.next_cursor}")


@dlq.command()
@click.argument("execution_id")
@click.option("--format", "fmt", type=click.Choice(("json", "table")), default="json", show_default=True)
@click.pass_context
def show(ctx: click.Context, execution_id: str, fmt: str) -> None:
    """One entry, every field."""
    store = _store(ctx)
    record = store.get(execution_id)
    if record is None:
        new_id = store.replayed_as(execution_id)
        if new_id:
            out.note(f"{execution_id} was replayed as {new_id}; it is no longer in the DLQ")
        raise DeadLetterNotFound(execution_id)
    data = record.model_dump(by_alias=True, mode="json")
    if fmt == "json":
        out.emit_json(data)
    else:
        out.stdout().print(out.mapping_table(execution_id, data))


@dlq.command()
@args.filter_options
@click.option("--format", "fmt", type=click.Choice(("json", "jsonl")), default="json", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@click.pass_context
def export(ctx: click.Context, /, fmt: str, output: str, **kw: Any) -> None:
    """Write entries as a JSON array (jq '.[]') or JSON lines; streams, constant memory."""
    store, flt = _store(ctx), args.parse_filter(kw)
    with (
        click.open_file(output, "w", encoding="utf-8") as stream,
        out.progress_bar("exporting", store.count(flt) if output != "-" else None) as advance,
    ):
        count = transfer.write_records(iter_json(store, flt), stream, fmt, advance)  # type: ignore[arg-type]
    if output != "-":
        out.note(f"exported {count} entries to {output}")


@dlq.command()
@click.argument("execution_ids", nargs=-1)
@args.filter_options
@click.option(
    "--to-priority", "to_priority", metavar="PRIORITY", help="Send to this lane instead of the own."
)
@click.option("--rate", metavar="N/s", help="At most N entries per second.")
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most this many.")
@click.option(
    "--dry-run", is_flag=True, help="Show how many would be replayed, and a sample; change nothing."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before replaying.")
@args.format_option
@click.pass_context
def replay(
    ctx: click.Context,
    /,
    execution_ids: tuple[str, ...],
    to_priority: str | None,
    rate: str | None,
    limit: int | None,
    dry_run: bool,
    yes: bool,
    fmt: str,
    **kw: Any,
) -> None:
    """Send entries back to their lane as new executions (by ids, or by filter; --queue all for every one)."""
    flt = args.parse_filter(kw)
    if not execution_ids and flt.is_empty():
        raise click.UsageError("give execution ids or a filter (--queue all replays every entry)")
    try:
        target = Priority.parse(to_priority) if to_priority else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to-priority") from None
    request = ReplayRequest(
        execution_ids=execution_ids,
        filter=None if execution_ids else flt,
        limit=limit,
        priority=target,
        rate_per_s=args.parse_rate(rate),
    )
    with replayer_for(_app(ctx)) as replayer:
        count, sample = replayer.preview(request)
        refused = replayer.unreplayable(execution_ids)
        for execution_id, why in refused.items():
            out.note(f"not replayable: {execution_id}: {why}")
        if dry_run or count == 0:
            out.show_preview(count, sample, fmt, dry_run, target)
            if count == 0 and execution_ids:
                sys.exit(EXIT_ERROR if refused else EXIT_NOT_FOUND)
            return
        args.confirm(f"Replay {out.entries(count)} of the DLQ?", yes)
        with out.progress_bar("replaying", count) as advance:
            report = replayer.replay(request, actor=cli_actor(), source="cli", progress=advance)
    out.show_report(report.to_dict(), fmt)
    if report.stopped:
        out.note(f"stopped: {report.stopped}")
        sys.exit(EXIT_LANE_FULL)


@dlq.command()
@args.filter_options
@click.option(
    "--backup", type=click.Path(dir_okay=False, path_type=Path), help="Write the entries here first."
)
@click.option("--dry-run", is_flag=True, help="Show how many would be deleted; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting.")
@args.format_option
@click.pass_context
def purge(ctx: click.Context, /, backup: Path | None, dry_run: bool, yes: bool, fmt: str, **kw: Any) -> None:
    """Delete entries (by filter; --queue all for every one), after an optional backup."""
    store, flt = _store(ctx), args.parse_filter(kw)
    if flt.is_empty():
        raise click.UsageError("give a filter (--queue all deletes every entry)")
    count = store.count(flt)
    if dry_run:
        out.show_report({"dryRun": True, "count": count}, fmt)
        return
    args.confirm(f"Delete {out.entries(count)} of the DLQ?", yes)
    with out.progress_bar("deleting", count) as advance:
        report = maintenance.purge(
            store, flt, actor=cli_actor(), source="cli", backup=backup, progress=advance
        )
    out.show_report(report.to_dict(), fmt)


@dlq.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@args.format_option
@click.pass_context
def import_(ctx: click.Context, file: Path, fmt: str) -> None:
    """Restore entries from an export or backup (JSON array or JSON lines); all or nothing on format."""
    store = _store(ctx)
    total = transfer.validate_file(file)
    with out.progress_bar("importing", total) as advance:
        report = maintenance.import_file(store, file, actor=cli_actor(), source="cli", progress=advance)
    out.show_report(report.to_dict(), fmt)


@dlq.command()
@args.format_option
@click.pass_context
def stats(ctx: click.Context, fmt: str) -> None:
    """Entries per queue, priority, task, error and reason; added and removed counters."""
    data = _store(ctx).stats().to_dict()
    if fmt == "table":
        console = out.stdout()
        head = {k: v for k, v in data.items() if k not in ("byField", "counters")}
        for bound in ("oldestFailedAt", "newestFailedAt"):
            head[bound] = utc_time(head[bound], " UTC")
        console.print(out.mapping_table(f"DLQ on {_broker(ctx)}", head | {"counters": data["counters"]}))
        for field, counts in data["byField"].items():
            if counts:
                top = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:20])
                console.print(out.mapping_table(f"by {field}", top))
    elif fmt == "json":
        out.emit_json(data)
    else:
        out.emit_jsonl([data])


@dlq.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@args.format_option
@click.pass_context
def audit(ctx: click.Context, limit: int, fmt: str) -> None:
    """Replays, purges and imports: who, when, filter, how many; newest first."""
    entries = [e.to_dict() for e in _store(ctx).audit.entries(limit)]
    if fmt == "json":
        out.emit_json(entries)
    elif fmt == "jsonl":
        out.emit_jsonl(entries)
    else:
        out.stdout().print(out.audit_table(entries))
