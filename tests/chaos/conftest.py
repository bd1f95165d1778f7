"""Fixtures of the chaos tests: a ledger per test, producer processes, and a private AOF Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis
from tests.chaos.accounting import LEDGER_URL_VAR, Ledger
from tests.support.workers import REPO_ROOT, worker_env


@pytest.fixture
def ledger(redis_client: redis.Redis, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """This test's ledger, on the session server; workers and producers started later find it."""
    monkeypatch.setenv(LEDGER_URL_VAR, redis_server.url)
    return Ledger(redis_client, uuid.uuid4().hex[:12])


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A broker of the test's own, durable as production's (AOF, fsync every second), free to restart."""
    data = tmp_path / "redis-data"
    data.mkdir()
    server = EmbeddedRedis(data_dir=data, appendonly=True).start()
    yield server
    server.close()


class Producer:
    """A `tests.chaos.producer` process and the answers it wrote down."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path, log: Path) -> None:
        self.proc = proc
        self.out = out
        self.log = log

    def wait(self, timeout_s: float = 120.0) -> None:
        code = self.proc.wait(timeout_s)
        assert code == 0, f"producer exited with {code}:\n{self.log.read_text()[-3000:]}"

    def answers(self) -> list[dict[str, object]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def acknowledged(self) -> list[str]:
        return [str(a["id"]) for a in self.answers() if a.get("ok")]

    def refused(self) -> dict[str, str]:
        return {str(a["id"]): str(a["error"]) for a in self.answers() if not a.get("ok")}


def start_producer(
    broker_url: str,
    tmp_path: Path,
    *,
    run: str,
    prefix: str,
    count: int,
    rate: float = 0.0,
    sleep_s: float = 0.0,
    go_key: str | None = None,
    settings: dict[str, str] | None = None,
) -> Producer:
    out, log = tmp_path / f"producer-{prefix}.jsonl", tmp_path / f"producer-{prefix}.log"
    cmd = [sys.executable, "-m", "tests.chaos.producer", "--run", run, "--prefix", prefix]
    cmd += ["--count", str(count), "--rate", str(rate), "--sleep", str(sleep_s), "--out", str(out)]
    if go_key:
        cmd += ["--go-key", go_key]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            env=worker_env(broker_url, **(settings or {})),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )
    return Producer(proc, out, log)
