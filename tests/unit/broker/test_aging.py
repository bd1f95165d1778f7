"""Aging without a worker: which jobs are due, the promoted message, the lease, and one sweep on Redis."""

from __future__ import annotations

import datetime
import json
import uuid
from types import SimpleNamespace
from typing import Any

import redis

from storefront_jobs.broker import aging, keys, scripts, tenants
from storefront_jobs.broker.lease import Lease
from storefront_jobs.deadletter.record import record_from_failure
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.context import build_job_context
from storefront_jobs.jobs.failures import build_failure
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.retry import DEFAULT_RETRY_POLICIES
from storefront_jobs.settings import AgingSettings, load_settings
from storefront_jobs.worker.aging import AgingSweeper
from tests.support.workers import wait_until

T0 = 1_800_000_000.0
LOW, DEFAULT = keys.lane_name(Priority.LOW), keys.lane_name(Priority.DEFAULT)


def message(*, lane: str = LOW, **headers: Any) -> dict[str, Any]:
    """A kombu message as our transport stores it, with the given headers."""
    execution_id = str(uuid.uuid4())
    return {
        "body": "W1tdLCB7fSwge31d",
        "content-type": "application/json",
        "headers": {"id": execution_id, "task": "shop.refresh", "jobQueue": "reporting", **headers},
        "properties": {
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": "", "routing_key": lane},
            "priority": 0,
        },
    }


# --- which jobs are due ---------------------------------------------------------------------------


def test_the_lanes_that_age_by_default_and_when_turned_on_or_off() -> None:
    default = {lane.source: (lane.target, lane.threshold_s) for lane in aging.aging_lanes(AgingSettings())}
    assert default == {
        Priority.HIGH: (Priority.CRITICAL, 50.0),
        Priority.DEFAULT: (Priority.HIGH, 300.0),
        Priority.LOW: (Priority.DEFAULT, 1200.0),
    }
    tuned = aging.aging_lanes(AgingSettings(low_s=0, bulk_s=60, high_s=0, default_s=0))
    assert [(lane.source, lane.threshold_s) for lane in tuned] == [(Priority.BULK, 60.0)]


def test_the_wait_counts_from_lane_entry_else_enqueue_and_a_retry_from_its_eta() -> None:
    assert aging.waited_s({"laneSince": T0, "enqueuedAt": T0 - 500}, T0 + 3) == 3
    assert aging.waited_s({"enqueuedAt": T0}, T0 + 7) == 7
    eta = datetime.datetime.fromtimestamp(T0 + 10, datetime.UTC).isoformat()
    assert aging.waited_s({"laneSince": T0, "eta": eta}, T0 + 12) == 2
    assert aging.waited_s({"laneSince": T0, "eta": None}, T0 + 1) == 1
    # A foreign producer's message, or one whose stamp is unreadable, never ages.
    assert aging.waited_s({}, T0) is None
    assert aging.waited_s({"laneSince": "soon"}, T0) is None
    assert aging.is_due({"laneSince": T0}, 5, T0 + 5)
    assert not aging.is_due({"laneSince": T0}, 5, T0 + 4.9)
    assert not aging.is_due({}, 5, T0 + 1e9)


def test_the_promoted_message_is_the_same_job_in_the_lane_above() -> None:
    original = message(laneSince=T0, enqueuedAt=T0, tenantId="t-1", priority="LOW")
    new = aging.promoted(original, Priority.LOW, Priority.DEFAULT, T0 + 5)

    assert new["headers"] == {
        **original["headers"],
        "promotedFrom": "LOW",
        "priority": "DEFAULT",
        "laneSince": T0 + 5,
    }
    assert new["properties"]["delivery_info"] == {"exchange": "", "routing_key": DEFAULT}
    assert new["properties"]["delivery_tag"] == original["properties"]["delivery_tag"]
    assert new["body"] == original["body"]
    # The message as read is left unchanged (the script removes it by its exact text).
    assert original["headers"]["priority"] == "LOW"
    assert original["properties"]["delivery_info"]["routing_key"] == LOW
    # Promoted again, it keeps the lane it first left.
    again = aging.promoted(new, Priority.DEFAULT, Priority.HIGH, T0 + 400)
    assert again["headers"]["promotedFrom"] == "LOW"
    assert again["headers"]["priority"] == "HIGH"


