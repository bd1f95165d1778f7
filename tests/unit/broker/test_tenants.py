"""A fair share per tenant on a real Redis: the push and fetch scripts, depth, the transport, readers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs import QueueOverflowError, create_app, load_settings, priority_task, tenant
from storefront_jobs.broker import keys, scripts, tenants
from storefront_jobs.broker.snapshot import read_lanes
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.metrics.broker import BrokerCollector
from storefront_jobs.settings import TenantFairness

DEFAULT, HIGH = keys.lane_name(Priority.DEFAULT), keys.lane_name(Priority.HIGH)
FOLDER = Path(scripts.__file__).parent


def message(name: str, tenant_id: str | None = None, *, enqueued_at_s: float | None = None) -> dict[str, Any]:
    """A kombu message as the transport stores it; ``name`` is its body, to read the order back."""
    headers: dict[str, Any] = {"id": str(uuid.uuid4()), "task": "tests.t"}
    if tenant_id is not None:
        headers[envelope.TENANT_ID] = tenant_id
    if enqueued_at_s is not None:
        headers[envelope.ENQUEUED_AT] = enqueued_at_s
    properties = {
        "delivery_tag": str(uuid.uuid4()),
        "delivery_info": {"exchange": "", "routing_key": DEFAULT},
        "priority": 0,
    }
    return {"body": name, "headers": headers, "properties": properties}


def push(client: redis.Redis, lane: str, tenant_id: str, *names: str) -> None:
    for name in names:
        scripts.TENANT_PUSH(
            client,
            tenants.push_keys(lane, tenant_id),
            [json.dumps(message(name, tenant_id)), keys.DOORBELL_LAST_INDEX, tenant_id],
        )


def fetch(client: redis.Redis, lanes: Sequence[str] = (DEFAULT,), weights: Sequence[Any] = ()) -> Any:
    """One fetch, with the KEYS and ARGV the worker's channel builds (storefront_jobs.broker.fetch)."""
    pairs = [(keys.lane_lists(q)[i], q) for i in range(len(keys.KOMBU_PRIORITY_STEPS)) for q in lanes]
    script_keys = [*(name for name, _ in pairs), keys.KOMBU_UNACKED, keys.KOMBU_UNACKED_INDEX]
    script_keys += [keys.doorbell(q) for q in lanes]
    args: list[Any] = [len(pairs), *(q for _, q in pairs)]
    fair_keys, fair_args = tenants.fetch_part(lanes, list(weights))
    return scripts.FETCH(client, [*script_keys, *fair_keys], [*args, *fair_args])


def drain(client: redis.Redis, lanes: Sequence[str] = (DEFAULT,), weights: Sequence[Any] = ()) -> list[str]:
    """The bodies of every job the fetch takes, in the order it takes them."""
    order = []
    while reply := fetch(client, lanes, weights):
        order.append(json.loads(reply[1])["body"])
    return order


def depth(client: redis.Redis, lane: str = DEFAULT) -> int:
    return int(scripts.DEPTH(client, keys.depth_keys(lane)))


def test_tenants_take_turns_and_a_tenant_leaves_the_ring_when_its_list_empties(
    redis_client: redis.Redis,
) -> None:
    # Given tenant A with 5 waiting jobs, then tenant B with 2
    push(redis_client, DEFAULT, "A", *(f"a{n}" for n in range(5)))
    push(redis_client, DEFAULT, "B", "b0", "b1")
    assert depth(redis_client) == 7
    # When a worker fetches, then the two take turns until B has nothing left, each in its own order
    assert drain(redis_client) == ["a0", "b0", "a1", "b1", "a2", "a3", "a4"]
    # And every job was recorded as unacknowledged under the lane, nothing of the fair share is left
    routes = {json.loads(v)[2] for v in redis_client.hvals(keys.KOMBU_UNACKED)}
    assert (redis_client.hlen(keys.KOMBU_UNACKED), routes) == (7, {DEFAULT})
    assert depth(redis_client) == 0
    assert not redis_client.exists(keys.tenant_ring(DEFAULT), keys.tenant_counts(DEFAULT))


