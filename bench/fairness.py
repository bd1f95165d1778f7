"""Benchmark of a fair share per tenant: what it costs a lane, and what it spares a small tenant.

``python -m bench.fairness [--rounds 3] [--jobs 3000] [--backlog 2000]``; see bench/README.md.

1. **Processing rate**: a DEFAULT pool draining ``--jobs`` no-op jobs of
   ``--tenants`` tenants, with fairness on (tenant lists, turns) and off (one
   list), as a ratio (goal >= 0.95). Timed between two depth marks (10 % and
   90 % of the jobs taken), so pool start-up is left out.
2. **A small tenant's wait**: while the pool works tenant A's backlog of
   ``--backlog`` jobs of ``--job-s``, tenant B sends ``--small`` jobs; how long
   B's last one waited to start, and how many of A's started before it, with
   fairness off and on.

Sides alternate (off on, then on off) and the report gives medians, as
bench.core does. Worker logs and results go to ``bench/results/fairness-<time>/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from celery import Celery

from bench import tenant_jobs
from bench.harness import reset_broker, round_order, wait_for
from bench.procs import REPO_ROOT, Children, Worker, start_worker, wait_ready
from storefront_jobs import Priority, create_app, load_settings, tenant
from storefront_jobs.broker import keys
from storefront_jobs.embedded import EmbeddedRedis

SIDES = ("off", "on")
RATE_GOAL = 0.95
#: The share of the jobs taken before the rate clock starts, and left when it stops.
RATE_MARGIN = 0.1
#: Where the rate phase's jobs wait while the pool starts (as bench.drain's ``bench:staged:``).
STAGED = "bench:staged:"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--rounds", type=int, default=3, help="interleaved rounds of each phase (default 3)")
    add("--concurrency", type=int, default=2, help="processes of the DEFAULT pool (default 2)")
    add("--jobs", type=int, default=3000, help="no-op jobs of the rate phase (default 3000)")
    add("--tenants", type=int, default=10, help="tenants they belong to, in turn (default 10)")
    add("--backlog", type=int, default=2000, help="tenant A's jobs in the wait phase (default 2000)")
    add("--small", type=int, default=10, help="tenant B's jobs sent after them (default 10)")
    add("--job-s", type=float, default=0.02, help="duration of each wait-phase job (default 0.02)")
    return parser.parse_args(argv)


def start_pool(children: Children, url: str, side: str, concurrency: int) -> Worker:
    """A ``storefront-jobs worker --priorities DEFAULT`` pool, fairness on or off."""
    settings = {"TENANT_FAIRNESS__DEFAULT": str(side == "on").lower()}
    return start_worker(
        children,
        url,
        "storefront",
        "DEFAULT",
        concurrency=concurrency,
        settings=settings,
        imports="bench.tenant_jobs",
    )


class Bench:
    """The broker, the producer apps (one per side), the control app, and the run's processes."""

    def __init__(self, args: argparse.Namespace, url: str, children: Children) -> None:
        self.args = args
        self.url = url
        self.children = children
        self.client: redis.Redis[bytes] = redis.Redis.from_url(url)
        self.control = Celery("bench_fair_control", broker=url, set_as_current=False)
        self.apps = {side: self._app(side) for side in SIDES}

    def _app(self, side: str) -> Any:
        settings = load_settings(
            broker_url=self.url,
            queue_capacity={"default": 1_000_000},
            tenant_fairness={"default": side == "on"},
        )
        return create_app(settings, main=f"bench-fair-{side}")

    def depth(self, side: str) -> int:
        return int(self.apps[side].capacity_gate.depth(Priority.DEFAULT))

    def with_pool(self, side: str, measure: Callable[[], Any]) -> Any:
        worker = start_pool(self.children, self.url, side, self.args.concurrency)
        try:
            wait_ready(self.control, worker)
            return measure()
        finally:
            # Nothing here needs a warm stop, and a busy late-ack pool can take long to make one.
            worker.stop(timeout_s=5.0)
            reset_broker(self.client)

    def rate(self, side: str) -> float:
        """Jobs per second the pool takes between the two depth marks."""
        args = self.args
        reset_broker(self.client)
        noop = self.apps[side].tasks[tenant_jobs.NOOP]
        for n in range(args.jobs):
            with tenant(f"t-{n % args.tenants}"):
                noop.delay()
        high, low = int(args.jobs * (1 - RATE_MARGIN)), int(args.jobs * RATE_MARGIN)
        staged = self._stage()

        def measure() -> float:
            self._unstage(staged)
            started = wait_for(lambda: self.depth(side) <= high, 120, "the pool to start taking jobs")
            ended = wait_for(lambda: self.depth(side) <= low, 600, "the drain")
            return (high - low) / (ended - started)

        rate: float = self.with_pool(side, measure)
        return rate

    def small_tenant_wait(self, side: str) -> dict[str, float]:
        """The waits of B's jobs sent during A's backlog, and how many of A's started before B's last."""
        args = self.args
        reset_broker(self.client)
        timed = self.apps[side].tasks[tenant_jobs.TIMED]
        with tenant("A"):
            for n in range(args.backlog):
                timed.delay(n, args.job_s)

        def measure() -> dict[str, float]:
            wait_for(lambda: bool(self.client.llen(tenant_jobs.STARTS_KEY)), 120, "A's first job to start")
            with tenant("B"):
                for n in range(args.small):
                    timed.delay(n, args.job_s)
            budget_s = args.backlog * args.job_s + 120  # off, B waits out the whole backlog
            wait_for(lambda: len(self._starts("B")) >= args.small, budget_s, "B's jobs to start")
            starts = self._starts(None)
            b_sent = min(s["enqueued_at"] for s in starts if s["tenant"] == "B")
            b_waits = [s["started_at"] - s["enqueued_at"] for s in starts if s["tenant"] == "B"]
            b_last = max(s["started_at"] for s in starts if s["tenant"] == "B")
            overtaking = [s for s in starts if s["tenant"] == "A" and b_sent <= s["started_at"] <= b_last]
            return {
                "last_s": max(b_waits),
                "median_s": statistics.median(b_waits),
                "a_before": len(overtaking),
            }

        wait: dict[str, float] = self.with_pool(side, measure)
        return wait

    def _stage(self) -> list[str]:
        """Move the lane's keys aside (``RENAME``), so that the pool starting up finds nothing to take."""
        lane = keys.lane_name(Priority.DEFAULT)
        names = [
            k.decode() for k in self.client.keys(f"{lane}*") + self.client.keys(f"{keys.FAIR_PREFIX}{lane}:*")
        ]
        names = [name for name in names if name != keys.doorbell(lane)]
        pipe = self.client.pipeline(transaction=True)
        for name in names:
            pipe.rename(name, STAGED + name)
        pipe.execute()
        return names

    def _unstage(self, names: list[str]) -> None:
        """Give the ready pool its jobs back in one step, and ring the lane's doorbell to wake it now."""
        pipe = self.client.pipeline(transaction=True)
        for name in names:
            pipe.rename(STAGED + name, name)
        pipe.lpush(keys.doorbell(keys.lane_name(Priority.DEFAULT)), 1)
        pipe.execute()

    def _starts(self, who: str | None) -> list[dict[str, Any]]:
        records = [json.loads(raw) for raw in self.client.lrange(tenant_jobs.STARTS_KEY, 0, -1)]
        return [r for r in records if who is None or r["tenant"] == who]