def test_only_kombu_messages_are_read() -> None:
    assert aging.decode(json.dumps(message())) is not None
    for junk in (b"garbage", b"[1, 2]", json.dumps({"headers": {}, "properties": {}}), b"\xff"):
        assert aging.decode(junk) is None


def test_a_plan_promotes_due_jobs_youngest_first_and_leaves_paused_lanes_alone() -> None:
    low = aging.AgingLane(Priority.LOW, Priority.DEFAULT, 10)
    bulk = aging.AgingLane(Priority.BULK, Priority.LOW, 10)
    # As LRANGE returns them: the youngest first, the oldest (next out) last.
    young, due, oldest = (json.dumps(message(laneSince=T0 - age)).encode() for age in (1, 11, 50))
    waiting = {low: [(LOW, [young, due, oldest, b"junk"])], bulk: [("p4.bulk", [oldest])]}

    planned = aging.plan(waiting, paused=set(), now_s=T0)
    assert [(p.lane, p.raw) for p in planned] == [(low, due), (low, oldest), (bulk, oldest)]
    assert aging.plan(waiting, paused={DEFAULT}, now_s=T0) == [p for p in planned if p.lane is bulk]
    assert aging.plan(waiting, paused={"p4.bulk"}, now_s=T0) == [p for p in planned if p.lane is low]


def test_counter_fields() -> None:
    field = aging.counter_field(Priority.BULK, Priority.LOW)
    assert field == "bulk\tlow"
    assert aging.parse_counter_field(field) == (Priority.BULK, Priority.LOW)
    assert aging.parse_counter_field("bulk") is None
    assert aging.parse_counter_field("bulk\tnowhere") is None


# --- the job context and the DLQ record of a promoted job -----------------------------------------


def test_a_promoted_job_is_a_job_of_its_new_lane_and_its_record_says_where_it_came_from() -> None:
    new = aging.promoted(message(enqueuedAt=T0, priority="LOW"), Priority.LOW, Priority.DEFAULT, T0)
    request = SimpleNamespace(
        id=new["headers"]["id"], headers=new["headers"], delivery_info=new["properties"]["delivery_info"]
    )
    job = build_job_context(request, task_name="shop.refresh", declared=Priority.LOW)
    assert (job.priority, job.promoted_from) == (Priority.DEFAULT, Priority.LOW)
    assert job.headers["promotedFrom"] == "LOW"

    failure = build_failure(
        job, RuntimeError("boom"), policy=DEFAULT_RETRY_POLICIES[Priority.DEFAULT], now_s=T0
    )
    record = record_from_failure(failure, [])
    assert (record.priority, record.promoted_from) == (Priority.DEFAULT, Priority.LOW)
    line = json.loads(record.to_json())
    assert (line["priority"], line["promotedFrom"], line["headers"]["promotedFrom"]) == (
        "DEFAULT",
        "LOW",
        "LOW",
    )
    # A replay is a new execution of the lane the job failed in: it is not promoted.
    assert "promotedFrom" not in line["payload"]["headers"]

    never = build_job_context(
        SimpleNamespace(id="x", headers={}, delivery_info={"routing_key": LOW}),
        task_name="shop.refresh",
        declared=Priority.LOW,
    )
    assert never.promoted_from is None
    assert json.loads(record.model_copy(update={"promoted_from": None}).to_json())["promotedFrom"] is None


def test_the_transport_stamps_lane_entry_on_a_message_with_headers() -> None:
    stamped = message()
    envelope.stamp_lane_entry(stamped, T0)
    assert stamped["headers"]["laneSince"] == T0
    bare: dict[str, Any] = {"body": "x"}
    envelope.stamp_lane_entry(bare, T0)
    assert bare == {"body": "x"}


# --- the lease --------------------------------------------------------------------------------------


