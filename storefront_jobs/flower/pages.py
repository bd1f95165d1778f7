"""The reading pages of the Dead letters section: the list, one entry, the download, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tornado import web

from storefront_jobs.deadletter import transfer
from storefront_jobs.deadletter.query import Filter
from storefront_jobs.deadletter.store import iter_json
from storefront_jobs.flower.handler import DeadLetterHandler, Section, filter_query, top_counts
from storefront_jobs.jobs.failures import FailureReason
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.scopes import DLQ_READ

PAGE_SIZE = 50
MEDIA = {"json": "application/json", "jsonl": "application/x-ndjson"}


def _list_data(section: Section, flt: Filter, cursor: str | None) -> dict[str, Any]:
    store = section.store
    page = store.page(flt, cursor, PAGE_SIZE)
    stats = store.stats()
    # One index term or none: Redis counts it with ZCOUNT. More: the count
    # would scan, so it is left to the preview, which an operator asks for.
    matching = store.count(flt) if len(flt.terms()) <= 1 else None
    return {"records": page.records(), "next_cursor": page.next_cursor, "stats": stats, "matching": matching}


class ListView(DeadLetterHandler):
    """Newest first, one page at a time, with filters and the counts per field."""

    @web.authenticated
    async def get(self) -> None:
        self.require(DLQ_READ)
        flt = self.current_filter()
        cursor = self.arg("cursor") or None
        data = await self.blocking(_list_data, self.section, flt, cursor)
        values = self.filter_values()
        self.render_page(
            "dlq_list.html",
            filters=values,
            query=filter_query(values),
            priorities=list(Priority),
            reasons=list(FailureReason),
            top_counts=top_counts,
            cursor=cursor,
            **data,
        )


class EntryView(DeadLetterHandler):
    """One entry, whole; ``?format=json`` downloads it."""

    @web.authenticated
    async def get(self, execution_id: str) -> None:
        self.require(DLQ_READ)
        store = self.section.store
        record = await self.blocking(store.get, execution_id)
        if record is None:
            raise web.HTTPError(404, f"no dead letter with execution id {execution_id!r}")
        if self.arg("format") == "json":
            self.set_header("Content-Type", MEDIA["json"])
            self.set_header("Content-Disposition", f'attachment; filename="dead-letter-{execution_id}.json"')
            self.finish(record.to_json())
            return
        replayed_as = await self.blocking(store.replayed_as, execution_id)
        self.render_page("dlq_entry.html", record=record, replayed_as=replayed_as)


def _next_chunk(lines: Iterator[str], size: int = 200) -> str:
    out = []
    for line in lines:
        out.append(line)
        if len(out) >= size:
            break
    return "".join(out)


class ExportView(DeadLetterHandler):
    """The matching entries as a JSON array or JSONL, streamed one page of Redis at a time."""

    @web.authenticated
    async def get(self) -> None:
        self.require(DLQ_READ)
        flt = self.current_filter()
        fmt = self.arg("format", "jsonl")
        if fmt not in MEDIA:
            raise web.HTTPError(400, f"format {fmt!r}: accepted json, jsonl")
        self.set_header("Content-Type", MEDIA[fmt])
        self.set_header("Content-Disposition", f'attachment; filename="dead-letters.{fmt}"')
        lines = transfer.encode_records(iter_json(self.section.store, flt), fmt)  # type: ignore[arg-type]
        while chunk := await self.blocking(_next_chunk, lines):
            self.write(chunk)
            await self.flush()
        self.finish()


class AuditView(DeadLetterHandler):
    """Replays, purges and imports, newest first, by every surface (CLI, admin API, Flower)."""

    @web.authenticated
    async def get(self) -> None:
        self.require(DLQ_READ)
        entries = await self.blocking(self.section.store.audit.entries, 100)
        self.render_page("dlq_audit.html", entries=entries)
