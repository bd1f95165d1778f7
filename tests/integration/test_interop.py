"""Plain Celery and storefront-jobs share lanes: each side's messages run on the other side's workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis
from tests.integration import interop_jobs, jobs
from tests.support.workers import REPO_ROOT, WorkerFactory, wait_until, worker_env

pytestmark = pytest.mark.integration


def runs(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(v) for v in client.lrange(interop_jobs.RUNS, 0, -1)]


def test_a_bare_celery_producer_sends_to_a_storefront_lane(
    app: Any, workers: WorkerFactory, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    workers.start("DEFAULT")
    # Imported while tests were collected, before the test broker existed.
    interop_jobs.bare_app.conf.broker_url = redis_server.url
    # A plain Celery app, default settings, sending by task name to the DEFAULT lane
    sent = interop_jobs.bare_app.send_task(
        interop_jobs.RECORD_NAME, ("o-1",), {"copies": 2}, queue="p2.default"
    )
    wait_until(lambda: runs(redis_client))
    assert runs(redis_client) == [{"side": "storefront", "order_id": "o-1", "copies": 2, "id": sent.id}]


def test_a_bare_celery_worker_runs_what_storefront_sends(
    app: Any, redis_server: EmbeddedRedis, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # A plain Celery worker on the DEFAULT lane, its app knowing nothing of storefront
    log = (tmp_path / "bare-worker.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.integration.interop_jobs:bare_app",
            "worker",
            "-Q",
            "p2.default",
            "-P",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "-n",
            "bare@%h",
        ],
        env=worker_env(redis_server.url),
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Storefront's lean enqueue, and enqueue_many, of the storefront task of the same name
        one = jobs.interop_record.delay("o-2", copies=3)
        many = jobs.interop_record.enqueue_many([("o-3",), {"order_id": "o-4", "copies": 5}])
        wait_until(lambda: len(runs(redis_client)) >= 3, timeout_s=120)
        assert sorted((r["order_id"], r["copies"], r["side"], r["id"]) for r in runs(redis_client)) == [
            ("o-2", 3, "bare", one.id),
            ("o-3", 1, "bare", many[0].id),
            ("o-4", 5, "bare", many[1].id),
        ]
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
    assert b"storefront_jobs" not in (tmp_path / "bare-worker.log").read_bytes()
