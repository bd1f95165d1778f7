"""The broker's state as tests read it: the barriers that make "nothing more happens" checkable.

A test that asserts that something did *not* happen (no retry, no second capture, no more writes)
needs a point after which it could no longer happen. Waiting a fixed time is no such point on a
loaded machine; these are:

* :func:`broker_idle`: no message waits in a lane and none is held by a worker. Celery publishes a
  retry before it acknowledges the failed attempt, and the reliable fetch takes a message out of its
  lane in the same step that records it as unacknowledged, so a job that could still run is always
  in one of the two places: once both are empty, every job has had its last run.
* :func:`client_ids` / :func:`wait_disconnected`: Redis runs a client's buffered commands before it
  notices the connection closed, so the connections of a killed process are gone only once the last
  command it sent has run.
"""

from __future__ import annotations

import functools
import os

import redis

from storefront_jobs.broker import clients, keys
from storefront_jobs.settings import load_settings
from tests.support.workers import wait_until


def broker_redis() -> redis.Redis:
    """A client on this process's broker (a job's, a producer's), built as the platform builds its own.

    Through Sentinel when the broker is a Sentinel group; one per process and broker URL.
    """
    return _client_for(os.environ["STOREFRONT_JOBS_BROKER_URL"])


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return clients.redis_client(url, load_settings(broker_url=url))


def broker_idle(broker: redis.Redis) -> bool:
    """No message waits in a lane and none is held by a worker (running, reserved or counting down)."""
    pipe = broker.pipeline(transaction=False)
    for lane in keys.LANES.values():
        for name in keys.lane_lists(lane):
            pipe.llen(name)
    pipe.hlen("unacked")
    return sum(int(n) for n in pipe.execute()) == 0


def wait_broker_idle(broker: redis.Redis) -> None:
    wait_until(lambda: broker_idle(broker))


def client_ids(broker: redis.Redis) -> set[int]:
    """The ids of every connection the server has open now (ids only grow: a new one is larger)."""
    return {int(client["id"]) for client in broker.client_list()}


def wait_disconnected(broker: redis.Redis, before: set[int]) -> None:
    """Wait until every connection opened after ``before`` was taken, except this client's, is closed."""
    own = int(broker.client_id())
    wait_until(lambda: not client_ids(broker) - before - {own})
