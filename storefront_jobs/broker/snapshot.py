"""One read of the lanes' state from Redis: what metrics, health and `storefront-jobs queues` show.

A few pipelined calls: ``LLEN`` and the oldest message (``LINDEX -1``: kombu
pushes on the left and pops on the right) of every list of every lane, and
one pass over kombu's ``unacked`` hash for the jobs held by workers. A lane
with a fair share per tenant adds the jobs of its tenant lists to its depth
(one read of its state hash) and, to the age of its oldest job, the oldest of
the :data:`~storefront_jobs.broker.tenants.OLDEST_TENANTS_READ` tenants with
the most waiting jobs (one more round trip, only while tenants wait): bounded
whatever the number of tenants, so that age is a lower bound there.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter as Tally

import redis

from storefront_jobs.broker import keys, tenants
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.priorities import Priority


@dataclasses.dataclass(frozen=True)
class LaneState:
    priority: Priority
    #: Jobs waiting, over every Redis priority sub-list of the lane and its tenant lists.
    depth: int
    #: Jobs held by workers: running, prefetched, or waiting out a retry countdown.
    reserved: int
    #: enqueuedAt of the oldest waiting job that carries one, else None.
    oldest_enqueued_at: float | None

    def oldest_age_s(self, now_s: float) -> float:
        if self.oldest_enqueued_at is None:
            return 0.0
        return max(0.0, now_s - self.oldest_enqueued_at)


def enqueued_at_of(raw_message: bytes | str | None) -> float | None:
    """The ``enqueuedAt`` header of a kombu message as stored in a Redis list, if any."""
    if raw_message is None:
        return None
    try:
        headers = json.loads(raw_message).get("headers") or {}
        value = headers.get(envelope.ENQUEUED_AT)
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def reserved_by_lane(unacked_values: list[bytes]) -> Tally[str]:
    """Count kombu's unacked entries (``[message, exchange, routing_key]``) per lane."""
    tally: Tally[str] = Tally()
    for raw in unacked_values:
        try:
            _message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        tally[str(routing_key)] += 1
    return tally


def read_lanes(client: redis.Redis[bytes]) -> dict[Priority, LaneState]:
    lists = {p: keys.lane_lists(keys.lane_name(p)) for p in Priority}
    pipe = client.pipeline(transaction=False)
    for names in lists.values():
        for name in names:
            pipe.llen(name)
            pipe.lindex(name, -1)
    pipe.hvals(keys.KOMBU_UNACKED)
    results = pipe.execute()
    reserved = reserved_by_lane(results[-1])
    fair = tenants.read_tenants(client, tenants.OLDEST_TENANTS_READ)
    tails = tenants.read_tails(client, fair)
    states: dict[Priority, LaneState] = {}
    position = 0
    for priority, names in lists.items():
        depth = fair[priority].waiting
        stamps = [enqueued_at_of(raw) for raw in tails[priority]]
        for _ in names:
            length, tail = results[position], results[position + 1]
            position += 2
            depth += int(length)
            stamps.append(enqueued_at_of(tail))
        oldest = min((stamp for stamp in stamps if stamp is not None), default=None)
        states[priority] = LaneState(priority, depth, reserved.get(keys.lane_name(priority), 0), oldest)
    return states
