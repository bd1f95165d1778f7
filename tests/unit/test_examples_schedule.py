"""The example schedule: cache warming and analytics aggregation, LOW, sent by beat once a minute."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from storefront_jobs import Priority, get_default_app
from storefront_jobs.examples import analytics, schedule
from storefront_jobs.jobs.task import PriorityTask


def test_registering_adds_the_periodic_entries_to_the_app() -> None:
    app = get_default_app()
    schedule.register(app)
    beat_schedule = app.conf.beat_schedule
    assert set(schedule.entry_names()) <= set(beat_schedule)
    tasks = {beat_schedule[name]["task"] for name in schedule.entry_names()}
    assert tasks == {analytics.warm_cache.name, schedule.aggregate_yesterday.name}
    for name in schedule.entry_names():
        assert beat_schedule[name]["schedule"] == 60.0
    assert beat_schedule["examples.warm_cache.home"]["args"] == ("home", schedule.HOT_PAGES["home"])


def test_registering_again_changes_nothing() -> None:
    app = get_default_app()
    schedule.register(app)
    before = dict(app.conf.beat_schedule)
    schedule.register(app)
    assert dict(app.conf.beat_schedule) == before


def test_scheduled_jobs_are_low_priority() -> None:
    for task in (analytics.warm_cache, schedule.aggregate_yesterday):
        assert isinstance(task, PriorityTask)
        assert task.lane_priority is Priority.LOW


def test_aggregate_yesterday_sends_one_job_per_metric_for_yesterday(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[Any, ...]] = []

    class Result:
        id = "id"

    def delay(*args: Any) -> Result:
        sent.append(args)
        return Result()

    monkeypatch.setattr(analytics.aggregate_analytics, "delay", delay)
    ids = schedule.aggregate_yesterday.run()
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    assert sorted(sent) == [(metric, yesterday) for metric in sorted(analytics.METRICS)]
    assert ids == ["id"] * len(analytics.METRICS)
