"""The admin API under a bounded loopback load, and secrets kept out of every log.

`storefront-jobs serve` runs as in production (uvicorn, one process) on 127.0.0.1; 200 concurrent
clients send a fixed mix of valid, unauthorised, oversized and racing requests. No answer may be a
5xx, each must be the one its request calls for, and the tokens must appear in no log line of the
server or of a worker that has them in its environment.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from storefront_jobs.admin.limits import MAX_BODY_BYTES
from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.embedded import EmbeddedRedis, free_port
from tests.chaos.accounting import write_result
from tests.support.dlq import make_record
from tests.support.workers import REPO_ROOT, WorkerFactory, wait_until, worker_env

pytestmark = pytest.mark.chaos

READ, ADMIN = "load-read-token-0001", "load-admin-token-0001"
TOKENS = {READ: ["dlq:read"], ADMIN: ["dlq:read", "dlq:replay", "dlq:delete"]}
METRICS_TOKEN = "load-metrics-token-0001"
WRONG = "load-wrong-token-0001"
SECRETS = (READ, ADMIN, METRICS_TOKEN, WRONG)
CLIENTS = 200
SECRET_SETTINGS = {"admin_tokens": json.dumps(TOKENS), "metrics_token": METRICS_TOKEN}
#: Entries 20 clients replay at once with one idempotency key; not among the entries clients read.
RACED = ["e-040", "e-041"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def serve(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """`storefront-jobs serve` on a free loopback port, logging at INFO (access log on)."""
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "storefront_jobs", "serve", "--port", str(port), "--log-level", "info"],
            env=worker_env(redis_server.url, **SECRET_SETTINGS),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    wait_until(up, interval_s=0.1)
    assert proc.poll() is None, log.read_text()[-3000:]
    yield url, log
    proc.terminate()
    proc.wait(30)


def oversized(client_number: int) -> Any:
    """A body over the limit: declared up front (Content-Length), or streamed in chunks without a length."""
    if client_number % 2:
        return b"[" * (MAX_BODY_BYTES + 1)

    async def chunks() -> Any:
        for _ in range(MAX_BODY_BYTES // 65_536 + 1):
            yield b"[" * 65_536

    return chunks()


# Each client sends the common requests; clients 0-19 also race one replay, clients 20-39 also send a
# body over the limit. (method, path, request arguments, the statuses it may get)
Request = tuple[str, str, dict[str, Any], set[int]]


def requests_of(client_number: int) -> list[Request]:
    entry = f"e-{client_number % 40:03d}"
    common: list[Request] = [
        ("GET", "/admin/jobs/dlq?queue=all&limit=20", {"headers": bearer(READ)}, {200}),
        ("GET", "/admin/jobs/dlq/stats", {"headers": bearer(READ)}, {200}),
        ("GET", f"/admin/jobs/dlq/{entry}", {"headers": bearer(READ)}, {200}),
        ("GET", "/admin/jobs/dlq/no-such-entry", {"headers": bearer(READ)}, {404}),
        ("POST", "/admin/jobs/replay", {"headers": bearer(ADMIN), "json": {"filter": {"queue": "all"},
                                                                              "dryRun": True}}, {200}),
        ("POST", "/admin/jobs/replay", {"headers": bearer(READ), "json": {"executionId": entry}}, {403}),
        ("GET", "/admin/jobs/dlq/stats", {"headers": bearer(WRONG)}, {401}),
        ("GET", "/admin/jobs/audit", {}, {401}),
        ("GET", "/q/metrics", {}, {401}),
        ("GET", "/q/metrics", {"headers": bearer(METRICS_TOKEN)}, {200}),
        ("GET", "/q/health", {}, {200, 503}),
    ]  # fmt: skip
    if client_number < 20:
        # One replay, one idempotency key, 20 clients at once: replayed once; the others get the stored
        # answer, or 409 while the first request runs.
        race = {
            "headers": {**bearer(ADMIN), "Idempotency-Key": "load-replay"},
            "json": {"executionIds": RACED},
        }
        common.append(("POST", "/admin/jobs/replay", race, {200, 409}))
    elif client_number < 40:
        big = {
            "headers": {**bearer(ADMIN), "Content-Type": "application/json"},
            "content": oversized(client_number),
        }
        common.append(("POST", "/admin/jobs/replay", big, {413}))
    return common


async def run_clients(url: str) -> tuple[Counter[tuple[str, int]], list[str], float]:
    statuses: Counter[tuple[str, int]] = Counter()
    wrong: list[str] = []
    # A connection per request: a kept-alive one can be closed by the server's keep-alive timeout just as
    # the client reuses it, which says nothing about the API.
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def client(number: int) -> None:
            for method, path, kwargs, expected in requests_of(number):
                try:
                    answer = await http.request(method, path, **kwargs)
                except httpx.TransportError as exc:
                    wrong.append(f"{method} {path} -> {type(exc).__name__}: {exc}")
                    continue
                statuses[(re.sub(r"/e-\d+$", "/{id}", path.split("?")[0]), answer.status_code)] += 1
                if answer.status_code not in expected:
                    wrong.append(f"{method} {path} -> {answer.status_code} {answer.text[:200]}")

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(CLIENTS))), timeout=120)
        return statuses, wrong, time.monotonic() - started


def test_the_admin_api_under_200_concurrent_clients_answers_no_5xx_and_keeps_its_limits(
    app: Any, serve: tuple[str, Path], redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Given a DLQ of 42 entries behind `storefront-jobs serve`
    url, log = serve
    store = store_for(app)
    for i in range(42):
        store.add(make_record(f"e-{i:03d}", failed_at=1_800_000_000.0 + i))

    # When 200 clients send their requests at once (2,240 in all)
    statuses, wrong, elapsed_s = asyncio.run(run_clients(url))

    # Then every answer is the one its request calls for, none is a 5xx, and the raced replay ran once
    summary = {f"{path} {code}": n for (path, code), n in sorted(statuses.items())}
    write_result(
        "admin API, 200 concurrent clients",
        {"clients": CLIENTS, "requests": sum(statuses.values()), "seconds": round(elapsed_s, 1),
         "serverErrors": sum(n for (_, code), n in statuses.items() if code >= 500), "statuses": summary},
        tmp_path,
    )  # fmt: skip
    assert not [s for s in statuses if s[1] >= 500], summary
    assert not wrong, wrong[:10]
    assert statuses[("/admin/jobs/replay", 413)] == 20
    assert redis_client.llen("p2.default") == len(RACED)
    assert store.count(Filter()) == 42 - len(RACED)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_tokens_never_appear_in_logs(
    app: Any, serve: tuple[str, Path], workers: WorkerFactory, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Given the admin API and a worker, both with every secret in their environment
    url, serve_log = serve
    worker = workers.start("DEFAULT", concurrency=1, settings=SECRET_SETTINGS)
    from tests.integration import jobs

    # When requests carry good, wrong and malformed credentials, and the worker runs and fails jobs
    for token in SECRETS:
        for path in ("/admin/jobs/dlq/stats", "/admin/jobs/audit", "/q/metrics"):
            httpx.get(url + path, headers=bearer(token), timeout=10)
        httpx.get(url + "/admin/jobs/dlq/stats", headers={"Authorization": token}, timeout=10)
    jobs.noop.delay(1)
    failed = jobs.permanently_failing.delay("secret-scan")
    wait_until(lambda: store_for(app).get(failed.id) is not None)
    worker.stop()
    bad_config = subprocess.run(
        [sys.executable, "-m", "storefront_jobs", "serve", "--port", str(free_port())],
        env=worker_env(app.conf.broker_url, admin_tokens=json.dumps({ADMIN: "dlq:read", READ: [1]})),
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
    )  # fmt: skip

    # Then no log line of either, nor the start-up error of a bad token table, holds a secret
    assert bad_config.returncode != 0
    texts = {
        "serve": serve_log.read_text(),
        "worker": worker.log_text(),
        "bad config": bad_config.stdout + bad_config.stderr,
    }
    assert "GET /admin/jobs/dlq/stats" in texts["serve"]  # the access log was on
    assert "invalid settings" in texts["bad config"]
    leaks = [(name, secret) for name, text in texts.items() for secret in SECRETS if secret in text]
    assert not leaks, leaks
