"""A fair share per tenant on real workers: a small tenant's jobs overtake a big tenant's backlog."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from storefront_jobs import Priority, create_app, load_settings, tenant
from storefront_jobs.cli import main
from storefront_jobs.embedded import EmbeddedRedis
from tests.integration import fairness_jobs
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.integration

#: Tenant A's backlog, and tenant B's jobs sent after it.
BACKLOG, SMALL = 5_000, 10
JOB_S = 0.02
#: With fairness on, B's jobs start before A's 50th: one turn of A per job of B, with room for the
#: jobs the pool fetched ahead (prefetch) and a start or two recorded out of order.
FAIR_BOUND = 50
#: With fairness off, A's jobs that must start before B's first for the test to call it FIFO.
UNFAIR_AT_LEAST = 100


def _starts(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(fairness_jobs.STARTS, 0, -1)]


def _send_backlogs(app: Any) -> None:
    """Tenant A sends its backlog, then tenant B its few jobs, all of JOB_S each."""
    work = app.tasks[fairness_jobs.TASK]
    with tenant("A"):
        for n in range(BACKLOG):
            work.delay(n, JOB_S)
    with tenant("B"):
        for n in range(SMALL):
            work.delay(n, JOB_S)


def _app(redis_server: EmbeddedRedis, *, fair: bool) -> Any:
    settings = load_settings(broker_url=redis_server.url, tenant_fairness={"default": fair})
    return create_app(settings, main="fair" if fair else "fifo")


def test_with_fairness_a_small_tenant_overtakes_a_big_tenants_backlog(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given a DEFAULT lane with a fair share per tenant, tenant A's 5,000 jobs, then tenant B's 10
    app = _app(redis_server, fair=True)
    _send_backlogs(app)

    # Then the lane's depth counts every job, and `queues --tenants` shows them per tenant
    assert app.capacity_gate.depth(Priority.DEFAULT) == BACKLOG + SMALL
    shown = CliRunner().invoke(main, ["queues", "--tenants", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    [lane] = [row for row in json.loads(shown.stdout) if row["lane"] == "p2.default"]
    assert lane["top"] == [{"tenant": "A", "waiting": BACKLOG}, {"tenant": "B", "waiting": SMALL}]
    assert (lane["tenants"], lane["withoutTenant"]) == (2, 0)

    # When a one-process pool works the lane
    settings = {"imports": fairness_jobs.IMPORTS, "tenant_fairness__default": "true"}
    worker = workers.start("DEFAULT", concurrency=1, settings=settings)
    wait_until(lambda: sum(s["tenant"] == "B" for s in _starts(redis_client)) == SMALL, timeout_s=120)
    worker.kill()  # A's backlog is of no more interest

    # Then each of B's jobs waited for about one of A's, not for A's backlog
    order = _starts(redis_client)
    last_b = max(i for i, s in enumerate(order) if s["tenant"] == "B")
    a_before = [s["n"] for s in order[:last_b] if s["tenant"] == "A"]
    assert len(a_before) < FAIR_BOUND, f"{len(a_before)} of A's jobs started before B's last"
    assert sorted(s["n"] for s in order if s["tenant"] == "B") == list(range(SMALL))


def test_without_fairness_a_small_tenant_waits_behind_the_backlog(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, workers: WorkerFactory
) -> None:
    # Given the same backlogs in a DEFAULT lane without fairness (the default)
    _send_backlogs(_app(redis_server, fair=False))

    # When a one-process pool has started 100 jobs
    worker = workers.start("DEFAULT", concurrency=1, settings={"imports": fairness_jobs.IMPORTS})
    wait_until(lambda: len(_starts(redis_client)) >= UNFAIR_AT_LEAST, timeout_s=120)
    worker.kill()

    # Then they were all A's: B waits behind the whole backlog, first in, first out
    order = _starts(redis_client)
    assert [s["tenant"] for s in order] == ["A"] * len(order)
    assert [s["n"] for s in order] == list(range(len(order)))
