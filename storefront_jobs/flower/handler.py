"""What every Dead letters page shares: login, scopes, CSRF, argument parsing, rendering.

Each page reads its arguments, asks the DLQ model (:mod:`storefront_jobs.deadletter`,
the same functions the CLI and the admin API call) and renders a template.
Redis calls run on Flower's thread pool, never on its event loop, so a long
replay or export does not stall Flower's other pages.

Safety, enforced here and not in the templates:

* every handler needs Flower's login (``web.authenticated``) and a scope
  (:mod:`.access`); a page hides the buttons a user may not use, and a POST
  without the scope gets 403 all the same;
* every POST carries Tornado's ``_xsrf`` token. Flower skips that check for
  basic auth; these handlers never do;
* values from dead letters are user data: templates print them escaped
  (Tornado's autoescape), and arguments are read unescaped only to parse them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from flower.views import BaseHandler
from tornado import web
from tornado.ioloop import IOLoop

from storefront_jobs.broker.keys import lane_name
from storefront_jobs.deadletter.binding import store_for
from storefront_jobs.deadletter.errors import InvalidFilterError
from storefront_jobs.deadletter.query import Filter, build_filter, utc_time
from storefront_jobs.deadletter.store import DeadLetterStore
from storefront_jobs.flower.access import ANONYMOUS, Operator, basic_auth_user, operator_for
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.scopes import DLQ_DELETE, DLQ_REPLAY

T = TypeVar("T")

FILTER_FIELDS = ("queue", "priority", "task", "tenant", "error", "reason", "since", "until")
#: Most entries one replay or delete from the browser may touch, as one admin API request.
MAX_PER_ACTION = 10_000
#: Values per field shown in the counts panel (the biggest first).
TOP_VALUES = 10


@dataclasses.dataclass(frozen=True)
class Section:
    """What every Dead letters handler shares: the app and who may do what."""

    capp: Any
    user_scopes: Mapping[str, Sequence[str]]

    @property
    def store(self) -> DeadLetterStore:
        return store_for(self.capp)


def format_time(ts: float | None) -> str:
    """A time stamp on a page: the CLI's format, with its zone said (the CLI says it in the column)."""
    return utc_time(ts, " UTC")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def top_counts(counts: Mapping[str, int], n: int = TOP_VALUES) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def filter_query(values: Mapping[str, str]) -> str:
    """The filter fields as a query string, for links that keep the current filter."""
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
