"""Replay and delete from the browser: GET previews, POST acts, at most on the count confirmed.

A replay or delete of more than one entry names the count its preview showed
(a tick that states it), and the server acts on at most that many entries,
even if more failed in between.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tornado import web

from storefront_jobs.deadletter import maintenance
from storefront_jobs.deadletter.binding import replayer_for
from storefront_jobs.deadletter.query import ALL, Filter
from storefront_jobs.deadletter.record import DeadLetter
from storefront_jobs.deadletter.replay import ReplayRequest
from storefront_jobs.deadletter.store import DeadLetterStore
from storefront_jobs.flower.handler import MAX_PER_ACTION, DeadLetterHandler
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.scopes import DLQ_DELETE, DLQ_READ, DLQ_REPLAY

#: Rows of a preview's sample.
SAMPLE_SIZE = 5


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

    def render_preview(
        self,
        action: str,
        selection: Selection,
        count: int,
        sample: list[DeadLetter],
        *,
        target: Priority | None = None,
        rate: float | None = None,
    ) -> None:
        """The preview page of ``action``: its count, a sample, and the confirmation form."""
        self.render_page(
            "dlq_preview.html",
            action=action,
            selection=selection,
            count=count,
            sample=sample,
            target=target,
            rate=rate,
            priorities=list(Priority),
        )


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
        self.render_preview("replay", selection, count, sample, target=target, rate=rate)

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
        self.render_preview("delete", selection, count, sample)

    @web.authenticated
    async def post(self) -> None:
        self.require(DLQ_DELETE)
        selection = self.selection()
        limit = self.confirmed_limit(selection)
        report = await self.blocking(_delete, self.section.store, selection, limit, self.operator.actor)
        self.render_page("dlq_done.html", action="delete", report=report)