def test_a_weighted_tenant_takes_its_weight_in_jobs_per_turn(redis_client: redis.Redis) -> None:
    push(redis_client, DEFAULT, "heavy", *(f"h{n}" for n in range(6)))
    push(redis_client, DEFAULT, "light", "l0", "l1", "l2")
    order = drain(redis_client, weights=["heavy", 3])
    assert order == ["h0", "h1", "h2", "l0", "h3", "h4", "h5", "l1", "l2"]


def test_the_plain_list_takes_a_turn_like_one_more_tenant(redis_client: redis.Redis) -> None:
    # Given jobs without a tenant (or restored, replayed) in the lane's own list, and two tenants
    for n in range(3):
        redis_client.lpush(DEFAULT, json.dumps(message(f"p{n}")))
    push(redis_client, DEFAULT, "A", "a0", "a1", "a2")
    push(redis_client, DEFAULT, "B", "b0", "b1", "b2")
    assert depth(redis_client) == 9
    # Then the plain list has one turn after each round of the tenants on the ring (after a2, A has
    # left it: a round is then B alone, and B's turn has been counted already)
    assert drain(redis_client) == ["a0", "b0", "p0", "a1", "b1", "p1", "a2", "p2", "b2"]


def test_a_lane_without_tenants_is_taken_as_before_and_strict_priority_holds(
    redis_client: redis.Redis,
) -> None:
    push(redis_client, DEFAULT, "A", "a0")
    redis_client.lpush(DEFAULT, json.dumps(message("p0")))
    redis_client.lpush(HIGH, json.dumps(message("h0")), json.dumps(message("h1")))
    assert drain(redis_client, (HIGH, DEFAULT)) == ["h0", "h1", "a0", "p0"]
    # and with every list empty the doorbells are dropped, as before
    assert not redis_client.exists(keys.doorbell(DEFAULT))


def test_a_tenant_list_deleted_by_hand_is_dropped_from_the_ring(redis_client: redis.Redis) -> None:
    push(redis_client, DEFAULT, "A", "a0", "a1")
    push(redis_client, DEFAULT, "B", "b0")
    redis_client.delete(keys.tenant_list(DEFAULT, "A"))
    assert drain(redis_client) == ["b0"]
    assert not redis_client.exists(keys.tenant_ring(DEFAULT), keys.tenant_counts(DEFAULT))
    assert depth(redis_client) == 0


def test_a_tenant_push_rings_the_lane_doorbell(redis_client: redis.Redis) -> None:
    push(redis_client, DEFAULT, "A", "a0", "a1")
    assert redis_client.llen(keys.doorbell(DEFAULT)) == 2


def test_the_depth_script_spells_the_fair_keys_as_keys_py_does() -> None:
    text = (FOLDER / "lib" / "lane_depth.lua").read_text()
    assert f"'{keys.FAIR_PREFIX}'" in text
    assert f"'{keys.FAIR_WAITING}'" in text
    assert keys.fair_state(DEFAULT).startswith(keys.FAIR_PREFIX)
    assert not any(name.startswith(keys.FAIR_PREFIX) for name in keys.lane_lists(DEFAULT))


def test_the_transport_option_keeps_only_weights_other_than_one() -> None:
    fairness = TenantFairness(default=True, bulk=True, weights={"t-1": 3, "t-2": 1})
    option = tenants.fairness_option(fairness)
    assert option == {"lanes": [DEFAULT, keys.lane_name(Priority.BULK)], "weights": {"t-1": 3}}
    options = {tenants.FAIRNESS_OPTION: option}
    assert tenants.weight_args(options) == ["t-1", 3]
    assert tenants.fair_lanes(options) == {DEFAULT, "p4.bulk"}
    assert tenants.fair_lanes(None) == frozenset()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"tenantId": "t-1"}, "t-1"), ({"tenantId": 42}, "42"), ({"tenantId": " "}, None), ({}, None)],
)
def test_the_tenant_of_a_message_is_its_tenant_id_header(
    headers: dict[str, Any], expected: str | None
) -> None:
    assert tenants.tenant_of({"headers": headers}) == expected
    assert tenants.tenant_of({}) is None


# --- through the transport ---------------------------------------------------------------------------


