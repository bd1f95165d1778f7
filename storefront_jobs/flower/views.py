"""The Dead letters pages: Tornado handlers over the DLQ model, inside Flower.

Each handler reads its arguments, asks the model (:mod:`storefront_jobs.deadletter`,
the same functions the CLI and the admin API call) and renders a template.
Redis calls run on Flower's thread pool, never on its event loop, so a long
replay or export does not stall Flower's other pages.

Safety, enforced here and not in the templates:

* every handler needs Flower's login (``web.authenticated``) and a scope
  (:mod:`.access`); a page hides the buttons a user may not use, and a POST
  without the scope gets 403 all the same;
* every POST carries Tornado's ``_xsrf`` token. Flower skips that check for
  basic auth; these handlers never do;
* a replay or delete of more than one entry names the count it was shown,
  and acts on at most that many entries;
* values from dead letters are user data: templates print them escaped
  (Tornado's autoescape), and arguments are read unescaped only to parse them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from flower.views import BaseHandler
from tornado import web
from tornado.ioloop import IOLoop

from storefront_jobs.broker.keys import lane_name
from storefront_jobs.deadletter import maintenance, transfer
from storefront_jobs.deadletter.binding import replayer_for, store_for
from storefront_jobs.deadletter.errors import InvalidFilterError
from storefront_jobs.deadletter.query import ALL, Filter, build_filter
from storefront_jobs.deadletter.record import DeadLetter
from storefront_jobs.deadletter.replay import ReplayRequest
from storefront_jobs.deadletter.store import DeadLetterStore, iter_json
from storefront_jobs.flower.access import ANONYMOUS, Operator, basic_auth_user, operator_for
from storefront_jobs.jobs.failures import FailureReason
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.scopes import DLQ_DELETE, DLQ_READ, DLQ_REPLAY

T = TypeVar("T")

FILTER_FIELDS = ("queue", "priority", "task", "tenant", "error", "reason", "since", "until")
PAGE_SIZE = 50
#: Most entries one replay or delete from the browser may touch, as one admin API request.
MAX_PER_ACTION = 10_000
#: Rows of a preview's sample.
SAMPLE_SIZE = 5
#: Values per field shown in the counts panel (the biggest first).
TOP_VALUES = 10
MEDIA = {"json": "application/json", "jsonl": "application/x-ndjson"}


@dataclasses.dataclass(frozen=True)
class Section:
    """What every Dead letters handler shares: the app and who may do what."""

    capp: Any
    user_scopes: Mapping[str, Sequence[str]]

    @property
    def store(self) -> DeadLetterStore:
        return store_for(self.capp)


def format_time(ts: float | None) -> str:
    """A time stamp as operators read it: ISO 8601 in UTC, to the second."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def top_counts(counts: Mapping[str, int], n: int = TOP_VALUES) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def filter_query(values: Mapping[str, str]) -> str:
    """The filter fields as a query string, for links that keep the current filter."""
    from urllib.parse import urlencode  # noqa: PLC0415 - only links need it

    return urlencode([(k, v) for k, v in values.items() if v])


