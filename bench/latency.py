"""Phase 3: how long a CRITICAL job waits to start while BULK jobs flood the pool(s).

Phase ``reserved``: the same flood on one pool with one reserved process
(``--reserve CRITICAL,HIGH=1``) beside the shared and dedicated pools, and the
BULK throughput that the reservation leaves (a pool of 4 draining short BULK
jobs, reserved against unreserved; the goal is (c - reserved) / c).
"""

from __future__ import annotations

import json
import time

from bench.harness import UNACKED, Run, percentile, reset_broker, round_order, wait_for
from bench.probes import STARTS_KEY
from bench.procs import start_worker, wait_ready

#: label -> (kind, pools as (lanes, concurrency)). Bare Celery has no lanes: five plain queues, defaults.
LATENCY_CASES: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {
    "bare_shared": ("bare", (("critical,high,default,low,bulk", 2),)),
    "storefront_shared": ("storefront", (("all", 2),)),
    "storefront_dedicated": ("storefront", (("CRITICAL", 2), ("BULK", 2))),
}
#: The reserved phase's cases: the shared pool of the latency phase with one process kept for
#: CRITICAL and HIGH, between the shared and the dedicated pools it is compared with.
RESERVED_CASES = ("bare_shared", "storefront_shared", "storefront_reserved", "storefront_dedicated")
RESERVE = {"WORKER_RESERVE": "CRITICAL,HIGH=1"}
#: The pool whose BULK throughput is measured with and without the reservation (goal 3/4).
THROUGHPUT_CONCURRENCY = 4


def critical_waits(run: Run, label: str) -> list[float]:
    """Seconds from enqueue to start of each CRITICAL probe sent during a BULK flood."""
    reserved = label == "storefront_reserved"
    kind, pools = LATENCY_CASES["storefront_shared" if reserved else label]
    settings = RESERVE if reserved else None
    args = run.args
    reset_broker(run.client)
    workers = [
        start_worker(run.children, run.url, kind, lanes, concurrency=c, settings=settings)
        for lanes, c in pools
    ]
    try:
        for worker in workers:
            wait_ready(run.control, worker)
        run.producers[kind].call("flood", n=args.flood, sleep_s=args.flood_sleep_s)
        time.sleep(1.0)  # let the pool(s) take their first BULK jobs (and, bare, prefetch more)
        run.producers[kind].call("probes", n=args.probes, spacing_s=args.probe_spacing_s)
        budget_s = args.flood * args.flood_sleep_s + 60  # bare may make probes wait out the whole flood
        wait_for(lambda: int(run.client.llen(STARTS_KEY)) >= args.probes, budget_s, "every probe to start")
        records = [json.loads(raw) for raw in run.client.lrange(STARTS_KEY, 0, -1)]
    finally:
        # A busy late-ack prefork pool can take ~30 s to stop warmly (billiard's children
        # wait for the parent to read results it no longer reads); nothing here needs a
        # warm stop, so give it 5 s, then SIGKILL. The reset drops the rest of the flood.
        for worker in workers:
            worker.stop(timeout_s=5.0)
        reset_broker(run.client)
    return [r["started_at"] - r["enqueued_at"] for r in sorted(records, key=lambda r: r["n"])]


def bench_latency(run: Run) -> dict[str, list[float]]:
    waits: dict[str, list[float]] = {label: [] for label in LATENCY_CASES}
    for r in range(run.args.latency_rounds):
        for label in LATENCY_CASES:
            waits[label] += critical_waits(run, label)
            p95_ms = percentile(waits[label], 95) * 1000
            print(f"  latency round {r + 1}: {label} p95 {p95_ms:.0f} ms", flush=True)
    return waits


def bulk_rate(run: Run, reserved: bool) -> float:
    """BULK jobs per second that a pool of 4 on every lane drains, with or without the reservation."""
    args = run.args
    reset_broker(run.client)
    settings = RESERVE if reserved else None
    worker = start_worker(
        run.children, run.url, "storefront", "all", concurrency=THROUGHPUT_CONCURRENCY, settings=settings
    )
    try:
        wait_ready(run.control, worker)
        # Timed from the first send: the pool takes jobs while the flood is being sent.
        started = time.perf_counter()
        run.producers["storefront"].call("flood", n=args.throughput_jobs, sleep_s=args.throughput_sleep_s)

        def drained() -> bool:
            return int(run.client.llen("p4.bulk")) == 0 and not run.client.hlen(UNACKED)

        wait_for(drained, 600, "the drain")
        return args.throughput_jobs / (time.perf_counter() - started)
    finally:
        worker.stop(timeout_s=5.0)
        reset_broker(run.client)


def bench_reserved(run: Run) -> dict[str, object]:
    waits: dict[str, list[float]] = {label: [] for label in RESERVED_CASES}
    rates: dict[str, list[float]] = {"unreserved": [], "reserved": []}
    for r in range(run.args.latency_rounds):
        for label in round_order(list(RESERVED_CASES), r):
            waits[label] += critical_waits(run, label)
            p95_ms = percentile(waits[label], 95) * 1000
            print(f"  reserved round {r + 1}: {label} p95 {p95_ms:.0f} ms", flush=True)
        for side in round_order(list(rates), r):
            rates[side].append(bulk_rate(run, side == "reserved"))
            print(f"  reserved round {r + 1}: BULK drain {side} {rates[side][-1]:.1f} jobs/s", flush=True)
    return {"waits": waits, "bulk_rates": rates}