def test_one_holder_at_a_time_renewed_by_its_holder_only(redis_client: redis.Redis) -> None:
    first = Lease(redis_client, keys.AGING_LEASE, "pool-a@host", ttl_s=30)
    second = Lease(redis_client, keys.AGING_LEASE, "pool-b@host", ttl_s=30)

    assert first.hold()
    assert not second.hold()
    assert first.hold()  # renewed
    assert first.holder_now() == "pool-a@host"
    assert not second.release()  # not its lease: left alone
    assert first.holder_now() == "pool-a@host"
    assert first.release()
    assert second.hold()
    assert second.holder_now() == "pool-b@host"


def test_a_lease_nobody_renews_passes_to_another(redis_client: redis.Redis) -> None:
    gone = Lease(redis_client, keys.AGING_LEASE, "dead@host", ttl_s=0.05)
    other = Lease(redis_client, keys.AGING_LEASE, "live@host", ttl_s=30)
    assert gone.hold()
    wait_until(other.hold, timeout_s=10)
    assert not gone.hold()


def test_only_the_sweeper_holding_the_lease_sweeps(redis_client: redis.Redis) -> None:
    settings = load_settings(aging={"sweep_interval_s": 10})
    first = AgingSweeper(redis_client, settings, "pool-a@host")
    second = AgingSweeper(redis_client, settings, "pool-b@host")
    assert first.tick() is not None
    assert second.tick() is None
    assert redis_client.pttl(keys.AGING_LEASE) > 20_000  # three intervals
    first.stop()  # never started: gives the lease up
    assert second.tick() is not None


# --- one sweep on Redis -------------------------------------------------------------------------------


def _push(client: redis.Redis, lane: str, *messages: dict[str, Any]) -> list[str]:
    for item in messages:
        client.lpush(lane, json.dumps(item))
    return [item["headers"]["id"] for item in messages]


def _ids(client: redis.Redis, lane: str) -> list[str]:
    """Execution ids of a lane's plain list, next out first."""
    return [json.loads(raw)["headers"]["id"] for raw in reversed(client.lrange(lane, 0, -1))]


def test_a_sweep_promotes_due_jobs_to_the_front_of_the_lane_above(redis_client: redis.Redis) -> None:
    settings = load_settings(aging={"low_s": 10})
    [waiting] = _push(redis_client, DEFAULT, message(lane=DEFAULT, laneSince=T0))
    oldest, due, young = _push(redis_client, LOW, *(message(laneSince=T0 - age) for age in (30, 20, 5)))

    result = aging.sweep(redis_client, settings, T0)

    assert result.promoted == {(Priority.LOW, Priority.DEFAULT): 2}
    assert (result.blocked, result.gone, result.scanned) == ({}, 0, 4)
    # The oldest first, then the next oldest, then what already waited in DEFAULT.
    assert _ids(redis_client, DEFAULT) == [oldest, due, waiting]
    assert _ids(redis_client, LOW) == [young]
    assert redis_client.hgetall(keys.PROMOTED_COUNTS) == {b"low\tdefault": b"2"}
    assert redis_client.llen(keys.doorbell(DEFAULT)) == 2
    # Their fresh laneSince keeps them in DEFAULT until they wait out its threshold.
    assert (
        aging.sweep(redis_client, load_settings(aging={"low_s": 10, "default_s": 10}), T0 + 1).promoted == {}
    )


def test_a_full_lane_above_leaves_the_job_where_it_is_and_counts_it(redis_client: redis.Redis) -> None:
    settings = load_settings(aging={"low_s": 10}, queue_capacity={"default": 2})
    _push(redis_client, DEFAULT, message(lane=DEFAULT, laneSince=T0), message(lane=DEFAULT, laneSince=T0))
    [stuck] = _push(redis_client, LOW, message(laneSince=T0 - 60))

    result = aging.sweep(redis_client, settings, T0)

    assert result.promoted == {}
    assert result.blocked == {(Priority.LOW, Priority.DEFAULT): 1}
    assert _ids(redis_client, LOW) == [stuck]
    assert redis_client.llen(DEFAULT) == 2
    assert aging.read_counts(redis_client) == ({}, {(Priority.LOW, Priority.DEFAULT): 1})

    # Room again: the next sweep promotes it.
    redis_client.rpop(DEFAULT)
    assert aging.sweep(redis_client, settings, T0 + 1).promoted == {(Priority.LOW, Priority.DEFAULT): 1}
    assert redis_client.llen(LOW) == 0


