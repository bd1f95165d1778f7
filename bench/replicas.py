"""BROKER_MIN_REPLICAS 0 and 1 on a primary with one replica, against bare Celery; Redis's cost per job.

``python -m bench.replicas [--rounds 5] [--enqueue-jobs 2000] [--jobs 3000]``

A private primary and one replica (``redis-server --replicaof``), both on
loopback, so the replica confirms in well under a millisecond: the numbers are
the floor of what a wait for a replica costs. Bare Celery and storefront with
``BROKER_MIN_REPLICAS`` 0 and 1 alternate round by round (``round_order``);
each figure is a median over rounds, each ratio is against the same run.

1. **Enqueue**, one producer process each: bare ``apply_async``, storefront
   ``delay`` with 0, and with 1 (each enqueue then waits, ``WAIT 1 <timeout>``,
   on the connection that wrote). With the primary's CPU per enqueue.
2. **Processing** no-op jobs, prefork ``-c 2``: bare, and storefront pools with
   0 and 1 (a successful job writes nothing that waits: only retries, replays
   and DLQ captures do). With the primary's CPU per job.
3. **Redis's cost per job**: a storefront enqueue and drain (0) with
   ``CONFIG RESETSTAT`` before and ``INFO commandstats`` after: microseconds
   of command time per job, by command, and the primary's process CPU per job
   (commands, networking, replication); from it, how many jobs per second one
   Redis core carries. The same for bare Celery beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator

import redis
from celery import Celery

from bench.core import machine_facts
from bench.drain import DrainCase, drain_once, redis_cpu_s
from bench.harness import Run, command_costs, reset_broker, round_order
from bench.procs import REPO_ROOT, Children, Producer
from storefront_jobs.embedded import EmbeddedRedis

MIN_REPLICAS_1 = {"broker_min_replicas": "1"}
#: label -> the producer that enqueues (bench.producer's kind, and its settings).
PRODUCERS: dict[str, tuple[str, dict[str, str]]] = {
    "bare": ("bare", {}),
    "min_replicas_0": ("storefront", {}),
    "min_replicas_1": ("storefront", MIN_REPLICAS_1),
}
DRAINS: dict[str, DrainCase] = {
    "bare": DrainCase("bare", "", "celery"),
    "min_replicas_0": DrainCase("storefront", "DEFAULT", "p2.default"),
    "min_replicas_1": DrainCase("storefront", "DEFAULT", "p2.default", tuple(MIN_REPLICAS_1.items())),
}
TITLES = {
    "bare": "bare Celery",
    "min_replicas_0": "BROKER_MIN_REPLICAS=0",
    "min_replicas_1": "BROKER_MIN_REPLICAS=1",
}


class Replica(EmbeddedRedis):
    """A redis-server that replicates the primary on ``primary_port`` from its start."""

    def __init__(self, primary_port: int) -> None:
        super().__init__()
        self.primary_port = primary_port

    def command(self) -> list[str]:
        return [*super().command(), "--replicaof", "127.0.0.1", str(self.primary_port)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--rounds", type=int, default=5, help="interleaved rounds of every comparison (default 5)")
    add("--enqueue-jobs", type=int, default=2000, help="enqueues per sample (default 2000)")
    add("--jobs", type=int, default=3000, help="no-op jobs a pool drains per sample (default 3000)")
    return parser.parse_args(argv)


def wait_in_sync(primary: redis.Redis[bytes], timeout_s: float = 30.0) -> None:
    """Until the primary counts one replica online: before it, a WAIT would find none."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replica = primary.info("replication").get("slave0")
        if isinstance(replica, dict) and replica.get("state") == "online":
            return
        time.sleep(0.1)
    raise RuntimeError("the replica did not come online")


