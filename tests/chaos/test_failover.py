"""A Sentinel failover under load: the primary is SIGKILLed while producers enqueue and a pool works.

One primary, two replicas and three Sentinel nodes, every one a ``redis-server`` on loopback that the
test starts (tests/support/sentinel.py). Producer and pool reach Redis through Sentinel only. With
``BROKER_MIN_REPLICAS=1`` an enqueue returns only once a replica holds the job, and Sentinel promotes
the replica with the most data, so no job whose enqueue returned is lost. With 0 the producer is told
"queued" before any replica has the job: what a failover loses then is measured and reported, on
loopback and with the replicas behind a link 50 ms late (tests/support/delayed_link.py), as over a
network (``-m measure``; docs/reliability.md, rows 10 and 10b).
Either way the same pool carries on without a restart, and ``/q/health`` names the new primary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs import create_app, load_settings
from storefront_jobs.admin.health import health
from storefront_jobs.deadletter import store_for
from tests.chaos.accounting import Ledger, account, assert_nothing_lost, publish, settle
from tests.chaos.producer import Producer, start_producer
from tests.support.sentinel import MASTER_NAME, SentinelCluster
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.chaos

VT_S = 10
#: Errors an enqueue may raise while there is no primary, or a replica has not confirmed a job.
FAILOVER_ERRORS = {"BrokerUnavailableError", "ReplicationError"}


@pytest.mark.parametrize(
    ("min_replicas", "link_delay_s", "jobs_each_side"),
    [
        pytest.param(1, 0.0, 200, id="min-replicas-1"),
        # Measured on demand (-m measure): on loopback the replicas are microseconds behind, so the
        # cases that show what a failover loses put a link delivering 50 ms late before the replicas.
        pytest.param(0, 0.0, 200, id="min-replicas-0", marks=pytest.mark.measure),
        pytest.param(0, 0.05, 200, id="min-replicas-0-link-50ms", marks=pytest.mark.measure),
        pytest.param(1, 0.05, 100, id="min-replicas-1-link-50ms", marks=pytest.mark.measure),
    ],
)
def test_a_failover_under_load(
    ledger: Ledger, tmp_path: Path, min_replicas: int, link_delay_s: float, jobs_each_side: int
) -> None:
    # Given a Sentinel group, a pool of 2 and a producer (100 jobs/s, every fifth with a countdown)
    started = time.monotonic()
    cluster = SentinelCluster(tmp_path / "group", replica_link_delay_s=link_delay_s).start()
    settings = {
        "visibility_timeout_s": str(VT_S),
        "broker_socket_timeout_s": "2",
        "broker_min_replicas": str(min_replicas),
        "broker_master_name": MASTER_NAME,
    }
    app: Any = create_app(
        load_settings(
            broker_url=cluster.url,
            broker_master_name=MASTER_NAME,
            visibility_timeout_s=VT_S,
            broker_min_replicas=min_replicas,
        ),
        main=f"failover-{min_replicas}",
    )
    factory = WorkerFactory(cluster.url, tmp_path, app.control.ping)
    try:
        worker = factory.start("DEFAULT", concurrency=2, settings=settings)
        stop = ledger.key("stop")
        producer = start_producer(
            cluster.url, tmp_path, run=ledger.run, prefix=f"fo{min_replicas}", count=99_999, rate=100,
            stop_key=stop, countdown_every=5, settings=settings,
        )  # fmt: skip
        wait_until(lambda: ledger.completed_count() >= jobs_each_side, timeout_s=120)

        # When the primary is killed (SIGKILL) and Sentinel promotes a replica
        old_port = cluster.kill_primary()
        killed_at = time.monotonic()
        cluster.wait_for_new_primary(old_port)
        promoted_s = time.monotonic() - killed_at
        # ...and the producer has had as many jobs again accepted by the new primary
        first_after = len(producer.answers())
        wait_until(lambda: len(accepted_since(producer, first_after)) >= jobs_each_side, timeout_s=120)
        ledger.client.set(stop, 1)
        producer.wait()
        acknowledged, refused = producer.acknowledged(), producer.refused()
        # (A loaded machine can make the nodes fail over twice: follow the primary they name now.)
        primary_port = cluster.primary_port()
        broker = redis.Redis(port=primary_port)
        settle(ledger, store_for(app), broker, acknowledged, timeout_s=120)

        # Then the same pool ran the jobs accepted after the failover, health names the new primary
        status, body = health(app)
        answers = producer.answers()
        outcome = account(
            f"Sentinel failover (primary SIGKILLed) under load, BROKER_MIN_REPLICAS={min_replicas}, "
            f"replicas' link {link_delay_s * 1000:.0f} ms late",
            ledger=ledger,
            store=store_for(app),
            enqueued=acknowledged,
            refused=refused,
            started_s=started,
            extra={
                "replicaLinkDelayS": link_delay_s,
                "promotedAfterS": round(promoted_s, 1),
                "producerDowntimeS": downtime_s(answers),
                "healthPrimary": body["broker"].get("primary"),
            },
        )
        publish(outcome, tmp_path)
        assert worker.proc.poll() is None, worker.log_text()[-3000:]
        assert (status, body["broker"]["primary"]) == (200, f"127.0.0.1:{primary_port}")
        assert set(outcome.refused_errors) <= FAILOVER_ERRORS, outcome.summary()
        assert outcome.unexpected == 0, outcome.summary()
        if min_replicas:
            known_gap(answers, outcome.lost_ids)
        assert set(ledger.runs()) >= set(accepted_since(producer, first_after)), outcome.summary()
        if min_replicas:
            # And with a replica confirming every job, none whose enqueue returned was lost
            assert_nothing_lost(outcome)
    finally:
        factory.stop_all()
        cluster.close()


def known_gap(answers: list[dict[str, object]], lost_ids: list[str]) -> None:
    """An open bug of issue 12, reported as such rather than as a failure of this test.

    When the nodes fail over twice in a row (the first new primary missed the 1 s down-after), an
    enqueue with a countdown (Celery's send path) has returned without waiting for a replica while
    ordinary enqueues at the same moment got ReplicationError, and such a job was lost (2 runs in
    about 10 on 2026-12-04). Any other loss, or a loss of an ordinary enqueue, fails the test.
    """
    if not lost_ids:
        return
    paths = {str(a["id"]): a.get("path") for a in answers}
    if all(paths.get(job_id) == "celery" for job_id in lost_ids):
        pytest.xfail(f"known gap (issue 12): countdown enqueues lost in a double failover: {lost_ids}")


def accepted_since(producer: Producer, first: int) -> list[str]:
    return [str(a["id"]) for a in producer.answers()[first:] if a.get("ok")]


def downtime_s(answers: list[dict[str, object]]) -> float:
    """How long producers were refused: from the first refused enqueue to the next accepted one after
    the last refusal (0 when none was refused)."""
    refused = [n for n, a in enumerate(answers) if not a.get("ok")]
    if not refused:
        return 0.0
    later = [a for a in answers[refused[-1] :] if a.get("ok")]
    end = float(str(later[0]["atS"])) if later else float(str(answers[-1]["atS"]))
    return round(end - float(str(answers[refused[0]]["atS"])), 2)