def test_a_job_taken_between_the_read_and_the_promotion_is_left_alone(redis_client: redis.Redis) -> None:
    settings = load_settings(aging={"low_s": 10}, queue_capacity={"default": 1})
    item = message(laneSince=T0 - 60)
    raw = json.dumps(item)
    new_raw = json.dumps(aging.promoted(item, Priority.LOW, Priority.DEFAULT, T0))
    promote_keys = [
        *keys.lane_lists(DEFAULT),
        LOW,
        DEFAULT,
        keys.doorbell(DEFAULT),
        keys.PROMOTED_COUNTS,
        keys.PROMOTION_BLOCKED_COUNTS,
    ]
    depth_keys = len(keys.lane_lists(DEFAULT))
    args = [
        settings.capacity(Priority.DEFAULT),
        "low\tdefault",
        raw,
        new_raw,
        keys.DOORBELL_LAST_INDEX,
        depth_keys,
    ]

    # Not in its list (a worker took it): nothing moves, nothing is counted, even with the lane above full.
    assert scripts.AGING_PROMOTE(redis_client, promote_keys, args) == 0
    redis_client.lpush(DEFAULT, "occupant")
    assert scripts.AGING_PROMOTE(redis_client, promote_keys, args) == 0
    assert redis_client.llen(DEFAULT) == 1
    assert not redis_client.exists(keys.PROMOTED_COUNTS, keys.PROMOTION_BLOCKED_COUNTS)


def test_paused_lanes_and_foreign_messages_stay(redis_client: redis.Redis) -> None:
    settings = load_settings(aging={"low_s": 10})
    redis_client.lpush(LOW, b"not a message", json.dumps(message()))  # the second has no stamp at all
    redis_client.lpush(LOW, json.dumps(message(laneSince=T0 - 60)))
    redis_client.sadd(keys.PAUSED_LANES, LOW)
    assert aging.sweep(redis_client, settings, T0).promoted == {}
    redis_client.delete(keys.PAUSED_LANES)
    assert aging.sweep(redis_client, settings, T0).promoted == {(Priority.LOW, Priority.DEFAULT): 1}
    assert redis_client.llen(LOW) == 2


def test_jobs_waiting_in_tenant_lists_age_too_and_leave_the_fair_accounting(
    redis_client: redis.Redis,
) -> None:
    # Given LOW with a fair share per tenant: two due jobs of tenant A, one young job of tenant B
    settings = load_settings(aging={"low_s": 10})

    def push_for(tenant: str, lane_since_s: float) -> str:
        job = message(laneSince=lane_since_s, tenantId=tenant)
        scripts.TENANT_PUSH(redis_client, tenants.push_keys(LOW, tenant), [json.dumps(job), 9, tenant])
        return str(job["headers"]["id"])

    old_a, older_a = push_for("A", T0 - 30), push_for("A", T0 - 20)
    young_b = push_for("B", T0 - 1)
    assert int(scripts.DEPTH(redis_client, keys.depth_keys(LOW))) == 3

    # When the lane is swept
    result = aging.sweep(redis_client, settings, T0)

    # Then A's jobs moved to DEFAULT, and LOW's fair share counts only B's job
    assert result.promoted == {(Priority.LOW, Priority.DEFAULT): 2}
    assert set(_ids(redis_client, DEFAULT)) == {old_a, older_a}
    assert int(scripts.DEPTH(redis_client, keys.depth_keys(LOW))) == 1
    assert redis_client.zrange(keys.tenant_counts(LOW), 0, -1, withscores=True) == [(b"B", 1.0)]
    assert redis_client.lrange(keys.tenant_ring(LOW), 0, -1) == [b"B"]
    assert json.loads(redis_client.lindex(keys.tenant_list(LOW, "B"), -1))["headers"]["id"] == young_b