REPORT = "tests.unit.broker.test_tenants.report"


def _report(n: int) -> None:
    """A job each test sends through its own fair app."""


# Declared on every app, and not kept as a name of this module: pytest reads every name of a test
# module while collecting, and a declared task's attributes are those of the default app's task.
priority_task(Priority.DEFAULT, queue="reports", name=REPORT)(_report)


@pytest.fixture
def fair_app(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Any:
    settings = load_settings(
        broker_url=redis_server.url,
        queue_capacity={"default": 4},
        tenant_fairness={"default": True, "top_tenants": 1},
    )
    return create_app(settings, main="fair-lanes")


def _report_task(app: Any) -> Any:
    return app.tasks[REPORT]


def test_a_fair_lane_keeps_tenant_jobs_apart_and_counts_them_against_capacity(
    fair_app: Any, redis_client: redis.Redis
) -> None:
    send = _report_task(fair_app)
    # Given a fair DEFAULT lane of capacity 4
    now_s = time.time()
    with tenant("A"):
        send.delay(1)
        send.delay(2)
    with tenant("B"):
        send.delay(3)
    send.delay(4)  # no tenant: the lane's own list
    assert (redis_client.llen(keys.tenant_list(DEFAULT, "A")), redis_client.llen(DEFAULT)) == (2, 1)
    # Then the lane's depth counts every job, and the fifth is refused
    assert fair_app.capacity_gate.depth(Priority.DEFAULT) == 4
    with pytest.raises(QueueOverflowError) as refused, tenant("C"):
        send.delay(5)
    assert refused.value.depth == 4
    assert not redis_client.exists(keys.tenant_list(DEFAULT, "C"))
    # and the snapshot (metrics, `queues`) sees them all, the oldest job among the tenants' too
    state = read_lanes(redis_client)[Priority.DEFAULT]
    assert state.depth == 4
    assert state.oldest_enqueued_at is not None
    assert now_s - 1 <= state.oldest_enqueued_at <= time.time()


def test_a_retry_keeps_its_tenant_list_and_a_lane_without_fairness_takes_none(
    fair_app: Any, redis_client: redis.Redis
) -> None:
    retry = message("retry", "A")
    retry["headers"][envelope.RETRIES] = 1
    other = message("other", "A")
    with fair_app.connection_for_write() as connection:
        channel = connection.default_channel
        channel._put(DEFAULT, retry)
        channel._put(HIGH, other)  # HIGH is not fair here
    assert redis_client.llen(keys.tenant_list(DEFAULT, "A")) == 1
    assert (redis_client.llen(HIGH), redis_client.exists(keys.tenant_list(HIGH, "A"))) == (1, 0)


def test_size_and_purge_reach_the_tenant_lists(fair_app: Any, redis_client: redis.Redis) -> None:
    send = _report_task(fair_app)
    with tenant("A"):
        send.delay(1)
    with tenant("B"):
        send.delay(2)
    send.delay(3)
    with fair_app.connection_for_write() as connection:
        channel = connection.default_channel
        assert channel._size(DEFAULT) == 3
        assert channel._purge(DEFAULT) == 3
    assert depth(redis_client) == 0
    assert not [k for k in redis_client.keys(f"{keys.FAIR_PREFIX}*")]


def test_the_metrics_export_the_top_tenants_only(fair_app: Any, redis_client: redis.Redis) -> None:
    send = _report_task(fair_app)
    for who, n in (("A", 2), ("B", 1)):
        with tenant(who):
            for i in range(n):
                send.delay(i)
    families = {f.name: f for f in BrokerCollector(redis_client, fair_app.storefront_settings).collect()}
    per_tenant = [(s.labels, s.value) for s in families["storefront_jobs_queue_tenant_depth"].samples]
    assert per_tenant == [({"priority": "default", "tenant": "A"}, 2)]
    counts = {s.labels["priority"]: s.value for s in families["storefront_jobs_queue_tenants"].samples}
    assert (counts["default"], counts["high"]) == (2, 0)
    depths = {s.labels["priority"]: s.value for s in families["storefront_jobs_queue_depth"].samples}
    assert depths["default"] == 3