@contextlib.contextmanager
def replicated_run(args: argparse.Namespace) -> Iterator[Run]:
    """A primary with one replica, a control app, a producer per label, a results directory."""
    out_dir = REPO_ROOT / "bench" / "results" / time.strftime("replicas-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(EmbeddedRedis())
        stack.enter_context(Replica(primary.port))
        client = stack.enter_context(redis.Redis.from_url(primary.url))
        wait_in_sync(client)
        control = Celery("bench_control", broker=primary.url, set_as_current=False)
        stack.callback(control.close)
        children = Children(out_dir)
        stack.callback(children.close)
        producers = {
            label: Producer(children, kind, primary.url, settings=settings, name=label)
            for label, (kind, settings) in PRODUCERS.items()
        }
        # bench.drain pre-loads through the producer of the drain case's kind.
        producers["storefront"] = producers["min_replicas_0"]
        run = Run(args, primary.url, client, children, control, producers)
        run.results["machine"] = machine_facts(client, args)
        try:
            yield run
        finally:
            (out_dir / "results.json").write_text(json.dumps(run.results, indent=2))


def bench_enqueue(run: Run) -> dict[str, dict[str, list[float]]]:
    """Per label: enqueues per second and the primary's CPU microseconds per enqueue."""
    n: int = run.args.enqueue_jobs
    for label in PRODUCERS:  # warm-up: connections, script SHAs
        run.producers[label].call("enqueue", n=300)
    out: dict[str, dict[str, list[float]]] = {"rate": {}, "redis_cpu_us": {}}
    for metric in out.values():
        metric.update({label: [] for label in PRODUCERS})
    for r in range(run.args.rounds):
        for label in round_order(list(PRODUCERS), r):
            reset_broker(run.client)
            cpu0 = redis_cpu_s(run)
            elapsed = run.producers[label].call("enqueue", n=n)
            out["redis_cpu_us"][label].append((redis_cpu_s(run) - cpu0) / n * 1e6)
            out["rate"][label].append(n / elapsed)
        print("  enqueue round", r + 1, {k: round(v[-1]) for k, v in out["rate"].items()}, flush=True)
    reset_broker(run.client)
    return out


def bench_processing(run: Run) -> dict[str, dict[str, list[float]]]:
    """Per label: jobs per second of a pool draining alone, and the primary's CPU per job."""
    out: dict[str, dict[str, list[float]]] = {"rate": {}, "redis_cpu_us": {}}
    for metric in out.values():
        metric.update({label: [] for label in DRAINS})
    for r in range(run.args.rounds):
        for label in round_order(list(DRAINS), r):
            sample = drain_once(run, DRAINS[label])
            out["rate"][label].append(sample.rate)
            out["redis_cpu_us"][label].append(sample.redis_cpu_us)
        print("  processing round", r + 1, {k: round(v[-1]) for k, v in out["rate"].items()}, flush=True)
    return out


def bench_cost(run: Run) -> dict[str, dict[str, dict[str, tuple[int, float]]]]:
    """Per label: Redis's commands of an enqueue and of a drain, ``--jobs`` jobs each."""
    n: int = run.args.jobs
    out: dict[str, dict[str, dict[str, tuple[int, float]]]] = {}
    for label in PRODUCERS:
        reset_broker(run.client)
        run.client.config_resetstat()
        run.producers[label].call("enqueue", n=n)
        out[label] = {"enqueue": command_costs(run.client)}
        drained = drain_once(run, DRAINS[label], count_commands=True)
        assert drained.commands is not None
        out[label]["drain"] = drained.commands
    reset_broker(run.client)
    return out


def _per_job(commands: dict[str, tuple[int, float]], n: int) -> tuple[float, str]:
    """Command microseconds per job, and the four costliest commands (calls per job, us per job)."""
    # INFO and CONFIG are the benchmark's own, not the platform's.
    costs = {name: c for name, c in commands.items() if not name.startswith(("info", "config"))}
    total = sum(usec for _, usec in costs.values()) / n
    top = sorted(costs.items(), key=lambda item: -item[1][1])[:4]
    shown = ", ".join(f"{name} {calls / n:.2f}x {usec / n:.1f} us" for name, (calls, usec) in top)
    # A WAIT is cheap to execute (the time spent waiting is not counted): show that it ran.
    waits = costs.get("wait", (0, 0.0))[0]
    return total, f"{shown}; WAIT {waits / n:.2f} per job"


def _rate_lines(phase: dict[str, dict[str, list[float]]], title: str, per: str) -> list[str]:
    """One phase's medians: each label's rate against bare Celery's and the primary's CPU, then 1 / 0."""
    rates = {label: statistics.median(v) for label, v in phase["rate"].items()}
    lines = [title]
    for label, name in TITLES.items():
        cpu = statistics.median(phase["redis_cpu_us"][label])
        lines.append(
            f"   {name:24s} {rates[label]:7.0f} jobs/s {rates[label] / rates['bare']:5.2f}x bare,"
            f" primary CPU {cpu:5.1f} us/{per}"
        )
    lines.append(f"   BROKER_MIN_REPLICAS=1 / 0: {rates['min_replicas_1'] / rates['min_replicas_0']:.2f}x")
    return lines


def render(run: Run) -> str:
    enqueue, processing, cost = (run.results[k] for k in ("enqueue", "processing", "cost"))
    medians = f"{run.args.rounds} interleaved rounds (medians)"
    lines = [
        *_rate_lines(enqueue, f"1. Enqueue, one producer each, {medians}", "enqueue"),
        *_rate_lines(processing, f"2. Processing no-op jobs, prefork -c 2, {medians}", "job"),
    ]
    n = run.args.jobs
    lines.append(f"3. Redis's command time per job (INFO commandstats, {n} jobs, one sample each)")
    for label in PRODUCERS:
        parts = cost[label]
        enqueue_us, enqueue_top = _per_job(parts["enqueue"], n)
        lines.append(f"   {TITLES[label]:24s} enqueue {enqueue_us:5.1f} us/job: {enqueue_top}")
        drain_us, drain_top = _per_job(parts["drain"], n)
        lines.append(f"   {'':24s} drain   {drain_us:5.1f} us/job: {drain_top}")
    for label in ("bare", "min_replicas_0"):
        cpu_us = statistics.median(enqueue["redis_cpu_us"][label]) + statistics.median(
            processing["redis_cpu_us"][label]
        )
        lines.append(
            f"   {TITLES[label]}: primary CPU {cpu_us:.1f} us per job (enqueue + processing):"
            f" one Redis core carries about {1e6 / cpu_us:,.0f} jobs/s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with replicated_run(args) as run:
        run.results["enqueue"] = bench_enqueue(run)
        run.results["processing"] = bench_processing(run)
        run.results["cost"] = bench_cost(run)
    print()
    print(f"machine: {run.results['machine']}")
    print(render(run))
    print(f"\nraw samples and worker logs: {run.children.log_dir.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