class DeadLetterHandler(BaseHandler):  # type: ignore[misc]  # Flower ships no type hints
    """Login, scopes, CSRF and argument parsing shared by every Dead letters page."""

    section: Section

    def initialize(self, section: Section) -> None:
        self.section = section

    def check_xsrf_cookie(self) -> None:
        # Flower's own check (same origin) first; then Tornado's token, which
        # Flower leaves out for basic auth.
        super().check_xsrf_cookie()
        web.RequestHandler.check_xsrf_cookie(self)

    @functools.cached_property
    def operator(self) -> Operator:
        options = self.application.options
        if options.auth:  # OAuth: Flower's session cookie holds the e-mail
            name = str(self.current_user)
        elif options.basic_auth:
            name = basic_auth_user(self.request.headers.get("Authorization")) or ANONYMOUS
        else:
            name = ANONYMOUS
        authenticated = bool(options.auth or options.basic_auth)
        return operator_for(name, self.section.user_scopes, authenticated=authenticated)

    def finish(self, chunk: Any = None) -> Any:
        # Server time of the page (Redis calls and template), for bench/flower_dlq.py and
        # for browsers' developer tools. Ignored once a streamed export flushed its headers.
        self.set_header("Server-Timing", f"app;dur={self.request.request_time() * 1000:.1f}")
        return super().finish(chunk)

    def require(self, scope: str) -> None:
        if not self.operator.can(scope):
            raise web.HTTPError(403, f"{self.operator.name} lacks the {scope} scope")

    def arg(self, name: str, default: str = "") -> str:
        value = self.get_argument(name, default, escape=False)
        return str(value).strip() if value is not None else default

    def filter_values(self) -> dict[str, str]:
        return {name: self.arg(name) for name in FILTER_FIELDS}

    def current_filter(self) -> Filter:
        try:
            return build_filter(**{k: v or None for k, v in self.filter_values().items()}, now_s=time.time())
        except InvalidFilterError as exc:
            raise web.HTTPError(400, str(exc)) from None

    def selected_ids(self) -> list[str]:
        ids = [i.strip() for i in self.get_arguments("id", strip=True) if i.strip()]
        if len(ids) > MAX_PER_ACTION:
            raise web.HTTPError(400, f"at most {MAX_PER_ACTION} entries per action")
        return list(dict.fromkeys(ids))

    def target_priority(self) -> Priority | None:
        text = self.arg("to_priority")
        try:
            return Priority.parse(text) if text else None
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None

    def rate_per_s(self) -> float | None:
        text = self.arg("rate")
        if not text:
            return None
        try:
            rate = float(text)
        except ValueError:
            raise web.HTTPError(400, f"rate {text!r} is not a number of entries per second") from None
        if not 0 < rate <= 100_000:
            raise web.HTTPError(400, "rate must be between 0 and 100000 entries per second")
        return rate

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await IOLoop.current().run_in_executor(None, functools.partial(fn, *args))
        except InvalidFilterError as exc:  # a bad cursor, found only when Redis is asked
            raise web.HTTPError(400, str(exc)) from None

    def render_page(self, template: str, **values: Any) -> None:
        self.render(
            template,
            active_tab="dead-letters",
            operator=self.operator,
            can_replay=self.operator.can(DLQ_REPLAY),
            can_delete=self.operator.can(DLQ_DELETE),
            dlq_time=format_time,
            dlq_json=pretty_json,
            lane_name=lane_name,
            **values,
        )


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


@dataclasses.dataclass(frozen=True)
class Selection:
    """What an action applies to: listed ids, or every entry that matches a filter."""

    ids: list[str]
    filter: Filter
    filter_values: dict[str, str]

    @property
    def bulk_filter(self) -> Filter:
        # "Everything that matches" with no field set is the whole DLQ, said explicitly.
        return self.filter if not self.filter.is_empty() else dataclasses.replace(self.filter, queue=ALL)

    def hidden_fields(self) -> list[tuple[str, str]]:
        if self.ids:
            return [("id", i) for i in self.ids]
        return [(k, v) for k, v in self.filter_values.items() if v]


class ActionView(DeadLetterHandler):
    """Shared by replay and delete: GET previews, POST acts after the count was confirmed."""

    def selection(self) -> Selection:
        return Selection(self.selected_ids(), self.current_filter(), self.filter_values())

    def confirmed_limit(self, selection: Selection) -> int:
        """The count the operator saw and confirmed; the action touches at most that many entries."""
        expected = self.arg("expected")
        if not expected.isdigit():
            raise web.HTTPError(400, "the action needs the count of its preview (expected=N)")
        count = int(expected)
        if count == 0:
            raise web.HTTPError(400, "nothing to do: the preview matched no entry")
        if count > MAX_PER_ACTION:
            raise web.HTTPError(400, f"at most {MAX_PER_ACTION} entries per action")
        if (len(selection.ids) != 1) and self.arg("confirm") != expected:
            raise web.HTTPError(400, f"confirm the count: tick 'yes, {count} entries' before sending")
        return count


