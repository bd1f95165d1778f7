"""Real worker processes for tests: started as `storefront-jobs worker`, stopped or killed at will.

Deadlines here are long on purpose. CI runs the suite on two shared cores, sometimes with both busy;
a deadline only costs time when a test is failing anyway, so it is set for the slowest machine, and
what a test proves is the condition it waits for, never how fast it came true.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storefront_jobs.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_JOBS_MODULE = "tests.integration.jobs"
#: Default deadline of :func:`wait_until`: seconds a loaded CI machine may need for a worker to act.
WAIT_S = 60.0
#: How long a worker may take to start and answer a ping (imports and pool forks on busy cores).
READY_S = 90.0
#: Settings of the session's broker that a worker gets from this process beside the URL.
BROKER_VARS = ("STOREFRONT_JOBS_BROKER_MASTER_NAME", "STOREFRONT_JOBS_BROKER_TLS__")


def worker_env(broker_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_JOBS_")}
    # How to reach the session's broker beside its URL (a Sentinel group's name) is the broker's.
    env.update({k: v for k, v in os.environ.items() if k.startswith(BROKER_VARS)})
    env.update(
        STOREFRONT_JOBS_BROKER_URL=broker_url,
        STOREFRONT_JOBS_IMPORTS=TEST_JOBS_MODULE,
        STOREFRONT_JOBS_LOG_LEVEL="INFO",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONUNBUFFERED="1",
    )
    env.update({f"STOREFRONT_JOBS_{k.upper()}": v for k, v in settings.items()})
    return env


class WorkerProcess:
    """One `storefront-jobs worker` subprocess, in its own process group."""

    def __init__(
        self, proc: subprocess.Popen[bytes], nodename: str, log_path: Path, metrics_port: int
    ) -> None:
        self.proc = proc
        self.nodename = nodename
        self.log_path = log_path
        self.metrics_port = metrics_port

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON log line the worker wrote so far."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True, check=False)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self, timeout_s: float = 45.0) -> int:
        """Warm shutdown (SIGTERM to the main process only), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group, as a lost node would."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class WorkerFactory:
    def __init__(self, broker_url: str, tmp_path: Path, ping: Any) -> None:
        self.broker_url = broker_url
        self.tmp_path = tmp_path
        self._ping = ping
        self.started: list[WorkerProcess] = []

    def start(
        self,
        priorities: str = "all",
        *,
        concurrency: int = 1,
        pool: str = "prefork",
        settings: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
        wait: bool = True,
        celery_queues: str | None = None,
        wrapper: tuple[str, ...] = (),
    ) -> WorkerProcess:
        """Start `storefront-jobs worker`, or plain `celery -A storefront_jobs worker -Q celery_queues`.

        ``wrapper`` runs the worker through another command (``("faketime", "-f", "-2h")``).
        """
        name = f"test-{uuid.uuid4().hex[:8]}"
        nodename = f"{name}@{socket.gethostname()}"
        log_path = self.tmp_path / f"{name}.log"
        common = [
            "-c",
            str(concurrency),
            "-P",
            pool,
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        if celery_queues is None:
            cmd = [sys.executable, "-m", "storefront_jobs", "worker", "--priorities", priorities, *common]
        else:
            cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "storefront_jobs",
                "worker",
                "-Q",
                celery_queues,
                *common,
            ]
        cmd = [*wrapper, *cmd, *extra]
        metrics_port = free_port()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                env=worker_env(self.broker_url, metrics_port=str(metrics_port), **(settings or {})),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, nodename, log_path, metrics_port)
        self.started.append(worker)
        if wait:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess, timeout_s: float = READY_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {worker.proc.returncode}:\n{worker.log_text()[-4000:]}"
                )
            # One destination: the call returns as soon as it answers; a late answer just means another try.
            if self._ping(destination=[worker.nodename], timeout=1.0):
                return
        log = worker.log_text()[-4000:]
        raise RuntimeError(f"worker {worker.nodename} did not answer a ping within {timeout_s} s:\n{log}")

    def stop_all(self) -> None:
        """Teardown only: the test is over, so its pools are killed with their process groups.

        A warm shutdown of even an idle prefork pool takes Celery 2.4 s (bare Celery too: the pool's
        join and its timer thread's last sleep), and a busy one can wait ~30 s in billiard for its
        result pipe; at every test's end that was a third of the suite's time. The next test starts
        on an emptied Redis (``redis_client``). Tests of the warm shutdown call ``stop()`` themselves.
        """
        for worker in self.started:
            worker.kill()


def wait_until(predicate: Any, timeout_s: float = WAIT_S, interval_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Wait only for a condition that must become true and stay true long enough to be seen (a record
    written, a count reached, a process gone), never for one that may already be over. On timeout,
    fails naming the condition (its source line) and its last value.
    """
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {timeout_s} s: {_describe(predicate)} (last value: {value!r})"
            )
        time.sleep(interval_s)
        value = predicate()
    return value


def _describe(predicate: Any) -> str:
    """The source of a lambda, or the name of a function: what a failed wait was waiting for."""
    name = getattr(predicate, "__qualname__", repr(predicate))
    if "<lambda>" not in name:
        return name
    try:
        return " ".join(inspect.getsource(predicate).split())[:300]
    except (OSError, TypeError):
        return name


def iter_json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.startswith("{"):
            yield json.loads(line)