def run(bench: Bench) -> dict[str, Any]:
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    waits: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for r in range(bench.args.rounds):
        for side in round_order(list(SIDES), r):
            rates[side].append(bench.rate(side))
            print(f"  round {r + 1}: rate, fairness {side}: {rates[side][-1]:.0f} jobs/s", flush=True)
        for side in round_order(list(SIDES), r):
            waits[side].append(bench.small_tenant_wait(side))
            w = waits[side][-1]
            print(f"  round {r + 1}: B's last wait, fairness {side}: {w['last_s']:.2f} s", flush=True)
    return {"rates": rates, "waits": waits}


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    rates, waits = results["rates"], results["waits"]
    ratio = statistics.median(on / off for on, off in zip(rates["on"], rates["off"], strict=True))
    verdict = "met" if ratio >= RATE_GOAL else "NOT MET"
    off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    lines = [
        f"1. Processing rate, DEFAULT pool -c {args.concurrency},"
        f" {args.jobs} no-op jobs of {args.tenants} tenants",
        f"   fairness off {off_rate:.0f} jobs/s, on {on_rate:.0f} jobs/s;"
        f" ratio on/off {ratio:.3f} (paired median)  goal >= {RATE_GOAL}: {verdict}",
        f"2. Tenant B's {args.small} jobs sent while the pool works tenant A's {args.backlog} jobs of"
        f" {args.job_s * 1000:.0f} ms",
    ]
    last = {side: statistics.median(w["last_s"] for w in waits[side]) for side in SIDES}
    for side in SIDES:
        median_s = statistics.median(w["median_s"] for w in waits[side])
        before = statistics.median(w["a_before"] for w in waits[side])
        lines.append(
            f"   fairness {side:>3}: B's last job waited {last[side]:.2f} s (median job {median_s:.2f} s),"
            f" {before:.0f} of A's jobs started in between"
        )
    lines.append(f"   ratio off/on of B's last wait: {last['off'] / max(last['on'], 1e-9):.1f}x")
    return "\n".join(lines)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that the ExitStack stops every child and the Redis


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    out_dir: Path = REPO_ROOT / "bench" / "results" / time.strftime("fairness-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True)
    results: dict[str, Any] = {"args": vars(args), "loadavg_start": os.getloadavg()}
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedRedis())
        children = Children(out_dir)
        stack.callback(children.close)
        bench = Bench(args, broker.url, children)
        stack.callback(bench.control.close)
        try:
            results.update(run(bench))
        finally:
            results["loadavg_end"] = os.getloadavg()
            (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    print()
    print(render(results, args))
    print(f"\nraw samples and worker logs: {out_dir.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
