"""A TLS-only Redis: workers, producers, the dlq command and health work through BROKER_TLS__*; a worker
given the wrong CA stops at start-up saying which setting to fix."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storefront_jobs import PermanentFailure, Priority, create_app, load_settings, priority_task
from storefront_jobs.admin.health import health
from storefront_jobs.deadletter import store_for
from tests.integration import jobs
from tests.support.dlq import run_dlq
from tests.support.tls import Pki, TlsRedis, make_pki
from tests.support.workers import REPO_ROOT, WorkerFactory, wait_until, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_redis(pki: Pki, tmp_path: Path) -> Iterator[TlsRedis]:
    data = tmp_path / "redis"
    data.mkdir()
    server = TlsRedis(pki, data).start()
    yield server
    server.close()


def tls_app(server: TlsRedis, pki: Pki, name: str) -> Any:
    settings = load_settings(
        broker_url=server.url,
        broker_tls={"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key},
    )
    return create_app(settings, main=name)


def test_a_worker_a_producer_and_the_dlq_work_over_tls(tls_redis: TlsRedis, pki: Pki, tmp_path: Path) -> None:
    app = tls_app(tls_redis, pki, "tls")

    # The producer's side of the workers' tests.integration.jobs.permanently_failing
    @priority_task(Priority.DEFAULT, queue="reporting.export", app=app, name=jobs.permanently_failing.name)
    def permanently_failing(tag: str) -> None:
        raise PermanentFailure("runs in the workers only")

    # Given a worker on the TLS-only Redis
    factory = WorkerFactory(tls_redis.url, tmp_path, app.control.ping)
    try:
        factory.start("DEFAULT", settings=pki.settings())

        # When a job that fails for good is enqueued, on both send paths
        lean = permanently_failing.delay("tls-lean").id
        celery_path = permanently_failing.apply_async(("tls-celery",), countdown=0.01).id

        # Then both reach the DLQ, the dlq command lists them, and health sees the broker
        store = store_for(app)
        wait_until(lambda: store.get(lean) is not None and store.get(celery_path) is not None)
        listed = run_dlq(tls_redis.url, "list", "--queue", "all", "--format", "json", **pki.settings())
        assert listed.returncode == 0, listed.stderr
        assert {lean, celery_path} <= {entry["executionId"] for entry in json.loads(listed.stdout)}
        status, body = health(app)
        assert (status, body["broker"]["reachable"]) == (200, True)
    finally:
        factory.stop_all()


def test_a_worker_given_the_wrong_ca_stops_at_start_up(tls_redis: TlsRedis, pki: Pki) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "storefront_jobs", "worker", "--priorities", "DEFAULT", "-c", "1"],
        env=worker_env(tls_redis.url, **pki.settings(ca=pki.wrong_ca)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode != 0
    assert "cannot start: the broker's TLS handshake failed" in started.stderr
    assert f"STOREFRONT_JOBS_BROKER_TLS__CA_FILE={pki.wrong_ca}" in started.stderr
    assert "certificate verify failed" in started.stderr
