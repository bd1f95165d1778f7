"""The processes a benchmark run starts: producers and worker pools, and their teardown.

Every child runs in a session of its own (``start_new_session``), so Ctrl-C
in the terminal reaches only bench.core, which then stops each child by its
process-group id: the worker's main process *and* its pool children, and
nothing this run did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

from celery import Celery

from bench.probes import BROKER_URL_VAR
from storefront_jobs.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Storefront's default capacity (10,000) would refuse big --jobs pre-loads; the
#: value does not change the cost of the check (one LLEN per list either way).
BENCH_CAPACITY = "1000000"
#: CLI flags given to both kinds of worker: they only shorten start-up (no
#: waiting for replies of other nodes) and touch no per-job code path.
STARTUP_FLAGS = ("--without-mingle", "--without-gossip")


def child_env(broker_url: str, kind: str, **settings: str) -> dict[str, str]:
    """Environment of a child: this one minus stray storefront settings, plus the broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREFRONT_JOBS_", "BENCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env[BROKER_URL_VAR] = broker_url
    if kind == "storefront":
        env["STOREFRONT_JOBS_BROKER_URL"] = broker_url
        env["STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT"] = BENCH_CAPACITY
        # Every pool serves its metrics (a feature that is on), each on a port of its own:
        # two pools, or someone else's on the default 9808, would otherwise collide.
        env["STOREFRONT_JOBS_METRICS_PORT"] = str(free_port())
        env.update({f"STOREFRONT_JOBS_{k.upper()}": v for k, v in settings.items()})
    return env


class Children:
    """Every process this run started, so that one ``close()`` ends them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[subprocess.Popen[Any]] = []

    def spawn(
        self, argv: list[str], env: dict[str, str], log_name: str, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        with (self.log_dir / log_name).open("ab") as log:
            kwargs.setdefault("stdout", log)  # the worker banner; producers pass a pipe instead
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO_ROOT,
                stderr=log,
                stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                start_new_session=True,
                **kwargs,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout_s: float = 15.0) -> None:
        """Warm shutdown (SIGTERM to the main process), then SIGKILL the whole group if it hangs."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout_s)
        # Pool children outlive a main process that was killed: end the group either way.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        for proc in self._procs:
            self.stop(proc, timeout_s=5.0)
        self._procs.clear()


class Producer:
    """A ``bench.producer`` process, driven one JSON command at a time."""

    def __init__(
        self,
        children: Children,
        kind: str,
        broker_url: str,
        *,
        settings: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        """``settings``: extra STOREFRONT_JOBS_* of a storefront producer; ``name`` its log's name."""
        self.kind = kind
        self._proc = children.spawn(
            [sys.executable, "-m", "bench.producer", kind],
            child_env(broker_url, kind, **(settings or {})),
            f"producer-{name or kind}.log",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._stdin: IO[str] = self._proc.stdin  # type: ignore[assignment]
        self._stdout: IO[str] = self._proc.stdout  # type: ignore[assignment]
        self._read()  # the "ready" line: imports done, nothing sent yet

    def _read(self) -> dict[str, Any]:
        line = self._stdout.readline()
        if not line:
            raise RuntimeError(f"{self.kind} producer exited with {self._proc.wait()}; see its log")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.kind} producer: {reply['error']}")
        return reply

    def call(self, op: str, **fields: Any) -> float:
        """Run one command; the seconds the producer spent on it."""
        self._stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._stdin.flush()
        return float(self._read()["elapsed_s"])


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the name before ")" may hold spaces
    return (int(fields[11]) + int(fields[12])) * _TICK_S


class Worker:
    """A worker pool subprocess: ``storefront-jobs worker`` or bare ``celery worker``."""

    def __init__(self, children: Children, proc: subprocess.Popen[Any], nodename: str, log: Path) -> None:
        self._children = children
        self.proc = proc
        self.nodename = nodename
        self.log = log

    def stop(self, timeout_s: float = 15.0) -> None:
        self._children.stop(self.proc, timeout_s)

    def cpu_s(self) -> float:
        """CPU seconds used so far by the main process and its pool processes.

        CPU time, unlike wall time, hardly moves when other people's jobs load
        the machine: the cost per job it gives is the steadiest number here.
        """
        pid = self.proc.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return cpu_s(pid) + sum(cpu_s(int(child)) for child in children)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def start_worker(
    children: Children,
    broker_url: str,
    kind: str,
    lanes: str,
    *,
    concurrency: int = 2,
    settings: dict[str, str] | None = None,
    imports: str = "bench.jobs",
    pool: str = "prefork",
) -> Worker:
    """Start a pool (prefork unless ``pool`` says otherwise).

    ``lanes``: storefront ``--priorities``, or bare ``-Q`` ('' = default queue).

    ``imports``: the modules of a storefront pool's tasks (``--imports``).
    """
    name = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    common = ["-c", str(concurrency), "-P", pool, "-n", f"{name}@%h", *STARTUP_FLAGS]
    if kind == "storefront":
        argv = [sys.executable, "-m", "storefront_jobs", "worker", "--priorities", lanes]
        argv += ["--imports", imports, *common]
    else:
        argv = [sys.executable, "-m", "celery", "-A", "bench.bare:bare_app", "worker", *common]
        argv += ["-Q", lanes] if lanes else []
    log_name = f"{name}.log"
    proc = children.spawn(argv, child_env(broker_url, kind, **(settings or {})), log_name)
    return Worker(children, proc, f"{name}@{socket.gethostname()}", children.log_dir / log_name)


def wait_ready(control: Celery, worker: Worker, timeout_s: float = 60.0) -> None:
    """Block until the worker answers a broadcast ping: its pool and consumer are up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
        if control.control.ping(destination=[worker.nodename], timeout=0.5):
            return
    raise RuntimeError(f"worker {worker.nodename} did not answer a ping:\n{worker.log_tail()}")


def processed_count(control: Celery, worker: Worker) -> int | None:
    """Jobs the worker accepted, from ``inspect stats``; ``None`` if it did not answer."""
    replies = control.control.inspect(destination=[worker.nodename], timeout=5.0, limit=1).stats() or {}
    stats = replies.get(worker.nodename)
    return None if stats is None else sum(stats.get("total", {}).values())
