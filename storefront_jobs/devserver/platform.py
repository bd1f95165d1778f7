"""``storefront-jobs dev``: the whole platform on one machine, started and stopped in order.

Start:

1. **Broker**: ``STOREFRONT_JOBS_BROKER_URL`` when set (it must answer), else
   an embedded ``redis-server`` on port 6390, or any free port when 6390 is
   taken. Its URL goes into this process's environment, so the default app
   (which sends the demo jobs) and every child use the same broker.
2. **Worker pools and services**, started together since each takes
   seconds to import Celery: one ``storefront-jobs worker`` per priority,
   named ``<lane>-dev@<host>``, importing :mod:`storefront_jobs.examples`
   besides the configured ``IMPORTS``, each on its own metrics port
   (``METRICS_PORT`` + priority order, or a free one when that is taken) and
   ready when it answers a Celery ping; and, unless switched off, beat with
   the examples' schedule, the admin API on ``ADMIN_PORT`` and Flower on
   ``FLOWER_PORT`` (each on a free port when its own is taken), with local
   credentials when none are configured (:mod:`.services`). Then every URL,
   and the credentials made for this run, are printed.
3. **Demo workload** (unless disabled) and the status display.

Stop, on Ctrl-C, SIGTERM, SIGHUP or when ``duration_s`` has passed since the
workload started: the workload first, then beat, the admin API and Flower,
then the pools (warm shutdown: a running job finishes and is acknowledged),
then Redis, which the pools need until they are gone. A second Ctrl-C skips
the waiting and kills.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from rich.console import Console
from rich.live import Live

from storefront_jobs.application import StorefrontCelery, get_default_app
from storefront_jobs.broker import keys
from storefront_jobs.devserver.children import (
    EXAMPLES_MODULE,
    child_env,
    choose_port,
    choose_redis_port,
    ping_probe,
    pool_metrics_port,
    pool_name,
    pool_spec,
    redis_answers,
    redis_spec,
)
from storefront_jobs.devserver.options import DevOptions
from storefront_jobs.devserver.services import DevServices
from storefront_jobs.devserver.status import Snapshot, render, status_line
from storefront_jobs.devserver.supervisor import Child, StopSignals, Supervisor
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.errors import BrokerUnavailableError, ConfigurationError, StorefrontJobsError
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.task import PriorityTask
from storefront_jobs.settings import ENV_PREFIX, Settings, load_settings

if TYPE_CHECKING:
    # Only for annotations: importing the examples registers their tasks on the
    # default app, which must wait until the broker is chosen.
    from storefront_jobs.examples.demo import WorkloadRunner

BROKER_READY_TIMEOUT_S = 10.0
#: Five pools and three services boot at once; on a 2-CPU machine that takes several seconds.
POOLS_READY_TIMEOUT_S = 60.0
REFRESH_S = 0.5
#: How often a non-terminal output gets a status line.
LINE_EVERY_S = 2.0


class DevPlatform:
    """One run of ``storefront-jobs dev``; :meth:`run` is the whole lifecycle."""

    def __init__(
        self,
        options: DevOptions,
        settings: Settings,
        supervisor: Supervisor,
        signals: StopSignals,
        console: Console,
    ) -> None:
        self.options = options
        self.settings = settings
        self.supervisor = supervisor
        self.signals = signals
        self.console = console
        self.pools: dict[Priority, Child] = {}
        self.metrics_ports: dict[Priority, int] = {}
        self.services: dict[str, Child] = {}
        self.plan = DevServices.plan(settings, beat=options.beat, admin=options.admin, flower=options.flower)
        self.failure: str | None = None
        self._app: StorefrontCelery | None = None

    @property
    def app(self) -> StorefrontCelery:
        assert self._app is not None, "the broker is started first"
        return self._app

    def run(self) -> None:
        runner: WorkloadRunner | None = None
        started = time.monotonic()
        reason = "start-up failed"
        try:
            if self.start_broker() and self.start_children():
                runner = self.start_demo()
                started = time.monotonic()
                reason = self.monitor(started, runner)
            else:
                reason = "stopped during start-up"
        finally:
            self.shutdown(reason, started, runner)
        if self.failure is not None:
            raise StorefrontJobsError(self.failure)

    def start_broker(self) -> bool:
        """Use the configured broker or start an embedded one; False if stopped meanwhile."""
        url = self.settings.broker_url
        if url is not None:
            if not redis_answers(url):
                raise BrokerUnavailableError(f"STOREFRONT_JOBS_BROKER_URL={url!r} does not answer a PING")
            self.console.print(f"  broker  {url} (from STOREFRONT_JOBS_BROKER_URL)")
        else:
            log_dir = self.supervisor.log_dir
            server = EmbeddedRedis(port=choose_redis_port(), data_dir=log_dir / "redis")
            server.data_dir.mkdir(parents=True, exist_ok=True)
            url = server.url
            child = self.supervisor.start(redis_spec(server))
            if not self.supervisor.wait_ready([child], BROKER_READY_TIMEOUT_S, self.signals.stop):
                return False
            self.console.print(f"  broker  {url} (embedded {server.executable}, pid {child.pid})")
        self._app = self._use_broker(url)
        return True

    def _use_broker(self, url: str) -> StorefrontCelery:
        # This process is a producer too: its default app, built on first use
        # from the environment, must see the broker the pools use.
        os.environ[ENV_PREFIX + "BROKER_URL"] = url
        app = get_default_app()
        if app.conf.broker_url != url:
            raise ConfigurationError(
                f"the default app was built for {app.conf.broker_url} before dev chose {url}"
            )
        from storefront_jobs.examples import progress  # noqa: PLC0415 - registers tasks on that app

        progress.reset(app.redis)
        return app

    def start_children(self) -> bool:
        """Start the pools and the services together (they boot in parallel); print where they are."""
        env = child_env(os.environ, self.app.conf.broker_url, [*self.settings.imports, EXAMPLES_MODULE])
        host = socket.gethostname()
        for priority in Priority:
            ready = ping_probe(self.app, f"{pool_name(priority)}@{host}")
            port = choose_port(pool_metrics_port(self.settings.metrics_port, priority))
            self.metrics_ports[priority] = port
            spec = pool_spec(
                priority, concurrency=self.options.concurrency, env=env, metrics_port=port, ready=ready
            )
            self.pools[priority] = self.supervisor.start(spec)
        specs = self.plan.specs(env, self.supervisor.log_dir, self.app.redis)
        self.services = {spec.name: self.supervisor.start(spec) for spec in specs}
        self.console.print(f"  logs    {self.supervisor.log_dir}")
        names = ", ".join(["5 worker pools", *self.services])
        self.console.print(f"  starting {names} ...")
        starting = [*self.pools.values(), *self.services.values()]
        if not self.supervisor.wait_ready(starting, POOLS_READY_TIMEOUT_S, self.signals.stop):
            return False
        for priority, child in self.pools.items():
            port = self.metrics_ports[priority]
            self.console.print(
                f"  pool    {priority.label:<8} {child.name}@{host} pid {child.pid} "
                f"(-c {self.options.concurrency}, lane {keys.lane_name(priority)}, "
                f"metrics {f'http://127.0.0.1:{port}/metrics' if port else 'off'})"
            )
        pids = {name: child.pid for name, child in self.services.items()}
        lines = self.plan.lines(
            pids, self.app.conf.beat_schedule, self.supervisor.log_dir, self.app.conf.broker_url
        )
        for line in lines:
            # Plain text: rich would highlight (recolour) URLs and tokens, and wrap long ones.
            self.console.print(line, highlight=False, soft_wrap=True)
        return True

    def start_demo(self) -> WorkloadRunner | None:
        from storefront_jobs.examples import JOBS  # noqa: PLC0415 - see TYPE_CHECKING above
        from storefront_jobs.examples.demo import DemoSender, WorkloadRunner, workload  # noqa: PLC0415

        if not self.options.demo:
            self.console.print("  demo    off (--no-demo); send jobs of storefront_jobs.examples yourself")
            return None
        requests = workload(random.Random(self.options.seed), failure_rate=self.options.failure_rate)
        runner = WorkloadRunner(requests, DemoSender(JOBS, self.app.redis).send, self.options.rate_per_s)
        runner.start()
        self.console.print(
            f"  demo    {self.options.rate_per_s:g} jobs/s, {self.options.failure_rate:.0%} failing "
            "(transient failures retry and succeed; bad input and failed BULK jobs are final)"
        )
        return runner

    def monitor(self, started: float, runner: WorkloadRunner | None) -> str:
        """Show the status until something stops the run; returns why it stopped."""
        duration = self.options.duration_s
        deadline = started + duration if duration is not None else None
        live = (
            Live(console=self.console, auto_refresh=False, transient=True)
            if self.console.is_terminal
            else None
        )
        last_line = 0.0
        with live or contextlib.nullcontext():
            while True:
                reason = self._stop_reason(deadline)
                if reason is not None:
                    return reason
                try:
                    snapshot = self.snapshot(started, runner)
                except redis.RedisError as exc:
                    self.failure = f"lost the broker: {exc}"
                    return "broker unreachable"
                now = time.monotonic()
                if live is not None:
                    live.update(render(snapshot), refresh=True)
                elif now - last_line >= LINE_EVERY_S:
                    self.console.print(status_line(snapshot))
                    last_line = now
                self.signals.stop.wait(REFRESH_S)

    def _stop_reason(self, deadline: float | None) -> str | None:
        if self.signals.stop.is_set():
            return f"received {self.signals.received[0] if self.signals.received else 'a stop signal'}"
        crashed = self.supervisor.crashed()
        if crashed:
            self.failure = crashed[0].describe_exit()
            return f"{crashed[0].name} exited"
        if deadline is not None and time.monotonic() >= deadline:
            return f"--duration {self.options.duration_s:g} s elapsed"
        return None

    def snapshot(self, started: float, runner: WorkloadRunner | None, now: float | None = None) -> Snapshot:
        from storefront_jobs.examples import progress  # noqa: PLC0415

        gate = self.app.capacity_gate
        return Snapshot(
            elapsed_s=(now or time.monotonic()) - started,
            depths={p: gate.depth(p) for p in Priority},
            pools={p: _pool_state(child) for p, child in self.pools.items()},
            progress=progress.read(self.app.redis),
            job_lanes=self._job_lanes(),
            send_errors=runner.errors if runner is not None else 0,
            last_send_error=runner.last_error if runner is not None else None,
        )

    def _job_lanes(self) -> dict[str, Priority]:
        """Every example job's lane, the scheduled ones included (they are counted too)."""
        from storefront_jobs.examples import progress  # noqa: PLC0415

        lanes = {}
        for task in list(self.app.tasks.values()):
            name = progress.job_name(task)
            if name is not None and isinstance(task, PriorityTask):
                lanes[name] = task.lane_priority
        return lanes

    def shutdown(self, reason: str, started: float, runner: WorkloadRunner | None) -> None:
        """Stop everything in order; print the final counts while the broker is still up."""
        if not self.supervisor.children and runner is None:
            return  # failed before starting anything: the error says it all
        self.console.print(f"stopping ({reason}) ...")
        stopped_at = time.monotonic()
        if runner is not None:
            runner.stop()
        self.supervisor.stop_all(min_layer=1)
        final: Snapshot | None = None
        if self._app is not None:
            with contextlib.suppress(redis.RedisError):
                final = self.snapshot(started, runner, now=stopped_at)
        self.supervisor.stop_all()
        if final is not None:
            self.console.print(render(final, final=True))
            self.console.print("final " + status_line(final))
        for result in self.supervisor.stopped:
            self.console.print(f"  stopped {result.describe()}")
        self.console.print(f"all {len(self.supervisor.stopped)} processes stopped")


def _pool_state(child: Child) -> str:
    if child.running():
        return f"up (pid {child.pid})"
    return "stopped" if child.stopping else f"exited with code {child.proc.returncode}"


def run_dev(options: DevOptions, console: Console | None = None) -> None:
    """``storefront-jobs dev``: returns when everything it started has stopped."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            # A pipe or file gets rich's 80 columns; status lines read better unwrapped.
            console = Console(width=120)
    settings = load_settings()
    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="storefront-dev-"))
    console.print("storefront-jobs dev")
    with StopSignals() as signals, Supervisor(log_dir, force=signals.force) as supervisor:
        DevPlatform(options, settings, supervisor, signals, console).run()