def _replay_request(selection: Selection, **kwargs: Any) -> ReplayRequest:
    if selection.ids:
        return ReplayRequest(execution_ids=tuple(selection.ids), **kwargs)
    return ReplayRequest(filter=selection.bulk_filter, **kwargs)


def _preview(capp: Any, request: ReplayRequest) -> tuple[int, list[DeadLetter]]:
    with replayer_for(capp) as replayer:
        return replayer.preview(request, sample=SAMPLE_SIZE)


def _replay(capp: Any, request: ReplayRequest, actor: str) -> dict[str, Any]:
    with replayer_for(capp) as replayer:
        return replayer.replay(request, actor=actor, source="flower").to_dict()


class ReplayView(ActionView):
    @web.authenticated
    async def get(self) -> None:
        self.require(DLQ_READ)
        selection = self.selection()
        target, rate = self.target_priority(), self.rate_per_s()
        request = _replay_request(selection, limit=MAX_PER_ACTION, priority=target)
        count, sample = await self.blocking(_preview, self.section.capp, request)
        self.render_page(
            "dlq_preview.html",
            action="replay",
            selection=selection,
            count=count,
            sample=sample,
            target=target,
            rate=rate,
            priorities=list(Priority),
        )

    @web.authenticated
    async def post(self) -> None:
        self.require(DLQ_REPLAY)
        selection = self.selection()
        limit = self.confirmed_limit(selection)
        request = _replay_request(
            selection, limit=limit, priority=self.target_priority(), rate_per_s=self.rate_per_s()
        )
        report = await self.blocking(_replay, self.section.capp, request, self.operator.actor)
        self.render_page("dlq_done.html", action="replay", report=report)


def _delete(store: DeadLetterStore, selection: Selection, limit: int, actor: str) -> dict[str, object]:
    if selection.ids:
        report = maintenance.delete_entries(store, selection.ids, actor=actor, source="flower")
    else:
        report = maintenance.purge(store, selection.bulk_filter, actor=actor, source="flower", limit=limit)
    return report.to_dict()


def _delete_preview(store: DeadLetterStore, selection: Selection) -> tuple[int, list[DeadLetter]]:
    if selection.ids:
        found = [r for r in (store.get(i) for i in selection.ids) if r is not None]
        return len(found), found[:SAMPLE_SIZE]
    flt = selection.bulk_filter
    return min(store.count(flt), MAX_PER_ACTION), store.page(flt, None, SAMPLE_SIZE).records()


class DeleteView(ActionView):
    @web.authenticated
    async def get(self) -> None:
        self.require(DLQ_READ)
        selection = self.selection()
        count, sample = await self.blocking(_delete_preview, self.section.store, selection)
        self.render_page(
            "dlq_preview.html",
            action="delete",
            selection=selection,
            count=count,
            sample=sample,
            target=None,
            rate=None,
            priorities=list(Priority),
        )

    @web.authenticated
    async def post(self) -> None:
        self.require(DLQ_DELETE)
        selection = self.selection()
        limit = self.confirmed_limit(selection)
        report = await self.blocking(_delete, self.section.store, selection, limit, self.operator.actor)
        self.render_page("dlq_done.html", action="delete", report=report)


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


def routes(section: Section) -> list[tuple[str, type[DeadLetterHandler], dict[str, Any], str]]:
    """(path, handler, kwargs, name) of every page, before Flower's ``url_prefix``."""
    kwargs = {"section": section}
    return [
        (r"/dead-letters", ListView, kwargs, "dead-letters"),
        (r"/dead-letters/entry/(.+)", EntryView, kwargs, "dead-letter"),
        (r"/dead-letters/replay", ReplayView, kwargs, "dead-letters-replay"),
        (r"/dead-letters/delete", DeleteView, kwargs, "dead-letters-delete"),
        (r"/dead-letters/export", ExportView, kwargs, "dead-letters-export"),
        (r"/dead-letters/audit", AuditView, kwargs, "dead-letters-audit"),
    ]
